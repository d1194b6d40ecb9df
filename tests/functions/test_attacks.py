"""The security review's attacks, each tried over real sockets against the stand-ins.

Each test is one row of README's reliability report: the attack as an attacker with a Flex
login of their own (or a captured signed URL) would try it, and the refusal that must follow.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import socket
import stat
import threading
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest

from tests.support.crm import STATE_SECRET
from tests.support.http import call
from tests.support.served import AUTH_TOKEN
from sfdcflex.clients.salesforce import InvalidGrant
from sfdcflex.demo.standins.salesforce import submit_consent
from sfdcflex.oauth_state import StateSigner, code_challenge, load_or_create_secret
from sfdcflex.runtime.errors import ConfigError
from sfdcflex.runtime.wsgi import WSGIApp
from sfdcflex.store import JsonFileTokenStore

ALICE, BOB, CAROL = "alice@example.com", "bob@example.com", "carol@example.com"


def _url_only_signature(url: str) -> str:
    # Twilio's documented algorithm, computed here independently of sfdcflex.runtime.signature.
    return base64.b64encode(hmac.new(AUTH_TOKEN.encode(), url.encode(), hashlib.sha1).digest()).decode()


# --- 1. X-Twilio-Signature and non-form bodies -----------------------------------------------

def test_a_signed_url_does_not_vouch_for_an_unsigned_body(runtime):
    target = "/webhook?Digits=1234"
    signature = _url_only_signature(runtime.url + target)
    plain = runtime.call("POST", target, headers={"X-Twilio-Signature": signature})
    assert plain.status == 200 and plain.json() == {"accepted": "1234"}
    forged = [(json.dumps({"Digits": "9999"}).encode(), "application/json"),
              (b"Digits=9999", "text/plain"), (b"Digits=9999", None),
              (b'{"Digits": "9999"}', None)]
    for body, kind in forged:
        headers = {"X-Twilio-Signature": signature, **({"Content-Type": kind} if kind else {})}
        answer = runtime.call("POST", target, body=body, headers=headers)
        assert answer.status == 403, (kind, body, answer.body)
        assert answer.json()["error"] == "invalid_signature"


def test_a_json_body_is_accepted_only_with_its_signed_matching_hash(runtime):
    body = json.dumps({"Digits": "42"}).encode()
    target = f"/webhook?Digits=1&bodySHA256={hashlib.sha256(body).hexdigest()}"
    headers = {"Content-Type": "application/json",
               "X-Twilio-Signature": _url_only_signature(runtime.url + target)}
    assert runtime.call("POST", target, body=body, headers=headers).json() == {"accepted": "42"}
    assert runtime.call("POST", target, body=body + b" ", headers=headers).status == 403
    unsigned_hash = f"/webhook?Digits=1&bodySHA256={hashlib.sha256(b'{}').hexdigest()}"
    assert runtime.call("POST", unsigned_hash, body=b"{}", headers=headers).status == 403


def test_a_get_without_a_signature_to_a_protected_function_is_403(runtime):
    """Guards against checking signatures only on POST (request.method == "POST" and access == PROTECTED)."""
    refused = runtime.call("GET", "/webhook?Digits=1234")
    assert refused.status == 403 and refused.json()["error"] == "invalid_signature"
    assert b"1234" not in refused.body   # the function never ran
    wrong = runtime.call("GET", "/webhook?Digits=1234", headers={"X-Twilio-Signature": "AAAA"})
    assert wrong.status == 403


# --- 2. Sync store: identities that would name another document ------------------------------

def test_an_identity_shaped_like_a_document_sid_reads_nothing(crm_factory):
    crm = crm_factory(TOKEN_STORE="sync")
    assert crm.link(BOB).status == 200
    bob_sid = crm.sync.documents[BOB]["sid"]
    for mallory in (bob_sid, bob_sid.upper()):
        crm.iam.add_agent(mallory, "Mallory")
        token = crm.token(mallory)
        calls = sum(crm.sync.calls.values())
        for path, body in [("/get-user", {}), ("/get-contact", {"phone": "+14155550101"}),
                           ("/auth", {}), ("/unlink", {})]:
            answer = crm.post(path, {"Token": token, **body})
            assert answer.status == 403, (path, answer.body)
            assert answer.json()["error"] == "identity_not_storable"
        assert sum(crm.sync.calls.values()) == calls   # refused before any Sync call
    assert crm.post("/get-user", {"Token": crm.token(BOB)}).json()["sfdc_username"] == BOB


def test_an_identity_ending_in_the_old_lease_suffix_cannot_block_a_refresh(crm_factory):
    crm = crm_factory(TOKEN_STORE="sync")
    squatter = ALICE + ".refresh-lease"
    crm.iam.add_agent(squatter, "Squatter")
    crm.sf.add_user(squatter, "Squatter")
    assert crm.link(ALICE).status == 200 and crm.link(squatter).status == 200
    crm.sf.expire_access_tokens()
    answer = crm.post("/get-contact", {"Token": crm.token(ALICE), "phone": "+14155550101"})
    assert answer.status == 200, answer.body
    assert crm.sync.maps.item_keys("sfdcflex-refresh-leases") == []   # taken and given back
    assert set(crm.sync.documents) == {ALICE, squatter}


def test_a_sync_answer_for_another_document_is_never_used(crm_factory):
    crm = crm_factory(TOKEN_STORE="sync")
    assert crm.link(BOB).status == 200
    bob_document = json.dumps(crm.sync.documents[BOB]).encode()
    crm.iam.add_agent(CAROL, "Carol")
    crm.sync.fail_next("fetch", status=200, body=bob_document)
    answer = crm.post("/get-user", {"Token": crm.token(CAROL)})
    assert answer.status == 502 and answer.json()["error"] == "sync_error"
    assert b"bob" not in answer.body


def test_sync_refuses_what_it_cannot_hold_as_a_unique_name(crm_factory):
    # The stand-in answers as Twilio does (400 / 54302), so the store's own check is what keeps
    # such an identity from ever reaching Sync.
    crm = crm_factory(TOKEN_STORE="sync")
    for identity in ("x" * 257, "ET" + "ab" * 16, ".", ".."):
        crm.iam.add_agent(identity, "Odd")
        answer = crm.post("/auth", {"Token": crm.token(identity)})
        assert answer.status == 403 and answer.json()["error"] == "identity_not_storable", identity
        # "." and ".." would be dot-segments of Documents/{name}: naming the list or the Service.
        syncs = sum(crm.sync.calls.values())
        assert crm.post("/get-user", {"Token": crm.token(identity)}).json()["error"] == "identity_not_storable"
        assert sum(crm.sync.calls.values()) == syncs
    assert crm.post("/auth", {"Token": crm.token(ALICE)}).status == 200


# --- 3. What the JSON store and the state secret find on disk -------------------------------

def test_a_world_writable_store_folder_and_open_files_are_made_private(crm_factory, tmp_path):
    folder = tmp_path / "store"
    folder.mkdir()
    folder.chmod(0o777)
    (folder / "tokens.json").write_text('{"version": 1, "agents": {}}')
    (folder / "tokens.json").chmod(0o666)
    crm = crm_factory()
    assert crm.link(ALICE).status == 200
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for name in ("tokens.json", "tokens.json.lock"):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600, name


def test_a_symlinked_lock_file_is_refused_not_followed(tmp_path):
    folder = tmp_path / "store"
    folder.mkdir(mode=0o700)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("not yours")
    (folder / "tokens.json.lock").symlink_to(elsewhere)
    with pytest.raises(ConfigError) as raised:
        JsonFileTokenStore(folder / "tokens.json")
    assert "symbolic link" in str(raised.value) and "\n" not in str(raised.value)
    (folder / "tokens.json.lock").unlink()
    (folder / "state-secret").symlink_to(elsewhere)
    with pytest.raises(ConfigError):
        load_or_create_secret(folder / "state-secret")
    assert elsewhere.read_text() == "not yours"


@pytest.mark.skipif(os.geteuid() != 0, reason="making a file of another user needs root (CI runs as root)")
def test_files_of_another_user_are_refused_with_one_line(tmp_path):
    folder = tmp_path / "store"
    folder.mkdir(mode=0o700)
    secret = folder / "state-secret"
    secret.write_text("ab" * 32 + "\n")
    os.chown(secret, 65534, 65534)
    with pytest.raises(ConfigError) as raised:
        load_or_create_secret(secret)
    message = str(raised.value)
    assert "belongs to user id 65534" in message and "\n" not in message
    os.chown(folder, 65534, 65534)
    with pytest.raises(ConfigError):
        JsonFileTokenStore(folder / "tokens.json")


def test_a_state_naming_a_foreign_panel_origin_is_refused_at_the_callback(crm):
    # A state signed with the shared secret (by an instance configured otherwise, say) that names
    # an origin this server does not allow: the callback must not address its result there.
    signer = StateSigner(STATE_SECRET.encode())
    state = signer.sign(ALICE, "https://evil.example")
    challenge = code_challenge(signer.code_verifier(signer.verify(state)))
    authorize = crm.services.salesforce.authorize_url(crm.url + "/oauth-callback", state, challenge)
    location = submit_consent(authorize, ALICE)
    page = call(crm.url, "GET", location[len(crm.url):])
    assert page.status == 403 and b"evil.example" not in page.body
    assert b"origin_not_allowed" in page.body
    assert "postMessage" not in page.body.decode()   # no valid state: no panel to tell
    assert crm.sf.calls["token"] == 0                # refused before the code was exchanged
    assert not crm.store_path.exists() or ALICE not in crm.links()
    assert crm.post("/get-user", {"Token": crm.token(ALICE)}).json()["error"] == "not_linked"


# --- 4. State replay and the grant a new link replaces ---------------------------------------

@pytest.mark.parametrize("store", ["json", "sync"])
def test_a_state_is_good_for_one_callback_on_any_instance(crm_factory, store):
    one, two = crm_factory(TOKEN_STORE=store), crm_factory(TOKEN_STORE=store)
    # No panel origin: behind one load balancer instances share one; here each has its own URL.
    authorize = one.post("/auth", {"Token": one.token(ALICE)}).json()["authorize_url"]
    first, again = (submit_consent(authorize, ALICE) for _ in range(2))  # one state, two codes
    assert call(one.url, "GET", first[len(one.url):]).status == 200
    replay_here = call(one.url, "GET", again[len(one.url):])
    assert replay_here.status == 403 and b"state_used" in replay_here.body
    # The other instance knows too: used states live in the shared file, or in Sync.
    replay_there = call(two.url, "GET", again[len(one.url):])
    assert replay_there.status == 403 and b"state_used" in replay_there.body


def test_linking_again_revokes_the_replaced_grant_at_salesforce(crm):
    assert crm.link(ALICE).status == 200
    old_refresh = crm.links()[ALICE]["refresh_token"]
    assert crm.link(ALICE).status == 200
    assert crm.links()[ALICE]["refresh_token"] != old_refresh
    with pytest.raises(InvalidGrant):
        crm.services.salesforce.refresh(old_refresh)
    assert crm.post("/get-user", {"Token": crm.token(ALICE)}).status == 200


# --- 5. Identity comparison ------------------------------------------------------------------

def test_a_kelvin_sign_does_not_pass_for_a_k(crm):
    kate = "\u212aate@example.com"   # KELVIN SIGN, which str.lower() maps to "k"
    crm.iam.add_agent(kate, "Kate")
    crm.sf.add_user("kate@example.com", "Kate Real")
    refused = crm.link(kate, sfdc_username="kate@example.com")
    assert refused.status == 403 and b"identity_mismatch" in refused.body
    assert not crm.store_path.exists() or kate not in crm.links()
    crm.iam.add_agent("KATE@example.com", "Kate")
    assert crm.link("KATE@example.com", sfdc_username="kate@example.com").status == 200


# --- 6. Cached cards die with the link -------------------------------------------------------

@pytest.mark.parametrize("store", ["json", "sync"])
def test_cached_cards_go_with_a_link_that_died_on_every_instance(crm_factory, store):
    one, two = crm_factory(store=store), crm_factory(store=store)
    assert one.link(ALICE).status == 200
    token = one.token(ALICE)
    for crm in (one, two):   # both instances cache Ada's card
        assert crm.post("/get-contact", {"Token": token, "phone": "+14155550101"}).status == 200
    hits = [crm.post("/get-contact", {"Token": token, "phone": "+14155550101"}) for crm in (one, two)]
    assert all("cache;desc=\"hit\"" in answer.headers["Server-Timing"] for answer in hits)
    refresh_token = one.services.keeper.store.get(ALICE).refresh_token
    one.sf.grants.revoke(refresh_token)   # revoked in Salesforce
    gone = one.post("/get-contact", {"Token": token, "phone": "+12125550103"})   # a miss: refresh fails
    assert gone.status == 404 and gone.json()["error"] == "not_linked"
    for crm in (one, two):
        cached = crm.post("/get-contact", {"Token": token, "phone": "+14155550101"})
        assert cached.status == 404 and cached.json()["error"] == "not_linked", cached.body
        assert crm.post("/get-user", {"Token": token}).status == 404


def test_with_sync_a_request_reads_the_agents_document_once_or_as_configured(crm_factory):
    """Default: one Sync read per request confirms the link, hit or miss (however many Salesforce
    calls the miss makes). SYNC_LINK_RECHECK=N trusts a read N seconds: a hit makes no Sync call,
    and a link dropped elsewhere is noticed only after N seconds."""
    strict, relaxed = crm_factory(store="sync"), crm_factory(store="sync", SYNC_LINK_RECHECK="60")
    assert strict.link(ALICE).status == 200
    token = strict.token(ALICE)

    def fetches(crm, body) -> int:
        before = crm.sync.calls["fetch"]
        assert crm.post("/get-contact", {"Token": token, **body}).status in (200, 404)
        return crm.sync.calls["fetch"] - before

    nobody = {"phone": "+19995550100"}   # no match: a SOSL search, then a SOQL query
    assert fetches(strict, nobody) == 1 and fetches(strict, nobody) == 1
    assert fetches(strict, {"phone": "+14155550101"}) == 1
    assert fetches(relaxed, nobody) == 1          # its first read of the document
    assert fetches(relaxed, nobody) == 0          # a hit: no Sync call
    assert fetches(relaxed, {"phone": "+14155550101"}) == 0   # a miss under a confirmed link
    assert strict.post("/unlink", {"Token": token}).status == 200
    assert strict.post("/get-user", {"Token": token}).status == 404
    assert fetches(relaxed, nobody) == 0          # still served within its 60 s: the trade-off


# --- 7. Smaller items ------------------------------------------------------------------------

def test_a_newline_in_a_flex_identity_cannot_forge_a_log_line(crm, caplog):
    caplog.set_level("INFO", logger="sfdcflex")
    forger = "mallory@example.com\n2026-01-01 00:00:00 INFO linked Flex user admin@example.com"
    crm.iam.add_agent(forger, "Forger")
    assert crm.link(forger, sfdc_username="mallory.other@example.com").status == 403
    messages = [record.getMessage() for record in caplog.records]
    assert any("mallory@example.com" in message for message in messages)
    assert not any("\n" in message for message in messages)


def test_the_flex_token_is_refused_in_the_url_except_in_auths_popup(crm):
    assert crm.link(ALICE).status == 200
    token = crm.token(ALICE)
    for method, path in [("GET", "/unlink"), ("POST", "/get-user"), ("POST", "/get-contact"),
                         ("POST", "/auth"), ("GET", "/oauth-callback")]:
        answer = call(crm.url, method, f"{path}?Token={token}&phone=4155550101",
                      body={} if method == "POST" else None)
        assert answer.status == 400 and answer.json()["error"] == "token_in_url", (path, answer.body)
    assert crm.links()[ALICE]   # nothing was unlinked
    popup = call(crm.url, "GET", f"/auth?Token={token}", headers={"Accept": "text/html"})
    assert popup.status == 302
    assert crm.post("/get-username", {"Token": token}).status == 200   # the original plugin's way


def test_state_decoding_is_strict_base64(crm):
    state = StateSigner(STATE_SECRET.encode()).sign(ALICE)
    payload, mac = state.split(".")
    for spoiled in (f"{payload[:5]}*{payload[5:]}.{mac}", f"{payload}.{mac}=", f"{payload}+.{mac}"):
        answer = crm.post("/oauth-callback", {"Token": crm.token(ALICE), "code": "x", "state": spoiled})
        assert answer.status == 400 and answer.json()["error"] == "invalid_state", spoiled


def test_a_damaged_store_answers_500_without_server_paths(crm, caplog):
    crm.store_path.parent.mkdir(mode=0o700, exist_ok=True)
    crm.store_path.write_text("{damaged")
    answer = crm.post("/get-user", {"Token": crm.token(ALICE)})
    assert answer.status == 500 and answer.json()["error"] == "token_store_damaged"
    assert b"/" not in answer.body and str(crm.store_path) in caplog.text


def test_iam_refusing_our_credentials_gives_no_configuration_hints(crm_factory):
    crm = crm_factory(AUTH_TOKEN="not-the-account-auth-token")
    answer = crm.post("/get-user", {"Token": crm.token(ALICE)})
    assert answer.status == 502 and answer.json()["error"] == "iam_credentials_rejected"
    for hint in (b"ACCOUNT_SID", b"AUTH_TOKEN", b"TWILIO_IAM_URL", b"check ACCOUNT"):
        assert hint not in answer.body


class _GunicornLikeHandler(WSGIRequestHandler):
    """wsgiref, plus the raw request URI in RAW_URI as gunicorn gives it."""

    def get_environ(self):
        return {**super().get_environ(), "RAW_URI": self.path}

    def log_message(self, *args):
        pass


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


@pytest.mark.parametrize("handler", [_GunicornLikeHandler, _QuietHandler])
def test_wsgi_encoded_slash_or_question_mark_reach_no_other_function(serve, handler):
    served = serve()
    server = make_server("127.0.0.1", 0, WSGIApp(served.app), handler_class=handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.005}, daemon=True)
    thread.start()
    wsgi_url = f"http://127.0.0.1:{server.server_port}"
    try:
        paths = ["/hello%3Fx", "/hello%3F", "/uses-shared%3F.private", "/shared%2Eprivate"]
        if handler is _GunicornLikeHandler:   # wsgiref alone cannot tell %2F from /
            paths.append("/sub%2Fnested")
        for path in paths:
            builtin, wsgi = served.call("GET", path), call(wsgi_url, "GET", path)
            assert wsgi.status == builtin.status == 404, path
            if handler is _GunicornLikeHandler:
                assert wsgi.body == builtin.body
        assert call(wsgi_url, "GET", "/sub/nested").status == 200
    finally:
        server.shutdown()
        server.server_close()


# --- 8. Heads too big -----------------------------------------------------------------------

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
    """Guards against counting the blank line that ends the headers as a header (100 answered 431)."""
    assert _raw_status(runtime.url, 99) == 200
    assert _raw_status(runtime.url, 100) == 200
    assert _raw_status(runtime.url, 101) == 431
    assert _raw_status(runtime.url, 150) == 431
