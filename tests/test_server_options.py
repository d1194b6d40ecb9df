"""The server-bound options: each reaches ServerLimits, bad values stop start-up with a message."""
from __future__ import annotations

import pytest

from sfdcflex.cli import parse_args
from sfdcflex.runtime.http.limits import ServerLimits
from sfdcflex.server_options import server_limits


def test_defaults_and_each_option_reach_the_server_limits():
    assert server_limits(parse_args([])) == ServerLimits()
    limits = server_limits(parse_args(["--max-connections", "50", "--threads", "40",
                                       "--max-body-memory", "8", "--keepalive-timeout", "2.5",
                                       "--read-timeout", "3", "--max-connections-per-client", "7"]))
    assert (limits.max_connections, limits.threads, limits.max_body_memory,
            limits.keepalive_timeout, limits.read_timeout,
            limits.max_connections_per_client) == (50, 40, 8 * 1024 * 1024, 2.5, 3.0, 7)
    assert server_limits(parse_args(["--max-connections-per-client", "0"])).max_connections_per_client == 0


@pytest.mark.parametrize("argv", [["--max-connections", "0"], ["--max-body-memory", "0"],
                                  ["--keepalive-timeout", "0"], ["--threads", "30"],
                                  ["--max-connections-per-client", "-1"],
                                  ["--threads", "5", "--max-concurrency", "10"]])
def test_bad_bounds_stop_start_up(argv):
    with pytest.raises(SystemExit) as stopped:
        server_limits(parse_args(argv))
    assert "sfdcflex:" in str(stopped.value)
