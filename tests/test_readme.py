"""The READMEs' promises that a test can keep: every command they show is run by a named test
(or exempted, with the reason), CI runs README's test command, documented options and settings
exist, and the mutation table is made by its generator."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from sfdcflex.cli import parse_args
from tests.support import mutation_table

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = ("README.md", "functions/README.md", "sfdcflex/runtime/README.md", "sfdcflex/demo/README.md",
             "sfdcflex/bench/README.md", "tests/README.md")
README = (ROOT / "README.md").read_text()

# Every command shown in a code block of the four documents, and the test that runs it. A block
# that holds no command (a file, a diagram, a command's output) is one entry, named by its first
# line. Tests are named by function, found by `def name(` anywhere under tests/, so that a test
# may move between files.
RUN_BY = {
    # README.md
    "python run.py --demo": "test_demo_starts_prints_routes_serves_and_stops_on_ctrl_c",
    "python run.py --demo --trace": "test_demo_trace_prints_each_step_of_a_link_as_it_happens",
    'python -m pip install -q "pytest>=8" "pytest-cov>=5" && python -m pytest':
        "test_ci_runs_exactly_the_readme_test_command",   # CI runs it, .ci/run's last line
    "Agent panel: http://127.0.0.1:3000/": "test_demo_starts_prints_routes_serves_and_stops_on_ctrl_c",
    # Parsed by run.py's own parser, not served: 0.0.0.0 would listen beyond loopback; the
    # reliability tests serve `run.py --env FILE --port 0` (tests/support/processes.py).
    "python run.py --env .env --host 0.0.0.0 --port 3000": "test_every_option_shown_exists",
    "python run.py [--demo] [--host 127.0.0.1] [--port 3000] [--env .env] [--functions functions]":
        "test_every_option_shown_exists",
    "# the plugin's .env, in its own folder (read when the plugin is built)":
        "test_the_original_plugin_links_and_looks_up_through_run_py",
    "python3 -m venv /opt/sfdcflex/venv": "test_install_gives_a_working_sfdcflex_command",
    "/opt/sfdcflex/venv/bin/python -m pip install .": "test_install_gives_a_working_sfdcflex_command",
    "/opt/sfdcflex/venv/bin/sfdcflex --version": "test_install_gives_a_working_sfdcflex_command",
    "/opt/sfdcflex/venv/bin/sfdcflex --env /etc/sfdcflex/sfdcflex.env --check":
        "test_install_gives_a_working_sfdcflex_command",
    "python run.py --demo --print-env rehearsal.env":
        "test_rehearsal_commands_start_a_real_server_against_the_demo_stand_ins",
    "python run.py --env rehearsal.env --port 3001":
        "test_rehearsal_commands_start_a_real_server_against_the_demo_stand_ins",
    "[Unit]": "test_the_systemd_unit_starts_serves_and_stops_cleanly",
    "/opt/sfdcflex/venv/bin/python -m pip install gunicorn waitress":
        "test_wsgi_servers_started_with_readme_commands_serve_and_log",
    "PUBLIC_URL=https://crm.example.com /opt/sfdcflex/venv/bin/gunicorn --bind 127.0.0.1:3000 --workers 2"
    " --threads 8 'sfdcflex.wsgi:create_app()'": "test_wsgi_servers_started_with_readme_commands_serve_and_log",
    "PUBLIC_URL=https://crm.example.com /opt/sfdcflex/venv/bin/waitress-serve --listen=127.0.0.1:3000"
    " --threads=8 --call sfdcflex.wsgi:create_app": "test_wsgi_servers_started_with_readme_commands_serve_and_log",
    "server {": "test_the_nginx_snippet_passes_what_sfdcflex_relies_on",
    "map $uri $sfdcflex_open {": "test_the_nginx_snippet_passes_what_sfdcflex_relies_on",
    'python3 -c "import secrets; print(secrets.token_urlsafe(48))"':
        "test_the_state_secret_command_makes_a_secret_long_enough",
    'python -m pytest -m "not slow"': "test_the_everyday_command_leaves_out_exactly_the_slow_tests",
    # A mutmut run takes hours: these check the settings and that every name given to mutmut is
    # a module or function that exists.
    'python -m pip install -q "mutmut>=3.8,<3.9" && nice mutmut run --max-children 2': "test_mutmut_is_set_up_as_readme_says",
    "nice mutmut run --max-children 2": "test_every_mutant_name_shown_names_existing_code",
    "scrape_configs:": "test_the_readme_scrape_config_and_alert_rules_name_what_metrics_exposes",
    "groups:": "test_the_readme_scrape_config_and_alert_rules_name_what_metrics_exposes",
    "2026-12-06 10:42:07 INFO audit link flex_user=alice@example.com sfdc_user=alice@example.com"
    " instance=crm-1/4242 at=2026-12-06T09:42:07Z": "test_the_readme_shows_the_line_a_link_writes",
    # sfdcflex/runtime/README.md
    "from sfdcflex.runtime import Response": "test_the_runtime_readme_example_function_answers",
    "python -m sfdcflex.runtime.differential --against http://127.0.0.1:3000":
        "test_run_py_serves_a_functions_folder_and_its_assets_as_twilio_run_does",
    # sfdcflex/bench/README.md
    "python -m sfdcflex.bench [--quick] [--latency] [--client auto|wrk|python] [--against REF] [--out bench.json]":
        "test_a_tiny_run_reports_every_scenario_and_mode_beside_the_against_commit",
    "python -m sfdcflex.bench --hostile [--rounds 3] [--duration 2] [--out hostile.json]":
        "test_the_hostile_scenarios_run_end_to_end_and_stop_their_servers",
    "python -m sfdcflex.bench.hosts [--rounds 3] [--duration 2] [--client auto|wrk|python]":
        "test_the_serving_choices_benchmark_runs_and_reports_every_host",
    "python -m sfdcflex.bench.cold [--samples 300] [--children 2] [--against REF]":
        "test_the_probe_serves_every_scenario_in_a_child_per_tree",
    "python -m sfdcflex.bench.parts [--samples 300] [--flush-mib 48]":
        "test_every_part_is_on_the_hits_path_and_timed",
    # tests/README.md
    "python -m pytest": "test_ci_runs_exactly_the_readme_test_command",
    "python -m pytest --cov=sfdcflex --cov-report=term-missing:skip-covered":
        "test_the_coverage_command_reports_the_package",
    "python -m tests.support.mutation_table --write tests/README.md":
        "test_the_mutation_table_command_writes_between_the_markers",
}
EXEMPT = {
    "agent desktop (Flex plugin, or the demo panel)": "a diagram of the data flow",
    "agent desktop  POST /log-call {Token, contact_id, call_sid, duration, disposition, notes}":
        "a diagram of the data flow",
    "run.py                entry point: python run.py [--demo] (sfdcflex/cli.py); python -m sfdcflex is the same":
        "a map of the folders (tests/test_layout.py checks the imports between them)",
    "hostile load: medians of 3 runs, fresh runtime each run": "what the command above printed on 6 December 2026",
    "python -m sfdcflex.runtime.differential --record":
        "needs Node and npm (it installs twilio-run); tests/runtime/test_differential.py replays what it wrote",
    "tests/runtime/          the runtime's modules (app, event, response, routes, cors, signature,":
        "a map of the test folders",
}
# A line of a code block is a command when, after any NAME=value assignments, it starts with
# one of these programs (or a path to one); continuation lines are indented deeper.
PROGRAMS = ("python", "python3", "nice", "sfdcflex", "mutmut", "pip", "pip3", "gunicorn", "waitress-serve",
            "systemctl", "journalctl", "curl", "wget", "cp", "mv", "rm", "mkdir", "apt-get", "useradd",
            "twilio", "git", "bash", "sh", "sudo", "nginx", "wrk", "chromium", "cd", "export")
COMMAND = re.compile(r"(?:[A-Z_]+=\S+\s+)*(?:[/.~]\S*/)?(?:%s)(?:\s|$)" % "|".join(map(re.escape, PROGRAMS)))


@dataclass
class Shown:
    """A command (or a command-free block) shown in a document: its first line, and all of it."""

    document: str
    key: str
    text: str


def code_blocks(text: str) -> list[list[str]]:
    """The lines of each fenced or indented code block, fences and common indentation removed."""
    blocks, lines, index = [], text.splitlines(), 0
    while index < len(lines):
        line = lines[index]
        fence = re.match(r"( *)```", line)
        if fence:
            end = next(i for i in range(index + 1, len(lines)) if lines[i].strip() == "```")
            blocks.append([body[len(fence.group(1)):] for body in lines[index + 1:end]])
            index = end + 1
        elif line.startswith("    ") and (index == 0 or not lines[index - 1].strip()):
            end = index
            while end < len(lines) and (lines[end].startswith("    ") or not lines[end].strip()):
                end += 1
            blocks.append([body[4:] for body in lines[index:end]])
            index = end
        else:
            index += 1
    return [[line.rstrip() for line in block if line.strip()] for block in blocks]


def shown(document: str) -> list[Shown]:
    found = []
    for block in code_blocks((ROOT / document).read_text()):
        if not any(COMMAND.match(line) for line in block):
            found.append(Shown(document, block[0].strip(), "\n".join(block)))
            continue
        for line in block:
            if COMMAND.match(line):
                found.append(Shown(document, line.strip(), line.strip()))
            elif line.startswith((" ", "\t")) and found and found[-1].document == document:
                found[-1].text += " " + line.strip()   # a continuation of the command above
    return found


def key_of(entry: Shown) -> str:
    """The table's key for an entry: its first line, up to the first mutant name given to mutmut
    (a mutmut command is named by its program and options, not its long list of names)."""
    return entry.key.split(' "sfdcflex.', 1)[0]


ALL_SHOWN = [entry for document in DOCUMENTS for entry in shown(document)]


def test_every_command_shown_is_run_by_a_test_or_exempted():
    keys = {key_of(entry) for entry in ALL_SHOWN}
    unaccounted = sorted(f"{entry.document}: {entry.key}" for entry in ALL_SHOWN
                         if key_of(entry) not in RUN_BY and key_of(entry) not in EXEMPT)
    assert not unaccounted, f"add each to RUN_BY with the test that runs it, or to EXEMPT with why: {unaccounted}"
    assert not set(RUN_BY) & set(EXEMPT)
    stale = sorted((set(RUN_BY) | set(EXEMPT)) - keys)
    assert not stale, f"no document shows these any more: {stale}"


def test_every_test_the_table_names_exists():
    defined = set()
    for path in (ROOT / "tests").rglob("*.py"):
        defined |= set(re.findall(r"^\s*def (test_\w+)\(", path.read_text(), re.M))
    missing = sorted(set(RUN_BY.values()) - defined)
    assert not missing, f"RUN_BY names tests that no file under tests/ defines: {missing}"


def test_the_documents_show_the_commands_this_table_expects():
    """The reading of code blocks itself: an indented block, a fenced one inside a list, a
    command's continuation lines and a block with no command all come out as entries."""
    usage = next(entry for entry in ALL_SHOWN if entry.key.startswith("python run.py [--demo]"))
    assert "[--check] [--print-env [FILE]]" in usage.text
    secret = [entry for entry in ALL_SHOWN if "secrets.token_urlsafe" in entry.key]
    assert len(secret) == 1 and secret[0].document == "README.md"
    assert sum(entry.key == "[Unit]" for entry in ALL_SHOWN) == 1
    # Every document with a code block is read (the functions' and the demo's pages have none).
    assert {entry.document for entry in ALL_SHOWN} == set(DOCUMENTS) - {
        "functions/README.md", "sfdcflex/demo/README.md"}


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_link_between_the_documents_arrives():
    for document in DOCUMENTS:
        text = (ROOT / document).read_text()
        targets = re.findall(r"\]\(([^)\s]+)\)", text) + re.findall(r'src="([^"]+)"', text)
        for target in (t for t in targets if "://" not in t):
            path, _, anchor = target.partition("#")
            linked = (ROOT / document).parent / path if path else ROOT / document
            assert linked.exists(), (document, target)
            if anchor:
                headings = re.findall(r"^#+ (.+)$", linked.read_text(), re.M)
                assert anchor in {_anchor(heading) for heading in headings}, (document, target)


def test_ci_runs_exactly_the_readme_test_command():
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
                if line.strip() and not line.lstrip().startswith("#")]
    command = ci_lines[-1]
    assert "pytest" in command
    assert f"\n    {command}\n" in README


def test_every_documented_option_exists():
    usage = README.split("python run.py [--demo]", 1)[1].split("`python -m sfdcflex`", 1)[0]
    options = set(re.findall(r"--[a-z-]+", usage))
    assert {"--port", "--env", "--timeout", "--max-concurrency", "--live"} <= options
    known = {action for action in parse_args([])._get_kwargs()}
    names = {name.replace("_", "-") for name, _ in known}
    assert {o[2:] for o in options} <= names


OPTIONS_OF = {   # a program shown, and the file that declares its options
    "python -m sfdcflex.bench.hosts": "sfdcflex/bench/hosts.py",
    "python -m sfdcflex.bench.cold": "sfdcflex/bench/cold.py",
    "python -m sfdcflex.bench.parts": "sfdcflex/bench/parts.py",
    "python -m sfdcflex.bench": "sfdcflex/bench/main.py",
    "python -m tests.support.mutation_table": "tests/support/mutation_table.py",
}


def test_every_option_shown_exists():
    """Each command of run.py or the installed `sfdcflex` parses with run.py's own parser (and
    `[--option value]` usage lines name options it has); the benchmark's and the mutation
    table's options are ones their modules declare."""
    checked = 0
    for entry in ALL_SHOWN:
        words = entry.text.split()
        if words[:2] == ["python", "run.py"] or words[0].endswith("/sfdcflex"):
            if "[" in entry.text:
                names = {name.replace("_", "-") for name, _ in parse_args([])._get_kwargs()}
                assert set(re.findall(r"--([a-z-]+)", entry.text)) <= names, entry.key
            elif "--version" not in words:
                parse_args([word for word in words[2 if words[0] == "python" else 1:]])
            checked += 1
        for program, source in OPTIONS_OF.items():
            if entry.text.startswith(program + " "):
                declared = set(re.findall(r'add_argument\("(--[a-z-]+)"', (ROOT / source).read_text()))
                assert set(re.findall(r"--[a-z-]+", entry.text)) <= declared, entry.key
                checked += 1
                break
    assert checked >= 8


def test_every_setting_is_documented():
    from sfdcflex.config import SETTING_NAMES
    example = (ROOT / ".env.example").read_text()
    for name in SETTING_NAMES:
        assert name in README and f"{name}=" in example


def _defines(module: str, name: str) -> bool:
    """Whether sfdcflex's `module` (dotted) defines the function or class method `name`, as
    mutmut names them: `x_function` or `xǁClassǁmethod`, a trailing `*` for every one."""
    path = ROOT / (module.replace(".", "/") + ".py")
    if not path.exists():
        return False
    source = path.read_text()
    parts = name.rstrip("*").split("ǁ")
    if parts[0] == "x" and len(parts) >= 3:   # xǁClassǁmethod
        body = source.split(f"\nclass {parts[1]}", 1)
        return len(body) == 2 and (not parts[2] or f"def {parts[2]}" in body[1].split("\nclass ", 1)[0])
    return re.search(rf"^def {re.escape(parts[0][2:])}", source, re.M) is not None


def test_every_mutant_name_shown_names_existing_code():
    """mutmut takes any name; one naming code that moved or went would silently mutate nothing."""
    patterns = [pattern for entry in ALL_SHOWN if "mutmut run" in entry.text
                for pattern in re.findall(r'"(sfdcflex\.[^"]+)"', entry.text)]
    assert len(patterns) > 20
    for pattern in patterns:
        if pattern.endswith(".*"):
            assert (ROOT / (pattern[:-2].replace(".", "/") + ".py")).exists(), pattern
        else:
            module, _, name = pattern.rpartition(".x")
            assert _defines(module, "x" + name), pattern


def test_the_runtime_readme_example_function_answers():
    example = next(entry for entry in ALL_SHOWN if entry.key == "from sfdcflex.runtime import Response")
    namespace: dict = {}
    exec(compile(example.text, "sfdcflex/runtime/README.md", "exec"), namespace)
    answers = []
    namespace["handler"](None, {}, lambda error, payload: answers.append((error, payload)))
    [(error, response)] = answers
    reply = response.to_reply()
    assert error is None and reply.status == 201 and json.loads(reply.body) == {"ok": True}
    assert reply.header("Cache-Control") == "no-store"


@pytest.mark.slow   # a second pytest process, under coverage
def test_the_coverage_command_reports_the_package():
    """tests/README.md's coverage command, on one small test file rather than the whole suite."""
    command = "python -m pytest --cov=sfdcflex --cov-report=term-missing:skip-covered"
    assert any(entry.key == command for entry in ALL_SHOWN)
    done = subprocess.run([sys.executable, *command.split()[1:], "-q", "tests/test_cache.py"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert re.search(r"^TOTAL\s+\d+\s+\d+\s+\d+\s+\d+\s+\d+%", done.stdout, re.M), done.stdout[-2000:]


def _write_meta(mutants: Path, module: str, exit_codes: list[int | None]) -> None:
    meta = mutants / "sfdcflex" / (module + ".meta")
    meta.parent.mkdir(parents=True, exist_ok=True)
    name = "sfdcflex." + module[:-3].replace("/", ".")
    meta.write_text(json.dumps({"exit_code_by_key": {f"{name}.x_f__mutmut_{n}": code
                                                     for n, code in enumerate(exit_codes, 1)},
                                "durations_by_key": {}}))


def test_the_mutation_table_is_made_from_mutmuts_meta_files(tmp_path):
    mutants = tmp_path / "mutants"
    _write_meta(mutants, "cache.py", [1, 1, 0, 36, None])           # a timeout is noticed: killed
    _write_meta(mutants, "runtime/cors.py", [3, 0, 0, 33])          # 33, no tests: other
    _write_meta(mutants, "phone.py", [None, None])                  # not run at all: left out
    table = mutation_table.format_table(mutation_table.count_results(mutants))
    assert table == ("| module | mutants | killed | survived | not run | other |\n"
                     "|---|---|---|---|---|---|\n"
                     "| cache.py | 5 | 3 | 1 | 1 | 0 |\n"
                     "| runtime/cors.py | 4 | 1 | 2 | 0 | 1 |\n"
                     "| total | 9 | 4 | 3 | 1 | 1 |")


def test_the_mutation_table_in_tests_readme_has_the_generators_form():
    rows = mutation_table.between_markers((ROOT / "tests" / "README.md").read_text()).splitlines()
    assert "\n".join(rows[:2]) == mutation_table.HEADER
    numbers = [[int(n) for n in re.fullmatch(r"\| [a-z0-9_/]+\.py \| (\d+) \| (\d+) \| (\d+) \| (\d+) \| (\d+) \|",
                                               row).groups()] for row in rows[2:-1]]
    assert numbers and all(mutants == sum(rest) for mutants, *rest in numbers)
    total = re.fullmatch(r"\| total((?: \| \d+){5}) \|", rows[-1]).group(1)
    assert [int(n) for n in total.split("|")[1:]] == [sum(column) for column in zip(*numbers)]


def test_the_mutation_table_command_writes_between_the_markers(tmp_path, capsys):
    mutants = tmp_path / "mutants"
    _write_meta(mutants, "store.py", [1, 0])
    document = tmp_path / "README.md"
    document.write_text(f"before\n{mutation_table.START}\nold table\n{mutation_table.END}\nafter\n")
    command = next(entry.text for entry in ALL_SHOWN if entry.text.startswith("python -m tests.support.mutation_table"))
    argv = command.split()[3:]
    argv[argv.index("tests/README.md")] = str(document)
    assert mutation_table.main(["--mutants", str(mutants), *argv]) == 0
    written = document.read_text()
    assert written.startswith("before\n") and written.endswith("\nafter\n") and "old table" not in written
    assert "| store.py | 2 | 1 | 1 | 0 | 0 |" in mutation_table.between_markers(written)
    assert mutation_table.main(["--mutants", str(mutants)]) == 0
    assert "| total | 2 | 1 | 1 | 0 | 0 |" in capsys.readouterr().out
    assert mutation_table.main(["--mutants", str(tmp_path / "nothing")]) == 1
    # A run of one more module, merged: the rows of the earlier run stay, the total is recounted.
    again = tmp_path / "again"
    _write_meta(again, "slots.py", [1, 1, None])
    assert mutation_table.main(["--mutants", str(again), "--write", str(document), "--merge"]) == 0
    table = mutation_table.between_markers(document.read_text())
    assert "| slots.py | 3 | 2 | 0 | 1 | 0 |" in table and "| store.py | 2 | 1 | 1 | 0 | 0 |" in table
    assert table.splitlines()[-1] == "| total | 5 | 3 | 1 | 1 | 0 |"
