"""Read `.env` files the way twilio-run and dotenv do: NAME=value lines, comments, quotes.

Errors name the file and line but never the value, which is often a secret.
"""
from __future__ import annotations

import re
from pathlib import Path

from .errors import ConfigError

_ASSIGNMENT = re.compile(r"\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)", re.DOTALL)
_DOUBLE_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"\s*(?:#.*)?', re.DOTALL)
_SINGLE_QUOTED = re.compile(r"'([^']*)'\s*(?:#.*)?", re.DOTALL)
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)


def read_env_file(path: Path) -> dict[str, str]:
    """The NAME=value pairs of a UTF-8 .env file; ConfigError if it is absent or malformed."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config: env file {path} does not exist") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config: env file {path} is not UTF-8 text") from None
    except OSError as error:
        raise ConfigError(f"config: cannot read env file {path}: {error.strerror}") from None
    return parse_env(text, source=str(path))


def parse_env(text: str, source: str = "<env>") -> dict[str, str]:
    """The NAME=value pairs in .env text; a later assignment of a name wins."""
    values: dict[str, str] = {}
    broken: list[str] = []
    for number, line in enumerate(text.removeprefix("\ufeff").splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        assignment = _ASSIGNMENT.fullmatch(line)
        value = _value(assignment.group(2)) if assignment else None
        if value is None:
            broken.append(f"config: {source} line {number} is not NAME=value "
                          "(check the quotes; values are not shown because they may be secret)")
        else:
            values[assignment.group(1)] = value
    if broken:
        raise ConfigError(*broken)
    return values


def _value(raw: str) -> str | None:
    """The value part of one line, or None when its quoting is broken."""
    raw = raw.strip()
    if raw.startswith('"'):
        quoted = _DOUBLE_QUOTED.fullmatch(raw)
        if quoted is None:
            return None
        return _ESCAPE.sub(lambda m: _ESCAPES.get(m.group(1), m.group(0)), quoted.group(1))
    if raw.startswith("'"):
        quoted = _SINGLE_QUOTED.fullmatch(raw)
        return quoted.group(1) if quoted else None
    # An unquoted value ends at " #": "a#b" keeps its hash, "a # note" does not.
    return re.split(r"\s#", raw, maxsplit=1)[0].rstrip()


def format_env(values: dict[str, str]) -> str:
    """NAME=value lines that parse_env reads back as `values`; quoted only where needed."""
    lines = []
    for name, value in values.items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ValueError(f"{name!r} cannot be a .env name")
        if _PLAIN_VALUE.fullmatch(value):
            lines.append(f"{name}={value}\n")
        else:
            escaped = "".join(_QUOTED_AS.get(char, char) for char in value)
            lines.append(f'{name}="{escaped}"\n')
    return "".join(lines)


# Written bare only when no character could be taken for a quote, a comment or a line end.
_PLAIN_VALUE = re.compile(r"[^\s\"'#\\]+(?: [^\s\"'#\\]+)*")
_QUOTED_AS = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}
