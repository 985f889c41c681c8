"""Servers under test, each in its own process so that the load client never shares a GIL with them.

* `real`: the production command itself, `npo-adapter serve` (mTLS, TAK authorisations, log level info).
* `fixed`: the same uvicorn + TLS set-up (adapter.gateway.server.uvicorn_config with TlsContexts and the
  peer-certificate protocol) and the same framework (FastAPI), whose handler reads the body and returns
  a fixed answer: the baseline that costs everything but the adapter's own work.
* `delayed`: like `fixed`, but waits a set time before answering (consumer fan-out).

`python -m bench.servers fixed|delayed --port P --pki DIR --answer FILE [--delay S] [--path URL_PATH]`
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

from fastapi import FastAPI, Request, Response

from adapter.gateway.pki import DevPki, init_pki, load_pki

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dev_pki(folder: Path) -> DevPki:
    return load_pki(folder) if (folder / "pki.json").exists() else init_pki(folder)


def client_context(pki: DevPki, name: str = "platform") -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.ca_bundle))
    c = pki.client(name)
    ctx.load_cert_chain(str(c.cert), str(c.key))
    return ctx


class ServerProcess:
    """A server in a child process; `with` waits until it completes an mTLS handshake, then stops it."""

    def __init__(self, argv: list[str], port: int, pki: DevPki, log: Path, env: dict | None = None) -> None:
        self.argv, self.port, self.pki, self.log = argv, port, pki, log
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def cpu_seconds(self) -> float:
        """CPU time so far of the server and its processes (the workers of `serve --workers N`)."""
        import psutil

        server = psutil.Process(self.pid)
        total = 0.0
        for proc in [server, *server.children(recursive=True)]:
            try:
                total += sum(proc.cpu_times()[:2])
            except psutil.NoSuchProcess:
                pass
        return total

    def __enter__(self) -> ServerProcess:
        self._out = self.log.open("ab")
        self.proc = subprocess.Popen(self.argv, cwd=REPO, stdout=self._out, stderr=subprocess.STDOUT, env=self.env)
        ctx = client_context(self.pki)
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}; see {self.log}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as raw:
                    with ctx.wrap_socket(raw, server_hostname="127.0.0.1"):
                        return self
            except OSError:
                if time.monotonic() > deadline:
                    self.__exit__()
                    raise RuntimeError(f"server did not start; see {self.log}") from None
                time.sleep(0.1)

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()


def real_server(store_url: str, pki: DevPki, port: int, log: Path, log_level: str = "info",
                workers: int = 1) -> ServerProcess:
    """`npo-adapter serve`; one worker process unless told (its own default is one per core)."""
    argv = [PYTHON, "-m", "adapter.cli", "serve", "--store", store_url, "--port", str(port), "--workers", str(workers),
            "--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key), "--client-ca", str(pki.ca_bundle),
            "--crl", str(pki.crl_root), "--crl", str(pki.crl_function), "--log-level", log_level,
            "--authorisations", "config/authorisations.dev.toml"]
    return ServerProcess(argv, port, pki, log)


def fixed_server(answer: Path, pki: DevPki, port: int, log: Path, path: str = "/{rest:path}",
                 delay: float = 0.0) -> ServerProcess:
    argv = [PYTHON, "-m", "bench.servers", "delayed" if delay else "fixed", "--port", str(port),
            "--pki", str(pki.dir), "--answer", str(answer), "--path", path, "--delay", str(delay)]
    return ServerProcess(argv, port, pki, log)


def _fixed_app(answer: Path, path: str, delay: float) -> FastAPI:
    """`answer` is one file (served at `path`) or a folder of <Contract>-<major>.xml files (each at its contract's
    path)."""
    from adapter.rivta.contracts import CONTRACTS

    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    routes = ({c.url_path: (answer / f"{c.name}-{c.major}.xml").read_bytes() for c in CONTRACTS} if answer.is_dir()
              else {path: answer.read_bytes()})
    def answering(body: bytes):
        async def handler(request: Request) -> Response:
            await request.body()
            if delay:
                await asyncio.sleep(delay)
            return Response(body, media_type="text/xml; charset=utf-8")

        return handler

    for route, body in routes.items():
        app.add_api_route(route, answering(body), methods=["POST"], include_in_schema=False)
    return app


def main() -> None:
    import uvicorn

    from adapter.gateway import server
    from adapter.gateway.tls import TlsContexts, TlsFiles

    p = argparse.ArgumentParser()
    p.add_argument("kind", choices=["fixed", "delayed"])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--pki", type=Path, required=True)
    p.add_argument("--answer", type=Path, required=True)
    p.add_argument("--path", default="/{rest:path}")
    p.add_argument("--delay", type=float, default=0.0)
    a = p.parse_args()
    pki = load_pki(a.pki)
    tls = TlsContexts(TlsFiles(pki.server_cert, pki.server_key, pki.ca_bundle, (pki.crl_root, pki.crl_function)))
    app = _fixed_app(a.answer, a.path, a.delay)
    uvicorn.Server(server.uvicorn_config(app, port=a.port, tls=tls)).run()


if __name__ == "__main__":
    main()
