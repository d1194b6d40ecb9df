"""WSGI for tests: an app hosted by the standard library's wsgiref on a loopback port, or called
in process with an environ as PEP 3333 hosts build it."""
from __future__ import annotations

import io
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator
from wsgiref.simple_server import WSGIRequestHandler, make_server
from wsgiref.util import setup_testing_defaults


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args) -> None:
        pass


@contextmanager
def wsgiref_host(app: Callable, thread_name: str = "wsgiref-host") -> Iterator[str]:
    """`app` served by wsgiref on its own thread, named `thread_name`; yields the base URL."""
    server = make_server("127.0.0.1", 0, app, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.005},
                              daemon=True, name=thread_name)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class WsgiCall:
    """What a WSGI app gave its host: the status line, the headers, and every body write in
    order (the `write` callable's first, then the returned iterable's)."""

    statuses: list[str] = field(default_factory=list)
    headers: list[list[tuple[str, str]]] = field(default_factory=list)
    written: list[bytes] = field(default_factory=list)
    first_write: threading.Event = field(default_factory=threading.Event)

    def start_response(self, status: str, headers: list[tuple[str, str]], exc_info=None):
        self.statuses.append(status)
        self.headers.append(headers)
        return self.write

    def write(self, data: bytes) -> None:
        self.written.append(data)
        self.first_write.set()

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers[-1] if k.lower() == name.lower()), None)


def environ_for(method: str, path: str, *, headers: dict[str, str] | None = None,
                body: bytes = b"") -> dict:
    """The environ a WSGI host builds for this request (HTTP_* headers, CONTENT_* apart)."""
    target, _, query = path.partition("?")
    environ = {"REQUEST_METHOD": method, "PATH_INFO": target, "QUERY_STRING": query,
               "wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body)) if body else ""}
    for name, value in (headers or {}).items():
        key = name.upper().replace("-", "_")
        environ[key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + key] = value
    setup_testing_defaults(environ)
    return environ
