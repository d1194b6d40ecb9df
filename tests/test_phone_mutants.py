"""Phone parsing behaviour that mutation testing found unchecked (mutmut 3.8, issue 18).

Each test names the surviving mutants it kills; the equivalent ones are listed in README's
reliability report.
"""
from __future__ import annotations

import pytest

from sfdcflex.phone import PhoneNumber, parse_phone, phone_matches
from sfdcflex.runtime.errors import BadRequest


def test_an_empty_country_means_us():
    """_country mutant 4 (only None defaulted)."""
    assert parse_phone("415 555 0101", "") == PhoneNumber("1", "4155550101")
    assert parse_phone("415 555 0101", None) == PhoneNumber("1", "4155550101")


@pytest.mark.parametrize("value,country,message", [
    ("415 555 0101", 44, "country must be an ISO 3166 two-letter code such as US or GB"),
    ("415 555 0101", "ZZ", "country is not a known ISO 3166 two-letter code"),
    ("+999 1234 5678", "US", "phone number starts with an unknown country calling code"),
    (4155550101, "US", "phone must be a string"),
    ("   ", "US", "phone is missing"),
    ("415-555-O1O1", "US", "phone may contain only digits, spaces, - . ( ) / and one leading +"),
    ("1" * 65, "US", "phone is longer than 64 characters"),
    ("+1 23456", "US", "phone has fewer than 7 digits"),
    ("+1 234567890123456", "US", "phone has more than 15 digits"),
])
def test_each_refusal_says_what_is_wrong_in_words(value, country, message):
    """Message mutants of _country (10, 11, 18, 19), _split_calling_code (6), parse_phone (5, 12, 24)."""
    with pytest.raises(BadRequest) as refused:
        parse_phone(value, country)
    assert refused.value.message == message and refused.value.code == "invalid_phone"


def test_the_length_and_digit_bounds_are_inclusive():
    """parse_phone mutants 14 (64 characters refused), 61 (7 digits refused), 63 (15 refused)."""
    sixty_four = "+1" + " " * 52 + "4155550101"
    assert len(sixty_four) == 64 and parse_phone(sixty_four).national == "4155550101"
    assert parse_phone("+1 234567") == PhoneNumber("1", "234567")                  # 7 digits
    assert parse_phone("+1 23456789012345") == PhoneNumber("1", "23456789012345")  # 15 digits


def test_only_the_first_bracketed_zero_is_a_trunk_prefix():
    """parse_phone mutants 35 and 38 (every "(0)" removed)."""
    # The second "(0)" is a digit the caller typed: it stays.
    assert parse_phone("+44 (0)20 (0)7946 0958") == PhoneNumber("44", "20079460958")


def test_a_stored_number_of_64_characters_is_still_compared():
    """phone_matches mutant 3 (64 characters treated as too long)."""
    number = parse_phone("415 555 0101")
    stored = "415.555.0101" + " " * 52
    assert len(stored) == 64 and phone_matches(stored, number)
    assert not phone_matches(stored + " ", number)
