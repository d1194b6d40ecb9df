"""The composition root: the app built from settings and this server's public URL, in process."""
from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import replace

import pytest

from sfdcflex.assembly import (ORIGINAL_PLUGIN_PATHS, Services, build_app, default_functions_folder,
                                  integration_body_limits)
from sfdcflex.clients.iam import FlexAgent
from sfdcflex.config import load_config
from sfdcflex.runtime.app import App, Limits, Request
from sfdcflex.runtime.timing import ServerTiming

SETTINGS = {
    "ACCOUNT_SID": "AC" + "0123456789abcdef" * 2, "AUTH_TOKEN": "authtokensecret",
    "SFDC_INSTANCE_URL": "https://acme.my.salesforce.com", "SFDC_ORG_ID": "00D5g000004AbCdEAK",
    "SFDC_CLIENT_ID": "3MVG9client", "SFDC_CLIENT_SECRET": "clientsecretvalue",
    "FLEX_INSTANCE_URL": "https://flex.twilio.com", "STATE_SECRET": "s" * 48,
    "MAX_FUNCTION_BODY": "2048",
}


@pytest.fixture
def config(tmp_path):
    return load_config({**SETTINGS, "TOKEN_STORE_PATH": str(tmp_path / "store" / "tokens.json")})


@pytest.fixture
def built(config):
    made: list[App] = []

    def build(*args, **kwargs) -> App:
        made.append(build_app(config, *args, **kwargs))
        return made[-1]

    yield build
    for app in made:
        app.close()


def test_the_app_answers_the_integration_s_functions_and_the_original_plugin_s_paths(built):
    app = built("https://crm.example.com/", limits=Limits(timeout=3, max_concurrency=2))
    assert {"/auth", "/get-contact", "/get-user", "/log-call", "/oauth-callback", "/unlink"} <= set(app.routes)
    assert {path: app.routes[path].path for path in ORIGINAL_PLUGIN_PATHS} == ORIGINAL_PLUGIN_PATHS
    assert app.limits == Limits(timeout=3, max_concurrency=2) and "/healthz" in app.builtins
    assert app.cors.allows("https://flex.twilio.com") and not app.cors.allows("https://crm.example.com")


def test_the_public_url_given_is_the_oauth_callback_s_base(built):
    app = built("https://crm.example.com/")
    services: Services = app.services
    assert app.public_url == "https://crm.example.com"
    assert services.linker.callback_url == "https://crm.example.com/oauth-callback"
    assert services.linker.allowed_origins == ("https://flex.twilio.com", "https://crm.example.com")


def test_max_function_body_bounds_the_integration_s_own_functions_only(built, tmp_path):
    app = built("https://crm.example.com")
    assert app.max_body_for("/get-contact") == app.max_body_for("/get-contact-account-data") == 2048
    assert app.max_body_for("/a-function-of-your-own") == 6 * 1024 * 1024
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "mine.py").write_text("def handler(context, event, callback):\n    callback(None, 1)\n")
    theirs = built("https://crm.example.com", functions=tmp_path / "mine")
    assert integration_body_limits(theirs.routes, 2048) == {} and theirs.max_body_for("/mine") == 6 * 1024 * 1024


def test_the_functions_are_the_checkout_s_own_by_default():
    assert (default_functions_folder() / "get-contact.py").is_file()


def test_a_client_error_a_function_lets_escape_is_answered_as_its_functions_would(built, tmp_path):
    """The app built from settings hands the runtime the integration's answer table."""
    (tmp_path / "fns").mkdir()
    (tmp_path / "fns" / "escapes.py").write_text(
        "from sfdcflex.clients.errors import InvalidGrant\n\n"
        "def handler(context, event, callback):\n"
        "    raise InvalidGrant('Salesforce no longer accepts this agent\\'s link: connect Salesforce again')\n")
    app = built("https://crm.example.com", functions=tmp_path / "fns")
    reply = app.dispatch(Request("POST", "/escapes", [("Host", "crm.example.com")]), lambda early: None)
    assert reply.status == 404 and json.loads(reply.body)["error"] == "not_linked"


class _RememberingFlex:
    """A Flex validator whose memory knows one token; any other would need an IAM call."""

    def __init__(self, agent: FlexAgent) -> None:
        self.agent, self.asked, self.clients = agent, [], []

    def remembered(self, token):
        return self.agent if token == "known" else None

    def validate_with_source(self, token, client=""):
        self.asked.append(token)
        self.clients.append(client)
        return self.agent, False


def test_a_remembered_token_is_answered_from_memory_without_asking_iam(built):
    flex = _RememberingFlex(FlexAgent("ann@example.com", ("agent",), float("inf")))
    services = replace(built("http://127.0.0.1:1").services, flex=flex)
    timing = ServerTiming()
    assert services.remembered_agent({"Token": "known"}, timing).identity == "ann@example.com"
    assert flex.asked == [] and 'flex;desc="Flex token check (cached, no IAM call)"' in timing.header()


def test_a_token_memory_does_not_know_is_left_to_identify_and_is_no_hop(built):
    flex = _RememberingFlex(FlexAgent("ann@example.com", ("agent",), float("inf")))
    services = replace(built("http://127.0.0.1:1").services, flex=flex)
    timing = ServerTiming()
    assert services.remembered_agent({"Token": "new"}, timing) is None
    assert flex.asked == [] and "flex" not in timing.header()
    assert services.identify({"Token": "new"}, timing).identity == "ann@example.com"
    assert flex.asked == ["new"] and timing.header().count("flex;") == 1


class _Context:
    """What a handler uses of the runtime's context, noting when the slot is given back."""

    client_address = "192.0.2.7"

    def __init__(self, services: Services) -> None:
        self.services, self.events = services, []

    @contextmanager
    def slot_released(self):
        self.events.append("slot released")
        yield
        self.events.append("slot taken back")


@pytest.mark.parametrize("name", ["auth", "get-contact", "get-user", "log-call", "unlink", "oauth-callback"])
def test_each_function_leaves_its_slot_only_for_a_real_iam_call(built, name):
    from sfdcflex.runtime.routes import load_module
    handler = load_module(default_functions_folder() / f"{name}.py").handler
    flex = _RememberingFlex(FlexAgent("ann@example.com", ("agent",), float("inf")))
    services = replace(built("http://127.0.0.1:1").services, flex=flex)
    for token, expected in (("known", []), ("new", ["slot released", "new", "slot taken back"])):
        context = _Context(services)
        flex.asked = context.events   # the IAM call is noted in the same list, in order
        event = {"Token": token, "code": "c0de", "phone": "4155550101",
                 "contact_id": "003000000000001AAA", "call_sid": "CA" + "0" * 32,
                 "request": {"headers": {}, "query": {}, "cookies": {}}}
        handler(context, event, lambda *answer: None)
        assert context.events == expected, (name, token)
    assert flex.clients == [_Context.client_address], name   # the IAM check knows who asks
