"""Serve an App over HTTP/1.1: one I/O thread on `selectors`, a pool of worker threads.

The design follows waitress and gunicorn's gthread worker. The I/O thread owns the listening
socket and every connection that is idle or still sending its request; it reads heads and
bodies into per-connection buffers (bodies above a threshold, or past the memory budget, go
to a temporary file) and hands complete requests to the workers. A worker runs the function,
writes the reply in one send and gives a keep-alive connection back. So idle and slow
clients cost a buffer, not a thread, and every resource has a configured bound:
connections (at the cap the one idle longest gives way; when all are busy the server stops
accepting until one closes), connections per client address, worker threads, request
body bytes in memory, the time to send a request and the keep-alive idle time.
"""
from __future__ import annotations

import collections
import errno
import logging
import selectors
import socket
import threading
import time
from functools import partial
from typing import Callable

from ..app import App
from .admission import Admission
from .connection import Connection, ConnectionPool
from .http11 import HttpDate, encode_reply
from .limits import ServerLimits
from .responder import Responder
from .sockets import prepare_socket, send_quietly, socket_options, url_of
from .worker import make_workers

log = logging.getLogger("sfdcflex")

# accept() fails with these when the process or system is out of descriptors or buffers;
# retrying at once would fail again in a busy loop, so accepting pauses instead.
_OUT_OF_RESOURCES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
_LIVE_SELECTORS = tuple(getattr(selectors, name) for name in ("EpollSelector", "KqueueSelector")
                        if hasattr(selectors, name))
ACCEPT_PAUSE = 0.5
# The loop wakes at least this often to close connections past their deadlines (idle, slow to
# send, lingering), and more often when a configured timeout is short: a deadline is enforced
# within a quarter of its timeout. An idle server's loop then wakes once a second, not ten times
# (each wake-up is CPU an agent's panel pays for, a request every few seconds).
SWEEP_MAX = 1.0
SWEEP_MIN = 0.01
class FunctionsServer:
    """The functions runtime's HTTP/1.1 server on a listening socket; `serve_forever` runs the
    I/O loop. It implements the connection pool's `Loop`."""

    def __init__(self, sock: socket.socket, app: App, limits: ServerLimits) -> None:
        self._app, self.limits = app, limits
        self.socket = sock
        # Set once on the listening socket: Linux and the BSDs copy them to every accepted one,
        # which then costs no system call of its own (checked on the first one: `_inherits`).
        prepare_socket(sock, limits)
        self.socket.setblocking(False)
        self._inherits: bool | None = None
        self.server_address = self.socket.getsockname()
        self.url = url_of(sock)
        date = HttpDate().now
        self._selector = selectors.DefaultSelector()
        # select() and poll() see a descriptor registered by another thread only at their next
        # call (up to a sweep interval later); epoll and kqueue at once.
        self._live_registration = isinstance(self._selector, _LIVE_SELECTORS)
        self._wake_in, self._wake_out = socket.socketpair()
        self._wake_in.setblocking(False)
        self._wake_out.setblocking(False)
        self._returned: collections.deque = collections.deque()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._stopped = threading.Event()
        self._stopped.set()
        self._loop_thread: int | None = None
        self._accepting = False
        self._accept_paused_until = 0.0
        self._drain_until: float | None = None
        self._drained = threading.Event()
        self._nothing_cut = True
        self._closed = False
        self.connections = ConnectionPool(self, limits, head_refusal=app.head_refusal,
                                          refusal=app.refusal, date=date)
        self.admission = Admission(self.connections, limits)
        self._reported = (0, 0)
        self.workers = make_workers(limits.threads)
        self.responder = Responder(limits, dispatch=app.dispatch, refusal=app.refusal, date=date,
                                   take_complete=self.connections.take_complete,
                                   give_back=self.give_back, draining=lambda: self.draining,
                                   backlogged=self.workers.backlogged)

    @property
    def app(self) -> App:
        """The app it serves, fixed at construction: its parts hold the app's methods, so a
        new app needs a new server (a read-only property, so that assigning one fails loudly)."""
        return self._app

    @property
    def draining(self) -> bool:
        return self._drain_until is not None

    # --- the I/O loop --------------------------------------------------------------------

    def serve_forever(self, poll_interval: float | None = None) -> None:
        """Run the I/O loop until `shutdown`, `close_gracefully` or `server_close`.

        `poll_interval` caps how long the loop sleeps (as in socketserver); by default it wakes
        only as often as its deadlines need (`sweep_interval`): a stop or a worker's hand-back
        wakes it at once anyway."""
        interval = sweep_interval(self.limits)
        if poll_interval is not None:
            interval = max(SWEEP_MIN, min(poll_interval, interval))
        with self._lock:
            if self._closed:
                return
            self._stopped.clear()
            self._loop_thread = threading.get_ident()
        next_sweep = 0.0
        try:  # from here on, whatever fails still ends in `_stopped`: shutdown() never hangs
            self._selector.register(self._wake_in, selectors.EVENT_READ, None)
            self._accepting = False
            self._update_accepting(time.monotonic())
            while not self._stop.is_set():
                for key, _ in self._selector.select(self._sleep(interval, next_sweep)):
                    if key.fileobj is self._wake_in:
                        self._drain_wakeups()
                    elif key.fileobj is self.socket:
                        self._accept()
                    else:
                        self._guarded(self.connections.readable, key.data)
                self._take_returned()
                now = time.monotonic()
                if now >= next_sweep:
                    next_sweep = now + interval
                    self.connections.sweep(now)
                    self._update_accepting(now)
                    self._report_admission()
                elif self._accept_paused_until and now >= self._accept_paused_until:
                    self._update_accepting(now)
                if self._drain_until is not None and self._drain_step(now):
                    break
        finally:
            with self._lock:
                self._loop_thread = None
            while self._returned:  # given back as the loop ended: nobody will read them now
                self.connections.close(self._returned.popleft()[0])
            self._stop.clear()
            for key in list(self._selector.get_map().values()):
                self._selector.unregister(key.fileobj)
            self._stopped.set()

    def _sleep(self, interval: float, next_sweep: float) -> float:
        """How long the loop may wait for events: until the next sweep, and during a pause in
        accepting or a drain no longer than the shortest step (those end on the clock)."""
        wake_at = next_sweep
        if self._accept_paused_until:
            wake_at = min(wake_at, self._accept_paused_until)
        if self._drain_until is not None:
            interval = SWEEP_MIN * 10
        return max(0.0, min(interval, wake_at - time.monotonic()))

    def _guarded(self, step: Callable[[Connection], None], connection: Connection) -> None:
        """Run one step of a connection; a fault there must not stop the server for all."""
        try:
            step(connection)
        except Exception:
            log.exception("serving a connection from %s failed; closing it",
                          connection.address[0] if isinstance(connection.address, tuple) else "?")
            self.connections.close(connection)

    def shutdown(self) -> None:
        """Stop the loop (from another thread) and wait until it has stopped."""
        self._stop.set()
        self.wake()
        self._stopped.wait()

    def wake(self) -> None:
        """Interrupt the I/O thread's select (from a worker or another thread)."""
        try:
            self._wake_out.send(b"x")
        except OSError:
            pass  # the pipe is full, so the loop wakes anyway; or the server is closed

    def _drain_wakeups(self) -> None:
        try:
            while self._wake_in.recv(4096):
                pass
        except OSError:
            pass  # BlockingIOError: nothing more to read

    def give_back(self, connection: Connection, keep: bool) -> None:
        """A worker is done with `connection`: its next request is read by the worker woken for
        it, or by the I/O thread, or it closes.

        A kept-alive connection with nothing buffered is parked in the workers' epoll where
        there is one (Linux): the worker the kernel wakes for its next request reads and answers
        it, and the I/O thread never sees it. Elsewhere the worker puts it back in the I/O
        thread's selector itself where the selector takes a registration while the I/O thread
        waits in it (kqueue): no wake-up and no turn of the loop. Under the lock, so that the
        loop cannot be ending (and closing everything) meanwhile."""
        with self._lock:
            if self._loop_thread is not None:
                if keep and not self.draining and not connection.buffer:
                    if self.workers.can_park:
                        if self.connections.park(connection):
                            return
                    elif self._live_registration and self.connections.rewatch(connection):
                        return
                self._returned.append((connection, keep))
                connection = None
        if connection is None:
            self.wake()
        else:
            self.connections.close(connection)  # the loop has ended: nobody else will

    def _take_returned(self) -> None:
        while self._returned:
            connection, keep = self._returned.popleft()
            if keep and not self.draining:
                self._guarded(self.connections.resume, connection)
            else:
                self.connections.close(connection)

    # --- accepting -----------------------------------------------------------------------

    def _accept(self) -> None:
        for _ in range(64):  # a batch per wake-up, so a burst does not starve the others
            if not self.admission.room_for_one():
                break  # every connection is busy: new clients wait in the backlog
            try:
                sock, address = self.socket.accept()
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno in _OUT_OF_RESOURCES:
                    log.warning("cannot accept a connection (%s); pausing accepts for %.1f s",
                                exc.strerror, ACCEPT_PAUSE)
                    self._accept_paused_until = time.monotonic() + ACCEPT_PAUSE
                    break
                if exc.errno in (errno.ECONNABORTED, errno.EPROTO, errno.EPERM):
                    continue  # that client gave up during the handshake
                log.error("accept failed (%s); pausing accepts for %.1f s", exc, ACCEPT_PAUSE)
                self._accept_paused_until = time.monotonic() + ACCEPT_PAUSE
                break
            if not self._admitted(sock, address):
                continue
            if self._inherits is None:
                self._inherits = socket_options(sock) == socket_options(self.socket)
            connection = self.connections.open(sock, address, prepared=self._inherits)
            self.admission.opened(connection)
            self._guarded(self.connections.resume, connection)
        self._update_accepting(time.monotonic())

    def _admitted(self, sock: socket.socket, address: tuple | str) -> bool:
        """Make room for a new connection: its client's own longest-waiting one closed when
        the client is at its cap, else, at the server's cap, the longest-waiting of all
        (admission.py). A connection with no room is answered and closed."""
        admission = self.admission
        refused = None
        if isinstance(address, tuple) and not admission.admit(address[0]):
            refused = admission.refusal()
        elif not self.connections.has_room() and not admission.make_room():
            refused = admission.no_room()
        if refused is None:
            return True
        # Before its request is read: the client reads the answer when it reads its reply. If
        # it left, or its buffer is full, closing tells it enough.
        send_quietly(sock, encode_reply(self._app.refusal(refused, None), self.connections.date(),
                                        keep_alive=False))
        sock.close()
        return False

    def _report_admission(self) -> None:
        """One line a sweep at most, however many connections a flood makes the caps close."""
        counts = (self.admission.evicted, self.admission.refused)
        if counts != self._reported:
            log.warning("connection caps: %d connection(s) closed to admit new ones, %d refused "
                        "(their address at its cap of %d, every one busy) since the last report",
                        counts[0] - self._reported[0], counts[1] - self._reported[1],
                        self.limits.max_connections_per_client)
            self._reported = counts

    def _update_accepting(self, now: float) -> None:
        """Listen only while there is room (or a connection that can give way) and no pause:
        when every connection is busy, the kernel's backlog holds the next clients, and a
        listening socket that is never accepted from would make select() return at once,
        again and again."""
        if self._accept_paused_until and now >= self._accept_paused_until:
            self._accept_paused_until = 0.0  # the pause is over
        wanted = (self.admission.room_for_one() and now >= self._accept_paused_until
                  and not self.draining and not self._closed)
        if wanted != self._accepting:
            if wanted:
                self._selector.register(self.socket, selectors.EVENT_READ, None)
            else:
                self._selector.unregister(self.socket)
            self._accepting = wanted

    def closed(self, connection: Connection) -> None:
        """The connection pool calls this when a connection closes: there may be room again."""
        self.admission.closed(connection)
        if self._loop_thread == threading.get_ident():
            self._update_accepting(time.monotonic())

    # --- stopping ------------------------------------------------------------------------

    def close_gracefully(self, timeout: float) -> bool:
        """Stop accepting, close idle connections, let requests in flight finish for up to
        `timeout` seconds, then close everything. True when no request was cut off.

        Call it from another thread than the one running `serve_forever` (from a signal
        handler, start a thread for it): that thread has to go on running the loop.
        """
        if self._loop_thread == threading.get_ident():
            raise RuntimeError("close_gracefully must not run on the server's own I/O thread")
        self._nothing_cut = True
        self._drained.clear()
        if self._loop_thread is None:  # not serving: nothing is in flight
            self.server_close()
            return True
        self._drain_until = time.monotonic() + max(0.0, timeout)
        self.wake()
        self._drained.wait(timeout + 5.0)
        self._stopped.wait(5.0)
        self.server_close()
        return self._nothing_cut

    def _drain_step(self, now: float) -> bool:
        """One turn of a graceful close in the I/O loop; True when the loop should end."""
        self._update_accepting(now)
        if self.socket.fileno() >= 0:
            self.socket.close()  # refused now, new clients try another instance at once
        self.connections.close_idle()
        busy = self.connections.in_flight()
        if busy and now < self._drain_until:
            return False
        if busy:
            log.warning("graceful close: %d request(s) still in flight after the timeout; closing",
                        busy)
            self._nothing_cut = False
        self.connections.close_all()
        self._drained.set()
        return True

    def server_close(self) -> None:
        """Close the listening socket, every connection and the worker pool."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            running = self._loop_thread
        if running is not None and running != threading.get_ident():
            self.shutdown()
        self.connections.close_all()
        self.workers.stop()
        for sock in (self.socket, self._wake_in, self._wake_out):
            sock.close()
        self._selector.close()

    # --- for the connection pool -----------------------------------------------------------

    def submit(self, connection: Connection) -> None:
        self.workers.submit(partial(self.responder.serve, connection))

    def park(self, connection: Connection) -> None:
        self.workers.park(connection.sock.fileno(), partial(self.responder.resume, connection))

    def unpark(self, connection: Connection) -> bool:
        return self.workers.unpark(connection.sock.fileno())

    def watch(self, connection: Connection) -> None:
        try:
            self._selector.register(connection.sock, selectors.EVENT_READ, connection)
        except (ValueError, OSError):
            pass  # a worker's rewatch of a connection the I/O thread closed meanwhile (a drain)

    def unwatch(self, connection: Connection) -> None:
        try:
            self._selector.unregister(connection.sock)
        except (KeyError, ValueError):
            pass  # not registered (handed to a worker) or already closed


def sweep_interval(limits: ServerLimits) -> float:
    """How often the I/O loop closes connections past their deadlines (see SWEEP_MAX)."""
    shortest = min(limits.keepalive_timeout, limits.read_timeout, limits.linger_seconds)
    return max(SWEEP_MIN, min(SWEEP_MAX, shortest / 4))


def start_in_thread(server: FunctionsServer) -> threading.Thread:
    """Run `server.serve_forever` in a daemon thread (tests, the demo, the benchmark)."""
    thread = threading.Thread(target=server.serve_forever, name="sfdcflex-server", daemon=True)
    thread.start()
    return thread
