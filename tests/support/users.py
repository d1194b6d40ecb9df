"""Running a check as a user who is not root, for what os.access answers another user."""
from __future__ import annotations

import json
import os
from typing import Callable

NOBODY = 65534


def as_nobody(check: Callable[[], object]) -> object:
    """check()'s JSON-able result, computed in a forked child that took user id 65534 first
    (root may write anything, so only another user shows what a folder's modes refuse)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:   # pragma: no cover (the child)
        code = 1
        try:
            os.close(read)
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            os.write(write, json.dumps(check()).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        answer = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return json.loads(answer)
