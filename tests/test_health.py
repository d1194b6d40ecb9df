"""GET /healthz: for supervisors and load balancers; no Token, no upstream call, no secret."""
from __future__ import annotations

from tests.support.http import call
from sfdcflex import __version__
from sfdcflex.health import HealthCheck
from sfdcflex.runtime.app import Limits, Request
from sfdcflex.store import JsonFileTokenStore


def upstream_calls(crm) -> int:
    return sum(crm.sf.calls.values()) + sum(crm.iam.calls.values()) + sum(crm.sync.calls.values())


def test_healthz_says_ok_with_version_and_store_and_calls_nobody(crm):
    crm.link("alice@example.com")
    before = upstream_calls(crm)
    answer = call_healthz(crm)
    assert answer.status == 200
    assert answer.json() == {"status": "ok", "version": __version__, "store": "json"}
    assert answer.headers["Cache-Control"] == "no-store"
    assert upstream_calls(crm) == before
    for secret in (crm.iam.auth_token, crm.sf.client_secret, "s" * 48):
        assert secret.encode() not in answer.body


def call_healthz(crm):
    return call(crm.url, "GET", "/healthz")


def test_the_health_check_answers_at_the_path_health_path_names(crm_factory):
    """HEALTH_PATH moves it (a function of the integration, or a proxy's rule, may want
    /healthz); the old path is then nobody's."""
    crm = crm_factory(HEALTH_PATH="/sfdcflex/health")
    answer = call(crm.url, "GET", "/sfdcflex/health")
    assert answer.status == 200 and answer.json()["status"] == "ok"
    assert call_healthz(crm).status == 404


def test_healthz_is_503_with_a_reason_when_the_token_file_is_damaged(crm):
    crm.link("alice@example.com")
    crm.store_path.write_text("{not json")
    answer = call_healthz(crm)
    assert answer.status == 503
    body = answer.json()
    assert body["status"] == "unavailable" and body["store"] == "json"
    assert "damaged" in body["reason"]
    assert str(crm.store_path) not in body["reason"]   # no file system layout to strangers


def test_healthz_is_503_when_the_token_file_cannot_be_read(crm):
    crm.store_path.parent.mkdir(parents=True, exist_ok=True)
    crm.store_path.mkdir()   # a folder where the file should be: reading it fails, even as root
    answer = call_healthz(crm)
    assert answer.status == 503 and "cannot be read" in answer.json()["reason"]


def test_healthz_does_not_probe_sync(crm_factory):
    crm = crm_factory(store="sync")
    before = upstream_calls(crm)
    answer = call_healthz(crm)
    assert answer.status == 200 and answer.json()["store"] == "sync"
    assert upstream_calls(crm) == before


def test_healthz_answers_while_the_concurrency_cap_is_full(serve, tmp_path):
    store = JsonFileTokenStore(tmp_path / "tokens.json")
    served = serve(limits=Limits(max_concurrency=2), builtins={"/healthz": HealthCheck(store, "json")})
    with served.cap_filled(2):
        assert served.call("GET", "/hello").status == 429   # the cap is full
        answer = served.call("GET", "/healthz")
        assert answer.status == 200 and answer.json()["status"] == "ok"


def test_healthz_is_get_only_and_logged_at_debug(serve, tmp_path, caplog):
    store = JsonFileTokenStore(tmp_path / "tokens.json")
    served = serve(builtins={"/healthz": HealthCheck(store, "json")})
    caplog.set_level("INFO", logger="sfdcflex")
    assert served.call("POST", "/healthz").status == 404
    assert served.call("GET", "/healthz").status == 200
    lines = [record.getMessage() for record in caplog.records]
    assert any("404 POST /healthz" in line for line in lines)
    assert not any("200 GET /healthz" in line for line in lines)


class _CountingStore(JsonFileTokenStore):
    """The JSON store, counting how often its whole file is parsed for a health check."""

    parsed = 0

    def check_readable(self) -> None:
        self.parsed += 1
        super().check_readable()


def test_a_probe_parses_the_token_file_only_after_it_changed(tmp_path):
    """A probe costs one stat while the token file stays the same: a file of thousands of agents
    is parsed once per change, not once per probe (load balancers probe every few seconds)."""
    store = _CountingStore(tmp_path / "tokens.json")
    health = HealthCheck(store, "json")

    def probe() -> int:
        return health(Request("GET", "/healthz", [])).status

    assert probe() == 200 and store.parsed == 0          # no agent linked yet: no file
    store.put("alice@example.com", "access-1", "refresh-1")
    assert [probe() for _ in range(5)] == [200] * 5 and store.parsed == 1
    store.put("bob@example.com", "access-2", "refresh-2")
    assert probe() == 200 and store.parsed == 2
    store.path.write_text("{damaged")
    assert [probe() for _ in range(3)] == [503] * 3 and store.parsed == 3
