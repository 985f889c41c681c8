"""Running the producer: embedded mTLS (default), behind nginx on a Unix socket, or plain HTTP on loopback."""

from __future__ import annotations

import contextlib
import errno
import gc
import grp
import ipaddress
import logging
import os
import signal
import socket
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvicorn

from adapter.gateway.protocol import HeadCappedProtocol
from adapter.gateway.tls import TlsContexts

log = logging.getLogger("adapter.gateway")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def server_options(log_level: str = "warning") -> dict[str, Any]:
    """uvicorn's options for the producer, in one process or in each of `serve --workers N`."""
    # log_config=None: uvicorn's own lines go through adapter/logs.py (text or JSON) like everything else
    return {"log_level": log_level, "log_config": None, "access_log": False, "lifespan": "off",
            "timeout_keep_alive": 30}


def uvicorn_config(app, *, host: str = "127.0.0.1", port: int = 8443, uds: str | None = None,
                   tls: TlsContexts | None = None, log_level: str = "warning") -> uvicorn.Config:
    """A loaded uvicorn config; with `tls`, our SSL context and the peer-certificate protocol."""
    config = uvicorn.Config(app, host=host, port=port, uds=uds, http=tls.protocol_class if tls else HeadCappedProtocol,
                            **server_options(log_level))
    config.load()
    if tls is not None:
        config.ssl = tls.listening
    return config


def bind_unix_socket(path: Path, group: str | None = None) -> socket.socket:
    """A listening-ready Unix socket at `path`, connectable by its owner only (0600), or also by `group` (0660).

    uvicorn would create it 0666, and any local user who can connect could then claim any certificate in
    X-Client-Cert. The socket is bound in a private (0700) folder beside `path`, given its mode and group
    there, and only then renamed into place, so it is never reachable with a wider mode."""
    path = Path(path)
    gid = None
    if group is not None:
        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            raise ValueError(f"no group {group!r}") from None
    with contextlib.suppress(FileNotFoundError):
        if not stat.S_ISSOCK(path.lstat().st_mode):
            raise ValueError(f"{path} exists and is not a socket")
        path.unlink()  # a stale socket of an earlier run
    staging = Path(tempfile.mkdtemp(dir=path.parent, prefix=".npo-adapter-"))
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        staged = staging / "sock"
        sock.bind(str(staged))
        os.chmod(staged, 0o660 if gid is not None else 0o600)
        if gid is not None:
            os.chown(staged, -1, gid)
        os.rename(staged, path)
    except BaseException:
        sock.close()
        raise
    finally:
        with contextlib.suppress(FileNotFoundError):
            (staging / "sock").unlink()
        staging.rmdir()
    return sock


class PortInUse(OSError):
    """Another process listens on the address and port asked for."""


def bind_tcp(host: str, port: int) -> socket.socket:
    """A listening-ready socket on host:port, bound before anything says it serves there. `PortInUse` when another
    process has the port; any other OSError as it came (no such address here, no permission for a low port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=2048)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise PortInUse(exc.errno, f"port {port} on {host} is in use by another process") from None
        raise


def on_sighup(reload: Callable[[], None] | None) -> None:
    """SIGHUP calls `reload` (new certificates and CRLs); a failure keeps the previous material, said in the log.
    With nothing to reload (plain HTTP) it is said and otherwise ignored: its default action would end the process
    (`serve --workers N` forwards a SIGHUP to every worker)."""

    def _reload(_signum: int, _frame: Any) -> None:
        if reload is None:
            log.info("SIGHUP: no certificates or CRLs to reload (plain HTTP)")
            return
        try:
            reload()
        except Exception as exc:  # keep serving with the old material; say why
            log.error("TLS reload failed, keeping the previous certificates and CRLs: %s", exc)

    signal.signal(signal.SIGHUP, _reload)


def settle() -> None:
    """Before serving: what start-up built (modules, schemas, the app: ~150 000 objects) is moved out of the
    cyclic garbage collector's sight (`gc.freeze`). A full collection walked all of it: about 40 ms in which no
    request was answered, a spike in every answer then in flight (p99 in bench/producer_throughput.py)."""
    gc.collect()
    gc.freeze()


def run(config: uvicorn.Config, reload: Callable[[], None] | None = None,
        sock: socket.socket | None = None) -> None:
    """Serve until stopped; SIGHUP calls `reload` (new certificates and CRLs), on a Unix socket `sock`."""
    on_sighup(reload)
    settle()
    uvicorn.Server(config).run(sockets=[sock] if sock is not None else None)
