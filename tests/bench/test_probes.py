"""Reading a server's costs: system calls from strace -c output, CPU from /proc samples."""
from __future__ import annotations

import os

import pytest

from sfdcflex.bench import probes
from sfdcflex.bench.probes import CpuSample, ThreadTimes, cpu_sample, cpu_spent, parse_strace_summary

# Captured from `strace -f -c -o FILE python3 -c ...` (strace 6.1), trimmed: the errors column
# is blank on some lines, so a line has five or six fields.
STRACE_SAMPLE = """\
% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 79.32    0.103129        1289        80        40 wait4
  2.84    0.003697           2      1380       590 openat
  2.29    0.002972           3       957           mmap
  0.00    0.000000           0         1           epoll_create1
------ ----------- ----------- --------- --------- ----------------
100.00    0.130024          14      2418       630 total
"""


def test_strace_summary_counts_each_call_and_the_total_with_or_without_errors():
    calls = parse_strace_summary(STRACE_SAMPLE)
    assert calls == {"wait4": 80, "openat": 1380, "mmap": 957, "epoll_create1": 1, "total": 2418}


def test_an_empty_or_foreign_strace_output_counts_nothing():
    assert parse_strace_summary("") == {}
    assert parse_strace_summary("strace: Process 12 attached\nstrace: Process 12 detached\n") == {}


TICK = probes._TICK_NS


def test_cpu_spent_is_the_live_threads_nanoseconds_when_no_thread_ended():
    before = CpuSample(ticks=100, threads={1: ThreadTimes(1_000_000_000, 10),
                                           2: ThreadTimes(5_000_000, 3)})
    after = CpuSample(ticks=101, threads={1: ThreadTimes(1_004_000_000, 14),
                                          2: ThreadTimes(6_000_000, 5),
                                          3: ThreadTimes(2_000_000, 1)})   # started meanwhile
    spent = cpu_spent(before, after)
    # 4 + 1 + 2 ms on live threads; the process's one tick more is rounding, not an ended thread
    assert spent.cpu_ns == 7_000_000 and spent.switches == 4 + 2 + 1


def test_cpu_spent_adds_from_the_process_ticks_what_ended_threads_spent():
    before = CpuSample(ticks=100, threads={1: ThreadTimes(0, 0), 2: ThreadTimes(0, 0)})
    after = CpuSample(ticks=110, threads={1: ThreadTimes(2_000_000, 2)})   # thread 2 ended
    spent = cpu_spent(before, after)
    assert spent.cpu_ns == 10 * TICK   # 2 ms live + the ticks' remainder for the ended ones
    assert cpu_spent(None, after) is None and cpu_spent(before, None) is None


def test_a_cpu_sample_of_this_process_sees_this_thread():
    sample = cpu_sample(os.getpid())
    if sample is None:
        pytest.skip("no /proc/<pid>/task/<tid>/schedstat on this kernel")
    assert os.getpid() in sample.threads and sample.threads[os.getpid()].cpu_ns > 0
    assert cpu_sample(2 ** 22 + 12345) is None   # above pid_max's ceiling: no such process
