"""Paths on the security and token code that no test ran before (issue 18): IAM's rejections and
expiry, odd Salesforce token answers, revocation failures, refresh conflicts, the state's claims
and its secret file, and the JSON store's failed writes. Over real sockets where a request can
reach the path; on the module itself where only a failing disk can."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import threading
import time
from urllib.parse import quote

import pytest

from tests.support.crm import STATE_SECRET
from tests.support.http import call
from sfdcflex.clients.errors import TokenRefused
from sfdcflex.clients.iam import FlexTokenValidator
from sfdcflex.clients.salesforce import sosl_escape, soql_quote
from sfdcflex.clients.sync import SyncClient
from sfdcflex.demo.standins import IamStandIn
from sfdcflex.keeper import NOT_LINKED
from sfdcflex.oauth_state import StateSigner, load_or_create_secret
from sfdcflex.runtime.errors import ConfigError
from sfdcflex.store import JsonFileTokenStore
from sfdcflex.sync_store import SyncTokenStore
from tests.test_known_gaps import ALICE, _callback, _redirect

ACCOUNT_SID, AUTH_TOKEN = "AC" + "7" * 32, "unrun-paths-auth-token"


def _error(answer, status: int, code: str) -> dict:
    assert answer.status == status, answer.body
    assert answer.json()["error"] == code, answer.body
    return answer.json()


def _get_user(crm, identity: str = ALICE):
    return crm.post("/get-user", {"Token": crm.token(identity)})


# --- Twilio IAM: rejections and expiry -------------------------------------------------------

def test_a_token_over_16_kib_is_refused_without_asking_iam(crm):
    calls = crm.iam.calls["validate"]
    _error(crm.post("/get-user", {"Token": "e" * (16 * 1024 + 1)}), 403, "invalid_token")
    assert crm.iam.calls["validate"] == calls


@pytest.mark.parametrize("status,answer,code", [
    (400, 403, "invalid_token"),                 # IAM's 400: the token is not one it can read
    (404, 502, "iam_credentials_rejected"),      # the account is unknown to IAM
    (401, 502, "iam_credentials_rejected"),
])
def test_iam_refusals_are_told_apart(crm, status, answer, code, caplog):
    crm.iam.fail_next("validate", status=status)
    body = _error(_get_user(crm), answer, code)
    if status != 400:
        # The operator's hint goes to the log; a client is never told which setting to check.
        assert "ACCOUNT_SID" in caplog.text and "ACCOUNT_SID" not in body["message"]


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def iam():
    with IamStandIn(ACCOUNT_SID, AUTH_TOKEN) as standin:
        yield standin


def _answer_with_expiration(iam: IamStandIn, expiration: object) -> None:
    iam.fail_next("validate", status=200, body=json.dumps(
        {"valid": True, "realm_user_id": ALICE, "roles": ["agent", 7], "expiration": expiration}).encode())


@pytest.mark.parametrize("expiration,cached_for", [
    (None, 300), (1234, 300), ("soon", 300), ("", 300),   # absent or unreadable: the cache's own limit
    ("+60", 60),                                         # naive ISO 8601 is UTC: 60 s from now
])
def test_the_cache_follows_iams_expiration_or_its_own_limit(iam, expiration, cached_for):
    clock = Clock()
    if expiration == "+60":
        moment = time.gmtime(clock.now + 60)
        expiration = time.strftime("%Y-%m-%dT%H:%M:%S", moment)
        clock.now = float(int(clock.now))   # the expiration has whole seconds
    validator = FlexTokenValidator(iam.url, ACCOUNT_SID, AUTH_TOKEN, clock=clock)
    _answer_with_expiration(iam, expiration)
    agent = validator.validate("any-token")
    assert agent.identity == ALICE and agent.roles == ("agent",)   # a role that is not a string is dropped
    clock.now += cached_for - 1
    assert validator.validate_with_source("any-token") == (agent, True)
    clock.now += 1
    with pytest.raises(TokenRefused):   # IAM is asked again, and the stand-in never issued this token
        validator.validate("any-token")


# --- Salesforce: odd token answers -----------------------------------------------------------

@pytest.mark.parametrize("body,words", [
    (b'{"access_token": "00D!x", "id": "https://x/id/00D/005", "instance_url": "https://x"}',
     "no refresh token"),
    (b'{"refresh_token": "5Aep", "instance_url": "https://x"}', "lacks access_token"),
    (b'["access_token"]', "not an object"),
    (b'<html>Maintenance</html>', "not JSON"),
])
def test_odd_token_answers_at_the_code_exchange_link_nothing(crm, body, words):
    crm.sf.fail_next("token", status=200, body=body)
    page = crm.link(ALICE)
    assert page.status == 502 and words.encode() in page.body, page.body
    assert not crm.store_path.exists() or ALICE not in json.loads(crm.store_path.read_text())["agents"]


@pytest.mark.parametrize("error,status,words", [
    ("redirect_uri_mismatch", 502, "redirect URI"),
    ("invalid_client_id", 502, "SFDC_CLIENT_ID"),
    ("invalid_grant", 400, "used or expired"),
    ("unsupported_grant_type", 502, "unsupported_grant_type"),
])
def test_token_endpoint_refusals_name_what_to_fix(crm, error, status, words):
    crm.sf.fail_next("token", status=400, body=json.dumps(
        {"error": error, "error_description": "refused"}).encode())
    page = crm.link(ALICE)
    assert page.status == status and words.encode() in page.body, page.body


@pytest.mark.parametrize("endpoint,body,phone", [
    ("search", b'{"records": []}', "+1 415 555 0191"),      # no searchRecords list
    ("search", b"not json", "+1 415 555 0192"),
    ("query", b'{"totalSize": 0}', "+1 415 555 0193"),      # no records list
])
def test_odd_rest_answers_are_502(crm, endpoint, body, phone):
    assert crm.link(ALICE).status == 200
    if endpoint == "query":   # the SOQL query runs only after a search that found nothing
        crm.sf.fail_next("search", status=200, body=b'{"searchRecords": []}')
    crm.sf.fail_next(endpoint, status=200, body=body)
    answer = crm.post("/get-contact", {"Token": crm.token(ALICE), "phone": phone})
    _error(answer, 502, "salesforce_error")


def test_a_search_answering_a_bare_list_is_read_as_older_api_versions_write_it(crm):
    assert crm.link(ALICE).status == 200
    crm.sf.fail_next("search", status=200, body=b"[]")
    answer = crm.post("/get-contact", {"Token": crm.token(ALICE), "phone": "(415) 555-0101"})
    assert answer.status == 200 and answer.json()["cust_name"] == "Ada Lovelace"   # found by SOQL


def test_query_and_search_helpers_take_only_strings():
    for helper in (soql_quote, sosl_escape):
        with pytest.raises(TypeError):
            helper(5)


# --- linking: bad codes, odd userinfo, revocation failures --------------------------------------

@pytest.mark.parametrize("code", ["", "c" * 513])
def test_a_missing_or_oversized_code_is_400(crm, code):
    _, state = _redirect(crm, ALICE)
    page = call(crm.url, "GET", f"/oauth-callback?code={code}&state={quote(state)}")
    assert page.status == 400 and b"invalid_code" in page.body
    assert crm.sf.calls["token"] == 0


def test_userinfo_without_username_or_org_is_502_and_links_nothing(crm):
    crm.sf.fail_next("userinfo", status=200, body=b'{"user_id": "005x", "organization_id": 7}')
    page = crm.link(ALICE)
    assert page.status == 502 and b"preferred_username" in page.body
    assert _get_user(crm).json()["error"] == "not_linked"


def test_a_refused_link_whose_revoke_fails_is_still_refused(crm, caplog):
    crm.sf.fail_next("revoke", status=503)
    with caplog.at_level(logging.WARNING, logger="sfdcflex"):
        refused = crm.link(ALICE, sfdc_username="mallory.other@example.com")
    assert refused.status == 403 and b"identity_mismatch" in refused.body
    assert "could not revoke refused tokens" in caplog.text
    assert _get_user(crm).json()["error"] == "not_linked"


def test_unlink_when_salesforce_cannot_revoke_still_forgets_the_link(crm, caplog):
    assert crm.link(ALICE).status == 200
    crm.sf.fail_next("revoke", status=500)
    with caplog.at_level(logging.WARNING, logger="sfdcflex"):
        answer = crm.post("/unlink", {"Token": crm.token(ALICE)})
    assert answer.status == 200 and answer.json()["unlinked"] is True
    assert "revoke failed" in caplog.text
    assert _get_user(crm).json()["error"] == "not_linked"


# --- the keeper: refreshes that meet a changed store ----------------------------------------

def test_refreshed_tokens_sync_cannot_take_are_used_and_refreshed_again_from_memory(crm_factory):
    """Sync fails every save for a while: the rotated tokens live in memory meanwhile, the next
    refresh starts from them (never from the spent stored one), and they reach Sync when it is back."""
    crm = crm_factory(store="sync")
    client = SyncClient(crm.sync.url, crm.sync.service_sid, crm.iam.account_sid, crm.iam.auth_token,
                        retries=1, sleep=lambda seconds: None)
    crm.services.keeper.store = SyncTokenStore(client)
    assert crm.link(ALICE).status == 200
    token = crm.token(ALICE)
    assert crm.post("/get-user", {"Token": token}).status == 200
    crm.sync.fail_next("update", status=503, count=4)   # two saves, each tried twice
    for _ in range(2):   # two expiries while Sync is down: the second refresh starts from memory
        crm.sf.expire_access_tokens()
        crm.services.lookup.forget(ALICE)
        assert crm.post("/get-user", {"Token": token}).status == 200
    log = crm.sf.refresh_log
    assert len(log) == 2 and len(set(log)) == 2          # never a spent refresh token again
    crm.services.lookup.forget(ALICE)
    assert crm.post("/get-user", {"Token": token}).status == 200   # Sync is back: saved now
    saved = client.fetch_document(ALICE)["data"]["refresh_token"]
    assert saved not in log                              # the newest, unspent one was stored


def test_a_link_deleted_elsewhere_is_not_refreshed(crm_factory):
    one, two = crm_factory(), crm_factory()
    assert one.link(ALICE).status == 200
    token = one.token(ALICE)
    assert two.post("/get-user", {"Token": token}).status == 200   # two holds the tokens
    JsonFileTokenStore(one.store_path).delete(ALICE)              # unlinked on another instance
    one.sf.expire_access_tokens()
    two.services.lookup.forget(ALICE)
    _error(two.post("/get-user", {"Token": token}), 404, "not_linked")
    assert one.sf.refresh_log == []


def test_a_link_deleted_while_its_refresh_is_under_way_ends_not_linked(crm):
    assert crm.link(ALICE).status == 200
    token = crm.token(ALICE)
    assert crm.post("/get-user", {"Token": token}).status == 200
    crm.sf.expire_access_tokens()
    crm.services.lookup.forget(ALICE)
    crm.sf.fail_next("token", stall=1.0)   # the refresh waits at Salesforce ...
    calls, answers = crm.sf.calls["token"], []
    worker = threading.Thread(target=lambda: answers.append(crm.post("/get-user", {"Token": token})))
    worker.start()
    deadline = time.monotonic() + 10
    while crm.sf.calls["token"] == calls and time.monotonic() < deadline:
        time.sleep(0.01)
    JsonFileTokenStore(crm.store_path).delete(ALICE)   # ... while the agent unlinks elsewhere
    worker.join(15)
    assert _error(answers[0], 404, "not_linked")["message"] == NOT_LINKED   # keeper._save_unsaved 29
    assert ALICE not in json.loads(crm.store_path.read_text())["agents"]


# --- OAuth state: claims and the secret file --------------------------------------------------

def _signed(payload: bytes) -> str:
    mac = hmac.new(STATE_SECRET.encode(), payload, hashlib.sha256).digest()
    encode = lambda raw: base64.urlsafe_b64encode(raw).rstrip(b"=").decode()  # noqa: E731
    return f"{encode(payload)}.{encode(mac)}"


@pytest.mark.parametrize("payload", [
    b"not json", b"[1, 2]", b'{"n": "x", "e": 9999999999}', b'{"i": "a", "n": "x", "e": "later"}',
    b'{"i": 5, "n": "x", "e": 9999999999}', b'{"i": "a", "n": 5, "e": 9999999999}',
    b'{"i": "a", "n": "x", "e": 9999999999, "o": 5}',
])
def test_a_signed_state_with_malformed_claims_is_400(crm, payload):
    code, _ = _redirect(crm, ALICE)
    page = _callback(crm, code, _signed(payload))
    assert page.status == 400 and b"invalid_state" in page.body
    assert crm.sf.calls["token"] == 0


def test_the_signer_refuses_a_short_secret_and_an_empty_identity():
    with pytest.raises(ValueError):
        StateSigner(b"x" * 15)
    with pytest.raises(ValueError):
        StateSigner("s" * 48)
    with pytest.raises(ValueError):
        StateSigner(b"x" * 16).sign("")


@pytest.mark.parametrize("content", ["", "abcd\n", "00" * 31, "zz" * 32, "\xff\xfe" * 40])
def test_a_secret_file_too_short_or_not_hex_is_a_config_error(tmp_path, content):
    path = tmp_path / "state-secret"
    path.write_bytes(content.encode("latin-1"))
    with pytest.raises(ConfigError) as raised:
        load_or_create_secret(path)
    assert "delete it" in str(raised.value)
    assert path.read_bytes() == content.encode("latin-1")   # left for the operator


def test_the_secret_folder_is_made_private_when_missing(tmp_path):
    path = tmp_path / "new" / "deeper" / "state-secret"
    secret = load_or_create_secret(path)
    assert len(secret) == 32 and load_or_create_secret(path) == secret
    assert path.parent.stat().st_mode & 0o777 == 0o700 and path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["state-secret"]   # no temp file left


# --- the JSON store: a write that fails -------------------------------------------------------

def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path, monkeypatch):
    """Also kills store `_write` 42 (the temp file left behind, the disk's error replaced by a
    TypeError) and `__init__` 6, 7 (another lock file: processes of two versions sharing the
    file would not lock each other out)."""
    path = tmp_path / "tokens.json"
    store = JsonFileTokenStore(path)
    store.put(ALICE, "access-1", "refresh-1")
    before = path.read_bytes()

    def full_disk(source, target):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("sfdcflex.store.os.replace", full_disk)
    with pytest.raises(OSError) as raised:
        store.put(ALICE, "access-2", "refresh-2")
    assert raised.value.errno == 28
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tokens.json", "tokens.json.lock"]
    monkeypatch.undo()
    assert store.get(ALICE).refresh_token == "refresh-1"


def test_concurrent_saves_are_written_together_and_none_is_lost(tmp_path):
    store = JsonFileTokenStore(tmp_path / "tokens.json")
    start = threading.Barrier(12)
    results: dict[int, object] = {}

    def save(n: int) -> None:
        start.wait(5)
        results[n] = store.put(f"agent-{n}@example.com", f"access-{n}", f"refresh-{n}")

    threads = [threading.Thread(target=save, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert len(results) == 12
    for n, saved in results.items():
        assert store.get(f"agent-{n}@example.com") == saved

