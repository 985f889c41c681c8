"""Serving the staff page: HTTPS with a server certificate (no client certificates: staff authenticate in the
hospital's login in front), plain HTTP on loopback only."""

from __future__ import annotations

from pathlib import Path

import uvicorn
from fastapi import FastAPI

from adapter.gateway.server import is_loopback


def listen_refusal(host: str, tls_cert: Path | None, tls_key: Path | None) -> str | None:
    """Why the UI must not listen as asked, or None."""
    if (tls_cert is None) != (tls_key is None):
        return "--tls-cert and --tls-key go together"
    if tls_cert is None and not is_loopback(host):
        return "plain HTTP is refused on anything but loopback: give --tls-cert and --tls-key"
    return None


def uvicorn_config(app: FastAPI, *, host: str = "127.0.0.1", port: int = 8700, tls_cert: Path | None = None,
                   tls_key: Path | None = None, log_level: str = "info") -> uvicorn.Config:
    refusal = listen_refusal(host, tls_cert, tls_key)
    if refusal:
        raise ValueError(refusal)
    # lifespan on: it runs the access-log sender; no access log lines (paths only, but nothing to gain)
    return uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False, lifespan="on",
                          server_header=False, ssl_certfile=str(tls_cert) if tls_cert else None,
                          ssl_keyfile=str(tls_key) if tls_key else None)


def run_ui(app: FastAPI, **options) -> None:
    uvicorn.Server(uvicorn_config(app, **options)).run()
