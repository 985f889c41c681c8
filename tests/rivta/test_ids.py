"""Log ids and correlation ids: `ids.uuid4()` writes what `str(uuid.uuid4())` would, from buffered randomness."""

from __future__ import annotations

import os
import uuid

from adapter.rivta import ids


def test_the_text_is_what_uuid_writes_for_the_same_random_bytes(monkeypatch):
    for _ in range(2000):
        drawn = os.urandom(16)
        monkeypatch.setattr(ids.os, "urandom", lambda n, drawn=drawn: drawn * (n // 16))
        ids._drop_buffer()
        assert ids.uuid4() == str(uuid.UUID(bytes=drawn, version=4))


def test_ids_are_version_4_and_do_not_repeat():
    ids._drop_buffer()
    made = [ids.uuid4() for _ in range(3 * ids._BUFFER_BYTES // 16)]  # across buffer refills
    assert len(set(made)) == len(made)
    assert all(uuid.UUID(v).version == 4 and uuid.UUID(v).variant == uuid.RFC_4122 for v in made)


def test_a_forked_child_does_not_hand_out_its_parents_next_ids():
    ids.uuid4()  # the buffer holds ids not yet handed out
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next id and leave at once
        os.write(write, ids.uuid4().encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.waitpid(pid, 0)
    os.close(read)
    assert child != ids.uuid4()
