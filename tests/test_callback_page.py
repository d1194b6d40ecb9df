"""The OAuth popup's page: no markup or script can be smuggled in through a message."""
from __future__ import annotations

from sfdcflex.callback_page import callback_page


def test_text_is_escaped_and_the_message_cannot_close_its_script():
    reply = callback_page(403, "Not <b>linked</b>", "user \"x\" & 'y' <img src=x onerror=alert(1)>",
                          {"type": "link_failed", "message": "</script><script>alert(1)</script>"},
                          "https://flex.example.com").to_reply()
    page = reply.body.decode()
    assert "Not &lt;b&gt;linked&lt;/b&gt;" in page
    assert "&quot;x&quot; &amp; &#x27;y&#x27; &lt;img" in page
    assert "</script><script>alert" not in page and "\\u003c/script\\u003e" in page
    assert 'postMessage(message, "https://flex.example.com")' in page
    assert reply.status == 403


def test_the_page_only_runs_its_own_nonced_script_and_may_not_be_framed():
    reply = callback_page(200, "ok", "ok", {"type": "linked"}, "https://flex.example.com").to_reply()
    policy = reply.header("Content-Security-Policy")
    nonce = policy.split("'nonce-", 1)[1].split("'", 1)[0]
    assert f'<script nonce="{nonce}">' in reply.body.decode()
    assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy


def test_with_no_origin_to_tell_the_page_has_no_script_and_shows_the_error_code():
    reply = callback_page(403, "no", "<words>", {"type": "link_failed", "error": "invalid_state"}, None).to_reply()
    assert "<script" not in reply.body.decode()
    assert "<p><small>Error: invalid_state</small></p>" in reply.body.decode()
