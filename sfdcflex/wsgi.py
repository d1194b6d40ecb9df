"""sfdcflex as a WSGI application, for gunicorn, waitress or uWSGI in production.

    gunicorn --threads 8 'sfdcflex.wsgi:create_app()'
"""
from __future__ import annotations

from .runtime.errors import ConfigError
from .runtime.wsgi import WSGIApp


def create_app(env_file: str = ".env", functions: str | None = None) -> WSGIApp:
    """Build the configured app from a .env file, as `python run.py` would, for a WSGI server."""
    from .cli import build_app, read_settings
    config = read_settings(env_file)
    if not config.public_url:
        # Behind a WSGI server we cannot know our own address, and the OAuth callback needs it.
        raise ConfigError("config: PUBLIC_URL must be set when sfdcflex runs under a WSGI server")
    return WSGIApp(build_app(config, functions=functions))
