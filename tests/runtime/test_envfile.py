"""Parsing .env files: comments, export, quotes and escapes, CRLF, BOM, and errors that hide values."""
from __future__ import annotations

import pytest

from sfdcflex.runtime.envfile import parse_env, read_env_file
from sfdcflex.runtime.errors import ConfigError


def test_plain_lines_comments_blank_lines_and_export():
    text = """
# a comment
ACCOUNT_SID=AC123
export AUTH_TOKEN=abc
  SPACED  =  value with spaces  
EMPTY=
WITH_HASH=a#b
NOTE=value # trailing comment
"""
    assert parse_env(text) == {
        "ACCOUNT_SID": "AC123", "AUTH_TOKEN": "abc", "SPACED": "value with spaces",
        "EMPTY": "", "WITH_HASH": "a#b", "NOTE": "value",
    }


def test_double_quotes_honour_escapes_and_single_quotes_are_literal():
    text = r'''DOUBLE="line1\nline2 \"quoted\" back\\slash # not a comment"
SINGLE='raw \n stays # too'
AFTER="x" # comment after a quoted value
URL='https://example.com/?a=1&b=2'
'''
    assert parse_env(text) == {
        "DOUBLE": 'line1\nline2 "quoted" back\\slash # not a comment',
        "SINGLE": r"raw \n stays # too",
        "AFTER": "x",
        "URL": "https://example.com/?a=1&b=2",
    }


def test_crlf_line_ends_and_utf8_bom():
    assert parse_env("\ufeffA=1\r\nB=\"two\"\r\n") == {"A": "1", "B": "two"}


def test_later_assignment_wins():
    assert parse_env("A=1\nA=2\n") == {"A": "2"}


@pytest.mark.parametrize("line", [
    "JUSTANAME", "1BAD=x", "A B=x", 'Q="unterminated secretvalue', "S='open secretvalue",
    'T="done" secretvalue',
])
def test_malformed_line_names_file_and_line_but_not_the_value(line):
    with pytest.raises(ConfigError) as caught:
        parse_env(f"OK=1\n\n{line}\n", source="/srv/.env")
    message = str(caught.value)
    assert "/srv/.env line 3" in message
    assert "secretvalue" not in message


def test_read_env_file(tmp_path):
    path = tmp_path / ".env"
    path.write_bytes(b"\xef\xbb\xbfAUTH_TOKEN=abc\r\n")
    assert read_env_file(path) == {"AUTH_TOKEN": "abc"}


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="nope.env"):
        read_env_file(tmp_path / "nope.env")


def test_non_utf8_file_is_a_config_error(tmp_path):
    path = tmp_path / ".env"
    path.write_bytes(b"A=\xff\xfe\n")
    with pytest.raises(ConfigError, match="UTF-8"):
        read_env_file(path)


def test_the_shipped_example_parses_and_lists_every_setting():
    from pathlib import Path

    from sfdcflex.config import SETTING_NAMES

    example = read_env_file(Path(__file__).resolve().parents[2] / ".env.example")
    assert sorted(example) == sorted(SETTING_NAMES)


def test_every_broken_line_is_reported_at_once():
    with pytest.raises(ConfigError) as caught:
        parse_env('GOOD=1\nnot an assignment\nQUOTE="open\nALSO=fine\n', source="x.env")
    assert [p.split(" is not")[0] for p in caught.value.problems] == [
        "config: x.env line 2", "config: x.env line 3"]


def test_format_env_writes_what_parse_env_reads_back():
    from sfdcflex.runtime.envfile import format_env
    values = {"PLAIN": "https://127.0.0.1:3000", "EMPTY": "", "SPACES": "a b", "HASH": "a#b",
              "COMMENTLIKE": "x # y", "QUOTES": "say \"hi\" it's", "BACKSLASH": "a\\nb",
              "NEWLINE": "a\nb", "CR": "a\rb", "TAB": "a\tb", "EDGES": " padded "}
    text = format_env(values)
    assert parse_env(text) == values
    assert "PLAIN=https://127.0.0.1:3000\n" in text
    with pytest.raises(ValueError):
        format_env({"BAD NAME": "x"})
