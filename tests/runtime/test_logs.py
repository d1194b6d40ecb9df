"""Server logging: lines arrive complete and in order, warnings at once, nothing lost at close."""
from __future__ import annotations

import io
import json
import logging
import re
import time

from sfdcflex.runtime.logs import BatchingHandler, JsonFormatter, LineFormatter, log_line
from tests.support.sockets import wait_until


def _logger(stream: io.StringIO, delay: float = 60.0) -> tuple[logging.Logger, BatchingHandler]:
    handler = BatchingHandler(stream, delay=delay)
    handler.setFormatter(LineFormatter())
    logger = logging.Logger("test-sfdcflex")
    logger.addHandler(handler)
    return logger, handler


def test_info_lines_wait_for_the_batch_and_close_writes_them_in_order():
    stream = io.StringIO()
    logger, handler = _logger(stream)
    for number in range(100):
        logger.info("200 GET /hello %d", number)
    assert stream.getvalue() == ""  # batched: not one write per line
    handler.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 100
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d INFO 200 GET /hello 0", lines[0])
    assert lines[-1].endswith("/hello 99")


def test_warnings_are_written_at_once_with_what_came_before():
    stream = io.StringIO()
    logger, handler = _logger(stream)
    logger.info("first")
    logger.warning("careful")
    assert stream.getvalue().splitlines()[-2:][0].endswith("INFO first")
    assert stream.getvalue().rstrip().endswith("WARNING careful")
    handler.close()


def test_the_writer_thread_flushes_within_its_delay():
    stream = io.StringIO()
    logger, handler = _logger(stream, delay=0.05)
    logger.info("soon")
    try:
        for _ in range(100):
            if "soon" in stream.getvalue():
                break
            handler._stopped.wait(0.02)
        assert "INFO soon" in stream.getvalue()
    finally:
        handler.close()


def test_tracebacks_are_kept_with_their_line():
    stream = io.StringIO()
    logger, handler = _logger(stream)
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("failed")
    handler.close()
    assert "ERROR failed\nTraceback" in stream.getvalue() and "ValueError: boom" in stream.getvalue()


def test_a_forked_child_gets_its_own_writer_thread():
    # gunicorn --preload builds the app, and so this handler, before forking its workers.
    import os
    import select
    read_end, write_end = os.pipe()
    stream = os.fdopen(write_end, "w")
    logger, handler = _logger(stream, delay=0.05)
    try:
        child = os.fork()
        if child == 0:
            logger.info("from the worker")
            deadline = time.monotonic() + 2   # the child's own writer must write it meanwhile
            while handler._pending and time.monotonic() < deadline:
                time.sleep(0.01)
            with handler._write_lock:   # the write in progress, if any, has ended
                os._exit(0)
        ready, _, _ = select.select([read_end], [], [], 2.5)
        assert ready, "the child's line was not written by a writer thread"
        assert os.read(read_end, 4096).decode().endswith("INFO from the worker\n")
        os.waitpid(child, 0)
    finally:
        handler.close()
        stream.close()
        os.close(read_end)


def test_json_lines_carry_the_same_fields_one_object_a_line():
    import json
    from sfdcflex.runtime.logs import JsonFormatter
    stream = io.StringIO()
    logger, handler = _logger(stream)
    handler.setFormatter(JsonFormatter())
    logger.info("200 POST /get-contact 4.2ms")
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        logger.exception("failed")
    handler.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2   # a traceback stays inside its one line
    first, second = (json.loads(line) for line in lines)
    assert set(first) == {"time", "level", "message"} and first["level"] == "INFO"
    assert first["message"] == "200 POST /get-contact 4.2ms"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}", first["time"])
    assert second["level"] == "ERROR" and "ValueError: boom" in second["traceback"]


# --- request lines without a LogRecord --------------------------------------------------------

def test_a_request_line_reaches_the_batch_as_the_record_would_have(monkeypatch):
    stream = io.StringIO()
    logger, handler = _logger(stream)
    logger.propagate = False  # its handler is the line's only way out, as configure_logger makes it
    logger.setLevel(logging.INFO)
    made = []
    monkeypatch.setattr(logger, "makeRecord", lambda *a, **k: made.append(a))
    log_line(logger, logging.INFO, "200 POST /get-contact 0.2ms")
    log_line(logger, logging.DEBUG, "200 GET /healthz 0.1ms")  # below the handler's level
    handler.setLevel(logging.WARNING)
    log_line(logger, logging.INFO, "not written")
    handler.close()
    assert made == []  # no LogRecord was built
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d INFO 200 POST /get-contact 0.2ms", lines[0])


def test_json_request_lines_are_the_records_json():
    stream = io.StringIO()
    handler = BatchingHandler(stream, delay=60.0)
    handler.setFormatter(JsonFormatter())
    logger = logging.Logger("test-json")
    logger.addHandler(handler)
    logger.propagate = False
    log_line(logger, logging.INFO, "200 GET /hello 0.1ms")
    logger.info("%s", "200 GET /hello 0.1ms")
    handler.close()
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first == second and first["message"] == "200 GET /hello 0.1ms"


def test_a_filter_or_another_handler_gets_the_request_line_as_a_record():
    """A host's own handlers, a filter, or a test's capture must see the line as before."""
    seen = []

    class Capture(logging.Handler):
        def emit(self, record):
            seen.append(record.getMessage())

    stream = io.StringIO()
    logger, handler = _logger(stream)
    logger.propagate = False
    logger.addHandler(Capture())
    log_line(logger, logging.INFO, "200 GET /a 0.1ms")
    logger.removeHandler(logger.handlers[1])
    handler.addFilter(lambda record: "secret" not in record.getMessage())
    log_line(logger, logging.INFO, "200 GET /secret 0.1ms")
    handler.close()
    assert seen == ["200 GET /a 0.1ms"]
    assert "/a" in stream.getvalue() and "/secret" not in stream.getvalue()


def test_an_idle_writer_sleeps_until_a_line_is_pending():
    stream = io.StringIO()
    logger, handler = _logger(stream, delay=0.01)
    flushes = []
    real = handler.flush
    handler.flush = lambda: (flushes.append(1), real())
    try:
        time.sleep(0.1)
        assert flushes == []  # ten wake-ups at its delay, before
        logger.info("now")
        assert wait_until(lambda: "INFO now" in stream.getvalue(), 2)
    finally:
        handler.close()


def test_run_py_set_up_takes_the_fast_way_and_a_second_handler_on_the_way_does_not(monkeypatch):
    """`python run.py` logs through the root's one BatchingHandler, "sfdcflex" propagating to
    it: no LogRecord. A handler of the logger's own that also propagates, or a filter on the
    root, means others read the line: the record is made."""
    stream = io.StringIO()
    handler = BatchingHandler(stream, delay=60.0)
    handler.setFormatter(LineFormatter())
    monkeypatch.setattr(logging.root, "handlers", [handler])
    monkeypatch.setattr(logging.root, "filters", [])
    logger = logging.getLogger("sfdcflex-test-fast")
    monkeypatch.setattr(logger, "level", logging.INFO)
    made = []
    real = logger.makeRecord
    monkeypatch.setattr(logger, "makeRecord", lambda *a, **k: (made.append(1), real(*a, **k))[1])
    log_line(logger, logging.INFO, "200 GET /one 0.1ms")
    assert made == []
    own = BatchingHandler(io.StringIO(), delay=60.0)
    own.setFormatter(LineFormatter())
    logger.addHandler(own)  # its own handler, and the root's too
    try:
        log_line(logger, logging.INFO, "200 GET /two 0.1ms")
        assert made == [1]
    finally:
        logger.removeHandler(own)
        own.close()
    logging.root.addFilter(lambda record: True)
    log_line(logger, logging.INFO, "200 GET /three 0.1ms")
    assert made == [1, 1]
    handler.close()
    assert [line.split(" ", 3)[3] for line in stream.getvalue().splitlines()] == [
        "200 GET /one 0.1ms", "200 GET /two 0.1ms", "200 GET /three 0.1ms"]



def test_lines_wait_for_the_writer_delay_and_a_warning_line_goes_at_once():
    stream = io.StringIO()
    logger, handler = _logger(stream, delay=60.0)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        log_line(logger, logging.INFO, "200 GET /a 0.1ms")
        time.sleep(0.1)  # the writer is awake now, and waits out its delay
        assert stream.getvalue() == ""
        log_line(logger, logging.WARNING, "slow answer")
        assert stream.getvalue().splitlines()[-1].endswith("WARNING slow answer")
    finally:
        handler.close()
