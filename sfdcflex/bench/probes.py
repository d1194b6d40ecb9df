"""What a server process spent over a window: CPU and context switches from /proc, system calls
from `strace -c`.

CPU: /proc/<pid>/stat counts utime + stime in clock ticks (10 ms), too coarse for a window of a
few hundred spaced requests; /proc/<pid>/task/<tid>/schedstat counts each thread's time on a CPU
in nanoseconds and its time slices (proc(5)). A thread that ended inside the window takes its
schedstat with it, so its share is taken from the process's ticks (which keep the time of ended
threads): what they add beyond the live threads' nanoseconds, when that is more than the one tick
or two of rounding (a thread-per-connection server ends a thread per connection).

System calls: `strace -f -c -p PID` attaches to every thread of a running process and, once
interrupted, prints a table whose `total` line counts the calls it saw. strace slows every call
down, so the count comes from a window of its own, never from a timed one.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

_TICK_NS = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
ROUNDING_NS = 2 * _TICK_NS
STRACE_ATTACH_TIMEOUT = 10.0


@dataclass(frozen=True)
class ThreadTimes:
    cpu_ns: int      # schedstat field 1: time on a CPU
    slices: int      # schedstat field 3: times put on a CPU (each one a context switch in)


@dataclass(frozen=True)
class CpuSample:
    """The process's utime + stime in ticks, and each live thread's times."""

    ticks: int
    threads: dict[int, ThreadTimes]


def _stat_ticks(path: Path) -> int:
    fields = path.read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of stat


def cpu_sample(pid: int) -> CpuSample | None:
    """A reading of process `pid` (None when it has gone or /proc has no schedstat)."""
    try:
        ticks = _stat_ticks(Path(f"/proc/{pid}/stat"))
        names = os.listdir(f"/proc/{pid}/task")
    except (OSError, IndexError):
        return None
    threads = {}
    for name in names:
        task = Path(f"/proc/{pid}/task/{name}")
        try:
            ns, _, slices = task.joinpath("schedstat").read_text().split()[:3]
            threads[int(name)] = ThreadTimes(int(ns), int(slices))
        except (OSError, ValueError, IndexError):
            continue  # the thread ended between listdir and read: counted in the ticks
    return CpuSample(ticks, threads) if threads else None


@dataclass(frozen=True)
class CpuSpent:
    cpu_ns: int
    switches: int


def cpu_spent(before: CpuSample | None, after: CpuSample | None) -> CpuSpent | None:
    """CPU and context switches between two samples: exact for the threads alive at the end,
    in ticks for those that ended in between (their schedstat has gone)."""
    if before is None or after is None:
        return None
    live_ns = live_slices = 0
    for tid, now in after.threads.items():
        then = before.threads.get(tid, ThreadTimes(0, 0))
        live_ns += now.cpu_ns - then.cpu_ns
        live_slices += now.slices - then.slices
    # utime and stime are each the exact time rounded down to a tick, so the process's sum is
    # right to two ticks: a remainder over that is time of threads that ended, not rounding.
    ended_ns = (after.ticks - before.ticks) * _TICK_NS - live_ns
    return CpuSpent(live_ns + (ended_ns if ended_ns > ROUNDING_NS else 0), live_slices)


# -- system calls ---------------------------------------------------------------------------------

def strace_available() -> bool:
    return shutil.which("strace") is not None


def parse_strace_summary(text: str) -> dict[str, int]:
    """Calls per system call from `strace -c` output, with the `total` line under "total"."""
    calls: dict[str, int] = {}
    for line in text.splitlines():
        fields = line.split()
        # "% time  seconds  usecs/call  calls  [errors]  syscall": errors is blank when none
        if len(fields) < 5 or not fields[3].isdigit():
            continue
        try:
            float(fields[0])
        except ValueError:
            continue
        calls[fields[-1]] = int(fields[3])
    return calls


class SyscallCounter:
    """`strace -f -c -p PID` running between `start()` and `stop()`; `stop()` returns the calls."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._folder = tempfile.TemporaryDirectory(prefix="sfdcflex-strace-")
        self._summary = Path(self._folder.name) / "summary.txt"
        self._process: subprocess.Popen | None = None

    def start(self) -> None:
        """Attach, and return once strace says it has attached (its first "attached" line)."""
        self._process = subprocess.Popen(
            ["strace", "-f", "-c", "-o", str(self._summary), "-p", str(self.pid)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + STRACE_ATTACH_TIMEOUT
        # -f -p attaches every thread, then says "Process N attached with K threads" once.
        while time.monotonic() < deadline:
            line = self._process.stderr.readline()
            if not line:
                raise RuntimeError(f"strace could not attach to {self.pid} (ptrace not allowed?)")
            if "attached" in line:
                break
        # Its stderr is not read again: a pipe holds far more lines than it writes from here.

    def stop(self) -> dict[str, int]:
        """Detach (strace prints its table on SIGINT) and return the calls per system call."""
        try:
            if self._process is not None:
                self._process.send_signal(signal.SIGINT)
                try:
                    self._process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self._process.kill()
                    self._process.wait()
                self._process.stderr.close()
            return parse_strace_summary(self._summary.read_text() if self._summary.exists() else "")
        finally:
            self._folder.cleanup()
