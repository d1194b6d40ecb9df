"""sfdcflex as a WSGI application, for gunicorn, waitress or uWSGI in production.

    PUBLIC_URL=https://crm.example.com gunicorn --threads 8 'sfdcflex.wsgi:create_app()'

README, Deployment, has the tested commands.
"""
from __future__ import annotations

import atexit
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from .assembly import build_app
from .config import check_settings
from .runtime.errors import ConfigError
from .runtime.logs import configure_logger
from .runtime.wsgi import WSGIApp


def create_app(env_file: str | None = None, functions: str | None = None,
               log_level: str | None = None, log_format: str | None = None) -> WSGIApp:
    """Build the configured app as `python run.py` would, for a WSGI server.

    Settings come from `env_file` (default .env when there is one) and the environment; the
    log level and format from the arguments, else LOG_LEVEL and LOG_FORMAT.
    """
    try:
        config = check_settings(env_file)
        if not config.public_url:
            # Behind a WSGI server we cannot know our own address, and the OAuth callback needs it.
            raise ConfigError("config: PUBLIC_URL must be set when sfdcflex runs under a WSGI server "
                              "(this server's public https:// base URL)")
    except ConfigError as exc:
        # The host prints only "Worker failed to boot" (gunicorn); say why first.
        for problem in exc.problems:
            print(f"sfdcflex: {problem}", file=sys.stderr, flush=True)
        raise
    if configure_logger("sfdcflex", log_level or config.log_level, sys.stderr,
                        log_format or config.log_format):
        _flush_logs_at_exit()
    app = build_app(config, config.public_url, functions=Path(functions) if functions else None)
    atexit.register(app.close)
    return WSGIApp(app)


def _flush_logs_at_exit() -> None:
    """Write pending log lines however the host process ends.

    A normal exit runs atexit. A host that leaves SIGTERM at its default (waitress does) is
    killed by it without running atexit; there we flush first and then let SIGTERM do what it
    would have done. A host that handles SIGTERM itself (gunicorn) is left alone.
    """
    atexit.register(_flush_logs)
    in_main_thread = threading.current_thread() is threading.main_thread()
    if in_main_thread and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _flush_logs_then_terminate)


def _flush_logs() -> None:
    for handler in logging.getLogger("sfdcflex").handlers:
        handler.flush()


def _flush_logs_then_terminate(signum: int, frame: object) -> None:
    _flush_logs()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)
