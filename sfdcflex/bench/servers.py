"""The benchmark's server processes: the bare baseline, the stand-ins, and the runtime under test.

Each server runs in a child process of its own, so the load generator (one Python process)
never shares a GIL with what it measures. The stand-ins child is driven over its stdin and
stdout, one line per command, so the benchmark can ask for Flex tokens and call counters.
"""
from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from ..config import SETTING_NAMES

AGENT = "agent@example.com"
FLEX_URL = "https://flex.example.com"
STATE_SECRET = "bench-state-secret-" + "x" * 32
START_TIMEOUT = 20.0
CACHE_SIZE = 100
# Twice the per-agent cache size, taken in turn: a number comes round again only after
# CACHE_SIZE other numbers have pushed it out of the LRU, so every lookup is a miss.
MISS_CONTACTS = 2 * CACHE_SIZE
HELLO_FUNCTION = '''"""hello: the benchmark's minimal function."""


def handler(context, event, callback):
    callback(None, {"ok": True})
'''
PROJECT_ROOT = Path(__file__).resolve().parents[2]
_PROXY_NAMES = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


def contact_phone(index: int) -> str:
    """The seeded contact number `index`, written the way people type it: (415) 555-1000 + index."""
    return f"(415) 555-{1000 + index:04d}"


# -- the bare baseline ------------------------------------------------------------------------

class BareHandler(BaseHTTPRequestHandler):
    """Answers every GET and POST with {"ok":true}, keep-alive, headers and body in one write."""

    protocol_version = "HTTP/1.1"
    # The stock wbufsize of 0 sends headers and body in two writes; Nagle's algorithm with
    # delayed ACK then stalls each keep-alive response ~40 ms. A buffered file flushes once.
    wbufsize = -1
    body = b'{"ok":true}'

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        if self.close_connection:
            # The client asked to close: say so (RFC 9112, 9.6), or wrk would send the next
            # request on a connection this server is closing, and count an error.
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(self.body)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.do_GET()

    def log_message(self, format: str, *args: object) -> None:
        """The baseline stays quiet: no per-request line."""


class BareServer(ThreadingHTTPServer):
    # Same listen backlog as the runtime, so 16 simultaneous connects are not dropped.
    request_queue_size = 128


def serve_bare(port: int) -> int:
    """Run the bare baseline until interrupted (the `--serve-bare` child)."""
    server = BareServer(("127.0.0.1", port), BareHandler)
    host, bound = server.server_address[:2]
    print(f"bare listening on http://{host}:{bound}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


# -- the stand-ins child ------------------------------------------------------------------------

def serve_standins(contacts: int) -> int:
    """Run Salesforce, IAM and Sync stand-ins; answer `token`/`calls` lines on stdin until EOF."""
    from ..demo.standins import IamStandIn, SalesforceStandIn, SyncStandIn
    sf, iam, sync = SalesforceStandIn(), IamStandIn(), SyncStandIn()
    standins = {"salesforce": sf, "iam": iam, "sync": sync}
    try:
        for standin in standins.values():
            standin.start()
        iam.add_agent(AGENT, "Bench Agent")
        sf.add_user(AGENT, "Bench Agent")
        account = sf.add_account("Analytical Engines", type="Customer - Direct",
                                 account_number="AE-1001", sla="Gold", priority="High")
        for index in range(contacts):
            sf.add_contact(f"Caller Number{index}", account_id=account, title="Customer",
                           phone=contact_phone(index))
        print(json.dumps(_standin_settings(sf, iam, sync)), flush=True)
        for line in sys.stdin:
            command, _, argument = line.strip().partition(" ")
            if command == "token":
                print(iam.issue_token(argument or AGENT), flush=True)
            elif command == "calls":
                print(json.dumps({name: dict(s.calls) for name, s in standins.items()}), flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        for standin in standins.values():
            standin.stop()
    return 0


def _standin_settings(sf, iam, sync) -> dict[str, str]:
    return {"ACCOUNT_SID": iam.account_sid, "AUTH_TOKEN": iam.auth_token,
            "SYNC_SERVICE_SID": sync.service_sid, "SFDC_INSTANCE_URL": sf.url,
            "SFDC_ORG_ID": sf.org_id, "SFDC_CLIENT_ID": sf.client_id,
            "SFDC_CLIENT_SECRET": sf.client_secret, "TWILIO_IAM_URL": iam.url,
            "TWILIO_SYNC_URL": sync.url}


# -- children of the benchmark --------------------------------------------------------------------

def child_environment(pycache: Path) -> dict[str, str]:
    """The environment for children: no proxies (only 127.0.0.1 is contacted), no stray settings.

    Bytecode is cached under `pycache` even where PYTHONDONTWRITEBYTECODE is set, as an
    installed server has it: otherwise every start would compile every module again.
    """
    env = {k: v for k, v in os.environ.items() if k not in SETTING_NAMES and k not in _PROXY_NAMES}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Child:
    """One child process; `kill()` is safe to call more than once."""

    def __init__(self, argv: list[str], pycache: Path, *, stdin: bool = False,
                 log: Path | None = None, extra_env: dict[str, str] | None = None,
                 root: Path = PROJECT_ROOT) -> None:
        """`root`: the tree whose code the child runs (its working directory and PYTHONPATH)."""
        self.log = log
        log_file = open(log, "ab") if log else subprocess.DEVNULL
        try:
            self.process = subprocess.Popen(
                argv, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=log_file,
                env={**child_environment(pycache), "PYTHONPATH": str(root), **(extra_env or {})},
                cwd=root)
        finally:
            if log:
                log_file.close()
        self._pending = b""

    @property
    def pid(self) -> int:
        return self.process.pid

    def read_line(self, timeout: float = START_TIMEOUT) -> str:
        """The child's next stdout line, waiting at most `timeout` seconds."""
        deadline = time.monotonic() + timeout
        fd = self.process.stdout.fileno()
        while b"\n" not in self._pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                raise RuntimeError(f"{self.describe()} said nothing for {timeout:.0f} s")
            chunk = os.read(fd, 65536)
            if not chunk:
                raise RuntimeError(f"{self.describe()} exited with status {self.process.wait()}")
            self._pending += chunk
        line, _, self._pending = self._pending.partition(b"\n")
        return line.decode("utf-8", "replace")

    def wait_for_url(self, timeout: float = START_TIMEOUT) -> str:
        """Read stdout up to the `... listening on http://...` line; drain the rest in a thread."""
        deadline = time.monotonic() + timeout
        while True:
            line = self.read_line(max(0.01, deadline - time.monotonic()))
            if " listening on http://" in line:
                threading.Thread(target=self._drain, daemon=True).start()
                return line.rsplit(" ", 1)[1]

    def _drain(self) -> None:
        # The runtime prints its routes after the URL; keep the pipe from filling up.
        try:
            while os.read(self.process.stdout.fileno(), 65536):
                pass
        except (OSError, ValueError):
            pass

    def describe(self) -> str:
        tail = ""
        if self.log and self.log.exists():
            tail = ": " + " | ".join(self.log.read_text(errors="replace").splitlines()[-3:])
        return f"child {self.process.args[2:4]} (pid {self.pid}){tail}"

    def peak_rss_kib(self) -> int | None:
        """VmHWM (the resident set's high-water mark) from /proc, or None where there is none."""
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        except OSError:
            return None
        return None

    def kill(self) -> None:
        """SIGINT first (a clean stop), then SIGKILL after a second; always reaped."""
        if self.process.poll() is None:
            try:
                self.process.send_signal(signal.SIGINT)
                self.process.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe:
                pipe.close()


class StandIns:
    """The stand-ins child: its settings, Flex tokens on demand, and its call counters."""

    def __init__(self, contacts: int, pycache: Path) -> None:
        self.child = Child([sys.executable, "-m", "sfdcflex.bench", "--serve-standins",
                            "--contacts", str(contacts)], pycache, stdin=True)
        try:
            self.settings: dict[str, str] = json.loads(self.child.read_line())
        except BaseException:
            self.child.kill()
            raise

    def _ask(self, command: str) -> str:
        self.child.process.stdin.write((command + "\n").encode())
        self.child.process.stdin.flush()
        return self.child.read_line(timeout=10.0)

    def token(self, identity: str = AGENT) -> str:
        return self._ask(f"token {identity}")

    def calls(self) -> dict[str, dict[str, int]]:
        return json.loads(self._ask("calls"))

    def kill(self) -> None:
        self.child.kill()


def prepare_runtime_folder(folder: Path, settings: dict[str, str], cache_size: int,
                           root: Path = PROJECT_ROOT) -> tuple[Path, Path]:
    """Write the runtime's .env and functions folder (hello.py + the functions of the tree at
    `root`)."""
    functions = folder / "functions"
    functions.mkdir(parents=True)
    (functions / "hello.py").write_text(HELLO_FUNCTION)
    project_functions = root / "functions"
    for source in sorted(project_functions.glob("*.py")):
        (functions / source.name).symlink_to(source)
    # Tokens in the Sync stand-in, as the original keeps them. SYNC_LINK_RECHECK=10 lets a cached
    # answer skip Sync (the default, 0, adds one Sync read to every request: README, Security).
    values = dict(settings, FLEX_INSTANCE_URL=FLEX_URL, TOKEN_STORE="sync",
                  TOKEN_STORE_PATH=str(folder / "store" / "tokens.json"), STATE_SECRET=STATE_SECRET,
                  CACHE_SIZE=str(cache_size), CACHE_TTL="300", SYNC_LINK_RECHECK="10")
    env_file = folder / "bench.env"
    env_file.write_text("".join(f"{name}={value}\n" for name, value in values.items()))
    return env_file, functions


def runtime_argv(env_file: Path, functions: Path) -> list[str]:
    return [sys.executable, "-m", "sfdcflex", "--env", str(env_file), "--functions", str(functions),
            "--port", "0"]


MINIMAL_SERVER = '''"""The cold-start baseline: the least a Python HTTP server imports and does."""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Hello(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "11")
        self.end_headers()
        self.wfile.write(b\'{"ok":true}\')

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Hello)
print(f"minimal listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
try:
    server.serve_forever(poll_interval=0.2)
except KeyboardInterrupt:
    sys.exit(0)
'''


def minimal_server_argv(folder: Path) -> list[str]:
    """A stand-alone minimal server script (written into `folder`): the fair cold-start baseline,
    where `bare_argv` would import this benchmark package first."""
    script = folder / "minimal_server.py"
    if not script.exists():
        script.write_text(MINIMAL_SERVER)
    return [sys.executable, str(script)]


def bare_argv() -> list[str]:
    return [sys.executable, "-m", "sfdcflex.bench", "--serve-bare", "--port", "0"]
