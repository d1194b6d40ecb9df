"""Linker in process: the words of Salesforce's refusals, which panel origins it keeps, its defaults.
(The OAuth flow end to end: tests/functions/test_auth.py, test_oauth_callback.py, test_link_identity.py.)"""
from __future__ import annotations

from sfdcflex.linking import Declined, Linker
from sfdcflex.oauth_state import StateSigner

ALICE = "alice@example.com"


def test_deny_tells_the_agent_what_to_do_in_these_words():
    """Pressing Deny tells the agent what to do, in these words."""
    declined = Declined.from_redirect("access_denied", "end-user denied authorization")
    assert (declined.status, declined.code) == (403, "access_denied")
    assert declined.message == ("You pressed Deny on Salesforce's page, so Salesforce is not connected; "
                                "press Connect again and choose Allow to link it")


def test_another_refusal_names_salesforce_s_error_cut_to_60_and_100_characters():
    """Another refusal names Salesforce's error for an administrator, cut to 60 and 100 characters."""
    error, description = "E" * 59 + "rr", "d" * 99 + "ee"
    declined = Declined.from_redirect(error, description)
    assert declined.message == (f"Salesforce refused the sign-in ({'E' * 59}r: {'d' * 99}e), "
                                "so nothing was linked; ask your Salesforce administrator")


def test_allowed_origins_given_with_a_trailing_slash_are_allowed_without_it():
    """Allowed origins set with a trailing slash match without it."""
    signer = StateSigner(b"k" * 32)
    linker = Linker(None, None, signer, org_id="00D", callback_url="https://x.example/cb",
                    relay_redirect_uri="https://x.example/r", allowed_origins=("https://panel.example/",))
    assert linker.origin_of(signer.sign(ALICE, "https://panel.example"), "https://flex.example") == "https://panel.example"


def test_a_linker_built_without_the_setting_refuses_the_original_plugin_s_login():
    """A Linker built without the setting refuses the original plugin's login (services always passes it)."""
    linker = Linker(None, None, StateSigner(b"k" * 32), org_id="00D", callback_url="https://x.example/cb",
                    relay_redirect_uri="https://x.example/r", allowed_origins=())
    assert linker.original_login is False


def test_an_allowed_origin_ending_in_a_capital_x_is_kept_whole():
    """An allowed origin ending in a capital X is kept whole: only slashes are stripped."""
    signer = StateSigner(b"k" * 32)
    origin = "https://SHOP.EXAMPLE.BOX"
    linker = Linker(None, None, signer, org_id="00D", callback_url="https://x.example/cb",
                    relay_redirect_uri="https://x.example/r", allowed_origins=(origin + "/",))
    assert linker.origin_of(signer.sign(ALICE, origin + "/"), "https://flex.example") == origin
