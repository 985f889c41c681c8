"""Serving the staff page: HTTPS with a server certificate (no client certificates: staff sign in through the
hospital's OpenID provider). Without a provider only the loopback demo mode is possible, labelled on the page;
plain HTTP only for that demo."""

from __future__ import annotations

import socket
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from adapter.gateway.protocol import HeadCappedProtocol
from adapter.gateway.server import is_loopback


def listen_refusal(host: str, tls_cert: Path | None, tls_key: Path | None, *, provider: bool = True,
                   demo: bool = False) -> str | None:
    """Why the UI must not listen as asked, or None. `provider`: staff sign in through an OpenID provider;
    `demo`: the loopback demo user instead."""
    if (tls_cert is None) != (tls_key is None):
        return "--tls-cert and --tls-key go together"
    if tls_cert is None and not is_loopback(host):
        return "plain HTTP is refused on anything but loopback: give --tls-cert and --tls-key"
    if not provider and not demo:
        return "no [staff_login] (the hospital's OpenID provider) in the configuration: nobody could sign in"
    if not provider and not is_loopback(host):
        return "the demo mode without sign-in is for loopback only: configure [staff_login] to listen on " + host
    if provider and tls_cert is None:
        return "sign-in through the provider needs HTTPS (Secure cookies): give --tls-cert and --tls-key"
    return None


def uvicorn_config(app: FastAPI, *, host: str = "127.0.0.1", port: int = 8700, tls_cert: Path | None = None,
                   tls_key: Path | None = None, log_level: str = "info") -> uvicorn.Config:
    config = getattr(app.state, "config", None) if app is not None else None
    refusal = listen_refusal(host, tls_cert, tls_key,
                             provider=config is None or config.staff_login is not None,
                             demo=config is not None and config.demo_user is not None)
    if refusal:
        raise ValueError(refusal)
    # lifespan on: it runs the access-log sender; no access log lines (paths only, but nothing to gain)
    # log_config=None: uvicorn's own lines go through adapter/logs.py (text or JSON) like everything else
    return uvicorn.Config(app, host=host, port=port, log_level=log_level, log_config=None, access_log=False,
                          lifespan="on", server_header=False, http=HeadCappedProtocol,
                          ssl_certfile=str(tls_cert) if tls_cert else None,
                          ssl_keyfile=str(tls_key) if tls_key else None)


def run_ui(app: FastAPI, sock: socket.socket | None = None, **options) -> None:
    """Serve until stopped; on `sock` when given (bound before the command said where it serves)."""
    uvicorn.Server(uvicorn_config(app, **options)).run(sockets=[sock] if sock is not None else None)
