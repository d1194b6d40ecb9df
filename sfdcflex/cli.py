"""Command line: python run.py [--demo] [--port 3000] [--env .env] [--functions functions] ..."""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from .config import Config, load_config, settings_from
from .runtime.envfile import read_env_file
from .runtime.errors import ConfigError
from .runtime.logs import configure_logging
from .runtime.routes import Asset, build_routes, discover_functions, load_assets
from .runtime.app import App, Limits
from .runtime.server import FunctionsServer
from .server_options import add_server_limits, server_limits

log = logging.getLogger("sfdcflex")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="sfdcflex", description=(
        "Run the Flex <-> Salesforce functions on a local Twilio Functions runtime."))
    parser.add_argument("--demo", action="store_true",
                        help="run the whole data flow with local stand-ins; needs no .env and no network")
    parser.add_argument("--demo-dir", type=Path, default=None,
                        help="folder for the demo's token store (default: a new temporary folder)")
    parser.add_argument("--store", choices=("json", "sync"), default=None,
                        help="with --demo: keep tokens in the JSON file (default) or the Sync stand-in")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=3000, help="port (default 3000; 0 picks a free one)")
    parser.add_argument("--env", type=Path, default=Path(".env"), help="settings file (default .env)")
    parser.add_argument("--functions", type=Path, default=None,
                        help="folder of handler modules (default: the project's functions/)")
    parser.add_argument("--timeout", type=float, default=10.0,
                        help="execution time limit per invocation in seconds (default 10, as on Twilio)")
    parser.add_argument("--max-concurrency", type=int, default=30,
                        help="invocations at once before answering 429 (default 30, as on Twilio)")
    parser.add_argument("--read-timeout", type=float, default=10.0,
                        help="seconds a client has to send a whole request (default 10)")
    add_server_limits(parser)
    parser.add_argument("--live", action="store_true", help="reload a function whose file changed")
    parser.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    args = parser.parse_args(argv)
    if args.timeout <= 0 or args.max_concurrency < 1 or args.read_timeout <= 0:
        parser.error("--timeout and --read-timeout must be positive, --max-concurrency at least 1")
    if args.store and not args.demo:
        parser.error("--store goes with --demo; otherwise set TOKEN_STORE in .env")
    return args


def read_settings(env_file: Path | str, overrides: dict[str, str] | None = None) -> Config:
    """Settings from the .env file, then the process environment for the same names, then overrides."""
    env_file = Path(env_file)
    values = settings_from(read_env_file(env_file) if env_file.exists() else {}, os.environ)
    values.update(overrides or {})
    return load_config(values)


def default_functions_folder() -> Path:
    """The project's functions/ folder, beside the sfdcflex package."""
    return Path(__file__).resolve().parent.parent / "functions"


def build_app(config: Config, *, functions: Path | str | None = None, limits: Limits = Limits(),
              live: bool = False, assets: dict[str, Asset] | None = None,
              public_url: str | None = None) -> App:
    """The configured App: routes from the functions folder, services from the config."""
    from .services import ORIGINAL_PLUGIN_PATHS, build_services
    found = discover_functions(Path(functions) if functions else default_functions_folder())
    public_url = config.public_url or public_url
    services = build_services(config, public_url=public_url)
    routes = build_routes(found, ORIGINAL_PLUGIN_PATHS)
    return App(routes, found, env=dict(config.values),
               services=services, limits=limits, cors_origins=(config.flex_instance_url,),
               public_url=public_url, assets=assets, live=live,
               body_limits=integration_body_limits(routes, config.max_function_body))


def integration_body_limits(routes: dict, limit: int) -> dict[str, int]:
    """MAX_FUNCTION_BODY for the integration's own functions; others keep the runtime's 6 MiB."""
    own = default_functions_folder()
    return {path: limit for path, fn in routes.items() if fn.file.resolve().parent == own}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging(args.log_level, sys.stderr)
    demo = None
    try:
        server = FunctionsServer((args.host, args.port), None, limits=server_limits(args))
    except OSError as exc:
        print(f"sfdcflex: cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 2
    try:
        limits = Limits(timeout=args.timeout, max_concurrency=args.max_concurrency)
        if args.demo:
            from .demo.main import Demo
            demo = Demo.start(folder=args.demo_dir, store=args.store or "json", server_url=server.url)
            config, assets = load_config(demo.settings), demo.assets()
        else:
            config, assets = read_settings(args.env), None
        server.app = build_app(config, functions=args.functions, limits=limits, live=args.live,
                               assets=assets, public_url=server.url)
    except ConfigError as exc:
        print(f"sfdcflex: {exc}", file=sys.stderr)
        server.server_close()
        if demo:
            demo.stop()
        return 2
    _print_banner(server, demo)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        print("\nsfdcflex: stopped", flush=True)
    finally:
        server.server_close()
        server.app.close()
        if demo:
            demo.stop()
    return 0


def _print_banner(server: FunctionsServer, demo) -> None:
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
    print("\n".join(lines), flush=True)
