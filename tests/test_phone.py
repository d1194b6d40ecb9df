"""Phone parsing, the written variants Salesforce users type, and suffix matching."""
from __future__ import annotations

import pytest

from sfdcflex.runtime.errors import BadRequest
from sfdcflex.phone import (CALLING_CODES, COUNTRIES, PhoneNumber, parse_phone,
                            phone_matches, written_variants)

US = PhoneNumber("1", "4155550101")
UK = PhoneNumber("44", "2079460958")


@pytest.mark.parametrize("text", [
    "+14155550101", "+1 (415) 555-0101", "(415) 555-0101", "415.555.0101", "415 555 0101",
    "1-415-555-0101", "1 (415) 555-0101", "4155550101", "001 415 555 0101", "  415/555-0101 ",
])
def test_us_numbers_in_every_common_format(text):
    assert parse_phone(text) == US
    assert parse_phone(text).e164 == "+14155550101"


@pytest.mark.parametrize("text, country, expected", [
    ("+44 20 7946 0958", "US", UK),
    ("+44 (0)20 7946 0958", None, UK),
    ("0044 20 7946 0958", "US", UK),
    ("020 7946 0958", "GB", UK),
    ("020 7946 0958", "gb", UK),
    ("030 1234567", "DE", PhoneNumber("49", "301234567")),
    ("02 9876 5432", "AU", PhoneNumber("61", "298765432")),
    ("01 23 45 67 89", "FR", PhoneNumber("33", "123456789")),
    ("06 1234 5678", "IT", PhoneNumber("39", "0612345678")),   # Italy keeps its leading 0
    ("8 (495) 123-45-67", "RU", PhoneNumber("7", "4951234567")),
    ("800 555 3535", "RU", PhoneNumber("7", "8005553535")),    # toll-free, not a trunk 8
    ("+353 1 234 5678", "US", PhoneNumber("353", "12345678")),
    ("+7 495 123 45 67", "US", PhoneNumber("7", "4951234567")),
])
def test_international_and_national_formats(text, country, expected):
    assert parse_phone(text, country) == expected


@pytest.mark.parametrize("text", [
    "415-555-0101 ext 23", "415-555-0101 ext. 23", "(415) 555-0101x23", "415 555 0101 X 7",
    "415-555-0101 extension 9",
])
def test_extensions_are_dropped(text):
    assert parse_phone(text) == US


@pytest.mark.parametrize("value, fragment", [
    (14155550101, "string"),
    (None, "string"),
    (["+14155550101"], "string"),
    ("", "missing"),
    ("555-01", "fewer than 7"),
    ("+1 415 555 0101 2222 333", "more than 15"),
    ("415-CALL-NOW", "only digits"),
    ("+1 415 555 0101 OR 1=1", "only digits"),
    ("++14155550101", "only digits"),
    ("415+5550101", "only digits"),
    ("+0 415 555 0101", "country calling code"),
    ("+28 1234 5678", "country calling code"),
    ("\u0664\u0661\u0665\u0665\u0665\u0665\u0660\u0661\u0660\u0661", "only digits"),
    ("1" * 5000, "longer than"),
])
def test_bad_input_is_a_400_naming_the_problem(value, fragment):
    with pytest.raises(BadRequest) as caught:
        parse_phone(value)
    assert caught.value.status == 400
    assert fragment in caught.value.message
    assert "1111111111" not in caught.value.message


@pytest.mark.parametrize("country", ["ZZ", "USA", 1, ["US"]])
def test_unknown_or_malformed_country_is_a_400(country):
    with pytest.raises(BadRequest, match="country"):
        parse_phone("415 555 0101", country)


def test_an_empty_country_means_us():
    """An empty country defaults to US, as a missing one does."""
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
    """Each refusal is an invalid_phone 400 whose message names the problem in these words."""
    with pytest.raises(BadRequest) as refused:
        parse_phone(value, country)
    assert refused.value.message == message and refused.value.code == "invalid_phone"


def test_the_length_and_digit_bounds_are_inclusive():
    """64 characters, 7 digits and 15 digits are all still accepted."""
    sixty_four = "+1" + " " * 52 + "4155550101"
    assert len(sixty_four) == 64 and parse_phone(sixty_four).national == "4155550101"
    assert parse_phone("+1 234567") == PhoneNumber("1", "234567")                  # 7 digits
    assert parse_phone("+1 23456789012345") == PhoneNumber("1", "23456789012345")  # 15 digits


def test_only_the_first_bracketed_zero_is_a_trunk_prefix():
    """Only the first "(0)" is removed as a trunk prefix."""
    # The second "(0)" is a digit the caller typed: it stays.
    assert parse_phone("+44 (0)20 (0)7946 0958") == PhoneNumber("44", "20079460958")


def test_a_stored_number_of_64_characters_is_still_compared():
    """A stored number of exactly 64 characters is compared, not treated as too long."""
    number = parse_phone("415 555 0101")
    stored = "415.555.0101" + " " * 52
    assert len(stored) == 64 and phone_matches(stored, number)
    assert not phone_matches(stored + " ", number)


def test_calling_code_table_is_prefix_free_and_covers_every_country():
    for code in CALLING_CODES:
        assert not any(other != code and other.startswith(code) for other in CALLING_CODES), code
    assert len(COUNTRIES) > 240
    for iso, country in COUNTRIES.items():
        assert country.calling_code in CALLING_CODES, iso


def test_us_written_variants_are_the_documented_list():
    assert written_variants(US) == [
        "(415) 555-0101", "415-555-0101", "415.555.0101", "4155550101", "+14155550101",
        "+1 415 555 0101", "1-415-555-0101", "1 (415) 555-0101", "+1 (415) 555-0101",
        "415 555 0101",
    ]


def test_other_countries_variants_include_trunk_form_only_where_dialled():
    assert written_variants(UK) == ["+442079460958", "+44 2079460958", "2079460958",
                                    "02079460958"]
    italy = written_variants(PhoneNumber("39", "0612345678"))
    assert italy == ["+390612345678", "+39 0612345678", "0612345678"]
    variants = written_variants(PhoneNumber("33", "123456789"))
    assert len(variants) == len(set(variants))


def test_every_variant_parses_back_to_the_same_number():
    for variant in written_variants(US):
        assert parse_phone(variant) == US
    for variant in written_variants(UK):
        assert parse_phone(variant, "GB") == UK


@pytest.mark.parametrize("stored", [
    "+1 (415) 555-0101", "415.555.0101", "14155550101", "555-0101", "415-555-0101 x12",
])
def test_stored_numbers_that_match(stored):
    assert phone_matches(stored, US)


@pytest.mark.parametrize("stored", [
    "415.555.0102", "+1 (415) 555-0191", "0101", "", None, "555-010", "+1 212 555 0101 0",
])
def test_stored_numbers_that_do_not_match(stored):
    assert not phone_matches(stored, US)


def test_uk_matching_with_trunk_prefix_and_short_national_numbers():
    assert phone_matches("020 7946 0958", UK)
    assert phone_matches("+44 (0)20 7946 0958", UK)
    assert not phone_matches("020 7946 0959", UK)
    st_helena = PhoneNumber("290", "22222")
    assert phone_matches("+290 22222", st_helena)
    assert not phone_matches("22222", st_helena)   # too few digits to be sure


def test_an_unknown_country_is_refused_even_for_international_numbers():
    with pytest.raises(BadRequest):
        parse_phone("+1 415 555 0101", "Narnia")


def test_a_bad_phone_says_invalid_phone(crm):
    """The error code README documents, for every way a phone can be bad, through /get-contact."""
    token = crm.token("alice@example.com")
    for body in ({"phone": "+999 1234"}, {"phone": "415 555 0101", "country": "ZZ"},
                 {"phone": "415 555 0101", "country": "USA"}, {"phone": 4155550101}):
        answer = crm.post("/get-contact", {"Token": token, **body})
        assert answer.status == 400 and answer.json()["error"] == "invalid_phone", (body, answer.body)
