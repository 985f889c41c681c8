"""Running the producer: embedded mTLS (default), behind nginx on a Unix socket, or plain HTTP on loopback."""

from __future__ import annotations

import ipaddress
import logging
import signal

import uvicorn

from adapter.gateway.tls import TlsContexts

log = logging.getLogger("adapter.gateway")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def uvicorn_config(app, *, host: str = "127.0.0.1", port: int = 8443, uds: str | None = None,
                   tls: TlsContexts | None = None, log_level: str = "warning") -> uvicorn.Config:
    """A loaded uvicorn config; with `tls`, our SSL context and the peer-certificate protocol."""
    config = uvicorn.Config(app, host=host, port=port, uds=uds, log_level=log_level, access_log=False,
                            lifespan="off", http=tls.protocol_class if tls else "auto",
                            timeout_keep_alive=30)
    config.load()
    if tls is not None:
        config.ssl = tls.listening
    return config


def run(config: uvicorn.Config, tls: TlsContexts | None) -> None:
    if tls is not None:
        def _reload(_signum, _frame) -> None:
            try:
                tls.reload()
            except Exception as exc:  # keep serving with the old material; say why
                log.error("TLS reload failed, keeping the previous certificates and CRLs: %s", exc)

        signal.signal(signal.SIGHUP, _reload)
    uvicorn.Server(config).run()
