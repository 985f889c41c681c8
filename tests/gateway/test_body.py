"""`body.body_in_hand` reads uvicorn's request cycle: the producer arms no deadline for a body the server already
holds (adapter/producer/app.py). These tests fail if an upgrade of uvicorn changes what it reads, with either of
its HTTP protocols; a body still on its way is read under the deadline as before (tests/hostile: slowloris)."""

from __future__ import annotations

import socket
import threading
import time

import pytest
import uvicorn
from starlette.requests import Request

from adapter.gateway.body import body_in_hand, read_capped
from tests.conftest import free_port


async def _app(scope, receive, send) -> None:
    if scope["type"] != "http":
        return
    request = Request(scope, receive)
    in_hand = body_in_hand(request)
    data = await read_capped(request, 1000)
    answer = f"{in_hand} {data.decode()}".encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(answer)).encode())]})
    await send({"type": "http.response.body", "body": answer})


@pytest.fixture(params=["httptools", "h11"])
def server(request):
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(_app, host="127.0.0.1", port=port, http=request.param, log_level="warning",
                                        lifespan="off"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.01)
    yield port
    srv.should_exit = True
    thread.join(timeout=10)


def _ask(port: int, pause: float | None) -> bytes:
    head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        if pause is None:
            sock.sendall(head + b"hello")
        else:
            sock.sendall(head)
            time.sleep(pause)
            sock.sendall(b"hello")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer.split(b"\r\n\r\n", 1)[1]


def test_a_body_that_came_with_the_request_is_in_hand(server):
    assert _ask(server, None) == b"True hello"


def test_a_body_still_on_its_way_is_not(server):
    assert _ask(server, 0.3) == b"False hello"
