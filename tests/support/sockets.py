"""Raw sockets for the HTTP server's tests: connect, send bytes, read what comes back."""
from __future__ import annotations

import re
import socket
import time
from typing import Callable


def connect(where: str | tuple, timeout: float = 5.0, source: str | None = None) -> socket.socket:
    """A client socket to a server's URL ("http://host:port") or (host, port) address; from the
    loopback address `source` (127.0.0.2, ...: another client) when given."""
    if isinstance(where, str):
        host, port = where.split("//")[1].split(":")
        where = (host, int(port))
    return socket.create_connection(where[:2], timeout=timeout,
                                    source_address=(source, 0) if source else None)


def closed_by_peer(sock: socket.socket, timeout: float = 2.0) -> bool:
    """Whether the other end closes `sock` within `timeout` (whatever it sent first is read)."""
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except socket.timeout:
        return False
    except ConnectionResetError:
        pass
    return True


def read_all(sock: socket.socket) -> bytes:
    """Everything until the server closes (or goes quiet past the socket's timeout)."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    return data


def exchange(where: str | tuple, data: bytes, timeout: float = 5.0) -> bytes:
    """Send raw bytes on a new connection; what came back until the server closed it."""
    with connect(where, timeout) as sock:
        sock.sendall(data)
        return read_all(sock)


class Replies:
    """Whole replies off one connection, one at a time by their Content-Length; what arrived
    past one reply (pipelining) is kept for the next."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self._pending = sock, b""

    def next(self) -> tuple[bytes, bytes]:
        """The next reply's head (without the blank line) and body."""
        data, self._pending = self._pending, b""
        while b"\r\n\r\n" not in data:
            data += self._more(f"closed before a whole head: {data!r}")
        head, _, body = data.partition(b"\r\n\r\n")
        length = int(re.search(rb"Content-Length: (\d+)", head).group(1))
        while len(body) < length:
            body += self._more("closed before a whole body")
        self._pending = body[length:]
        return head, body[:length]

    def _more(self, failure: str) -> bytes:
        chunk = self.sock.recv(65536)
        assert chunk, failure
        return chunk


def wait_until(condition: Callable[[], object], timeout: float = 5.0) -> bool:
    """Poll `condition` until it holds or `timeout` seconds pass; its last answer, as a bool."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return bool(condition())


def request(method: str, path: str, body: bytes = b"", length: int | None = None,
            content_type: str = "text/plain") -> bytes:
    """A request's bytes with a Content-Length (`length`, or the body's own)."""
    length = len(body) if length is None else length
    return (f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {length}\r\n\r\n").encode() + body
