"""The Twilio Functions runtime: one pure dispatch step from a Request to a Reply.

The HTTP server (server.py) and the WSGI adapter (wsgi.py) both read the wire, build a
Request and call `App.dispatch`; nothing here touches a socket.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable, NamedTuple, Sequence
from urllib.parse import urlsplit

from . import signature
from .assets import PRIVATE, PrivateAsset, private_assets
from .cors import PREFLIGHT_HEADERS, CorsPolicy
from .deadlines import Deadlines
from .errors import (ConfigError, Forbidden, GatewayTimeout, HTTPError, MethodNotAllowed,
                     NotFound, PayloadTooLarge, TooManyRequests)
from .event import build_event, form_params
from .invocation import Invocation, awaited, slot_released
from .logs import log_line
from .response import JSON_TYPE, Reply, Response, encode_json, reply_for
from .routes import PROTECTED, Asset, Function, builtins_not_taken, load_module, origin_form
from .slots import Slots

__all__ = ["App", "Context", "Request", "Response", "Limits"]

log = logging.getLogger("sfdcflex")
ALLOWED_METHODS = ("GET", "POST", "OPTIONS")
ASSET_METHODS = ("GET", "HEAD", "POST", "OPTIONS")   # twilio-run serves an asset to a POST too


class Request(NamedTuple):
    """One HTTP request as read off the wire: header names as received, body fully read.
    (A named tuple: made once per request, it costs less than half a frozen dataclass.)"""

    method: str
    target: str
    headers: Sequence[tuple[str, str]]
    body: bytes = b""
    remote_addr: str = ""


# A built-in route answers on the calling thread, before the concurrency cap and the function
# routes: a health check must still answer its supervisor when every slot is taken by slow
# functions, and the runtime knows nothing of what "healthy" means for the integration, so the
# integration hands it in (see sfdcflex/health.py). It must be quick and never call upstream.
Builtin = Callable[[Request], Reply]
# What turns an exception a function failed with into the answer it deserves (an HTTPError), or
# None to leave it a 500: the runtime knows only HTTPError, the integration knows its clients'
# errors (sfdcflex/errors.py, answer_for_failure).
ErrorAnswers = Callable[[BaseException], "HTTPError | None"]
# Told of every answer: the request (None when the server refused it while reading), its path,
# the reply and the seconds it took (runtime/metrics.py's RequestMeter.observe); on every
# request's path, so it must be cheap.
RequestObserver = Callable[["Request | None", str, Reply, float], None]


@dataclass(frozen=True)
class Limits:
    """Twilio's limits: 10 s per invocation, 30 at once, 6 MiB request bodies."""

    timeout: float = 10.0
    max_concurrency: int = 30
    max_body: int = 6 * 1024 * 1024


class Context:
    """What a function sees as `context`: every .env value as an attribute, plus request facts."""

    def __init__(self, values: dict[str, object]) -> None:
        self.__dict__.update(values)

    def __getattr__(self, name: str):
        # Only called for names that are not set: say which setting is missing.
        raise AttributeError(f"context has no {name!r}: it is not set in the .env file or the environment")


class App:
    """Routes requests to function handlers with Twilio's semantics and limits."""

    def __init__(self, routes: dict[str, Function], functions: dict[str, Function] | None = None, *,
                 env: dict[str, str] | None = None, services: object = None,
                 limits: Limits = Limits(), cors_origins: tuple[str, ...] = (),
                 public_url: str | None = None, assets: dict[str, Asset] | None = None,
                 live: bool = False, builtins: dict[str, Builtin] | None = None,
                 body_limits: dict[str, int] | None = None, errors: ErrorAnswers | None = None,
                 observe: RequestObserver | None = None) -> None:
        self.routes = routes
        self.builtins = builtins_not_taken(builtins or {}, routes)
        self.functions = functions if functions is not None else {f.name: f for f in routes.values()}
        self.env = dict(env or {})
        self.services = services
        self.limits = limits
        self.cors = CorsPolicy(cors_origins)
        self.body_limits = dict(body_limits or {})
        self.public_url = public_url.rstrip("/") if public_url else None
        # Twilio's DOMAIN_NAME is the service's domain, twilio-run's the address it serves on:
        # never the client's Host header, which anyone may set.
        self.domain_name = urlsplit(self.public_url).netloc if self.public_url else "localhost"
        self.assets = assets or {}
        taken = sorted(self.assets.keys() & routes.keys())
        if taken:   # twilio-run refuses to start too ("Duplicate. Path ... already exists")
            raise ConfigError(*(f"a function and an asset both answer {path}" for path in taken))
        self._private_assets = private_assets(self.assets)
        self.live = live
        self._error_answers = errors
        self._observe = observe
        self._started_at = time.time()
        self._reloaded: dict[Path, tuple[float, object]] = {}
        self._reload_lock = threading.Lock()
        self._slots = Slots(limits.max_concurrency)
        self._watchdog = Deadlines(name="time-limits")
        self._auth_token = str(self.env.get("AUTH_TOKEN", ""))
        # What every invocation's context holds before its request's own facts (PATH, ...).
        self._context_base: dict[str, object] = dict(
            self.env, DOMAIN_NAME=self.domain_name, SERVICE_SID=None, ENVIRONMENT_SID=None,
            services=self.services, get_functions=self.get_functions, get_assets=self.get_assets)

    def close(self) -> None:
        self._watchdog.stop()

    def max_body_for(self, path: str) -> int:
        """The largest request body the route at `path` takes (the runtime's limit by default)."""
        return self.body_limits.get(path, self.limits.max_body)

    def head_refusal(self, method: str, target: str, length: int) -> HTTPError | None:
        """What a request is answered whatever its body, from its head alone, in `dispatch`'s
        order: a method never taken (405), a body over its route's limit (413), a path no
        function, asset or built-in answers (404). The server answers these without reading a
        byte of the body: a 6 MiB POST to a path with no function costs nothing."""
        if method not in ALLOWED_METHODS and method != "HEAD":
            return _method_not_allowed(method)
        if "#" in target or target[:1] != "/":
            target = origin_form(target)
        path = target.split("?", 1)[0]
        limit = self.body_limits.get(path, self.limits.max_body)
        if length > limit:
            return PayloadTooLarge(f"request bodies are limited to {limit} bytes")
        if path in self.routes or path in self.assets or (method == "GET" and path in self.builtins):
            return None
        return NotFound(f"no function or asset at {path}", code="not_found")

    def dispatch(self, request: Request, answer_early: Callable[[Reply], None]) -> Reply:
        """Answer one request; never raises, and logs one line.

        The function runs on the calling thread (the HTTP server's or the WSGI host's worker:
        no hand-off per request), and at the time limit the watchdog sends 504 through
        `answer_early` while the function goes on, as on Twilio.
        """
        started = time.perf_counter()
        if "#" in request.target or request.target[:1] != "/":
            request = request._replace(target=origin_form(request.target))
        path = request.target.split("?", 1)[0]
        early = partial(self._send_early, request, answer_early)
        try:
            reply = self._answer(request, path, early)
        except HTTPError as exc:
            reply = error_reply(exc)
        except Exception:
            log.exception("%s %s: runtime failure", loggable(request.method), loggable(path))
            reply = error_reply(HTTPError("the function runtime failed; see the server log"))
        self._add_cors(request, reply)
        # A supervisor probing /healthz every few seconds would drown the request lines.
        level = logging.DEBUG if request.method == "GET" and path in self.builtins else logging.INFO
        elapsed = time.perf_counter() - started
        if self._observe is not None:
            self._observe(request, path, reply, elapsed)
        if log.isEnabledFor(level):  # the line's parts are made only when it is written
            log_line(log, level, f"{reply.status} {loggable(request.method)} {loggable(path)} "
                                 f"{elapsed * 1000:.1f}ms")
        return reply

    def _send_early(self, request: Request, answer_early: Callable[[Reply], None], reply: Reply) -> None:
        self._add_cors(request, reply)
        answer_early(reply)

    def _answer(self, request: Request, path: str, early: Callable[[Reply], None]) -> Reply:
        if request.method not in ALLOWED_METHODS and request.method != "HEAD":
            raise _method_not_allowed(request.method)
        if len(request.body) > self.max_body_for(path):
            raise PayloadTooLarge(f"request bodies are limited to {self.max_body_for(path)} bytes")
        builtin = self.builtins.get(path)
        if builtin is not None and request.method == "GET":
            return builtin(request)
        function = self.routes.get(path)
        if function is None:   # only now, off the functions' path, are assets looked up
            return self._asset(request, path)
        if request.method == "HEAD":
            raise _method_not_allowed("HEAD")
        if request.method == "OPTIONS":
            return Reply(204, list(PREFLIGHT_HEADERS))
        # The slot is taken before the body is parsed: parsing a big body costs real CPU, and
        # a flood of them must meet the concurrency cap (429) instead of slowing everyone.
        if not self._slots.try_take():
            raise TooManyRequests(f"more than {self.limits.max_concurrency} invocations at once; retry shortly",
                                  headers={"Retry-After": "1"})
        invocation = Invocation(function.path, self._slots)
        try:
            if function.access == PROTECTED:
                self._check_signature(request, path)
            event = build_event(request)
            context = self._context(request, path)
            context.slot_released = partial(slot_released, invocation)
            # The peer's address (the proxy's, behind one), for a function that treats clients
            # it has seen before differently (not in Twilio's context).
            context.client_address = request.remote_addr
        except BaseException:
            invocation.release_slot()
            raise
        return self._invoke(function, self._handler(function), context, event, early, invocation)

    def _invoke(self, function: Function, handler, context: Context, event: dict,
                early: Callable[[Reply], None], invocation: Invocation) -> Reply:
        deadline = invocation.deadline = time.monotonic() + self.limits.timeout
        # This thread is the worker: no hand-off per request. At the limit the watchdog
        # answers 504 for it, and the function goes on to its end, as on Twilio.
        self._watchdog.arm(invocation, deadline, partial(self._overtime, invocation, early))
        try:
            self._run(handler, context, event, invocation)
        finally:
            self._watchdog.disarm(invocation)
        if invocation.timed_out or not invocation.wait(max(0.0, deadline - time.monotonic())):
            if not invocation.timed_out:
                log.error("%s: over the %.1f s execution time limit", function.path, self.limits.timeout)
            raise self._timeout_error()
        if invocation.error is not None:
            return self._failure_reply(function, invocation.error)
        try:
            return reply_for(invocation.payload)
        except (TypeError, ValueError) as exc:
            log.error("%s: cannot send what the function returned: %s", function.path, exc)
            return error_reply(HTTPError("the function returned a value that cannot be sent"))

    def _timeout_error(self) -> GatewayTimeout:
        return GatewayTimeout(f"the function did not finish within {self.limits.timeout:g} s")

    def _overtime(self, invocation: Invocation, early: Callable[[Reply], None]) -> None:
        """The watchdog's action at the time limit: answer 504 now; the function goes on."""
        if invocation.finished:
            return
        invocation.timed_out = True
        log.error("%s: over the %.1f s execution time limit; answered 504, the function goes on",
                  invocation.route, self.limits.timeout)
        early(error_reply(self._timeout_error()))

    def _run(self, handler, context: Context, event: dict, invocation: Invocation) -> None:
        # The concurrency slot stays taken until the handler really ends, past the time limit
        # too, as on Twilio.
        try:
            result = handler(context, event, invocation.callback)
            if hasattr(type(result), "__await__"):  # an async def handler
                import asyncio  # only async handlers need it; it costs start-up time
                asyncio.run(awaited(result))
        except BaseException as exc:  # a handler's bug must not kill the thread
            if invocation.finished:
                log.exception("%s raised after its callback", invocation.route)
            else:
                invocation.callback(exc)
        finally:
            invocation.release_slot()

    def _failure_reply(self, function: Function, error: object) -> Reply:
        if isinstance(error, BaseException) and not isinstance(error, HTTPError) and self._error_answers:
            error = self._error_answers(error) or error
        if isinstance(error, HTTPError):
            return error_reply(error)
        if isinstance(error, BaseException):
            log.error("%s failed", function.path, exc_info=error)
        else:
            log.error("%s failed: callback error %r", function.path, error)
        return error_reply(HTTPError("the function failed; see the server log"))

    def _handler(self, function: Function):
        """The function's handler; with --live, reloaded first if its file changed since loading."""
        if not self.live:
            return function.handler
        try:
            mtime = os.stat(function.file).st_mtime
        except OSError:
            return function.handler
        with self._reload_lock:
            loaded_at, module = self._reloaded.get(function.file, (self._started_at, function.module))
            if mtime > loaded_at:
                module = load_module(function.file)
                self._reloaded[function.file] = (mtime, module)
                log.info("reloaded %s", function.file)
        return module.handler

    def _context(self, request: Request, path: str) -> Context:
        context = Context.__new__(Context)
        context.__dict__.update(self._context_base)  # a function may set attributes: its own copy
        context.PATH = path
        return context

    def get_functions(self) -> dict[str, Function]:
        """Every function, private ones included, by name (Twilio's Runtime.getFunctions())."""
        return dict(self.functions)

    def get_assets(self) -> dict[str, PrivateAsset]:
        """The private assets by path, each with `path` and `open()` (Twilio's Runtime.getAssets(),
        which gives private assets only: the others have URLs)."""
        return dict(self._private_assets)

    def _asset(self, request: Request, path: str) -> Reply:
        """An asset by its path: public ones to anyone, protected ones to a signed request,
        private ones never (403, as twilio-run answers); 404 when there is none."""
        asset = self.assets.get(path)
        if asset is None:
            raise NotFound(f"no function or asset at {path}", code="not_found")
        if request.method not in ASSET_METHODS:
            raise _method_not_allowed(request.method)
        if asset.access == PRIVATE:
            raise Forbidden("this asset is private: functions read it with context.get_assets()",
                            code="private_asset")
        if request.method == "OPTIONS":
            return Reply(204, list(PREFLIGHT_HEADERS))
        if asset.access == PROTECTED:
            self._check_signature(request, path)
        return Reply(200, [("Content-Type", asset.content_type),
                           ("Cache-Control", "public, max-age=0")], asset.body)

    def _check_signature(self, request: Request, path: str) -> None:
        given = next((v for k, v in request.headers if k.lower() == "x-twilio-signature"), None)
        if not given:
            raise Forbidden("this function needs a valid X-Twilio-Signature header", code="invalid_signature")
        host = next((v for k, v in request.headers if k.lower() == "host"), "localhost")
        base = self.public_url or f"http://{host}"
        url = base + request.target
        params = form_params(request)
        if not signature.body_is_covered(url, request.body, _declared_form(request)):
            raise Forbidden("a body that is not a form must be signed through a bodySHA256 query "
                            "parameter", code="invalid_signature")
        if not signature.is_valid_signature(self._auth_token, url, params, given, body=request.body):
            raise Forbidden("the X-Twilio-Signature does not match this request", code="invalid_signature")

    def _add_cors(self, request: Request, reply: Reply) -> None:
        """The runtime's CORS headers, unless the function set its own: two
        Access-Control-Allow-Origin values make a browser refuse the answer."""
        for name, _ in reply.headers:
            if len(name) == 27 and name.lower() == "access-control-allow-origin":
                return
        reply.headers += self.cors.headers(request.headers)

    def refusal(self, exc: HTTPError, headers: list[tuple[str, str]] | None = None) -> Reply:
        """The answer to a request the server or WSGI adapter refused while reading it (413,
        414, 431, ...), with the same CORS headers as any other answer, so a browser on Flex
        sees the status rather than a CORS error. `headers` is None when they were not read."""
        reply = error_reply(exc)
        reply.headers += self.cors.headers(headers)
        if self._observe is not None:
            self._observe(None, "", reply, 0.0)
        return reply

    def invocations_in_flight(self) -> int:
        """Invocations holding a concurrency slot now (a gauge's reading)."""
        return self._slots.taken


def _method_not_allowed(method: str) -> MethodNotAllowed:
    return MethodNotAllowed(f"{method} is not allowed; use GET, POST or OPTIONS",
                            headers={"Allow": ", ".join(ALLOWED_METHODS)})


def _declared_form(request: Request) -> bool:
    """Whether the request says its body is a form: only then do signed parameters cover it."""
    kind = next((v for k, v in request.headers if k.lower() == "content-type"), "")
    return kind.split(";", 1)[0].strip().lower() == "application/x-www-form-urlencoded"


def loggable(text: str, limit: int = 200) -> str:
    """Text safe for one log line: control characters escaped (no forged lines), length capped."""
    if text.isprintable() and len(text) <= limit:
        return text
    return text[:limit].encode("unicode_escape").decode("ascii")


def error_reply(exc: HTTPError) -> Reply:
    """The one place an HTTPError becomes JSON on the wire."""
    headers = [("Content-Type", JSON_TYPE)] + list(exc.headers.items())
    return Reply(exc.status, headers, encode_json(exc.body()))
