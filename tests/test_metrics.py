"""The integration's instruments in process (sfdcflex/metrics.py), where a wire test cannot reach
every way: which Flex token checks count as answered from memory, asked of IAM, or refused by
either. (The counters end to end, over HTTP: tests/functions/test_metrics.py.)"""
from __future__ import annotations

import pytest

from sfdcflex.clients.errors import TokenMissing, TokenRefused
from sfdcflex.metrics import CountedFlexChecks, Metrics


class FakeValidator:
    """Answers each token by a table: an agent and whether memory answered, or an error."""

    def __init__(self, answers: dict) -> None:
        self.answers, self.clients = answers, []

    def remembered(self, token):
        answer = self.answers[token]
        if isinstance(answer, Exception):
            raise answer
        agent, cached = answer
        return agent if cached else None

    def validate_with_source(self, token, client=""):
        self.clients.append(client)
        answer = self.answers[token]
        if isinstance(answer, Exception):
            raise answer
        return answer


def _counts(metrics: Metrics) -> dict[str, float]:
    return {"memory": metrics.flex_from_memory.value, "iam": metrics.flex_asked.value,
            "refused by memory": metrics.flex_refused_by_memory.value,
            "refused by iam": metrics.flex_refused_by_iam.value}


def test_each_check_counts_once_by_where_its_answer_came_from():
    metrics = Metrics()
    checks = CountedFlexChecks(FakeValidator({
        "known": ("ada", True), "new": ("bob", False), "missing": TokenMissing("no token"),
        "refused": TokenRefused("not valid")}), metrics)
    assert checks.remembered("known") == "ada"
    assert checks.remembered("new") is None                      # not an answer: not counted
    assert checks.validate_with_source("known", "10.0.0.1") == ("ada", True)  # a flight's answer
    assert checks.validate_with_source("new") == ("bob", False)
    assert checks.validate("new", "10.0.0.2") == "bob"
    for token, way in (("missing", checks.remembered), ("refused", checks.remembered),
                       ("refused", checks.validate_with_source)):
        with pytest.raises((TokenMissing, TokenRefused)):
            way(token)
    assert _counts(metrics) == {"memory": 2, "iam": 2, "refused by memory": 2, "refused by iam": 1}
    assert checks.validator.clients == ["10.0.0.1", "", "10.0.0.2", ""]   # the caller's address passed on
