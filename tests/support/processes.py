"""What the reliability tests share: run.py as a real process against the stand-ins, and /proc counts.

The server runs as its own process so a test can SIGKILL it, watch its memory, threads and
file descriptors in /proc, and hold slow connections open against it, while the Salesforce,
IAM and Sync stand-ins keep running in the test process.
"""
from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.crm import FLEX_URL, STATE_SECRET

PROJECT = Path(__file__).resolve().parents[2]
BANNER = "sfdcflex listening on "
START_SECONDS = 15.0


def settings_for(sf, iam, sync, store_path: Path, *, store: str = "json") -> dict[str, str]:
    """The .env settings that point the product at the three stand-ins."""
    return {
        "ACCOUNT_SID": iam.account_sid, "AUTH_TOKEN": iam.auth_token,
        "SYNC_SERVICE_SID": sync.service_sid, "SFDC_INSTANCE_URL": sf.url,
        "SFDC_ORG_ID": sf.org_id, "SFDC_CLIENT_ID": sf.client_id,
        "SFDC_CLIENT_SECRET": sf.client_secret, "FLEX_INSTANCE_URL": FLEX_URL,
        "TWILIO_IAM_URL": iam.url, "TWILIO_SYNC_URL": sync.url, "TOKEN_STORE": store,
        "TOKEN_STORE_PATH": str(store_path), "STATE_SECRET": STATE_SECRET,
    }


def write_env_file(path: Path, settings: dict[str, str]) -> Path:
    path.write_text("".join(f"{name}={value}\n" for name, value in settings.items()))
    return path


def proc_status(pid: int) -> dict[str, str]:
    """/proc/PID/status as a dict (VmRSS, VmHWM, Threads, ...), values as written there."""
    status: dict[str, str] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        status[name] = value.strip()
    return status


@dataclass
class Footprint:
    """One look at a process: resident and peak memory (KiB), threads, open file descriptors."""

    rss_kib: int
    peak_rss_kib: int
    threads: int
    fds: int


def upstream_sockets(pid: int, ports: set[int]) -> int:
    """How many of the process's descriptors are TCP connections to one of `ports` (the
    stand-ins': the upstream pool's kept-alive connections), from /proc/PID/fd and /proc/PID/net."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue   # closed meanwhile
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    count = 0
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()   # sl local_address rem_address st ... uid timeout inode
            if fields[9] in inodes and int(fields[2].rsplit(":", 1)[1], 16) in ports:
                count += 1
    return count


def footprint(pid: int) -> Footprint:
    status = proc_status(pid)
    return Footprint(int(status["VmRSS"].split()[0]), int(status["VmHWM"].split()[0]),
                     len(os.listdir(f"/proc/{pid}/task")), len(os.listdir(f"/proc/{pid}/fd")))


@dataclass
class ServerProcess:
    """`python run.py --env FILE --port 0 ...` started and stopped by a test."""

    process: subprocess.Popen
    url: str
    stderr_path: Path
    banner: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, env_file: Path, *args: str) -> ServerProcess:
        """Start the server and return once it printed the address it listens on."""
        stderr_path = env_file.with_suffix(f".{time.monotonic_ns()}.log")
        # The environment wins over the .env file, so settings the test runner has must not leak in.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SFDC_", "TWILIO_", "TOKEN_"))}
        with stderr_path.open("wb") as stderr:
            process = subprocess.Popen(
                [sys.executable, "run.py", "--env", str(env_file), "--port", "0", "--log-level", "warning",
                 *args], cwd=PROJECT, env=env, stdout=subprocess.PIPE, stderr=stderr)
        ready, lines = threading.Event(), []
        threading.Thread(target=_drain, args=(process.stdout, lines, ready), daemon=True).start()
        if not ready.wait(START_SECONDS) or not lines or BANNER not in lines[0]:
            process.kill()
            process.wait(5)
            raise RuntimeError(f"run.py did not start: {lines[:3]} {stderr_path.read_text()[-2000:]}")
        return cls(process, lines[0].split(BANNER, 1)[1].strip(), stderr_path, lines)

    @property
    def pid(self) -> int:
        return self.process.pid

    def footprint(self) -> Footprint:
        return footprint(self.pid)

    def kill(self) -> None:
        """SIGKILL: no handler, no flush, no cleanup, as when the machine loses power."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> str:
        """SIGINT (Ctrl+C, what the server handles), then return what it wrote to stderr."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.stderr_path.read_text(errors="replace")


class Started:
    """A server process whose merged output is read line by line in a thread."""

    def __init__(self, argv: list[str], *, cwd: Path, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(argv, cwd=cwd, env=env, text=True, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT)
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        self.ended = False
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put("")   # end of output

    def wait_for(self, pattern: str, timeout: float = 30.0) -> re.Match:
        """The first line matching `pattern`, among those read so far or arriving within `timeout`."""
        for line in self.output:
            if match := re.search(pattern, line):
                return match
        deadline = time.monotonic() + timeout
        while not self.ended and time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                continue
            if line == "":
                self.ended = True
                break
            self.output.append(line)
            if match := re.search(pattern, line):
                return match
        raise AssertionError(f"no line matching {pattern!r} in:\n{''.join(self.output)}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Send `sig` unless it has exited, wait for the exit, and read the rest of its output."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait(5)
            with contextlib.suppress(AssertionError):
                self.wait_for(r"(?!)", timeout=5)   # matches nothing: reads to the end of output


def _drain(stream, lines: list[str], ready: threading.Event) -> None:
    # Reading stdout to its end keeps the pipe from filling and blocking the server.
    for raw in stream:
        lines.append(raw.decode("utf-8", "replace"))
        ready.set()
    ready.set()


def wait_until(predicate, timeout: float, interval: float = 0.02) -> bool:
    """Poll `predicate` until it is true or `timeout` seconds pass; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return bool(value)
        time.sleep(interval)
