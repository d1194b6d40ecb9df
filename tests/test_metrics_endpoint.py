"""GET /metrics's door: loopback (or METRICS_ALLOW) not through a proxy, or METRICS_TOKEN; and it
answers outside the concurrency cap, reporting the cap it stands beside."""
from __future__ import annotations

import ipaddress

import pytest

from sfdcflex.metrics import Metrics
from sfdcflex.metrics_endpoint import PATH, MetricsEndpoint
from sfdcflex.runtime.app import Limits, Request
from sfdcflex.runtime.errors import HTTPError
from tests.support.prometheus import parse, samples

LOOPBACK = tuple(ipaddress.ip_network(n) for n in ("127.0.0.0/8", "::1"))
TOKEN = "m" * 24


def ask(endpoint: MetricsEndpoint, address: str, headers: list[tuple[str, str]] = ()) -> int:
    """The status /metrics answers a GET from `address` with `headers`."""
    try:
        return endpoint(Request("GET", PATH, list(headers), b"", address)).status
    except HTTPError as refused:
        return refused.status


@pytest.mark.parametrize("address, headers, status", [
    ("127.0.0.1", [], 200),
    ("::1", [], 200),
    ("::ffff:127.0.0.1", [], 200),                               # an IPv4 client on a dual-stack socket
    ("10.1.2.3", [], 403),
    ("", [], 403),                                                # a host that gave no address
    ("127.0.0.1", [("X-Forwarded-For", "203.0.113.9")], 403),     # a proxy on this machine forwarded it
    ("127.0.0.1", [("Forwarded", "for=203.0.113.9")], 403),
    ("10.1.2.3", [("Authorization", f"Bearer {TOKEN}")], 200),
    ("127.0.0.1", [("X-Forwarded-For", "203.0.113.9"), ("Authorization", f"bearer {TOKEN}")], 200),
    ("127.0.0.1", [("Authorization", "Bearer wrong-token-of-some-length")], 401),
    ("127.0.0.1", [("Authorization", f"Basic {TOKEN}")], 401),
])
def test_metrics_are_open_to_loopback_not_through_a_proxy_or_to_the_token(address, headers, status):
    endpoint = MetricsEndpoint(Metrics().registry, LOOPBACK, TOKEN)
    assert ask(endpoint, address, headers) == status


def test_a_wrong_token_is_told_how_to_authenticate_and_without_a_token_only_addresses_count():
    endpoint = MetricsEndpoint(Metrics().registry, LOOPBACK, TOKEN)
    with pytest.raises(HTTPError) as refused:
        endpoint(Request("GET", PATH, [("Authorization", "Bearer nope")], b"", "127.0.0.1"))
    assert refused.value.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    no_token = MetricsEndpoint(Metrics().registry, (ipaddress.ip_network("10.0.0.0/8"),))
    assert ask(no_token, "10.9.9.9", [("Authorization", "Bearer anything")]) == 200   # no token set: by address
    assert ask(no_token, "127.0.0.1") == 403
    assert ask(MetricsEndpoint(Metrics().registry, ()), "127.0.0.1") == 403     # METRICS_ALLOW=none


def test_metrics_answer_while_the_concurrency_cap_is_full_and_count_the_429(serve):
    """Like /healthz, outside the cap; in flight shows the cap full, the overload counter the 429."""
    metrics = Metrics()
    served = serve(limits=Limits(max_concurrency=2),
                   builtins={PATH: MetricsEndpoint(metrics.registry, LOOPBACK)},
                   observe=metrics.request_observer({"/slow": "slow", "/hello": "hello", PATH: "metrics"}))
    metrics.watch_app(served.app)
    with served.cap_filled(2):
        assert served.call("GET", "/hello").status == 429
        answer = served.call("GET", PATH)
        assert answer.status == 200
        families = parse(answer.body.decode())
        assert samples(families, "sfdcflex_invocations_in_flight") == {(): 2}
        assert samples(families, "sfdcflex_invocations_max") == {(): 2}
        assert samples(families, "sfdcflex_overload_answers_total")[(("code", "429"),)] == 1
