"""The same App served as WSGI by the standard library's wsgiref."""
from __future__ import annotations

import threading
import time
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest

from tests.support.http import call
from sfdcflex.runtime.wsgi import WSGIApp


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def wsgi_url(serve):
    app = serve().app
    server = make_server("127.0.0.1", 0, WSGIApp(app), handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True,
                              name="wsgiref-host")
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_wsgi_serves_functions(wsgi_url):
    assert call(wsgi_url, "GET", "/hello").json() == {"ok": True}
    echo = call(wsgi_url, "POST", "/echo?a=1", body={"b": 2}, headers={"X-Thing": "t"}).json()
    assert echo["event"]["a"] == "1" and echo["event"]["b"] == 2
    assert echo["event"]["request"]["headers"]["x-thing"] == "t"
    assert echo["path"] == "/echo"


def test_wsgi_errors_and_response_objects(wsgi_url):
    assert call(wsgi_url, "GET", "/nope").status == 404
    assert call(wsgi_url, "PUT", "/hello").status == 405
    failed = call(wsgi_url, "GET", "/boom")
    assert failed.status == 500 and b"Traceback" not in failed.body
    built = call(wsgi_url, "GET", "/built")
    assert built.status == 201 and built.headers.get_all("X-Trace") == ["a", "b"]


def test_wsgi_refuses_big_bodies_before_reading(wsgi_url):
    answer = call(wsgi_url, "POST", "/echo", body=b"{}",
                  headers={"Content-Length": str(7 * 1024 * 1024), "Content-Type": "application/json"})
    assert answer.status == 413


@pytest.fixture
def host_process():
    """create_app sets up the "sfdcflex" logger and SIGTERM as in a host process; undo that after."""
    import logging
    import signal
    logger = logging.getLogger("sfdcflex")
    saved = (logger.handlers[:], logger.level, logger.propagate, signal.getsignal(signal.SIGTERM))
    yield
    for handler in logger.handlers:
        if handler not in saved[0]:
            handler.close()
    logger.handlers[:], logger.level, logger.propagate = saved[:3]
    signal.signal(signal.SIGTERM, saved[3])


def test_create_app_from_a_env_file_needs_public_url(crm, tmp_path, host_process):
    from sfdcflex.runtime.errors import ConfigError
    from sfdcflex.wsgi import create_app
    settings = dict(crm.config.values)
    env = tmp_path / "wsgi.env"
    env.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
    with pytest.raises(ConfigError, match="PUBLIC_URL"):
        create_app(str(env))
    env.write_text(env.read_text() + "PUBLIC_URL=https://crm.example.com\n")
    app = create_app(str(env))
    server = make_server("127.0.0.1", 0, app, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        assert call(url, "POST", "/get-user", body={}).json()["error"] == "missing_token"
        token = crm.token("alice@example.com")
        start = call(url, "POST", "/auth", body={"Token": token}).json()
        assert "redirect_uri=https%3A%2F%2Fcrm.example.com%2Foauth-callback" in start["authorize_url"]
    finally:
        server.shutdown()
        server.server_close()


def test_a_decoded_newline_in_the_path_cannot_forge_a_log_line(wsgi_url, caplog):
    caplog.set_level("INFO", logger="sfdcflex")
    assert call(wsgi_url, "GET", "/nope%0A200%20GET%20/forged").status == 404
    lines = [r.getMessage() for r in caplog.records if "nope" in r.getMessage()]
    assert len(lines) == 1 and "\n" not in lines[0]


def test_wsgi_runs_the_function_on_the_host_servers_thread(wsgi_url):
    # wsgiref serves on the thread that called serve_forever; a pool of our own would show "fn_".
    assert call(wsgi_url, "GET", "/thread-name").json() == {"thread": "wsgiref-host"}


def test_wsgi_answers_504_at_the_time_limit(serve):
    from sfdcflex.runtime.app import Limits
    app = serve(limits=Limits(timeout=0.3)).app
    slow = app.functions["slow"].module
    slow.RELEASE.clear(), slow.FINISHED.clear()
    server = make_server("127.0.0.1", 0, WSGIApp(app), handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        started = time.monotonic()
        answer = call(f"http://127.0.0.1:{server.server_port}", "POST", "/slow", body={"wait": 5})
        assert answer.status == 504 and answer.json()["error"] == "timeout"
        assert not slow.FINISHED.is_set()  # answered at the limit, while the function goes on
        assert 0.25 <= time.monotonic() - started < 0.9   # within three times the 0.3 s limit
        slow.RELEASE.set()
        assert slow.FINISHED.wait(5)
    finally:
        server.shutdown()
        server.server_close()
