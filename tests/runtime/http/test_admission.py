"""Connection caps over real loopback sockets (admission.py): at the server's cap the connection
that has waited longest without a request gives way (an idle kept-alive one first, then one
that has not sent a complete head; never one whose request is being read), one address holds at
most its own cap, and a flood of idle connections from one client leaves others served at once.

Other clients come from other loopback addresses (127.0.0.2, ...), as distinct agents would.
"""
from __future__ import annotations

import resource
import socket
import time
from contextlib import contextmanager

import pytest

from sfdcflex.runtime.http.connection import BODY, BUSY, PARKED
from sfdcflex.runtime.http.limits import ServerLimits
from sfdcflex.runtime.http.server import FunctionsServer
from sfdcflex.runtime.http.sockets import listen
from tests.support.sockets import Replies, closed_by_peer, connect, request, wait_until

HALF_A_BODY = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{"
# A sweep every 50 ms (a quarter of the shortest timeout), so the caps' log line comes quickly.
QUICK_SWEEP = {"linger_seconds": 0.2}


@contextmanager
def one_place_taken(serve):
    """A server with room for one connection (its I/O loop not running: the test turns it), and
    a client it has accepted into that place: yields the server, the sockets to close afterwards
    (that client's first; a test adds those it opens) and the client's connection."""
    server = FunctionsServer(listen(("127.0.0.1", 0)), serve().app, ServerLimits(max_connections=1))
    sockets = [connect(server.server_address)]
    try:
        server._accept()
        (connection,) = server.connections.open_connections.values()
        yield server, sockets, connection
    finally:
        for sock in sockets:
            sock.close()
        server.server_close()


def opened(served, count: int) -> bool:
    return wait_until(lambda: len(served.server.connections.open_connections) == count)


def states(served) -> list[str]:
    return [c.state for c in served.server.connections.open_connections.values()]


def held_by(served, address: str) -> int:
    return sum(1 for c in list(served.server.connections.open_connections.values())
               if c.address[0] == address)


def answered(sock) -> bytes:
    sock.sendall(request("GET", "/hello"))
    return Replies(sock).next()[0]


def still_open(*socks) -> bool:
    """Whether the server leaves every one of `socks` open for 0.05 s, watched at the same time."""
    deadline = time.monotonic() + 0.05
    return not any(closed_by_peer(sock, timeout=max(0.001, deadline - time.monotonic()))
                   for sock in socks)


def test_a_new_agent_is_answered_at_once_under_a_flood_of_idle_connections_from_one_address(serve):
    """1,500 idle connections from one address, past the server's 1,000: the agent's request
    from another address is answered within a second (on main it waited in the backlog until
    idle ones timed out, 15 s). The flooding address holds its cap, no more."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4096:  # both ends of 1,500 connections, in this one process
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))
    served = serve()
    limits = served.server.limits
    assert (limits.max_connections, limits.max_connections_per_client) == (1000, 100)
    flood = []
    try:
        for _ in range(1500):
            flood.append(connect(served.url))
        started = time.monotonic()
        with connect(served.url, timeout=2, source="127.0.0.2") as agent:
            assert answered(agent).startswith(b"HTTP/1.1 200 ")
        assert time.monotonic() - started < 1.0
        assert held_by(served, "127.0.0.1") <= 100
    finally:
        for sock in flood:
            sock.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_at_the_cap_the_idle_kept_alive_connection_gives_way_first_then_the_oldest_silent_one(
        serve, caplog):
    """Four places: two silent connections (the oldest), one kept alive after its answer (parked
    in the workers' epoll), one sending a body. A fifth client closes the kept-alive one, a
    sixth the oldest silent one; the one sending its body is never closed for another and is
    answered; one line in the log says how many were closed."""
    served = serve(server_limits=ServerLimits(max_connections=4, max_connections_per_client=0,
                                              **QUICK_SWEEP))
    silent = [connect(served.url), connect(served.url)]
    assert opened(served, 2)
    kept = connect(served.url)
    assert answered(kept).startswith(b"HTTP/1.1 200 ")
    assert wait_until(lambda: PARKED in states(served))
    sending = connect(served.url)
    sending.sendall(HALF_A_BODY)
    assert wait_until(lambda: BODY in states(served))
    others = []
    try:
        others.append(connect(served.url, source="127.0.0.2"))
        assert answered(others[-1]).startswith(b"HTTP/1.1 200 ")
        assert closed_by_peer(kept) and still_open(silent[0], silent[1])
        others.append(connect(served.url, source="127.0.0.3"))
        assert answered(others[-1]).startswith(b"HTTP/1.1 200 ")
        assert closed_by_peer(silent[0]) and still_open(silent[1])
        sending.sendall(b'"a": 1}   ')
        assert Replies(sending).next()[0].startswith(b"HTTP/1.1 200 ")
        assert wait_until(lambda: sum(int(m.split(": ")[1].split()[0]) for m in caplog.messages
                                      if "closed to admit new ones" in m) == 2)
    finally:
        for sock in silent + [kept, sending] + others:
            sock.close()


def test_an_address_at_its_cap_gives_up_its_own_longest_waiting_connection(serve):
    """Three per address: a fourth connection from 127.0.0.3 closes that address's own
    kept-alive one, a fifth its oldest silent one; another address's connection is never
    touched, though it is older."""
    served = serve(server_limits=ServerLimits(max_connections_per_client=3))
    elsewhere = connect(served.url, source="127.0.0.2")
    mine = [connect(served.url, source="127.0.0.3") for _ in range(2)]
    assert opened(served, 3)
    kept = connect(served.url, source="127.0.0.3")
    assert answered(kept).startswith(b"HTTP/1.1 200 ")
    assert wait_until(lambda: PARKED in states(served))  # (not while its worker waits for more)
    later = []
    try:
        later.append(connect(served.url, source="127.0.0.3"))  # silent, as the two before
        assert closed_by_peer(kept) and still_open(*mine, elsewhere)
        later.append(connect(served.url, source="127.0.0.3"))
        assert closed_by_peer(mine[0]) and still_open(mine[1], elsewhere)
        assert answered(later[-1]).startswith(b"HTTP/1.1 200 ")
        assert held_by(served, "127.0.0.3") == 3
    finally:
        for sock in [elsewhere, kept] + mine + later:
            sock.close()


def test_an_address_whose_connections_are_all_busy_is_refused_429_and_others_are_served(serve):
    served = serve(server_limits=ServerLimits(max_connections_per_client=2))
    busy = [connect(served.url, source="127.0.0.3") for _ in range(2)]
    for sock in busy:
        sock.sendall(HALF_A_BODY)
    assert wait_until(lambda: states(served) == [BODY, BODY])
    with connect(served.url, source="127.0.0.3") as refused:
        head, body = Replies(refused).next()  # answered before it sent anything, then closed
        assert head.startswith(b"HTTP/1.1 429 ") and b"Retry-After: 1" in head
        assert b"more than 2 connections from one address" in body
        assert closed_by_peer(refused)
    with connect(served.url, source="127.0.0.2") as other:
        assert answered(other).startswith(b"HTTP/1.1 200 ")
    assert states(served).count(BODY) == 2 and served.server.admission.refused == 1
    for sock in busy:
        sock.close()


@pytest.mark.parametrize("cap", [0, 3])
def test_without_a_cap_per_address_one_address_may_hold_every_place(serve, cap):
    """0 turns the cap off (behind a proxy every client has the proxy's address)."""
    served = serve(server_limits=ServerLimits(max_connections_per_client=cap))
    held = [connect(served.url) for _ in range(5)]
    try:
        assert opened(served, 5 if cap == 0 else 3)
    finally:
        for sock in held:
            sock.close()


def test_a_connection_whose_request_has_arrived_unread_is_not_closed_for_another(serve):
    """Its request waits in the kernel (the I/O loop is not running here, so nothing reads
    it): it is not idle, so at the cap the new client waits in the backlog instead."""
    with one_place_taken(serve) as (server, sockets, connection):
        sockets[0].sendall(request("GET", "/hello"))
        assert wait_until(lambda: connection.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
        sockets.append(connect(server.server_address))
        server._accept()
        assert list(server.connections.open_connections.values()) == [connection]
        assert not server._accepting and server.admission.evicted == 0


def test_a_new_connection_whose_place_was_taken_meanwhile_is_answered_503(serve, monkeypatch):
    """At the cap, the one connection that could give way is parked, and a worker takes it out
    of the epoll first (its request came): the I/O thread may not close it, so the new client,
    already accepted, is answered 503 and closed, and the parked one is left to its worker."""
    with one_place_taken(serve) as (server, sockets, connection):
        connection.state, connection.fresh = PARKED, False  # as after its first answer
        monkeypatch.setattr(server, "unpark", lambda connection: False)  # a worker took it
        late = connect(server.server_address)
        sockets.append(late)
        server._accept()
        head, body = Replies(late).next()
        assert head.startswith(b"HTTP/1.1 503 ") and b"Retry-After: 1" in head
        assert closed_by_peer(late) and still_open(sockets[0])
        assert list(server.connections.open_connections.values()) == [connection]
        connection.state = BUSY  # the worker's, as it would be: server_close leaves it be
