"""README's Deployment section as an operator reads it: its blocks, its commands, its install.

The commands are run with /opt/sfdcflex moved into a temporary folder and nothing of the test
runner's environment that could point sfdcflex elsewhere.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
DEPLOYMENT = README.split("\n## Deployment\n", 1)[1].split("\n## ", 1)[0]
OPT = "/opt/sfdcflex"
SETTINGS_FILE = "/etc/sfdcflex/sfdcflex.env"


def blocks(language: str) -> list[str]:
    """The fenced ```language blocks of the Deployment section, in order."""
    return [match.strip("\n") for match in
            re.findall(rf"^ *```{language}\n(.*?)^ *```$", DEPLOYMENT, re.S | re.M)]


def shell_lines(containing: str) -> list[str]:
    return [line.strip() for block in blocks("sh") for line in block.splitlines() if containing in line]


def clean_environment(home: Path) -> dict[str, str]:
    """The test runner's environment without anything that could point sfdcflex elsewhere."""
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("SFDC_", "TWILIO_", "TOKEN_", "LOG_", "PUBLIC_", "PYTHON"))}
    env["HOME"] = str(home)   # gunicorn keeps a control socket under $HOME
    return env


def split_command(line: str, opt: Path) -> tuple[dict[str, str], list[str]]:
    """`NAME=value ... program args` with /opt/sfdcflex moved: (the assignments, argv)."""
    words = shlex.split(line.replace(OPT, str(opt)))
    assignments = {}
    while re.fullmatch(r"[A-Z_]+=.*", words[0]):
        name, _, value = words.pop(0).partition("=")
        assignments[name] = value
    if words[0] == "python3":
        words[0] = sys.executable
    return assignments, words


def registry_reachable(python: Path, folder: Path) -> bool:
    probe = subprocess.run([str(python), "-m", "pip", "download", "-q", "--no-deps", "-d", str(folder),
                            "setuptools"], capture_output=True, text=True, timeout=300)
    return probe.returncode == 0


def install_as_readme_says(opt: Path) -> Path:
    """README's install commands, then its `pip install gunicorn waitress`, into `opt`, a temporary
    /opt/sfdcflex: a real install, from a copy of this checkout, with the registry pip is set up for
    (skips the tests needing it when that registry cannot be reached)."""
    source = opt / "checkout"
    for name in ("sfdcflex", "functions"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    install = [line for line in blocks("sh")[0].splitlines() if "--version" not in line]
    install += shell_lines("pip install gunicorn")
    env = clean_environment(opt)
    for line in install:
        _, argv = split_command(line, opt)
        done = subprocess.run(argv, cwd=source, env=env, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            probe = opt / "probe"
            probe.mkdir(exist_ok=True)
            if not registry_reachable(opt / "venv" / "bin" / "python", probe):
                pytest.skip(f"the package registry is unreachable, so `{line}` cannot run")
            pytest.fail(f"`{line}` failed:\n{done.stdout}\n{done.stderr}")
    return opt
