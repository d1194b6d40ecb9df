"""A blocking RFC 6455 WebSocket client, standard library only: the DevTools client (cdp.py)
talks to each page over it.

HTTP Upgrade handshake with the Sec-WebSocket-Accept check, masked client frames, 16/64-bit
lengths, fragmented messages, ping → pong, close. Every read is bounded by a deadline.
"""
from __future__ import annotations

import base64
import hashlib
import os
import socket
import struct
import time
import urllib.parse

# RFC 6455 §1.3: the server proves it read the key by hashing it with this fixed GUID.
WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OPCODE_CONTINUATION, OPCODE_TEXT, OPCODE_BINARY = 0x0, 0x1, 0x2
OPCODE_CLOSE, OPCODE_PING, OPCODE_PONG = 0x8, 0x9, 0xA


class WebSocketError(Exception):
    """The handshake failed, the connection ended, or a bounded read ran out."""


class WebSocketClosed(WebSocketError):
    """The other side closed the WebSocket (for a page: the tab went away)."""


def accept_key(key: str) -> str:
    """Return the Sec-WebSocket-Accept value a server must answer for `key` (RFC 6455 §4.2.2)."""
    digest = hashlib.sha1((key + WEBSOCKET_GUID).encode("ascii")).digest()
    return base64.b64encode(digest).decode("ascii")


def encode_frame(opcode: int, payload: bytes, *, fin: bool = True, mask: bool = True) -> bytes:
    """Encode one frame; clients must mask every frame they send (RFC 6455 §5.3)."""
    head = bytes([(0x80 if fin else 0) | opcode])
    mask_bit = 0x80 if mask else 0
    size = len(payload)
    if size < 126:
        head += bytes([mask_bit | size])
    elif size < 1 << 16:
        head += bytes([mask_bit | 126]) + struct.pack("!H", size)
    else:
        head += bytes([mask_bit | 127]) + struct.pack("!Q", size)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + apply_mask(payload, key)


def apply_mask(payload: bytes, key: bytes) -> bytes:
    """XOR `payload` with the 4-byte masking key (masking and unmasking are the same step)."""
    repeated = (key * (len(payload) // 4 + 1))[:len(payload)]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(
        len(payload), "big")


class WebSocket:
    """A blocking WebSocket client connection that sends and receives text messages."""

    def __init__(self, sock: socket.socket, leftover: bytes = b"") -> None:
        self.sock = sock
        self.buffer = leftover
        self.closed = False

    @classmethod
    def connect(cls, url: str, timeout: float = 10.0) -> WebSocket:
        """Open `ws://host:port/path` and check the server's handshake answer."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "ws":
            raise WebSocketError(f"only ws:// URLs are supported, got {url!r}")
        sock = socket.create_connection((parts.hostname, parts.port or 80), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode("ascii")
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        request = (f"GET {path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                   "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                   f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
        sock.sendall(request.encode("ascii"))
        try:
            head, leftover = read_http_head(sock, time.monotonic() + timeout)
            check_handshake(head, key)
        except BaseException:
            sock.close()
            raise
        return cls(sock, leftover)

    def send_text(self, text: str) -> None:
        """Send one text message as a single masked frame."""
        self.sock.sendall(encode_frame(OPCODE_TEXT, text.encode("utf-8")))

    def receive_text(self, deadline: float) -> str:
        """Return the next whole text message, answering pings and joining fragments."""
        parts: list[bytes] = []
        while True:
            fin, opcode, payload = self.receive_frame(deadline)
            if opcode == OPCODE_PING:
                self.sock.sendall(encode_frame(OPCODE_PONG, payload))
            elif opcode == OPCODE_PONG:
                continue
            elif opcode == OPCODE_CLOSE:
                self.answer_close(payload)
                raise WebSocketClosed("the WebSocket was closed by the other side")
            else:
                parts.append(payload)
                if fin:
                    return b"".join(parts).decode("utf-8")

    def receive_frame(self, deadline: float) -> tuple[bool, int, bytes]:
        """Read one frame and return (fin, opcode, unmasked payload)."""
        first, second = self.read_exact(2, deadline)
        size = second & 0x7F
        if size == 126:
            size = struct.unpack("!H", self.read_exact(2, deadline))[0]
        elif size == 127:
            size = struct.unpack("!Q", self.read_exact(8, deadline))[0]
        key = self.read_exact(4, deadline) if second & 0x80 else b""
        payload = self.read_exact(size, deadline)
        return bool(first & 0x80), first & 0x0F, apply_mask(payload, key) if key else payload

    def read_exact(self, count: int, deadline: float) -> bytes:
        """Read exactly `count` bytes before `deadline`, or raise."""
        chunks = [self.buffer]
        have = len(self.buffer)
        while have < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.buffer = b"".join(chunks)
                raise WebSocketError("timed out waiting for the WebSocket")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(max(65536, count - have))
            except socket.timeout:
                continue
            if not chunk:
                self.closed = True
                raise WebSocketClosed("the WebSocket connection ended")
            chunks.append(chunk)
            have += len(chunk)
        data = b"".join(chunks)
        self.buffer = data[count:]
        return data[:count]

    def answer_close(self, payload: bytes) -> None:
        """Echo the close frame's status code back, as RFC 6455 §5.5.1 asks."""
        self.closed = True
        try:
            self.sock.sendall(encode_frame(OPCODE_CLOSE, payload[:2]))
        except OSError:
            pass
        self.sock.close()

    def close(self) -> None:
        """Send a normal close (1000) and close the socket."""
        if self.closed:
            return
        self.closed = True
        try:
            self.sock.sendall(encode_frame(OPCODE_CLOSE, struct.pack("!H", 1000)))
        except OSError:
            pass
        self.sock.close()


def read_http_head(sock: socket.socket, deadline: float) -> tuple[str, bytes]:
    """Read an HTTP response head; return it and whatever bytes came after it."""
    data = b""
    while b"\r\n\r\n" not in data:
        if time.monotonic() > deadline or len(data) > 65536:
            raise WebSocketError("no complete WebSocket handshake answer")
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(4096)
        if not chunk:
            raise WebSocketError("the server closed the connection during the handshake")
        data += chunk
    head, _, leftover = data.partition(b"\r\n\r\n")
    return head.decode("latin-1"), leftover


def check_handshake(head: str, key: str) -> None:
    """Raise unless `head` is a 101 answer whose Sec-WebSocket-Accept matches `key`."""
    status_line, *lines = head.split("\r\n")
    if status_line.split(" ")[1:2] != ["101"]:
        raise WebSocketError(f"WebSocket upgrade refused: {status_line!r}")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("sec-websocket-accept") != accept_key(key):
        raise WebSocketError("the server answered a wrong Sec-WebSocket-Accept")
