"""The original Flex plugin, unchanged, against `python run.py`: its own requests, replayed.

The requests are those of randyjohnston/plugin-salesforce-crm-integration `src/`: every URL is
`https://${REACT_APP_SERVERLESS_DOMAIN}/<function>` (a TLS proxy in front of sfdcflex; here the
test talks to sfdcflex on loopback with the Host header the proxy forwards), every `fetch` is
a POST with `content-type: application/json` and a `JSON.stringify` body, sent from Flex's
origin, so the browser preflights it first. The login button opens `/auth` in a popup (a
navigation: no Origin, no Token); react-oauth-popup watches the popup until it is back on
Flex's origin at /salesforce-oauth, reads `code` from its address and the plugin relays it.
The plugin treats any non-2xx as "no data" and reads `sfdc_username` and eight `cust_*` fields.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.support.crm import FLEX_URL, seed
from tests.support.http import call
from tests.support.processes import ServerProcess
from sfdcflex.demo.standins import IamStandIn, SalesforceStandIn
from sfdcflex.demo.standins.salesforce import submit_consent

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def readme_env(first_name: str) -> dict[str, str]:
    """The NAME=value lines of README's indented example block that sets `first_name`."""
    block = README.split(f"\n    {first_name}=", 1)[1].split("\n\n", 1)[0]
    lines = [f"{first_name}={block.splitlines()[0]}"] + block.splitlines()[1:]
    return dict(line.strip().split("=", 1) for line in lines)


PLUGIN_ENV = readme_env("REACT_APP_SERVERLESS_DOMAIN")    # README's example, as the test runs it
SERVER_ENV = readme_env("PUBLIC_URL")
FLEX = SERVER_ENV["FLEX_INSTANCE_URL"]                     # the agent desktop's origin
REACT_APP_SERVERLESS_DOMAIN = PLUGIN_ENV["REACT_APP_SERVERLESS_DOMAIN"]   # a host name, no scheme
CARD_FIELDS = ("cust_name", "cust_record_url", "cust_title", "cust_acct_name", "cust_acct_type",
               "cust_acct_num", "cust_acct_sla", "cust_acct_priority")


class Plugin:
    """The plugin's calls, as its source makes them, sent through the 'proxy' to sfdcflex."""

    def __init__(self, server_url: str, flex_token: str) -> None:
        self.server_url, self.token = server_url, flex_token
        self.base = f"https://{REACT_APP_SERVERLESS_DOMAIN}"   # `https://${...}` in the source

    def _send(self, method: str, url: str, body: bytes | None, headers: dict) -> object:
        assert url.startswith(self.base + "/")
        # What the TLS-terminating proxy forwards: the path, the Host the browser asked for.
        headers = {"Host": REACT_APP_SERVERLESS_DOMAIN, "X-Forwarded-Proto": "https", **headers}
        return call(self.server_url, method, url[len(self.base):], body=body, headers=headers)

    def fetch(self, function: str, payload: dict):
        """fetch(url, {method: 'POST', headers: {'content-type': 'application/json'}, body})."""
        url = f"{self.base}/{function}"
        preflight = self._send("OPTIONS", url, None, {
            "Origin": FLEX, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type"})
        assert preflight.status in (200, 204), preflight.body
        assert preflight.headers["Access-Control-Allow-Origin"] == FLEX
        assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
        assert "content-type" in preflight.headers["Access-Control-Allow-Headers"].lower()
        body = json.dumps(payload, separators=(",", ":")).encode()   # JSON.stringify
        answer = self._send("POST", url, body, {"Origin": FLEX, "content-type": "application/json",
                                                "Accept": "*/*"})
        # Without this header the browser hides the answer, status included, from the plugin.
        assert answer.headers["Access-Control-Allow-Origin"] == FLEX
        return answer

    def open_login_popup(self):
        """window.open(`https://${REACT_APP_SERVERLESS_DOMAIN}/auth`): a top-level navigation."""
        return self._send("GET", f"{self.base}/auth", None, {
            "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
            "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document", "Referer": FLEX + "/"})

    def get_crm_user(self):
        return self.fetch("get-username", {"Token": self.token})

    def exchange_auth_code(self, code: str):
        return self.fetch("get-access-token", {"Token": self.token, "code": code})

    def get_crm_data(self, task_attributes: dict):
        return self.fetch("get-contact-account-data", {"phone": task_attributes["name"], "Token": self.token})


@pytest.fixture(scope="module")
def original_plugin_server(tmp_path_factory):
    """Stand-ins with a connected app that does not require PKCE, and run.py in compat mode."""
    sf, iam = SalesforceStandIn(require_pkce=False), IamStandIn()
    for standin in (sf, iam):
        standin.start()
    seed(sf, iam)
    folder = tmp_path_factory.mktemp("plugin")
    env = folder / ".env"
    env.write_text("\n".join([
        f"ACCOUNT_SID={iam.account_sid}", f"AUTH_TOKEN={iam.auth_token}",
        f"SFDC_INSTANCE_URL={sf.url}", f"SFDC_ORG_ID={sf.org_id}", f"SFDC_CLIENT_ID={sf.client_id}",
        f"SFDC_CLIENT_SECRET={sf.client_secret}", f"TWILIO_IAM_URL={iam.url}",
        f"TOKEN_STORE_PATH={folder / 'tokens.json'}",
        *(f"{name}={value}" for name, value in SERVER_ENV.items()), ""]))
    server = ServerProcess.start(env)
    try:
        yield server.url, sf, iam
    finally:
        server.stop()
        for standin in (sf, iam):
            standin.stop()


def test_readmes_example_points_the_plugin_at_the_server_over_https():
    assert set(PLUGIN_ENV) == {"REACT_APP_SERVERLESS_DOMAIN", "REACT_APP_REDUX_SFDC_CACHEING_ENABLED"}
    assert "/" not in REACT_APP_SERVERLESS_DOMAIN and ":" not in REACT_APP_SERVERLESS_DOMAIN
    assert SERVER_ENV["PUBLIC_URL"] == "https://" + REACT_APP_SERVERLESS_DOMAIN
    assert SERVER_ENV["ORIGINAL_PLUGIN_LOGIN"] == "true"


def test_the_original_plugin_links_and_looks_up_through_run_py(original_plugin_server):
    url, sf, iam = original_plugin_server
    plugin = Plugin(url, iam.issue_token("alice@example.com"))

    # componentDidMount → getCrmUser(): not linked yet, so a non-2xx and the login link.
    assert plugin.get_crm_user().status == 404

    # Login: the popup opens /auth with no Token and lands on Salesforce's login page.
    popup = plugin.open_login_popup()
    assert popup.status in (301, 302, 303, 307), popup.body
    authorize = urlsplit(popup.headers["Location"])
    query = {k: v[0] for k, v in parse_qs(authorize.query).items()}
    assert f"{authorize.scheme}://{authorize.netloc}{authorize.path}" == sf.url + "/services/oauth2/authorize"
    assert query["redirect_uri"] == FLEX + "/salesforce-oauth"
    assert query["client_id"] == sf.client_id and query["response_type"] == "code"
    assert "state" not in query and "code_challenge" not in query   # the original sends neither

    # Salesforce sends the popup back to Flex's own origin; react-oauth-popup reads `code`.
    back = urlsplit(submit_consent(popup.headers["Location"], "alice@example.com"))
    assert f"{back.scheme}://{back.netloc}{back.path}" == FLEX + "/salesforce-oauth"
    code = parse_qs(back.query)["code"][0]

    linked = plugin.exchange_auth_code(code)
    assert linked.status == 200, linked.body          # response.ok → refreshSalesforceLogin()
    user = plugin.get_crm_user()
    assert user.status == 200 and user.json()["sfdc_username"] == "alice@example.com"

    # A voice task: attributes.name is the caller's number, sent as `phone` as it is.
    card = plugin.get_crm_data({"name": "+14155550101", "from": "+14155550101"})
    assert card.status == 200, card.body
    data = card.json()
    assert set(CARD_FIELDS) <= set(data)
    assert (data["cust_name"], data["cust_title"]) == ("Ada Lovelace", "Chief Analyst")
    assert (data["cust_acct_name"], data["cust_acct_type"], data["cust_acct_num"]) == (
        "Analytical Engines", "Customer - Direct", "AE-1001")
    assert (data["cust_acct_sla"], data["cust_acct_priority"]) == ("Gold", "High")
    assert re.fullmatch(re.escape(sf.url) + r"/lightning/r/Contact/003\w{12,15}/view", data["cust_record_url"])

    # A caller Salesforce does not know: non-2xx, which the plugin shows as "No matching SFDC contacts".
    assert plugin.get_crm_data({"name": "+14155559999"}).status == 404


def test_a_code_relayed_by_another_agent_links_nothing(original_plugin_server):
    """No state, no PKCE: what stops Bob relaying a code for Alice's Salesforce user is the
    check that the Salesforce user is the relaying agent's Flex identity."""
    url, sf, iam = original_plugin_server
    bob = Plugin(url, iam.issue_token("bob@example.com"))
    popup = bob.open_login_popup()
    code = parse_qs(urlsplit(submit_consent(popup.headers["Location"], "alice@example.com")).query)["code"][0]
    refused = bob.exchange_auth_code(code)
    assert refused.status == 403 and refused.json()["error"] == "identity_mismatch"
    assert bob.get_crm_user().status == 404


# --- the original plugin's relay and login against sfdcflex's own server -------------------------


def test_a_code_relayed_without_state_is_refused_unless_the_original_login_is_on(crm):
    """The state-less relay gives up the state and PKCE: with ORIGINAL_PLUGIN_LOGIN off (the
    default) a code relayed without a state is 400 invalid_state, and Salesforce is not asked."""
    crm.sf.require_pkce = False
    redirect = FLEX_URL + "/salesforce-oauth"
    authorize = (f"{crm.sf.url}/services/oauth2/authorize?response_type=code&client_id={crm.sf.client_id}"
                 f"&redirect_uri={redirect}&state=plugin")
    code = parse_qs(urlsplit(submit_consent(authorize, "bob@example.com")).query)["code"][0]
    answer = crm.post("/get-access-token", {"Token": crm.token("bob@example.com"), "code": code})
    assert (answer.status, answer.json()["error"]) == (400, "invalid_state"), answer.body
    assert crm.sf.calls["token"] == 0 and not crm.store_path.exists()


def test_original_plugin_relay_path_links_with_the_flex_token(crm_factory):
    crm = crm_factory(ORIGINAL_PLUGIN_LOGIN="true")
    crm.sf.require_pkce = False  # the original plugin builds its own authorize URL, without PKCE
    redirect = FLEX_URL + "/salesforce-oauth"
    authorize = (f"{crm.sf.url}/services/oauth2/authorize?response_type=code&client_id={crm.sf.client_id}"
                 f"&redirect_uri={redirect}&state=plugin")
    code = parse_qs(urlsplit(submit_consent(authorize, "bob@example.com")).query)["code"][0]
    answer = crm.post("/get-access-token", {"Token": crm.token("bob@example.com"), "code": code})
    assert answer.status == 200, answer.body
    assert answer.json() == {"linked": True, "sfdc_username": "bob@example.com", "display_name": "Bob Agent"}
    assert crm.post("/get-username", {"Token": crm.token("bob@example.com")}).json()["sfdc_username"] == "bob@example.com"


def _original_popup_code(crm, sfdc_username: str) -> str:
    """The original plugin's popup: GET /auth with no Token, Salesforce's page, back to Flex."""
    popup = call(crm.url, "GET", "/auth", headers={"Accept": "text/html,*/*"})
    assert popup.status == 302, popup.body
    back = urlsplit(submit_consent(popup.headers["Location"], sfdc_username))
    assert f"{back.scheme}://{back.netloc}{back.path}" == FLEX_URL + "/salesforce-oauth"
    return parse_qs(back.query)["code"][0]


def test_original_plugin_login_redirects_without_state_or_pkce(crm_factory):
    crm = crm_factory(ORIGINAL_PLUGIN_LOGIN="true")
    popup = call(crm.url, "GET", "/auth", headers={"Accept": "text/html,*/*"})
    assert popup.status == 302 and popup.headers["Cache-Control"] == "no-store"
    query = {k: v[0] for k, v in parse_qs(urlsplit(popup.headers["Location"]).query).items()}
    assert query == {"response_type": "code", "client_id": crm.sf.client_id,
                     "redirect_uri": FLEX_URL + "/salesforce-oauth", "scope": "api refresh_token"}
    # With a Token, sfdcflex's own flow is unchanged: signed state and PKCE.
    own = crm.post("/auth", {"Token": crm.token("alice@example.com")}).json()["authorize_url"]
    assert "code_challenge=" in own and "state=" in own


def test_original_plugin_login_fails_where_salesforce_requires_pkce(crm_factory):
    crm = crm_factory(ORIGINAL_PLUGIN_LOGIN="true")
    popup = call(crm.url, "GET", "/auth", headers={"Accept": "text/html,*/*"})
    authorize = urlsplit(popup.headers["Location"])
    refused = call(f"{authorize.scheme}://{authorize.netloc}", "GET", f"{authorize.path}?{authorize.query}")
    # Salesforce sends the popup back at once: the connected app requires a code challenge.
    assert refused.status == 302 and "error=invalid_request" in refused.headers["Location"]


def test_original_plugin_login_keeps_every_identity_check(crm_factory):
    crm = crm_factory(ORIGINAL_PLUGIN_LOGIN="true")
    crm.sf.require_pkce = False   # the connected app must not require PKCE for this flow

    def relay(identity: str, code: str):
        return crm.post("/get-access-token", {"Token": crm.token(identity), "code": code})

    assert relay("alice@example.com", _original_popup_code(crm, "alice@example.com")).status == 200
    before = crm.links()["alice@example.com"]
    # Another Salesforce user's code relayed by Alice: refused, revoked, her link untouched.
    revokes = crm.sf.calls["revoke"]
    refused = relay("alice@example.com", _original_popup_code(crm, "mallory.other@example.com"))
    assert refused.status == 403 and refused.json()["error"] == "identity_mismatch"
    assert crm.sf.calls["revoke"] == revokes + 1
    assert crm.links()["alice@example.com"] == before
    # A user of another org: refused, nothing stored for Eve.
    crm.iam.add_agent("eve@example.com", "Eve")
    foreign = relay("eve@example.com", _original_popup_code(crm, "eve@example.com"))
    assert foreign.status == 403 and foreign.json()["error"] == "wrong_org"
    assert "eve@example.com" not in crm.links()
    # A code is good once: replaying the one Alice used links nothing new.
    code = _original_popup_code(crm, "alice@example.com")
    assert relay("alice@example.com", code).status == 200
    replay = relay("alice@example.com", code)
    assert replay.status == 400 and replay.json()["error"] == "invalid_code"
