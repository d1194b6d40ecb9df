"""Who may open a connection when the server is full, and how many one client address may hold.

Idle connections cost the server a buffer, not a thread, but each takes one of the
`max_connections` places: a client opening more than that and sending nothing would keep every
new client waiting in the listen backlog until the idle ones time out. So, as nginx does with
its reusable connections: at the cap, the connection that has waited longest without a request
is closed to admit the new one, an idle kept-alive one first (HTTP lets either side close an
idle connection, RFC 9112 §9.6, and clients send again on a fresh one), then one that has not
sent a complete head. A connection whose request is being read, answered or refused is never
closed for another. And one address holds at most `max_connections_per_client` (nginx's
`limit_conn`): a client past it gives up its own longest-waiting connection, or, when all of
its connections are busy, the new one is answered 429 and closed.

Everything here runs on the I/O thread; counting is done on accept and close only.
"""
from __future__ import annotations

import collections
import heapq
import socket
from typing import Iterable

from ..errors import HTTPError, ServiceUnavailable, TooManyRequests
from .connection import PARKED, WAITING, Connection, ConnectionPool
from .limits import ServerLimits

# Connections ranked at once when the server is full, as nginx closes up to 32 reusable ones:
# one scan of every connection per batch, not per new client.
RANK_BATCH = 32
Rank = tuple[int, float]


def rank(connection: Connection, limits: ServerLimits) -> Rank | None:
    """How soon a connection gives way: (0, since) for an idle kept-alive one, (1, since) for
    one that has not sent a complete head (nothing yet, or part of one), `since` being when it
    began to wait; None for one that must not be closed (a request being read or answered, or
    a refusal lingering)."""
    state = connection.state
    if state != WAITING and state != PARKED:
        return None
    if connection.buffer:  # part of a head: its deadline is the read timeout from its first byte
        return 1, connection.deadline - limits.read_timeout
    return int(connection.fresh), connection.deadline - limits.keepalive_timeout


def client_of(connection: Connection) -> str | None:
    """The client's address (the peer's IP address; None for a socket without one)."""
    return connection.address[0] if isinstance(connection.address, tuple) else None


class Admission:
    """Makes room for new connections in a full `pool`, and counts each client's connections."""

    def __init__(self, pool: ConnectionPool, limits: ServerLimits) -> None:
        self.pool, self.limits = pool, limits
        self._clients: dict[str, dict[int, Connection]] = {}
        self._ranked: collections.deque = collections.deque()
        self.evicted = 0   # connections closed to admit another, since start
        self.refused = 0   # new connections refused (their client at its cap, all of its busy)

    # --- counting: on accept and close only ---------------------------------------------------

    def opened(self, connection: Connection) -> None:
        client = client_of(connection)
        if client is not None:
            self._clients.setdefault(client, {})[id(connection)] = connection

    def closed(self, connection: Connection) -> None:
        client = client_of(connection)
        held = self._clients.get(client) if client is not None else None
        if held is not None and held.pop(id(connection), None) is not None and not held:
            del self._clients[client]

    # --- a new client's place ---------------------------------------------------------------

    def room_for_one(self) -> bool:
        """Whether a new connection can be admitted now: below the cap, or with a connection
        waiting without a request to close for it (False: leave new clients in the backlog)."""
        if self.pool.has_room():
            return True
        ranked = self._ranked
        for fresh in (False, True):
            if fresh:
                self._rank_all()  # the batch ranked before is used up: rank again, once
                ranked = self._ranked
            while ranked and not self._closable(ranked[0]):
                ranked.popleft()  # given a request, or closed, since it was ranked
            if ranked:
                return True
        return False

    def make_room(self) -> bool:
        """At the cap: close the connection that has waited longest without a request. False
        when none can be closed (every one busy, or taken by a worker meanwhile)."""
        for fresh in (False, True):  # the batch ranked before, then, once, all of them again
            if fresh:
                self._rank_all()
            while self._ranked:
                entry = self._ranked.popleft()
                if self._closable(entry) and self._close(entry[2]):
                    return True
        return False

    def admit(self, client: str) -> bool:
        """Whether a new connection from `client` may open: below its cap, or once its own
        longest-waiting connection has been closed for it."""
        cap = self.limits.max_connections_per_client
        held = self._clients.get(client)
        if not cap or held is None or len(held) < cap:
            return True
        for entry in sorted(_ranks(held.values(), self.limits)):
            if self._closable(entry) and self._close(entry[2]):
                return True
        self.refused += 1
        return False

    def refusal(self) -> HTTPError:
        """The answer to a connection refused at its client's cap."""
        return TooManyRequests(f"more than {self.limits.max_connections_per_client} connections "
                               f"from one address; retry shortly", headers={"Retry-After": "1"})

    @staticmethod
    def no_room() -> HTTPError:
        """The answer to a connection accepted at the cap when what could be closed for it was
        taken meanwhile (a worker woke for each)."""
        return ServiceUnavailable("the server holds too many connections; retry shortly",
                                  headers={"Retry-After": "1"})

    def _closable(self, entry: tuple) -> bool:
        """Whether a ranked connection still waits as it did when ranked, with no request come."""
        ranked, _, connection = entry
        return (id(connection) in self.pool.open_connections and rank(connection, self.limits) == ranked
                and not _request_arrived(connection))

    def _rank_all(self) -> None:
        self._ranked = collections.deque(heapq.nsmallest(
            RANK_BATCH, _ranks(self.pool.open_connections.values(), self.limits)))

    def _close(self, connection: Connection) -> bool:
        """Close `connection` for a new one, if it is still open and the I/O thread's to close
        (a parked one only once it is out of the workers' epoll)."""
        if not self.pool.take_back(connection):
            return False
        self.pool.close(connection)
        self.evicted += 1
        return True


def _request_arrived(connection: Connection) -> bool:
    """Whether bytes wait in the kernel for it (its request came, not yet read): not idle."""
    try:
        return bool(connection.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
    except OSError:  # BlockingIOError: nothing came; or it was reset: either way, idle
        return False


def _ranks(connections: Iterable[Connection], limits: ServerLimits) -> Iterable[tuple]:
    for connection in connections:
        ranked = rank(connection, limits)
        if ranked is not None:
            yield ranked, id(connection), connection
