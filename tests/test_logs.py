"""Server logging: lines arrive complete and in order, warnings at once, nothing lost at close."""
from __future__ import annotations

import io
import logging
import re

from sfdcflex.runtime.logs import BatchingHandler, LineFormatter


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
