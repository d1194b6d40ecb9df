"""The server's sockets: the listening one, bound before the app is built, and the options every
connection gets (blocking, kernel timeouts, no Nagle), with the small calls made on them."""
from __future__ import annotations

import socket
import struct

from .limits import ServerLimits

KEEP_WAIT = 0.01  # seconds a worker's read waits for the next request on its keep-alive connection
# Connections the kernel completes while the server is not accepting (full, or pausing): a
# burst beyond Linux's default of 128 would otherwise be refused.
BACKLOG = 1024


def listen(address: tuple[str, int], backlog: int = BACKLOG) -> socket.socket:
    """A listening socket on `address` (port 0: any free one), bound before the app is built
    when the app needs the server's URL (the OAuth callback does)."""
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    return socket.create_server(address, family=family, backlog=backlog)


def url_of(sock: socket.socket) -> str:
    """The base URL a listening socket is reached at, e.g. http://127.0.0.1:8080."""
    host, port = sock.getsockname()[:2]
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{port}"


def prepare_socket(sock: socket.socket, limits: ServerLimits) -> None:
    """Make an accepted socket what the server expects: blocking, with kernel timeouts, no Nagle.

    The worker's reads and writes block, the kernel bounding them (SO_RCVTIMEO: the keep-alive
    wait; SO_SNDTIMEO: the send timeout), so neither costs a poll() before it: a Python socket
    with a timeout of its own polls before every call. The I/O thread never blocks on them: it
    passes MSG_DONTWAIT to each call."""
    sock.settimeout(None)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _timeval(KEEP_WAIT))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, _timeval(limits.send_timeout))
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        pass  # not TCP: nothing to tune


def socket_options(sock: socket.socket) -> tuple:
    """The options `prepare_socket` sets, as the kernel reports them (it rounds the timeouts)."""
    try:
        nodelay = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    except OSError:
        nodelay = None  # not TCP
    return (sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, 16),
            sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, 16), nodelay)


def _timeval(seconds: float) -> bytes:
    """A struct timeval (two native longs: Linux; the BSDs read the same bytes on little-endian)."""
    whole = int(seconds)
    return struct.pack("@ll", whole, int((seconds - whole) * 1_000_000))


def send_quietly(sock: socket.socket, data: bytes) -> bool:
    """One non-blocking send of a short answer on an idle socket; False when the client left."""
    try:
        return sock.send(data, socket.MSG_DONTWAIT) == len(data)
    except OSError:
        return False


def shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed
