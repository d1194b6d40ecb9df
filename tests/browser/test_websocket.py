"""The browser harness's RFC 6455 WebSocket client, against a scripted one-connection server."""
from __future__ import annotations

import socket
import struct
import threading
import time

import pytest

from tests.browser.websocket import (OPCODE_CLOSE, OPCODE_CONTINUATION, OPCODE_PING, OPCODE_PONG, OPCODE_TEXT,
                                     WebSocket, WebSocketClosed, WebSocketError, accept_key, encode_frame)


class ScriptedServer:
    """Accepts one WebSocket connection on port 0 and runs `script(conn, read_frame)` on it."""

    def __init__(self, script, accept=accept_key) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"ws://127.0.0.1:{self.listener.getsockname()[1]}/devtools/page/x"
        self.script, self.accept = script, accept
        self.received: list[tuple[int, bool, bytes]] = []
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        conn, _ = self.listener.accept()
        conn.settimeout(5)
        with conn:
            head = b""
            while b"\r\n\r\n" not in head:
                head += conn.recv(4096)
            key = next(line.split(":", 1)[1].strip() for line in head.decode().split("\r\n")
                       if line.lower().startswith("sec-websocket-key:"))
            conn.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                          f"Connection: Upgrade\r\nSec-WebSocket-Accept: {self.accept(key)}\r\n\r\n"
                          ).encode())
            self.script(conn, lambda: self.read_frame(conn))

    def read_frame(self, conn: socket.socket) -> bytes:
        def exact(n: int) -> bytes:
            data = b""
            while len(data) < n:
                data += conn.recv(n - len(data))
            return data
        first, second = exact(2)
        size = second & 0x7F
        size = struct.unpack("!H", exact(2))[0] if size == 126 else (
            struct.unpack("!Q", exact(8))[0] if size == 127 else size)
        key = exact(4) if second & 0x80 else b""
        payload = exact(size)
        if key:
            payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        self.received.append((first & 0x0F, bool(second & 0x80), payload))
        return payload

    def close(self) -> None:
        self.thread.join(timeout=5)
        self.listener.close()


def test_client_frames_are_masked_and_long_messages_round_trip():
    long_text = "x" * 70_000  # needs the 64-bit length form
    medium_text = "é" * 200  # 400 bytes: the 16-bit length form

    def echo_twice(conn, read_frame):
        for _ in range(2):
            payload = read_frame()
            conn.sendall(encode_frame(OPCODE_TEXT, payload, mask=False))

    server = ScriptedServer(echo_twice)
    ws = WebSocket.connect(server.url, timeout=5)
    try:
        for text in (medium_text, long_text):
            ws.send_text(text)
            assert ws.receive_text(time.monotonic() + 5) == text
    finally:
        ws.close()
        server.close()
    opcodes_and_masks = [(opcode, masked) for opcode, masked, _ in server.received]
    assert opcodes_and_masks == [(OPCODE_TEXT, True), (OPCODE_TEXT, True)]


def test_fragments_are_joined_and_pings_answered_with_the_same_payload():
    def fragmented_with_ping(conn, read_frame):
        conn.sendall(encode_frame(OPCODE_TEXT, b'{"id": ', fin=False, mask=False))
        conn.sendall(encode_frame(OPCODE_PING, b"are-you-there", mask=False))
        conn.sendall(encode_frame(OPCODE_CONTINUATION, b"1, ", fin=False, mask=False))
        conn.sendall(encode_frame(OPCODE_CONTINUATION, b'"ok": true}', mask=False))
        read_frame()  # the pong
        conn.sendall(encode_frame(OPCODE_CLOSE, struct.pack("!H", 1001), mask=False))
        read_frame()  # the close echo

    server = ScriptedServer(fragmented_with_ping)
    ws = WebSocket.connect(server.url, timeout=5)
    try:
        assert ws.receive_text(time.monotonic() + 5) == '{"id": 1, "ok": true}'
        with pytest.raises(WebSocketClosed):
            ws.receive_text(time.monotonic() + 5)
    finally:
        ws.close()
        server.close()
    assert server.received[0] == (OPCODE_PONG, True, b"are-you-there")
    assert server.received[1] == (OPCODE_CLOSE, True, struct.pack("!H", 1001))


def test_a_wrong_accept_key_is_refused():
    server = ScriptedServer(lambda conn, read_frame: None, accept=lambda key: accept_key(key + "x"))
    try:
        with pytest.raises(WebSocketError, match="Sec-WebSocket-Accept"):
            WebSocket.connect(server.url, timeout=5)
    finally:
        server.close()


def test_accept_key_matches_the_rfc_example():
    # RFC 6455 §1.3 works this exact example.
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
