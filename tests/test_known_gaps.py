"""The gaps a planted-bug review found (issue 18): each test goes over real sockets to the real
functions and the stand-ins, and each was seen failing on a copy of the code with its bug planted
(the bug is named in the test's docstring)."""
from __future__ import annotations

import hashlib
import socket
from urllib.parse import parse_qs, quote, urlsplit

import pytest

from tests.support.crm import FLEX_URL, STATE_SECRET
from tests.support.http import call
from sfdcflex.clients.sync import SyncClient
from sfdcflex.demo.standins.salesforce import submit_consent
from sfdcflex.oauth_state import StateSigner, code_challenge
from sfdcflex.sync_store import LEASE_MAP, SyncTokenStore

ALICE, BOB = "alice@example.com", "bob@example.com"


def _redirect(crm, identity: str, sfdc_username: str | None = None) -> tuple[str, str]:
    """Start a link and log in at the Salesforce stand-in; the code and state it redirects back with."""
    start = crm.post("/auth", {"Token": crm.token(identity), "origin": crm.url})
    location = submit_consent(start.json()["authorize_url"], sfdc_username or identity)
    query = parse_qs(urlsplit(location).query)
    return query["code"][0], query["state"][0]


def _callback(crm, code: str, state: str):
    return call(crm.url, "GET", f"/oauth-callback?code={quote(code)}&state={quote(state)}")


# --- who sees what --------------------------------------------------------------------------

def test_two_agents_in_turn_each_get_their_own_user_fresh_and_cached(crm):
    """Planted: the user cache keyed without the agent (lookup.user with owner "") serves Bob Alice."""
    assert crm.link(ALICE).status == 200 and crm.link(BOB).status == 200
    tokens = {ALICE: crm.token(ALICE), BOB: crm.token(BOB)}
    names = {ALICE: "Alice Agent", BOB: "Bob Agent"}
    userinfo_calls = crm.sf.calls["userinfo"]
    for source in ("miss", "hit", "hit"):   # from Salesforce first, then from the cache
        for identity in (ALICE, BOB):
            answer = crm.post("/get-user", {"Token": tokens[identity]})
            assert answer.status == 200, answer.body
            assert answer.json()["sfdc_username"] == identity
            assert answer.json()["display_name"] == names[identity]
            assert answer.json()["flex_identity"] == identity
            assert f'cache;desc="{source}"' in answer.headers["Server-Timing"]
    assert crm.sf.calls["userinfo"] == userinfo_calls + 2   # one per agent, the rest cached


def test_a_mixed_case_flex_identity_links_to_the_lower_case_salesforce_user(crm):
    """Planted: an exact (case-sensitive) username comparison in Linker._check_user refuses it."""
    crm.iam.add_agent("Alice@Example.COM", "Alice")
    linked = crm.link("Alice@Example.COM", sfdc_username=ALICE)
    assert linked.status == 200, linked.body
    answer = crm.post("/get-user", {"Token": crm.token("Alice@Example.COM")})
    assert answer.status == 200
    assert answer.json()["sfdc_username"] == ALICE
    assert answer.json()["flex_identity"] == "Alice@Example.COM"


def test_a_refused_link_revokes_the_tokens_it_was_given(crm):
    """Planted: Linker._check_user raising without _revoke_quietly leaves Mallory's grant alive."""
    mallory = "mallory.other@example.com"
    revokes = crm.sf.calls["revoke"]
    refused = crm.link(ALICE, sfdc_username=mallory)
    assert refused.status == 403 and b"identity_mismatch" in refused.body
    assert crm.sf.calls["revoke"] == revokes + 1
    assert crm.sf.live_grants(mallory) == 0          # the refresh token took its access token along
    assert crm.sf.live_grants(ALICE) == 0            # and nothing was issued to the agent instead


def test_a_link_to_another_org_revokes_its_tokens_too(crm):
    crm.iam.add_agent("eve@example.com", "Eve")
    refused = crm.link("eve@example.com")
    assert refused.status == 403 and b"wrong_org" in refused.body
    assert crm.sf.live_grants("eve@example.com") == 0


# --- OAuth state ----------------------------------------------------------------------------

@pytest.mark.parametrize("mangle", [
    lambda state: state.partition(".")[0] + ".",                     # the MAC part empty
    lambda state: state.partition(".")[0],                           # no MAC part at all
    lambda state: state[:-1],                                        # one character short
    lambda state: state[:-3],                                        # three characters short
    lambda state: state.partition(".")[0] + "." + state.partition(".")[2][:8],   # 8 of 43
], ids=["empty", "missing", "short-1", "short-3", "first-8"])
def test_a_state_whose_mac_is_empty_or_truncated_is_refused_and_links_nothing(crm, mangle):
    """Planted: comparing only as much of the MAC as was sent (mac == expected[:len(mac)])."""
    code, state = _redirect(crm, ALICE)
    refused = _callback(crm, code, mangle(state))
    # A MAC that decodes but does not match is forged: 403; one that is not even base64url is
    # malformed: 400. Either way the code is never exchanged and nothing is linked.
    assert refused.status in (400, 403), refused.body
    assert b"invalid_state" in refused.body
    assert crm.sf.calls["token"] == 0
    assert crm.post("/get-user", {"Token": crm.token(ALICE)}).json()["error"] == "not_linked"
    assert _callback(crm, code, state).status == 200   # the genuine state still works


@pytest.mark.parametrize("keep", [0, 42, 40, 20], ids=["empty", "short-1", "short-3", "half"])
def test_a_decodable_but_truncated_or_empty_mac_is_403(crm, keep):
    code, state = _redirect(crm, ALICE)
    payload, _, mac = state.partition(".")
    assert len(mac) == 43   # 32 bytes of HMAC-SHA256 in unpadded base64url
    refused = _callback(crm, code, f"{payload}.{mac[:keep]}")
    assert refused.status == 403 and b"not issued by this server" in refused.body


def test_an_origin_in_the_state_that_is_not_allowed_is_refused_at_the_callback(crm):
    """A state signed with our secret (by an instance configured with other origins, say) that
    names an origin we do not allow: the popup's message must never be posted there.

    Planted: Linker.complete / origin_of trusting the state's origin without checking it."""
    signer = StateSigner(STATE_SECRET.encode())
    state = signer.sign(ALICE, "https://evil.example")
    verifier = signer.code_verifier(signer.verify(state))
    url = crm.services.salesforce.authorize_url(f"{crm.url}/oauth-callback", state, code_challenge(verifier))
    code = parse_qs(urlsplit(submit_consent(url, ALICE)).query)["code"][0]
    refused = _callback(crm, code, state)
    assert refused.status == 403, refused.body
    assert b"origin_not_allowed" in refused.body
    assert b"evil.example" not in refused.body
    assert FLEX_URL.encode() in refused.body          # the page addresses the configured Flex
    assert crm.sf.calls["token"] == 0                # refused before the code was exchanged
    assert crm.post("/get-user", {"Token": crm.token(ALICE)}).json()["error"] == "not_linked"


def test_an_allowed_origin_in_the_state_is_where_the_popup_reports(crm):
    code, state = _redirect(crm, ALICE)
    page = _callback(crm, code, state)
    assert page.status == 200
    assert f'"{crm.url}"'.encode() in page.body       # /auth was called with origin=crm.url


# --- CORS -----------------------------------------------------------------------------------

@pytest.mark.parametrize("origin,granted", [
    (FLEX_URL, True),
    ("HTTPS://FLEX.Example.com", True),                # hosts compare without case (RFC 3986)
    ("https://flex.example.com:443", True),            # the default port is the same origin
    ("https://flex.example.com.evil.example", False),  # merely starts with an allowed origin
    ("https://flex.example.com@evil.example", False),  # userinfo: the host is evil.example
    ("https://flex.example.comevil.example", False),
    ("https://evil.example/https://flex.example.com", False),
    ("https://evil.example?https://flex.example.com", False),
    ("http://flex.example.com", False),                # another scheme is another origin
    ("https://flex.example.com:8443", False),          # another port too
    ("https://example.com", False),
    ("https://sub.flex.example.com", False),
    ("null", False),
    ("", False),
])
def test_only_allowed_origins_get_a_cors_grant_from_the_product(crm, origin, granted):
    """Planted: a prefix test (origin.startswith(allowed)) in CorsPolicy.allows."""
    for method, path, body in (("POST", "/get-user", {"Token": "not-a-token"}), ("OPTIONS", "/get-user", None)):
        answer = call(crm.url, method, path, body=body,
                      headers={"Origin": origin, "Access-Control-Request-Method": "POST"})
        assert answer.status in (204, 403)
        assert answer.headers.get("Access-Control-Allow-Origin") == (origin if granted else None)
        assert "Origin" in answer.headers.get("Vary", "")


# --- signatures -----------------------------------------------------------------------------

def test_a_get_without_a_signature_to_a_protected_function_is_403(runtime):
    """Planted: checking signatures only on POST (request.method == "POST" and access == PROTECTED)."""
    refused = runtime.call("GET", "/webhook?Digits=1234")
    assert refused.status == 403 and refused.json()["error"] == "invalid_signature"
    assert b"1234" not in refused.body   # the function never ran
    wrong = runtime.call("GET", "/webhook?Digits=1234", headers={"X-Twilio-Signature": "AAAA"})
    assert wrong.status == 403


# --- Twilio IAM's odd answers ----------------------------------------------------------------

@pytest.mark.parametrize("body,status,code", [
    (b'{"valid": false, "code": 20101, "message": "Invalid Access Token"}', 403, "invalid_token"),
    (b'{"valid": true, "roles": ["agent"]}', 403, "invalid_token"),           # no realm_user_id
    (b'{"valid": true, "realm_user_id": ""}', 403, "invalid_token"),
    (b'{"valid": "true", "realm_user_id": "alice@example.com"}', 403, "invalid_token"),
    (b'<html>Service Unavailable</html>', 502, "iam_unavailable"),              # not JSON
    (b'["valid", true]', 502, "iam_unavailable"),                              # JSON, no object
])
def test_iam_answering_200_oddly_gets_its_documented_answer(crm, body, status, code):
    """Planted: `answer.get("valid") is not False` (a missing or odd `valid` let through)."""
    assert crm.link(ALICE).status == 200
    crm.iam.fail_next("validate", status=200, body=body)
    answer = crm.post("/get-user", {"Token": crm.token(ALICE)})
    assert answer.status == status, answer.body
    assert answer.json()["error"] == code
    # Nothing was cached from the odd answer: the next check asks IAM again and succeeds.
    assert crm.post("/get-user", {"Token": crm.token(ALICE)}).status == 200


# --- a refresh held elsewhere ---------------------------------------------------------------

def test_a_refresh_in_progress_elsewhere_answers_503_with_retry_after(crm_factory):
    """Another instance holds the agent's Sync refresh lease: wait a bounded time, then 503.

    Planted: RefreshBusy raised without a Retry-After header."""
    crm = crm_factory(store="sync")
    sync = SyncClient(crm.sync.url, crm.sync.service_sid, crm.iam.account_sid, crm.iam.auth_token)
    crm.services.keeper.store = SyncTokenStore(sync, lease_wait=0.3)
    assert crm.link(ALICE).status == 200
    token = crm.token(ALICE)
    assert crm.post("/get-user", {"Token": token}).status == 200
    lease = hashlib.sha256(ALICE.encode()).hexdigest()   # the store's lease: a Sync Map item
    sync.create_map_item(LEASE_MAP, lease, {"holder": "another-instance"}, ttl=30)
    crm.sf.expire_access_tokens()
    crm.services.lookup.forget(ALICE)
    busy = crm.post("/get-user", {"Token": token})
    assert busy.status == 503 and busy.json()["error"] == "refresh_in_progress"
    assert int(busy.headers["Retry-After"]) >= 1
    assert crm.sf.refresh_log == []          # we never presented the refresh token
    sync.delete_map_item(LEASE_MAP, lease)
    assert crm.post("/get-user", {"Token": token}).status == 200
    assert len(crm.sf.refresh_log) == 1


# --- the HTTP server's header count limit ---------------------------------------------------

def _raw_status(url: str, header_lines: int) -> int:
    """GET /hello with exactly `header_lines` header lines (Host included); the status line's code."""
    host, port = url.split("//", 1)[1].split(":")
    lines = [f"Host: {host}:{port}"] + [f"X-Filler-{i}: {i}" for i in range(header_lines - 2)]
    lines.append("Connection: close")
    request = ("GET /hello HTTP/1.1\r\n" + "\r\n".join(lines) + "\r\n\r\n").encode("ascii")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return int(received.split(b" ", 2)[1])


def test_exactly_100_header_lines_are_accepted_and_101_are_not(runtime):
    """Planted: the count checked before the blank line ends the headers (100 answered 431)."""
    assert _raw_status(runtime.url, 99) == 200
    assert _raw_status(runtime.url, 100) == 200
    assert _raw_status(runtime.url, 101) == 431
    assert _raw_status(runtime.url, 150) == 431
