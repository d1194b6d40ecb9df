"""The latency scenario: cache misses against stand-ins made 20 ms and 80 ms away.

A `DelayProxy` sits in front of each stand-in (Salesforce, IAM, Sync). Each variant builds the
real services (Flex check, token keeper, lookup, Salesforce client) with one transport, links
the agent, warms up with one miss (the IAM check is then cached, as in production), and then
times sequential misses, each for a number no lookup has asked for. Reported per variant:
miss p50, the connections the proxies accepted per 100 misses, and the calling thread's CPU
per miss. Over HTTPS (a self-signed certificate made at run time and trusted through the
transport's CA file) the handshake passes through the proxy; over plain HTTP the proxy charges
TLS 1.3's round trip itself. Variants: "urllib" (a new connection and TLS context per call, the
old transport) and "pooled" (the keep-alive pool).
"""
from __future__ import annotations

import statistics
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from ..clients.pool import Transport
from ..config import load_config
from ..phone import parse_phone
from ..runtime.timing import ServerTiming
from ..assembly import build_services
from .proxy import DelayProxy
from .servers import AGENT, FLEX_URL, STATE_SECRET, contact_phone
from .urllib_transport import UrllibTransport

RTTS_MS = (20.0, 80.0)
MISSES = 30
GOAL_SLACK_MS = 5.0
GOAL_CONNECTIONS_PER_100 = 2.0
GOAL_TLS_CPU_MS = 1.0


def _standins(misses: int, tls: tuple[Path, Path] | None, stack: ExitStack) -> dict:
    from ..demo.standins import IamStandIn, SalesforceStandIn, SyncStandIn
    sf, iam, sync = SalesforceStandIn(), IamStandIn(), SyncStandIn()
    for standin in (sf, iam, sync):
        standin.start(tls=tls)
        stack.callback(standin.stop)
    iam.add_agent(AGENT, "Bench Agent")
    sf.add_user(AGENT, "Bench Agent")
    account = sf.add_account("Analytical Engines", type="Customer - Direct")
    for index in range(misses + 1):
        sf.add_contact(f"Caller Number{index}", account_id=account, phone=contact_phone(index))
    return {"salesforce": sf, "iam": iam, "sync": sync}


def _variant(standins: dict, rtt_ms: float, kind: str, ca_file: str | None, misses: int,
             folder: Path) -> dict:
    scheme, host = ("https", "localhost") if ca_file else ("http", "127.0.0.1")
    with ExitStack() as stack:
        proxies = {name: stack.enter_context(DelayProxy(int(s.url.rsplit(":", 1)[1]), rtt_ms,
                                                        tls_charged=ca_file is None))
                   for name, s in standins.items()}
        sf, iam, sync = standins["salesforce"], standins["iam"], standins["sync"]
        url = {name: f"{scheme}://{host}:{proxy.port}" for name, proxy in proxies.items()}
        values = {"ACCOUNT_SID": iam.account_sid, "AUTH_TOKEN": iam.auth_token,
                  "SFDC_INSTANCE_URL": url["salesforce"], "SFDC_ORG_ID": sf.org_id,
                  "SFDC_CLIENT_ID": sf.client_id, "SFDC_CLIENT_SECRET": sf.client_secret,
                  "FLEX_INSTANCE_URL": FLEX_URL, "TWILIO_IAM_URL": url["iam"],
                  "TWILIO_SYNC_URL": url["sync"], "SYNC_SERVICE_SID": sync.service_sid,
                  "TOKEN_STORE": "json", "STATE_SECRET": STATE_SECRET, "CACHE_SIZE": "100",
                  "TOKEN_STORE_PATH": str(folder / f"{kind}-{rtt_ms:g}-{scheme}" / "tokens.json")}
        transport = UrllibTransport(ca_file) if kind == "urllib" else Transport(ca_file=ca_file)
        services = build_services(load_config(values), public_url="http://127.0.0.1:9",
                                  transport=transport)
        tokens = sf.issue_tokens(AGENT)
        services.keeper.link(AGENT, tokens["access_token"], tokens["refresh_token"])
        event = {"Token": iam.issue_token(AGENT)}

        def miss(index: int) -> None:
            timing = ServerTiming()
            agent = services.identify(event, timing)
            card = services.lookup.contact(agent.identity, parse_phone(contact_phone(index), "US"), timing)
            if not card.get("cust_id"):
                raise RuntimeError("the latency scenario's lookup found no contact")

        miss(misses)  # warm-up: the IAM check is cached from here on, as in production
        opened = sum(p.connections for p in proxies.values())
        wall, cpu = [], []
        for index in range(misses):
            started, started_cpu = time.perf_counter(), time.thread_time()
            miss(index)
            wall.append((time.perf_counter() - started) * 1000.0)
            cpu.append((time.thread_time() - started_cpu) * 1000.0)
        opened = sum(p.connections for p in proxies.values()) - opened
    return {"rtt_ms": rtt_ms, "transport": kind, "scheme": scheme, "misses": misses,
            "miss_p50_ms": round(statistics.median(wall), 1),
            "connections_per_100": round(100.0 * opened / misses, 1),
            "cpu_per_miss_ms": round(statistics.median(cpu), 2)}


def run_latency(misses: int = MISSES, rtts: tuple[float, ...] = RTTS_MS) -> dict:
    """Every variant (rtt x transport x scheme); HTTPS is skipped, with the reason, without openssl."""
    from ..demo.standins.tls import make_self_signed, openssl_missing_reason
    results, skipped = [], None
    with tempfile.TemporaryDirectory(prefix="sfdcflex-latency-") as temp:
        folder = Path(temp)
        schemes: list[tuple[Path, Path] | None] = [None]
        skipped = openssl_missing_reason()
        if skipped is None:
            schemes.append(make_self_signed(folder))
        for tls in schemes:
            with ExitStack() as stack:
                standins = _standins(misses, tls, stack)
                for rtt_ms in rtts:
                    for kind in ("urllib", "pooled"):
                        results.append(_variant(standins, rtt_ms, kind, str(tls[0]) if tls else None,
                                                misses, folder))
    return {"variants": results, "https_skipped": skipped}


def latency_goals(report: dict) -> list[dict]:
    """The issue's goals: miss p50 <= 1 RTT + 5 ms, <= 2 connections per 100 misses, TLS CPU <= 1 ms."""
    pooled = {(v["scheme"], v["rtt_ms"]): v for v in report["variants"] if v["transport"] == "pooled"}
    goals = []
    for (scheme, rtt), variant in sorted(pooled.items()):
        goals.append(_goal(f"miss p50 at {rtt:g} ms RTT ({scheme})", variant["miss_p50_ms"],
                           rtt + GOAL_SLACK_MS, "ms"))
        goals.append(_goal(f"connections per 100 misses at {rtt:g} ms ({scheme})",
                           variant["connections_per_100"], GOAL_CONNECTIONS_PER_100, ""))
    for rtt in sorted({rtt for _, rtt in pooled}):
        if ("https", rtt) in pooled and ("http", rtt) in pooled:
            tls_cpu = pooled[("https", rtt)]["cpu_per_miss_ms"] - pooled[("http", rtt)]["cpu_per_miss_ms"]
            goals.append(_goal(f"TLS CPU per miss, kept-alive, at {rtt:g} ms", round(tls_cpu, 2),
                               GOAL_TLS_CPU_MS, "ms"))
    return goals


def _goal(text: str, value: float, limit: float, unit: str) -> dict:
    return {"goal": f"{text} <= {limit:g}{unit}", "value": value, "limit": limit, "unit": unit,
            "met": value <= limit}


def format_latency(report: dict) -> str:
    lines = ["Latency: sequential cache misses through a delaying proxy (calling thread's CPU)",
             f"{'RTT':>6} {'scheme':<6} {'transport':<9}{'miss p50 ms':>12}{'conns/100':>11}{'CPU ms':>8}"]
    for v in report["variants"]:
        lines.append(f"{v['rtt_ms']:>6g} {v['scheme']:<6} {v['transport']:<9}{v['miss_p50_ms']:>12.1f}"
                     f"{v['connections_per_100']:>11.1f}{v['cpu_per_miss_ms']:>8.2f}")
    if report.get("https_skipped"):
        lines.append(f"HTTPS variants skipped: {report['https_skipped']}")
    return "\n".join(lines)
