"""A loopback HTTP(S) server that writes raw bytes and counts what it managed to send: "the client stops at the
cap" is measured on the server's side, not assumed."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from adapter.rivta.contracts import SOAP_NS

HUGE = 1 << 30  # 1 GiB: far more than any test reads


@dataclass
class Request:
    head: str
    body: bytes

    def header(self, name: str) -> str | None:
        for line in self.head.split("\r\n")[1:]:
            key, _, value = line.partition(":")
            if key.strip().lower() == name.lower():
                return value.strip()
        return None


Handler = Callable[["Connection"], None]


@dataclass
class Connection:
    sock: socket.socket
    request: Request
    stop: threading.Event
    sent: int = 0  # bytes of the answer the server managed to hand to the network

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)
        self.sent += len(data)


@dataclass
class RawServer:
    """One thread per connection; the handler writes the answer. `connections` keep the counts."""

    handler: Handler
    tls: ssl.SSLContext | None = None
    connections: list[Connection] = field(default_factory=list)
    finished: threading.Event = field(default_factory=threading.Event)  # a handler returned or its peer left
    ended_by_peer: bool = False
    client_subjects: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.stop = threading.Event()
        scheme = "https" if self.tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.listener.getsockname()[1]}/service"
        self.thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> RawServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        self.listener.close()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                sock, _ = self.listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        try:
            if self.tls:
                sock = self.tls.wrap_socket(sock, server_side=True)
                cert = sock.getpeercert()
                self.client_subjects.append(str(cert.get("subject")) if cert else "")
            conn = Connection(sock, _read_request(sock), self.stop)
            self.connections.append(conn)
            self.handler(conn)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            self.ended_by_peer = True
        finally:
            self.finished.set()
            sock.close()


def _read_request(sock: socket.socket) -> Request:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionResetError
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    request = Request(head.decode("latin-1"), body)
    length = int(request.header("content-length") or 0)
    while len(request.body) < length:
        request.body += sock.recv(65536)
    return request


def answer(conn: Connection, status: int, body: bytes, *, content_type: str = "text/xml; charset=utf-8",
           extra: str = "") -> None:
    reason = {200: "OK", 404: "Not Found", 500: "Internal Server Error"}.get(status, "Other")
    conn.send(f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
              f"{extra}Connection: close\r\n\r\n".encode() + body)


def soap(inner: str) -> bytes:
    return f'<s:Envelope xmlns:s="{SOAP_NS}"><s:Header/><s:Body>{inner}</s:Body></s:Envelope>'.encode()


def stream_forever(conn: Connection) -> None:
    """HTTP 200, chunked, no Content-Length: an envelope that never ends (1 GiB of it)."""
    conn.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nTransfer-Encoding: chunked\r\n\r\n")
    piece = soap("")[:-len("</s:Body></s:Envelope>")] + b"<x>" + b" " * 65000
    filler = b" " * 65536
    total, data = 0, piece
    while total < HUGE and not conn.stop.is_set():
        conn.send(b"%x\r\n%s\r\n" % (len(data), data))
        total += len(data)
        data = filler
    conn.send(b"0\r\n\r\n")
