"""Logging for the server: one line per request, cheaply.

A request's log line used to cost twice the rest of the request: `%(asctime)s` formats the
time on every line, and a stream handler writes and flushes every line. Here the time is
formatted once a second, and lines are written in batches at most `delay` seconds late;
warnings and errors are written at once.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import TextIO


class LineFormatter(logging.Formatter):
    """`2026-11-23 22:48:13 INFO message`, with the time text built once a second."""

    def __init__(self) -> None:
        super().__init__()
        self._second, self._stamp = -1, ""

    def format(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        if second != self._second:
            self._stamp, self._second = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second)), second
        text = f"{self._stamp} {record.levelname} {record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


class BatchingHandler(logging.Handler):
    """Writes formatted lines to `stream` in batches, flushed every `delay` seconds by one thread."""

    def __init__(self, stream: TextIO, delay: float = 0.2) -> None:
        super().__init__()
        self._stream = stream
        self._pending: list[str] = []
        self._write_lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, args=(delay,), name="log-writer", daemon=True)
        self._thread.start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._pending.append(self.format(record))  # the handler's own lock is held here
        except Exception:
            self.handleError(record)
            return
        if record.levelno >= logging.WARNING:
            self.flush()

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
        self.flush()
        super().close()

    def _loop(self, delay: float) -> None:
        while not self._stopped.wait(delay):
            try:
                self.flush()
            except (OSError, ValueError):  # the stream is closed or broken: nothing to write to
                return


def configure_logging(level: str, stream: TextIO) -> None:
    """Log to `stream` at `level`; logging.shutdown() (run at exit) writes what is pending."""
    handler = BatchingHandler(stream)
    handler.setFormatter(LineFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # The logging HOWTO's "Optimization": skip what our format never shows.
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
