"""The serving-choices benchmark's own parts: CPU of a process tree from /proc, the WSGI entry."""
from __future__ import annotations

import subprocess
import sys

from sfdcflex.bench.drivers import process_cpu_seconds
from sfdcflex.bench.hosts import HOSTS_APP, format_hosts, tree_cpu_seconds


def test_the_cpu_of_a_process_tree_counts_its_children():
    burn = ("import time\nend = time.process_time() + 0.15\nwhile time.process_time() < end: pass\n"
            "print('burnt', flush=True)\ntime.sleep(30)\n")
    parent = subprocess.Popen([sys.executable, "-c", "import subprocess, sys; "
                               f"child = subprocess.Popen([sys.executable, '-c', {burn!r}]); "
                               "print(child.pid, flush=True); sys.stdin.read(); child.kill()"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        child = int(parent.stdout.readline())
        assert parent.stdout.readline().strip() == b"burnt"  # the child has used 0.15 s of CPU
        assert process_cpu_seconds(parent.pid) < 0.12 <= tree_cpu_seconds(parent.pid)
        assert process_cpu_seconds(child) >= 0.12
    finally:
        parent.communicate(b"", timeout=30)


def test_the_hosts_floor_app_is_a_plain_wsgi_hello(monkeypatch):
    monkeypatch.setenv("BENCH_FLOOR", "1")
    namespace: dict = {}
    exec(compile(HOSTS_APP, "hosts_app.py", "exec"), namespace)
    started = []
    body = namespace["application"]({}, lambda status, headers: started.append((status, headers)))
    assert started[0][0] == "200 OK" and b"".join(body) == b'{"ok":true}'


def test_the_hosts_report_is_a_table_under_100_columns():
    report = {"machine": {"nproc": 2, "python": "3.11.7", "load_average": 1.0}, "client": "wrk",
              "rounds": 3, "duration_s": 2.0, "connections": 16,
              "rows": [{"host": "gunicorn floor", "scenario": "get-contact hit", "rps": 1234.5,
                        "server_us_per_request": 99.0, "client_cpu_percent": 5.0, "errors": 0}]}
    table = format_hosts(report)
    assert "gunicorn floor" in table and "1234" in table and max(map(len, table.splitlines())) <= 100
