"""Command line: python run.py [--demo] [--port 3000] [--env .env] [--check] [--version] ..."""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from . import __version__
from .assembly import build_app, default_functions_folder
from .metrics import Metrics
from .config import (DEFAULT_ENV_FILE, LOG_FORMATS, LOG_LEVELS, SETTING_NAMES, check_settings, load_config,
                     unknown_names)
from .runtime.app import Limits
from .runtime.assets import Asset, load_assets
from .runtime.envfile import format_env
from .runtime.errors import ConfigError
from .runtime.logs import configure_logging
from .runtime.http.server import FunctionsServer
from .runtime.http.sockets import listen, url_of
from .runtime.routes import discover_functions
from .server_options import add_server_limits, server_limits

if TYPE_CHECKING:
    from .demo.main import Demo

log = logging.getLogger("sfdcflex")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="sfdcflex", description=(
        "Run the Flex <-> Salesforce functions on a local Twilio Functions runtime."))
    parser.add_argument("--version", action="version", version=f"sfdcflex {__version__}")
    parser.add_argument("--demo", action="store_true",
                        help="run the whole data flow with local stand-ins; needs no .env and no network")
    parser.add_argument("--demo-dir", type=Path, default=None,
                        help="folder for the demo's token store (default: a new temporary folder)")
    parser.add_argument("--store", choices=("json", "sync"), default=None,
                        help="with --demo: keep tokens in the JSON file (default) or the Sync stand-in")
    parser.add_argument("--print-env", metavar="FILE", nargs="?", const="-", default=None,
                        help="with --demo: write a complete .env pointing at the running stand-ins "
                             "to FILE (or print it), to rehearse a real start-up against them")
    parser.add_argument("--trace", action="store_true",
                        help="with --demo: print each step of an OAuth link in the terminal as it happens")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=3000, help="port (default 3000; 0 picks a free one)")
    parser.add_argument("--env", type=Path, default=None,
                        help="settings file (default .env if there is one; the environment may hold them all)")
    parser.add_argument("--check", action="store_true",
                        help="check the settings and the token store folder, print every problem, "
                             "and exit (0 when all is well, 2 otherwise) without serving")
    parser.add_argument("--functions", type=Path, default=None,
                        help="folder of handler modules (default: the project's functions/)")
    parser.add_argument("--assets", type=Path, default=None,
                        help="folder of assets served by path, as Twilio Assets (default: an assets/ "
                             "folder beside the functions folder, if there is one)")
    parser.add_argument("--timeout", type=float, default=10.0,
                        help="execution time limit per invocation in seconds (default 10, as on Twilio)")
    parser.add_argument("--max-concurrency", type=int, default=30,
                        help="invocations at once before answering 429 (default 30, as on Twilio)")
    parser.add_argument("--read-timeout", type=float, default=10.0,
                        help="seconds a client has to send a whole request (default 10)")
    parser.add_argument("--drain-timeout", type=float, default=None,
                        help="on SIGTERM or Ctrl-C, seconds to let requests in flight finish "
                             "(default: --timeout); a second signal stops at once")
    add_server_limits(parser)
    parser.add_argument("--live", action="store_true", help="reload a function whose file changed")
    parser.add_argument("--log-level", default=None, choices=LOG_LEVELS,
                        help="default LOG_LEVEL, else info")
    parser.add_argument("--log-format", default=None, choices=LOG_FORMATS,
                        help="text lines or one JSON object a line (default LOG_FORMAT, else text)")
    args = parser.parse_args(argv)
    if args.timeout <= 0 or args.max_concurrency < 1 or args.read_timeout <= 0:
        parser.error("--timeout and --read-timeout must be positive, --max-concurrency at least 1")
    if args.drain_timeout is not None and args.drain_timeout < 0:
        parser.error("--drain-timeout must not be negative")
    if not args.demo and (args.store or args.print_env or args.trace):
        parser.error("--store, --print-env and --trace go with --demo; otherwise set TOKEN_STORE in .env")
    if args.demo and args.assets:
        parser.error("--assets serves your functions' assets; the demo serves its own panel")
    if args.demo and args.check:
        parser.error("--check checks a .env (or the environment); the demo needs none")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.check:
        return _check(args)
    limits = server_limits(args)
    try:
        sock = listen((args.host, args.port))
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else exc   # without Python's repeat of the address
        print(f"sfdcflex: cannot listen on {args.host}:{args.port}: {reason}", file=sys.stderr)
        return 2
    demo = server = app = None
    with StopSignals() as stop:
        try:
            demo = _start_demo(args, url_of(sock)) if args.demo else None
            config = load_config(demo.settings) if demo else check_settings(args.env)
            configure_logging(args.log_level or config.log_level, sys.stderr,
                              args.log_format or config.log_format)
            metrics = Metrics(tap=demo.trace if demo else None)
            # PUBLIC_URL when set (a proxy in front), else the address this server listens on.
            app = build_app(config, config.public_url or url_of(sock), functions=args.functions,
                            limits=Limits(timeout=args.timeout, max_concurrency=args.max_concurrency),
                            live=args.live, assets=demo.assets() if demo else _assets(args),
                            metrics=metrics, builtins=demo.builtins() if demo else None)
            server = FunctionsServer(sock, app, limits)
            metrics.watch_server(server)
            _print_banner(server, demo)
            if demo and args.print_env:
                _write_rehearsal_env(demo, args.print_env)
            drain = args.timeout if args.drain_timeout is None else args.drain_timeout
            return 0 if serve_until_stopped(server, drain, stop) else 1
        except ConfigError as exc:
            _print_problems(exc)
            return 2
        except _StopNow:
            print("sfdcflex: stopped at once (second signal); requests in flight were cut", flush=True)
            return 1
        finally:
            if server is not None:
                server.server_close()
            sock.close()
            if app is not None:
                app.close()
            if demo:
                demo.stop()
            for handler in logging.getLogger().handlers:
                handler.flush()


def _assets(args: argparse.Namespace) -> dict[str, Asset]:
    """--assets DIR, or the assets/ folder beside the functions folder (as twilio-run finds it)."""
    if args.assets is not None:
        if not args.assets.is_dir():
            raise ConfigError(f"assets: folder {args.assets} does not exist")
        return load_assets(args.assets)
    beside = (args.functions or default_functions_folder()).parent / "assets"
    return load_assets(beside) if beside.is_dir() else {}


def _start_demo(args: argparse.Namespace, server_url: str) -> Demo:
    from .demo.main import Demo
    return Demo.start(folder=args.demo_dir, store=args.store or "json", server_url=server_url,
                      trace=_print_now if args.trace else None)


def _print_now(text: str) -> None:
    print(text, flush=True)   # --trace: each step of a link as it happens, from the worker threads


class _StopNow(Exception):
    """A second SIGTERM or SIGINT: stop without waiting for anything."""


class StopSignals:
    """SIGTERM and SIGINT from start-up on: the first asks for a graceful stop, a second for an
    immediate one (_StopNow). SIGTERM is what systemd, Docker and Kubernetes send to stop a service.
    """

    def __init__(self) -> None:
        self.requested = threading.Event()
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopSignals:
        for number in (signal.SIGTERM, signal.SIGINT):
            self._previous[number] = signal.signal(number, self._on_signal)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)

    def _on_signal(self, signum: int, frame: object) -> None:
        if self.requested.is_set():
            raise _StopNow()
        self.requested.set()


def serve_until_stopped(server: FunctionsServer, drain: float, stop: StopSignals) -> bool:
    """Serve until a stop is asked for, then let requests in flight finish for up to `drain` s.

    True when no request was cut. A stop asked for during start-up ends it before serving.
    """
    accepting = threading.Thread(target=server.serve_forever, name="sfdcflex-accept", daemon=True)
    accepting.start()
    stop.requested.wait()   # signal handlers run on this, the main, thread
    print(f"\nsfdcflex: stopping; requests in flight have up to {drain:g} s to finish", flush=True)
    clean = server.close_gracefully(drain)
    print("sfdcflex: stopped", flush=True)
    return clean


def _check(args: argparse.Namespace) -> int:
    """--check: every problem with the settings, the token store folder and the functions."""
    problems: list[str] = []
    config = None
    try:
        config = check_settings(args.env)
    except ConfigError as exc:
        problems += exc.problems
    try:
        discover_functions(args.functions or default_functions_folder())
    except ConfigError as exc:
        problems += exc.problems
    if problems:
        _print_problems(ConfigError(*problems))
        return 2
    source = args.env or (DEFAULT_ENV_FILE if DEFAULT_ENV_FILE.exists() else "the environment")
    store = "Twilio Sync" if config.token_store == "sync" else f"JSON file {config.token_store_path}"
    print(f"sfdcflex {__version__}: the settings from {source} are complete and valid; "
          f"token store: {store}")
    for name in unknown_names(config.values):
        print(f"  note: {name} is not a sfdcflex setting; functions see it as context.{name}")
    return 0


def _print_problems(error: ConfigError) -> None:
    for problem in error.problems:
        print(f"sfdcflex: {problem}", file=sys.stderr)
    if len(error.problems) > 1:
        print(f"sfdcflex: {len(error.problems)} problems; nothing was started", file=sys.stderr)


def _write_rehearsal_env(demo: Demo, destination: str) -> None:
    """A .env for `python run.py --env FILE`: the demo's settings, valid while the demo runs."""
    settings = {name: demo.settings[name] for name in SETTING_NAMES if name in demo.settings}
    # The rehearsing server uses its own address for the OAuth callback.
    settings.pop("PUBLIC_URL", None)
    text = ("# sfdcflex rehearsal: the settings of `run.py --demo`, pointing at its stand-ins.\n"
            "# Valid while that demo runs; its token store is shared with the demo.\n"
            + format_env(settings))
    if destination == "-":
        print(text, flush=True)   # an empty line ends the block
        return
    descriptor = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)   # also when the file was already there: it holds the stand-ins' secrets
    with open(descriptor, "w") as file:
        file.write(text)
    print(f"Rehearsal settings written to {destination}: python run.py --env {destination} --port 0",
          flush=True)


def _print_banner(server: FunctionsServer, demo: Demo | None) -> None:
    app = server.app
    lines = [f"sfdcflex listening on {server.url}"]
    if demo:
        lines += demo.banner(server.url)
    lines.append("Functions:")
    for path, fn in sorted(app.routes.items()):
        alias = f"  (alias of {fn.path})" if fn.path != path else ""
        lines.append(f"  {fn.access:<9} {server.url}{path}{alias}")
    private = [fn for fn in app.functions.values() if fn.access == "private"]
    lines += [f"  private   {fn.name} (not reachable over HTTP)" for fn in private]
    lines += [f"  built-in  {server.url}{path}" for path in sorted(app.builtins)]
    print("\n".join(lines), flush=True)
