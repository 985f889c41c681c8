"""The embedded store holds journal data: its file and its -wal and -shm files are the adapter's user's only.

Found by the security review: 0644 files under a 0755 folder, readable by every local user."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import text

from adapter.store.engine import open_store


@pytest.fixture
def wide_umask():
    old = os.umask(0o022)  # the usual default, which made the files 0644
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_new_store_files_are_owner_only_in_an_owner_only_folder(tmp_path, wide_umask):
    db = tmp_path / "var" / "deeper" / "store.db"
    engine = open_store(f"sqlite:///{db}")
    try:
        with engine.connect() as conn:  # keeps the WAL and the shared memory file open
            conn.execute(text("SELECT count(*) FROM sqlite_master")).scalar()
            files = [db, db.with_name("store.db-wal"), db.with_name("store.db-shm")]
            assert all(f.exists() for f in files)
            assert {f.name: mode(f) for f in files} == {f.name: 0o600 for f in files}
            assert mode(db.parent) == 0o700
    finally:
        engine.dispose()


def test_an_existing_world_readable_store_is_narrowed(tmp_path, wide_umask):
    db = tmp_path / "store.db"
    open_store(f"sqlite:///{db}").dispose()
    os.chmod(db, 0o644)
    engine = open_store(f"sqlite:///{db}")
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            assert mode(db) == 0o600
            assert mode(db.with_name("store.db-wal")) == 0o600
    finally:
        engine.dispose()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another local user")
def test_another_local_user_cannot_read_the_store(tmp_path, wide_umask):
    folder = Path("/tmp") / f"npo-store-{os.getpid()}"
    db = folder / "store.db"
    try:
        open_store(f"sqlite:///{db}").dispose()
        os.chmod(folder, 0o755)  # even with the folder opened up, the file itself stays closed
        res = subprocess.run(["cat", str(db)], capture_output=True, user=65534, group=65534, extra_groups=[])
        assert res.returncode != 0 and b"Permission denied" in res.stderr
        assert subprocess.run(["cat", str(db)], capture_output=True).returncode == 0  # the control: root can
    finally:
        for f in folder.glob("*"):
            f.unlink()
        folder.rmdir()
