"""What the Flex token validator remembers: an agent for at most five minutes (less when IAM says
the token expires sooner), a refusal for one minute, both bounded, on an injected clock."""
from __future__ import annotations

import time

import pytest

from sfdcflex.clients.iam import FlexAgent, FlexTokenValidator
from tests.support.clocks import FakeClock
from tests.support.errors import answered
from tests.support.iam import ACCOUNT_SID, AUTH_TOKEN, answers_next, refusal


def test_a_second_validation_costs_no_iam_call(iam, validator):
    token = iam.issue_token("ada@example.com")
    validator.validate(token)
    assert validator.validate(token).identity == "ada@example.com"
    assert iam.calls["validate"] == 1


def test_the_cache_lasts_at_most_five_minutes(iam, validator, clock):
    token = iam.issue_token("ada@example.com", ttl=3600)
    validator.validate(token)
    clock.now += 299
    validator.validate(token)
    assert iam.calls["validate"] == 1
    clock.now += 2
    validator.validate(token)
    assert iam.calls["validate"] == 2


def test_an_answer_is_remembered_until_exactly_five_minutes(iam, validator, clock):
    """At the deadline itself the answer is stale."""
    token, start = iam.issue_token("ada@example.com", ttl=3600), clock.now
    validator.validate(token)
    calls = iam.calls["validate"]
    clock.now = start + 299.5
    assert validator.validate_with_source(token)[1] is True
    clock.now = start + 300
    assert validator.validate_with_source(token)[1] is False
    assert iam.calls["validate"] == calls + 1


def test_the_cache_ends_when_the_token_expires(iam, validator, clock):
    token = iam.issue_token("ada@example.com", ttl=60)
    validator.validate(token)
    clock.now += 61
    validator.validate(token)
    assert iam.calls["validate"] == 2


def test_the_cache_is_bounded(iam, clock):
    validator = FlexTokenValidator(iam.url, ACCOUNT_SID, AUTH_TOKEN, clock=clock, cache_size=2)
    tokens = [iam.issue_token(f"agent{i}@example.com") for i in range(3)]
    for token in tokens:
        validator.validate(token)
    validator.validate(tokens[2])
    assert iam.calls["validate"] == 3
    validator.validate(tokens[0])
    assert iam.calls["validate"] == 4


def test_a_full_cache_keeps_exactly_its_size(iam, clock):
    """It evicts at its size, not past it."""
    validator = FlexTokenValidator(iam.url, ACCOUNT_SID, AUTH_TOKEN, clock=clock, cache_size=2)
    tokens = [iam.issue_token(f"agent{i}@example.com") for i in range(3)]
    for token in tokens:
        validator.validate(token)
    assert [validator.validate_with_source(t)[1] for t in tokens[1:]] == [True, True]


def test_by_default_ten_thousand_answers_are_remembered_and_no_more(iam):
    """The 10,000 later answers are put in directly (as the IAM call's answer is): 10,000 IAM
    calls would take seconds."""
    clock = FakeClock()
    validator = FlexTokenValidator(iam.url, ACCOUNT_SID, AUTH_TOKEN, clock=clock)
    token = iam.issue_token("ada@example.com")
    validator.validate(token)                                   # the oldest remembered answer
    filler = FlexAgent(identity="filler@example.com", roles=(), expires_at=clock.now + 3600)
    for n in range(10_000):                                     # 10,001 answers: one too many
        validator._remember(validator._key(f"filler-{n}"), filler)
    calls = iam.calls["validate"]
    assert validator.validate_with_source(token) == (validator.validate(token), False)
    assert iam.calls["validate"] == calls + 1                   # the oldest was given up: IAM asked


@pytest.mark.parametrize("expiration,cached_for", [
    (None, 300), (1234, 300), ("soon", 300), ("", 300),   # absent or unreadable: the cache's own limit
    ("+60", 60),                                         # naive ISO 8601 is UTC: 60 s from now
])
def test_the_cache_follows_iams_expiration_or_its_own_limit(iam, expiration, cached_for):
    clock = FakeClock()
    if expiration == "+60":
        expiration = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(clock.now + 60))
        clock.now = float(int(clock.now))   # the expiration has whole seconds
    validator = FlexTokenValidator(iam.url, ACCOUNT_SID, AUTH_TOKEN, clock=clock)
    answers_next(iam, {"valid": True, "realm_user_id": "alice@example.com", "roles": ["agent", 7],
                        "expiration": expiration})
    agent = validator.validate("any-token")
    assert agent.identity == "alice@example.com"
    assert agent.roles == ("agent",)   # a role that is not a string is dropped
    clock.now += cached_for - 1
    assert validator.validate_with_source("any-token") == (agent, True)
    clock.now += 1
    refusal(validator, "any-token")   # IAM is asked again, and the stand-in never issued this token


def test_an_invalid_token_is_forbidden_and_remembered_for_a_minute(iam, validator, clock):
    token = iam.issue_token("ada@example.com")
    iam.revoke_token(token)
    for _ in range(3):
        refused = refusal(validator, token)
        assert answered(refused) == (403, "invalid_token")
        assert token not in refused.message
    assert iam.calls["validate"] == 1
    clock.now += 61
    refusal(validator, token)
    assert iam.calls["validate"] == 2


def test_a_refusal_is_remembered_until_exactly_one_minute(iam, validator, clock):
    """At the refusal's deadline itself IAM is asked again."""
    start = clock.now
    refusal(validator, "refused-for-a-minute")
    calls = iam.calls["validate"]
    clock.now = start + 59.5
    refusal(validator, "refused-for-a-minute")
    assert iam.calls["validate"] == calls
    clock.now = start + 60
    refusal(validator, "refused-for-a-minute")
    assert iam.calls["validate"] == calls + 1


def test_remembered_refusals_keep_no_traceback_and_are_bounded(iam, clock):
    # A kept traceback would keep its frames, the token among their locals, for a minute.
    validator = FlexTokenValidator(iam.url, ACCOUNT_SID, AUTH_TOKEN, clock=clock, cache_size=3)
    for n in range(5):
        refusal(validator, f"bad-token-{n}")
    kept = [error for _, error in validator._refused.values()]
    assert len(kept) == 3 and all(error.__traceback__ is None for error in kept)


def test_a_full_refusal_memory_forgets_the_oldest_refusal(iam, clock):
    """Not the newest."""
    validator = FlexTokenValidator(iam.url, ACCOUNT_SID, AUTH_TOKEN, clock=clock, cache_size=2)
    for n in range(3):
        refusal(validator, f"refused-{n}")
    calls = iam.calls["validate"]
    refusal(validator, "refused-2")          # the newest is still remembered: no IAM call
    refusal(validator, "refused-1")
    assert iam.calls["validate"] == calls
    refusal(validator, "refused-0")          # the oldest was given up: IAM is asked again
    assert iam.calls["validate"] == calls + 1


def test_what_the_validator_remembers_holds_no_token_only_its_digest(iam, validator):
    """A heap dump of a running server shows no Flex token: the caches are keyed by a digest."""
    good, bad = iam.issue_token("ada@example.com"), "not-a-token-" + "x" * 40
    validator.validate(good)
    refusal(validator, bad)
    remembered = repr((validator._cache, validator._refused, validator._flights))
    assert good not in remembered and bad not in remembered
    assert set(validator._cache) == {validator._key(good)} and set(validator._refused) == {validator._key(bad)}
    assert validator._key(good) != validator._key(bad)
