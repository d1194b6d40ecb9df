"""The mutation table of tests/README.md, made from mutmut's results rather than kept by hand.

mutmut 3.8 writes, beside each source file it copied into `mutants/`, a `<file>.meta` JSON file
whose `exit_code_by_key` maps every mutant of that file to the exit code of the tests run
against it (None: not run yet). This reads them, counts each module's mutants by outcome with
mutmut's own reading of the codes (mutmut/stats.py, `status_by_exit_code`), and prints the
markdown table, or writes it between the markers of tests/README.md:

    python -m tests.support.mutation_table [--mutants mutants] [--write tests/README.md] [--merge]

`--merge` keeps the rows of modules this run did not cover (a run of a few modules updates their
rows; the total is counted again).
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

START = "<!-- mutation-table:start -->"
END = "<!-- mutation-table:end -->"
HEADER = ("| module | mutants | killed | survived | not run | other |\n"
          "|---|---|---|---|---|---|")

# mutmut 3.8's status_by_exit_code: 1 and 3 are kills (3, pytest's internal error, too); a
# timeout is a mutant the tests noticed, which mutmut's score counts as killed; 0 survived;
# None was never run. Anything else (no tests, skipped, suspicious, a crash) is "other".
KILLED = {1, 3, 36, 24, -24, 152, 255}
SURVIVED = 0


@dataclass
class Counts:
    """One module's mutants by outcome."""

    killed: int = 0
    survived: int = 0
    not_run: int = 0
    other: int = 0

    @property
    def mutants(self) -> int:
        return self.killed + self.survived + self.not_run + self.other

    def add(self, exit_code: int | None) -> None:
        if exit_code is None:
            self.not_run += 1
        elif exit_code in KILLED:
            self.killed += 1
        elif exit_code == SURVIVED:
            self.survived += 1
        else:
            self.other += 1


def count_results(mutants: Path) -> dict[str, Counts]:
    """Each module's counts, named by its path under the package (`runtime/cors.py`); modules none
    of whose mutants were run are left out, since mutmut writes a file for every module it copied."""
    counts = {}
    for meta in sorted(mutants.rglob("*.py.meta")):
        module = meta.relative_to(mutants).as_posix()[:-len(".meta")]
        module = module.split("/", 1)[1] if "/" in module else module   # drop the package folder
        found = Counts()
        for exit_code in json.loads(meta.read_text())["exit_code_by_key"].values():
            found.add(exit_code)
        if found.not_run < found.mutants:
            counts[module] = found
    return counts


def format_table(counts: dict[str, Counts]) -> str:
    """The markdown table: one row a module, then the total."""
    rows = [HEADER]
    total = Counts()
    for module, found in counts.items():
        rows.append(_row(module, found))
        for name in ("killed", "survived", "not_run", "other"):
            setattr(total, name, getattr(total, name) + getattr(found, name))
    rows.append(_row("total", total))
    return "\n".join(rows)


def _row(module: str, found: Counts) -> str:
    return (f"| {module} | {found.mutants} | {found.killed} | {found.survived} | {found.not_run}"
            f" | {found.other} |")


def parse_table(table: str) -> dict[str, Counts]:
    """The module rows of a table `format_table` made (the total left out)."""
    counts = {}
    for line in table.splitlines()[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if len(cells) == 6 and cells[0] != "total":
            killed, survived, not_run, other = (int(cell) for cell in cells[2:])
            counts[cells[0]] = Counts(killed, survived, not_run, other)
    return counts


def between_markers(text: str) -> str:
    """What a document holds between the table's markers."""
    return text.split(START, 1)[1].split(END, 1)[0].strip("\n")


def replace_between_markers(text: str, table: str) -> str:
    before, rest = text.split(START, 1)
    after = rest.split(END, 1)[1]
    return f"{before}{START}\n{table}\n{END}{after}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.mutation_table",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--mutants", type=Path, default=Path("mutants"),
                        help="mutmut's folder (default: mutants)")
    parser.add_argument("--write", type=Path, default=None, metavar="DOCUMENT",
                        help="put the table between the markers of DOCUMENT instead of printing it")
    parser.add_argument("--merge", action="store_true",
                        help="with --write: keep DOCUMENT's rows of modules this run did not cover")
    args = parser.parse_args(argv)
    counts = count_results(args.mutants)
    if not counts:
        print(f"no mutant has been run under {args.mutants}", file=sys.stderr)
        return 1
    if args.merge and args.write is not None:
        counts = {**parse_table(between_markers(args.write.read_text())), **counts}
        counts = dict(sorted(counts.items()))
    table = format_table(counts)
    if args.write is None:
        print(table)
    else:
        args.write.write_text(replace_between_markers(args.write.read_text(), table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
