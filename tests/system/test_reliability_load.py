"""Load and slow clients against `python run.py` as its own process, watched through /proc.

16 keep-alive connections run a mixed workload for 4 s: no transport error, no unexpected
status, memory bounded, worker threads no more than the connections need, and file descriptors
other than the kept-alive upstream connections back where they were once the
connections close. Clients that drip a byte every half read timeout are cut off by it and
never hold up anyone else.
"""
from __future__ import annotations

import collections
import http.client
import json
import random
import select
import socket
import threading
import time

import pytest

from tests.support.processes import ServerProcess, settings_for, upstream_sockets, wait_until, write_env_file
from sfdcflex.clients.pool import MAX_IDLE_PER_ORIGIN

pytestmark = pytest.mark.slow   # seconds of load and of slow clients

ALICE, BOB, MALLORY = "alice@example.com", "bob@example.com", "mallory@example.com"
CONNECTIONS = 16
LOAD_SECONDS = 4.0
WARM_UP_SECONDS = 0.5
READ_TIMEOUT = 1.0
DRIP_SECONDS = READ_TIMEOUT / 2   # a byte this often: never idle for a whole read timeout


@pytest.fixture
def server(crm_factory, tmp_path):
    """run.py on the stand-ins, with Alice and Bob linked in the token store it shares with `crm`."""
    crm = crm_factory()
    crm.link(ALICE)
    crm.link(BOB)
    env_file = write_env_file(tmp_path / "load.env", settings_for(crm.sf, crm.iam, crm.sync, crm.store_path))
    process = ServerProcess.start(env_file, "--read-timeout", str(READ_TIMEOUT))
    yield process, crm
    log = process.stop()
    assert "Traceback" not in log, log[-3000:]


def workload(crm) -> list[tuple[str, str, object, int]]:
    """(name, path, body or a function of rng making one, expected status), weighted by repetition."""
    alice, bob, mallory = crm.token(ALICE), crm.token(BOB), crm.token(MALLORY)
    cached = ("cached get-contact", "/get-contact", {"Token": alice, "phone": "+14155550101"}, 200)
    user = ("get-user", "/get-user", {"Token": bob}, 200)
    alias = ("get-contact-account-data", "/get-contact-account-data",
             {"Token": bob, "phone": "212-555-0103"}, 200)
    # No seeded contact has a 646-556 number: every one of these is a real miss at Salesforce.
    miss = ("miss", "/get-contact",
            lambda rng: {"Token": alice, "phone": f"+1 646 556 {rng.randrange(10_000):04d}"}, 404)
    not_linked = ("not linked", "/get-user", {"Token": mallory}, 404)
    bad_token = ("bad token", "/get-contact",
                 lambda rng: {"Token": f"eyJbad{rng.random()}", "phone": "+14155550101"}, 403)
    return [cached] * 10 + [user] * 4 + [alias] * 2 + [miss, not_linked, bad_token]


def hammer(url: str, plan: list, seconds: float, seed: int, tally: collections.Counter) -> None:
    """One keep-alive connection sending the plan's requests until `seconds` have passed."""
    rng = random.Random(seed)
    connection = http.client.HTTPConnection(url.split("//", 1)[1], timeout=15)
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            name, path, body, expected = rng.choice(plan)
            body = body(rng) if callable(body) else body
            try:
                connection.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
                reply = connection.getresponse()
                data = reply.read()
            except (OSError, http.client.HTTPException) as error:
                tally[f"transport error: {type(error).__name__}"] += 1
                connection.close()
                continue
            tally["requests"] += 1
            if reply.status != expected or (expected >= 400 and b'"error"' not in data):
                tally[f"unexpected {reply.status} for {name}"] += 1
    finally:
        connection.close()


def run_load(url: str, plan: list, seconds: float, seed: int) -> collections.Counter:
    tally: collections.Counter = collections.Counter()
    threads = [threading.Thread(target=hammer, args=(url, plan, seconds, seed + n, tally))
               for n in range(CONNECTIONS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 30)
    return tally


def steady(server: ServerProcess) -> object:
    """The footprint once threads and descriptors stopped changing for 0.3 s (or after 5 s)."""
    seen = [server.footprint()]

    def unchanged() -> bool:
        seen.append(server.footprint())
        last = seen[-4:]
        return len(last) == 4 and len({(f.threads, f.fds) for f in last}) == 1
    wait_until(unchanged, 5.0, 0.1)
    return seen[-1]


def test_sixteen_connections_for_four_seconds(server):
    server, crm = server
    idle = server.footprint()   # no request yet: no worker thread yet
    upstream = {int(standin.url.rsplit(":", 1)[1]) for standin in (crm.sf, crm.iam, crm.sync)}
    plan = workload(crm)
    warm = run_load(server.url, plan, WARM_UP_SECONDS, seed=1)
    assert warm["requests"] > 0 and set(warm) == {"requests"}, warm
    # The worker pool has grown to about what this load needs; the warm-up's sockets are closed.
    before = steady(server)
    pooled_before = upstream_sockets(server.pid, upstream)
    tally = run_load(server.url, plan, LOAD_SECONDS, seed=100)
    # The upstream pool keeps up to MAX_IDLE_PER_ORIGIN connections to each of Salesforce and
    # IAM, as many as the load's peak needed: that many descriptors may stay, no other one.
    kept = 2 * MAX_IDLE_PER_ORIGIN
    others_before = before.fds - pooled_before
    # Waits for the other descriptors only: workers stay once started, so when the load grew the
    # pool past the warm-up's, the thread count never comes back (the bound on it is below).
    def back() -> bool:   # one look at /proc per poll
        return server.footprint().fds - upstream_sockets(server.pid, upstream) <= others_before
    wait_until(back, 5.0, 0.1)
    after, pooled = server.footprint(), upstream_sockets(server.pid, upstream)
    print(f"\nload: {CONNECTIONS} connections x {LOAD_SECONDS:g} s: {tally['requests']} requests "
          f"({tally['requests'] / LOAD_SECONDS:.0f}/s), tally {dict(tally)}\n"
          f"  RSS {before.rss_kib} -> {after.rss_kib} KiB, peak {after.peak_rss_kib} KiB; "
          f"threads {idle.threads} idle, {before.threads} -> {after.threads}; fds {before.fds} -> {after.fds} "
          f"(kept-alive upstream {pooled_before} -> {pooled})")
    assert set(tally) == {"requests"}, tally  # no transport error, no unexpected status
    assert tally["requests"] >= 500
    assert after.rss_kib - before.rss_kib < 32 * 1024, (before, after)
    assert after.peak_rss_kib < 160 * 1024, after
    # Workers start as requests need them and stay: one per connection at most, and a few more
    # when a request came just before a worker said it was free; never a thread per request.
    assert after.threads - idle.threads <= CONNECTIONS + 4, (idle, before, after)
    assert pooled <= kept, pooled
    assert after.fds - pooled <= others_before, (before, after, pooled_before, pooled)


def drip(url: str, started: threading.Event, outcome: list) -> None:
    """Send a request a byte every DRIP_SECONDS, for up to twice the read timeout; record how long
    until the server closed the connection."""
    host, port = url.split("//", 1)[1].rsplit(":", 1)
    request = b'POST /get-user HTTP/1.1\r\nHost: x\r\nContent-Length: 13\r\n\r\n{"Token":"x"}'
    opened = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        started.set()
        for byte in request[:int(2 * READ_TIMEOUT / DRIP_SECONDS)]:
            try:
                sock.sendall(bytes([byte]))
                readable, _, _ = select.select([sock], [], [], DRIP_SECONDS)  # the drip's pace
                if readable and sock.recv(1024) == b"":
                    break
            except OSError:
                break
        else:
            outcome.append(("never closed", time.monotonic() - opened))
            return
    outcome.append(("closed", time.monotonic() - opened))


def test_slow_clients_are_cut_off_and_do_not_hold_up_others(server):
    server, crm = server
    token = crm.token(BOB)
    host = server.url.split("//", 1)[1]

    def timed_get_user() -> float:
        connection = http.client.HTTPConnection(host, timeout=5)
        started = time.monotonic()
        connection.request("POST", "/get-user", json.dumps({"Token": token}),
                           {"Content-Type": "application/json"})
        reply = connection.getresponse()
        assert reply.status == 200 and json.loads(reply.read())["sfdc_username"] == BOB
        connection.close()
        return time.monotonic() - started

    baseline = sorted(timed_get_user() for _ in range(20))
    outcome: list = []
    drippers = []
    for _ in range(8):
        started = threading.Event()
        drippers.append(threading.Thread(target=drip, args=(server.url, started, outcome)))
        drippers[-1].start()
        assert started.wait(5)
    during = []
    while any(t.is_alive() for t in drippers) and len(during) < 2000:
        during.append(timed_get_user())
    for thread in drippers:
        thread.join(15)
    print(f"\nslow clients: 8 dripping a byte every {DRIP_SECONDS:g} s; others' latency p50 {baseline[10] * 1000:.1f} ms "
          f"before, max {max(during) * 1000:.1f} ms over {len(during)} requests during; "
          f"drippers closed after {sorted(round(s, 1) for _, s in outcome)} s")
    assert len(during) >= 20
    assert max(during) < 0.5
    assert [kind for kind, _ in outcome] == ["closed"] * 8
    assert all(READ_TIMEOUT - 0.5 <= seconds <= READ_TIMEOUT + 1.5 for _, seconds in outcome), outcome
