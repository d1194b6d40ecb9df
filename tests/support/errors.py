"""What the clients' tests ask of an error: the exception a call raised, and what an agent is
answered for it."""
from __future__ import annotations

import pytest

from sfdcflex.errors import answer_for


def caught(kind, call, *args, **kwargs):
    """The exception of class `kind` that call(*args, **kwargs) raised (the test fails if none)."""
    with pytest.raises(kind) as raised:
        call(*args, **kwargs)
    return raised.value


def answered(error) -> tuple[int, str]:
    """The status and error code an agent gets for `error` (sfdcflex/errors.py's table)."""
    answer = answer_for(error)
    return answer.status, answer.code
