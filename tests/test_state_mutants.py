"""OAuth state behaviour that mutation testing found unchecked (mutmut 3.8, issue 18).

Each test names the surviving mutants it kills; the equivalent ones are listed in README's
reliability report.
"""
from __future__ import annotations

import pytest

from sfdcflex.oauth_state import load_or_create_secret
from sfdcflex.runtime.errors import ConfigError


@pytest.mark.parametrize("state", ["garbage", "a.b.c", "x" * 3000])
def test_a_malformed_state_is_400_invalid_state_exactly(crm, state):
    """_bad_state mutant 5 (another error code)."""
    answer = crm.post("/oauth-callback", {"Token": crm.token("alice@example.com"), "code": "c", "state": state})
    assert answer.status == 400 and answer.json()["error"] == "invalid_state"


def test_a_damaged_secret_file_says_exactly_what_to_do(tmp_path):
    """_read_secret mutant 16 (the advice garbled)."""
    path = tmp_path / "state-secret"
    path.write_text("not hex\n")
    with pytest.raises(ConfigError) as raised:
        load_or_create_secret(path)
    assert str(raised.value) == (f"config: the state secret file {path} is damaged; "
                                 "delete it to have a new one made")
