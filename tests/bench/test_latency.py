"""The delaying proxy charges what a distant org costs, and the latency scenario reports it."""
from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time

import pytest

from sfdcflex.bench.drivers import choose_client, drive
from sfdcflex.bench.latency import format_latency, latency_goals, run_latency
from sfdcflex.bench.proxy import DelayProxy
from sfdcflex.clients.pool import Transport
from sfdcflex.clients.transport import call
from sfdcflex.demo.standins import SalesforceStandIn

RTT_MS = 60.0


@pytest.fixture(scope="module")
def sf():
    with SalesforceStandIn() as standin:
        yield standin


def _timed_call(transport, url: str) -> float:
    started = time.perf_counter()
    assert call(transport, "Salesforce", "GET", url).status == 403
    return (time.perf_counter() - started) * 1000.0


def test_the_proxy_charges_set_up_round_trips_then_one_per_request(sf):
    port = int(sf.url.rsplit(":", 1)[1])
    with DelayProxy(port, RTT_MS, tls_charged=True) as proxy:
        url = f"http://127.0.0.1:{proxy.port}/services/oauth2/userinfo"
        transport = Transport()
        first = _timed_call(transport, url)    # TCP + TLS 1.3 + the request: 3 round trips
        second = _timed_call(transport, url)   # kept alive: the request's round trip only
        assert first >= 3 * RTT_MS and second >= RTT_MS
        assert second < 3 * RTT_MS, second     # no set-up charged on a kept-alive connection
        assert proxy.connections == 1


@pytest.mark.slow
def test_the_latency_scenario_compares_both_transports_in_one_run():
    report = run_latency(misses=3, rtts=(20.0,))
    kinds = {(v["transport"], v["scheme"]) for v in report["variants"]}
    assert {("urllib", "http"), ("pooled", "http")} <= kinds
    by_kind = {(v["transport"], v["scheme"]): v for v in report["variants"]}
    old, pooled = by_kind[("urllib", "http")], by_kind[("pooled", "http")]
    assert old["connections_per_100"] >= 100 and pooled["connections_per_100"] == 0
    assert old["miss_p50_ms"] >= 60 and pooled["miss_p50_ms"] >= 20  # 3 round trips vs 1
    if report["https_skipped"] is None:
        assert ("pooled", "https") in kinds
    assert "miss p50" in format_latency(report) and latency_goals(report)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (.ci/run installs it)")
def test_wrk_drives_a_rotation_counts_errors_and_reports_its_cpu(runtime):
    """A rotation of a POST that is answered and one that is 404: both reach the runtime (wrk's
    requests carry `Host`, which wrk.format leaves out when handed a header table: without it
    the runtime answers 400, and every back-to-back row of the benchmark read 0 requests a
    second), the 404s count as errors, and wrk's CPU is reported."""
    assert choose_client("auto") == "wrk"
    requests = [("POST", "/echo", b'{"n": 1}', {"Content-Type": "application/json"}),
                ("POST", "/nope", b'{"n": 1}', {"Content-Type": "application/json"})]
    result, client_cpu = drive("wrk", runtime.url, requests, connections=2, duration=1)
    assert result.ok > 0 and result.errors > 0 and 0 < client_cpu <= 100
    assert abs(result.ok - result.errors) <= 4  # every other request: the rotation, per thread


@pytest.mark.slow  # a second of sleep beside a second of busy child
def test_the_load_clients_cpu_is_its_own_not_other_childrens():
    """What the benchmark charges to wrk is wrk's own CPU (wait4), not that of another child this
    process reaped meanwhile: a package install running beside it once made wrk read "at 351 %")."""
    from sfdcflex.bench.drivers import _run_measured
    burn = "import time\nend = time.process_time() + 0.8\nwhile time.process_time() < end: pass"
    other = threading.Thread(target=subprocess.run, args=([sys.executable, "-c", burn],))
    other.start()   # ends, and is reaped, while the measured child sleeps
    code, out, err, usage = _run_measured([sys.executable, "-c", "import time; time.sleep(1.5); print('done')"],
                                          timeout=10)
    other.join(10)
    assert (code, out, err) == (0, "done\n", "")
    assert usage.ru_utime + usage.ru_stime < 0.4, usage   # an idle interpreter, not 0.8 s more
    assert _run_measured([sys.executable, "-c", "raise SystemExit(3)"], timeout=10)[0] == 3
