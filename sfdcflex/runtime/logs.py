"""Logging for the server: one line per request, cheaply.

A request's log line used to cost twice the rest of the request: `%(asctime)s` formats the
time on every line, and a stream handler writes and flushes every line. Here the time is
formatted once a second, and lines are written in batches at most `delay` seconds late;
warnings and errors are written at once. Whatever is pending is written when the handler is
closed, which logging.shutdown() does at interpreter exit.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
import weakref
from typing import TextIO


class _StampedFormatter(logging.Formatter):
    """A formatter whose time text is built once a second, not once a line (it costs ~10 µs)."""

    stamp_format = "%Y-%m-%d %H:%M:%S"

    def __init__(self) -> None:
        super().__init__()
        self._second, self._stamp = -1, ""


    def stamp_of(self, created: float) -> str:
        second = int(created)
        if second != self._second:
            self._stamp, self._second = time.strftime(self.stamp_format, time.localtime(second)), second
        return self._stamp

    def line(self, created: float, levelname: str, message: str) -> str:
        """The line for a message with no traceback, as `format` writes it."""
        raise NotImplementedError


class LineFormatter(_StampedFormatter):
    """`2026-11-23 22:48:13 INFO message`."""

    def line(self, created: float, levelname: str, message: str) -> str:
        return f"{self.stamp_of(created)} {levelname} {message}"

    def format(self, record: logging.LogRecord) -> str:
        text = self.line(record.created, record.levelname, record.getMessage())
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


class JsonFormatter(_StampedFormatter):
    """The same fields as LineFormatter, one JSON object a line, for log shippers."""

    stamp_format = "%Y-%m-%dT%H:%M:%S%z"

    def line(self, created: float, levelname: str, message: str) -> str:
        return json.dumps({"time": self.stamp_of(created), "level": levelname, "message": message},
                          ensure_ascii=False)

    def format(self, record: logging.LogRecord) -> str:
        fields = {"time": self.stamp_of(record.created), "level": record.levelname,
                  "message": record.getMessage()}
        # A record's structured facts (logging's extra={"fields": {...}}: an audit line's who,
        # what, when) join the object as keys of their own; the three above keep their meaning.
        fields.update((k, v) for k, v in getattr(record, "fields", {}).items() if k not in fields)
        if record.exc_info:
            fields["traceback"] = self.formatException(record.exc_info)
        return json.dumps(fields, ensure_ascii=False)


FORMATTERS = {"text": LineFormatter, "json": JsonFormatter}


class BatchingHandler(logging.Handler):
    """Writes formatted lines to `stream` in batches, flushed every `delay` seconds by one thread."""

    def __init__(self, stream: TextIO, delay: float = 0.2) -> None:
        super().__init__()
        self._stream = stream
        self._pending: list[str] = []
        self._delay = delay
        self._write_lock = threading.Lock()
        self._stopped = threading.Event()
        self._wanted = threading.Event()  # set when a line is pending: the writer sleeps till then
        self._start_writer()
        _batching_handlers.add(self)

    def _start_writer(self) -> None:
        # Also run in a forked child (gunicorn forks workers after building the app), where the
        # parent's writer thread does not exist and the locks it held may look taken forever.
        if self._stopped.is_set():
            return
        self._write_lock, self._stopped = threading.Lock(), threading.Event()
        self._wanted = threading.Event()
        self._thread = threading.Thread(target=self._loop, args=(self._delay,), name="log-writer",
                                        daemon=True)
        self._thread.start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._add(self.format(record))  # the handler's own lock is held here
        except Exception:
            self.handleError(record)
            return
        if record.levelno >= logging.WARNING:
            self.flush()

    def emit_line(self, level: int, message: str) -> None:
        """A plain message at `level` (no traceback, no arguments), without a LogRecord."""
        text = self.formatter.line(time.time(), logging.getLevelName(level), message)
        with self.lock:
            self._add(text)
        if level >= logging.WARNING:
            self.flush()

    def _add(self, text: str) -> None:
        if not self._pending:
            self._wanted.set()  # the first line of a batch wakes the writer
        self._pending.append(text)

    def flush(self) -> None:
        with self._write_lock:
            self.acquire()
            lines, self._pending = self._pending, []
            self.release()
            if lines:
                self._stream.write("\n".join(lines) + "\n")
                self._stream.flush()

    def close(self) -> None:
        self._stopped.set()
        self._wanted.set()
        self.flush()
        super().close()

    def _loop(self, delay: float) -> None:
        # Asleep until a line is pending (an idle server's writer never wakes), then the batch
        # gathers for `delay` seconds and goes out in one write.
        while self._wanted.wait() and not self._stopped.wait(delay):
            self._wanted.clear()
            try:
                self.flush()
            except (OSError, ValueError):  # the stream is closed or broken: nothing to write to
                return


_batching_handlers: weakref.WeakSet[BatchingHandler] = weakref.WeakSet()


def _restart_writers_after_fork() -> None:
    for handler in list(_batching_handlers):
        handler._start_writer()


os.register_at_fork(after_in_child=_restart_writers_after_fork)


def batching_handler(stream: TextIO, fmt: str = "text") -> BatchingHandler:
    """A BatchingHandler writing `fmt` ("text" or "json") lines to `stream`."""
    handler = BatchingHandler(stream)
    handler.setFormatter(FORMATTERS[fmt]())
    return handler


def log_line(logger: logging.Logger, level: int, message: str) -> None:
    """`logger.log(level, message)` for a plain message, without the LogRecord (a few
    microseconds a request line) where nothing would read it: when its only way out is one
    BatchingHandler with no filter on the way (`python run.py`'s set-up), that handler takes
    the text. Any other set-up (a host's handlers, a test's capture) gets the record."""
    if not logger.isEnabledFor(level):
        return
    handler = _only_batching_handler(logger)
    if handler is None:
        logger.log(level, "%s", message)
    elif level >= handler.level:
        handler.emit_line(level, message)


def _only_batching_handler(logger: logging.Logger) -> BatchingHandler | None:
    if logger.filters:
        return None
    handlers = logger.handlers
    if not handlers and logger.propagate and logger.parent is logging.root:
        logger, handlers = logging.root, logging.root.handlers
        if logger.filters:
            return None
    if len(handlers) != 1 or (logger.propagate and logger is not logging.root):
        return None
    handler = handlers[0]
    return handler if type(handler) is BatchingHandler and not handler.filters else None


def configure_logging(level: str, stream: TextIO, fmt: str = "text") -> None:
    """The whole process logs to `stream` at `level`; for `python run.py`, which owns the process."""
    root = logging.getLogger()
    root.handlers[:] = [batching_handler(stream, fmt)]
    root.setLevel(level.upper())
    # The logging HOWTO's "Optimization": skip what our format never shows.
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False


def configure_logger(name: str, level: str, stream: TextIO, fmt: str = "text") -> bool:
    """Log `name` and its children to `stream` at `level`, leaving every other logger alone.

    Inside a host (gunicorn, waitress) the root logger and the host's own are the host's to
    configure; sfdcflex's lines get their own handler and do not propagate there, so they are
    not written twice. If the host's logging configuration already gave `name` a handler, that
    choice wins and nothing is changed (False).
    """
    logger = logging.getLogger(name)
    if logger.handlers:
        return False
    logger.addHandler(batching_handler(stream, fmt))
    logger.setLevel(level.upper())
    logger.propagate = False
    return True
