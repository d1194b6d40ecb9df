"""sfdcflex.wsgi: the integration's entry point for WSGI servers (create_app, its .env file, PUBLIC_URL)."""
from __future__ import annotations

import pytest

from tests.support.http import call
from tests.support.wsgi import wsgiref_host

# --- create_app from an env file ---------------------------------------------------------------


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
    with wsgiref_host(create_app(str(env))) as url:
        assert call(url, "POST", "/get-user", body={}).json()["error"] == "missing_token"
        token = crm.token("alice@example.com")
        start = call(url, "POST", "/auth", body={"Token": token}).json()
        assert "redirect_uri=https%3A%2F%2Fcrm.example.com%2Foauth-callback" in start["authorize_url"]
