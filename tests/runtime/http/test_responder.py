"""Serving a connection on a worker: the request through the app, the reply in one send within
the send timeout, memory for a spooled body, and the keep-alive fast path."""
from __future__ import annotations

import json
import socket
import time

import pytest

from sfdcflex.runtime.app import error_reply
from sfdcflex.runtime.http.body import Body, BodyBudget
from sfdcflex.runtime.http.connection import Connection, ConnectionPool
from sfdcflex.runtime.http.http11 import parse_head
from sfdcflex.runtime.http.limits import ServerLimits
from sfdcflex.runtime.http.responder import Responder
from sfdcflex.runtime.http.sockets import prepare_socket
from sfdcflex.runtime.response import Reply
from tests.support.sockets import Replies, connect, read_all, request


class Recorded:
    """The app's dispatch and the loop's give_back, as a responder sees them."""

    def __init__(self, reply: Reply) -> None:
        self.reply, self.requests, self.given_back = reply, [], []

    def dispatch(self, request, answer_early) -> Reply:
        self.requests.append(request)
        return self.reply

    def give_back(self, connection: Connection, keep: bool) -> None:
        self.given_back.append(keep)


def responder_for(recorded: Recorded, **limits) -> Responder:
    return Responder(ServerLimits(**limits), dispatch=recorded.dispatch,
                     refusal=lambda exc, headers: error_reply(exc), date=lambda: "DATE",
                     take_complete=lambda connection: False, give_back=recorded.give_back,
                     draining=lambda: False, backlogged=lambda: False)


@pytest.fixture
def pair():
    client, ours = socket.socketpair()
    client.settimeout(2.0)
    prepare_socket(ours, ServerLimits())  # as the connection pool makes an accepted one
    yield client, Connection(ours, ("127.0.0.1", 40000))
    client.close()
    ours.close()  # (again, for a test that closed it: no error)


def test_a_spooled_body_that_gets_no_memory_in_time_is_503_and_nothing_is_held(pair):
    client, connection = pair
    budget = BodyBudget(16 * 1024)
    assert budget.try_reserve(5 * 3000)  # five bodies in memory, held while their functions run
    big = json.dumps({"pad": "y" * 10_000}).encode()  # spooled; 10 KB more does not fit in 16 KiB
    connection.head = parse_head(request("POST", "/echo", length=len(big)))
    connection.body = Body.arriving(budget, len(big), big, spool_threshold=4096)
    recorded = Recorded(Reply(200))
    started = time.monotonic()
    assert responder_for(recorded, read_timeout=0.1).answer(connection) is False
    assert 0.1 <= time.monotonic() - started < 0.5  # it waited its read timeout, no longer
    head, body = Replies(client).next()
    assert head.startswith(b"HTTP/1.1 503 ") and b"Retry-After: 1\r\n" in head
    assert body == (b'{"error":"server_busy","message":'
                    b'"the server holds too many request bodies; retry shortly"}')
    assert not recorded.requests and budget.held == 5 * 3000
    budget.release(5 * 3000)  # once the others are done, the same body is served
    connection.head = parse_head(request("POST", "/echo", length=len(big)))
    connection.body = Body.arriving(budget, len(big), big, spool_threshold=4096)
    assert responder_for(recorded).answer(connection) is True
    assert recorded.requests[0].body == big and budget.held == 0


def test_a_client_that_does_not_read_its_answer_is_dropped_after_the_send_timeout(pair):
    client, connection = pair
    connection.head = parse_head(request("GET", "/hello"))
    connection.body = Body.whole(BodyBudget(100), b"")
    recorded = Recorded(Reply(200, [], b"z" * 6_000_000))  # more than the socket buffers hold
    prepare_socket(connection.sock, ServerLimits(send_timeout=0.1))
    started = time.monotonic()
    assert responder_for(recorded, send_timeout=0.1).answer(connection) is False
    assert 0.1 <= time.monotonic() - started < 0.5  # not reading: the send gives up
    connection.sock.close()  # what the I/O thread does with a connection not kept
    received = read_all(client)
    assert received.startswith(b"HTTP/1.1 200 ") and len(received) < 6_000_000  # cut short


def test_the_worker_gives_the_connection_back_kept_or_not(pair):
    client, connection = pair
    recorded = Recorded(Reply(200, [], b"ok"))
    for text, kept in ((b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n", True), (b"GET /a HTTP/1.0\r\n\r\n", False)):
        connection.head, connection.body = parse_head(text), Body.whole(BodyBudget(100), b"")
        responder_for(recorded).serve(connection)
        assert Replies(client).next()[1] == b"ok"
    assert recorded.given_back == [True, False]


# --- the keep-alive fast path, over loopback ------------------------------------------------------

def test_pipelined_requests_are_taken_by_the_worker_that_answered_the_first(runtime):
    taken, real = [], runtime.server.responder.take_complete

    def spy(connection):
        taken.append(real(connection))
        return taken[-1]

    runtime.server.responder.take_complete = spy
    body = b'{"a": "' + b"x" * 1000 + b'"}'
    with connect(runtime.url) as sock:
        sock.sendall(request("GET", "/hello") + b"\r\n"
                     + request("POST", "/echo", body, content_type="application/json"))
        replies = Replies(sock)
        first, (second, answer) = replies.next(), replies.next()
    assert first[0].startswith(b"HTTP/1.1 200") and second.startswith(b"HTTP/1.1 200")
    assert json.loads(answer)["event"]["a"] == "x" * 1000
    assert True in taken  # served by the worker's fast path, not handed back


@pytest.mark.parametrize("pause", [0.0, 0.05])
def test_keep_alive_request_split_anywhere_is_served_whole(runtime, pause):
    # A worker keeps a keep-alive connection for ~10 ms: a request split across that moment
    # goes back to the I/O thread half read and must still be answered exactly once.
    body = b'{"n": 1}'
    whole = request("POST", "/echo", body, content_type="application/json")
    with connect(runtime.url) as sock:
        replies = Replies(sock)
        sock.sendall(request("GET", "/hello"))
        assert replies.next()[0].startswith(b"HTTP/1.1 200 ")
        for split in (10, len(whole) - len(body), len(whole) - 2):
            sock.sendall(whole[:split])
            time.sleep(pause)  # the client's own pause is what is tested
            sock.sendall(whole[split:])
            head, answer = replies.next()
            assert head.startswith(b"HTTP/1.1 200 ") and b'"n":1' in answer


class CountingSocket:
    """A socket whose every method the responder calls is named in `calls`."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.calls = sock, []

    def __getattr__(self, name: str):
        self.calls.append(name)
        return getattr(self.sock, name)


def test_the_keep_alive_wait_is_the_read_itself_no_poll(pair):
    client, connection = pair
    pool = ConnectionPool(None, ServerLimits(), head_refusal=lambda method, target, length: None,
                          refusal=lambda exc, headers: error_reply(exc), date=lambda: "DATE")
    recorded = Recorded(Reply(200, [], b"ok"))
    responder = Responder(ServerLimits(), dispatch=recorded.dispatch,
                          refusal=lambda exc, headers: error_reply(exc), date=lambda: "DATE",
                          take_complete=pool.take_complete, give_back=recorded.give_back,
                          draining=lambda: False, backlogged=lambda: False)
    connection.head, connection.body = parse_head(request("GET", "/a")), Body.whole(BodyBudget(100), b"")
    client.sendall(request("GET", "/b"))           # the next request, already on its way
    connection.sock = counting = CountingSocket(connection.sock)
    responder.serve(connection)                    # answers both, then waits KEEP_WAIT for a third
    assert [r.target for r in recorded.requests] == ["/a", "/b"] and recorded.given_back == [True]
    assert counting.calls == ["send", "recv_into", "send", "recv_into"]


def test_a_client_that_paused_is_not_waited_for_after_its_next_answer(pair):
    client, connection = pair
    recorded = Recorded(Reply(200, [], b"ok"))
    connection.head, connection.body = parse_head(request("GET", "/a")), Body.whole(BodyBudget(100), b"")
    connection.sock = counting = CountingSocket(connection.sock)
    responder_for(recorded).serve(connection)      # nothing follows within KEEP_WAIT
    assert counting.calls == ["send", "recv_into"] and connection.quick is None   # waited in vain
    connection.head, connection.body = parse_head(request("GET", "/b")), Body.whole(BodyBudget(100), b"")
    counting.calls.clear()
    responder_for(recorded).serve(connection)      # its next answer: straight back to the loop
    assert counting.calls == ["send"] and recorded.given_back == [True, True]


def test_a_client_waited_for_in_vain_is_not_waited_for_again_when_it_asks_soon_after(pair):
    """A client asking every 15 ms: the worker's wait for it runs out (10 ms), and the
    connection is handed back only then, so its next request comes 5 ms after the hand-back but
    15 ms after the answer: not quick. Counted from the hand-back it would be, and every answer
    would cost another 10 ms wait in vain."""
    client, connection = pair
    recorded = Recorded(Reply(200, [], b"ok"))
    responder, _ = parked_responder(recorded)
    connection.head, connection.body = parse_head(request("GET", "/a")), Body.whole(BodyBudget(100), b"")
    connection.sock = counting = CountingSocket(connection.sock)
    responder.serve(connection)                    # answers, then waits KEEP_WAIT in vain
    assert counting.calls == ["send", "recv_into"] and connection.quick is None
    connection.deadline = time.monotonic() + ServerLimits().keepalive_timeout   # parked just now
    client.sendall(request("GET", "/b"))
    counting.calls.clear()
    responder.resume(connection)
    assert counting.calls == ["recv_into", "send"] and connection.quick is False   # no wait
    assert [r.target for r in recorded.requests] == ["/a", "/b"]
    client.sendall(request("GET", "/c"))           # this one right after its answer: quick again,
    counting.calls.clear()                         # so waited for after its answer
    connection.deadline = time.monotonic() + ServerLimits().keepalive_timeout
    responder.resume(connection)
    assert counting.calls == ["recv_into", "send", "recv_into"]


# --- a parked connection's next request, on the worker woken for it ---------------------------

def parked_responder(recorded: Recorded) -> tuple[Responder, ConnectionPool]:
    pool = ConnectionPool(None, ServerLimits(), head_refusal=lambda method, target, length: None,
                          refusal=lambda exc, headers: error_reply(exc), date=lambda: "DATE")
    responder = Responder(ServerLimits(), dispatch=recorded.dispatch,
                          refusal=lambda exc, headers: error_reply(exc), date=lambda: "DATE",
                          take_complete=pool.take_complete, give_back=recorded.give_back,
                          draining=lambda: False, backlogged=lambda: False)
    return responder, pool


def test_a_woken_worker_answers_the_parked_connection_request_itself(pair):
    client, connection = pair
    recorded = Recorded(Reply(200, [], b"ok"))
    responder, _ = parked_responder(recorded)
    connection.deadline = time.monotonic() - 1.0 + ServerLimits().keepalive_timeout  # parked 1 s ago
    client.sendall(request("GET", "/next"))
    connection.sock = counting = CountingSocket(connection.sock)
    responder.resume(connection)
    assert [r.target for r in recorded.requests] == ["/next"] and recorded.given_back == [True]
    assert client.recv(1000).startswith(b"HTTP/1.1 200 ")
    # It came a second after the last answer: an agent's panel, not waited for after this one.
    assert counting.calls == ["recv_into", "send"] and connection.quick is False


def test_a_wake_up_with_nothing_to_read_parks_the_connection_again_at_once(pair):
    """A stale event (meant for a closed descriptor whose number was reused) must neither wait
    on the socket nor close a connection that did nothing wrong."""
    client, connection = pair
    recorded = Recorded(Reply(200, [], b"ok"))
    responder, _ = parked_responder(recorded)
    started = time.monotonic()
    responder.resume(connection)
    assert time.monotonic() - started < 0.005  # no KEEP_WAIT: MSG_DONTWAIT
    assert recorded.requests == [] and recorded.given_back == [True]


def test_a_parked_connection_the_client_closed_is_given_back_to_close(pair):
    client, connection = pair
    recorded = Recorded(Reply(200, [], b"ok"))
    responder, _ = parked_responder(recorded)
    client.close()
    responder.resume(connection)
    assert recorded.requests == [] and recorded.given_back == [False]


def test_part_of_a_request_goes_to_the_io_thread_with_the_read_deadline(pair):
    client, connection = pair
    recorded = Recorded(Reply(200, [], b"ok"))
    responder, _ = parked_responder(recorded)
    whole = request("GET", "/next")
    client.sendall(whole[:10])
    before = time.monotonic()
    responder.resume(connection)
    assert recorded.requests == [] and recorded.given_back == [True]
    assert bytes(connection.buffer) == whole[:10]  # kept for the I/O thread to read on from
    assert connection.deadline >= before + ServerLimits().read_timeout
