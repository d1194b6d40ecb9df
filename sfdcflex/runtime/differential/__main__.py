"""python -m sfdcflex.runtime.differential --record | --against URL

--record installs twilio-run and @twilio/runtime-handler at the pinned versions with npm into a
temporary folder (or --npm-dir), serves the fixture project with them, sends every case of the
corpus and writes the normalised answers to the fixture the tests replay (no Node needed there).
--against URL sends the corpus to a running sfdcflex runtime serving the same project
(`python run.py --functions tests/fixtures/differential/functions`) and prints every difference the
table does not allow.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

from .corpus import corpus
from .differences import PROJECT, RECORDING, RUNTIME_HANDLER, TWILIO_RUN, load_recording, record_answers, replay

SECRET = "differential-token"   # the fixture project's AUTH_TOKEN; a test value, nothing real


def _install(folder: Path) -> None:
    if (folder / "node_modules" / "twilio-run").is_dir():
        return
    subprocess.run(["npm", "init", "-y"], cwd=folder, check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["npm", "install", "--no-audit", "--no-fund", f"twilio-run@{TWILIO_RUN}",
                    f"@twilio/runtime-handler@{RUNTIME_HANDLER}"], cwd=folder, check=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(port: int, process: subprocess.Popen, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"twilio-run exited with status {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"twilio-run did not listen on port {port} within {seconds:g} s")


class _TwilioRun:
    """twilio-run serving the project, started again when it falls over: with its default forked
    function process, a function that calls back twice crashes the whole server
    (ERR_HTTP_HEADERS_SENT) once its first answer is out, or not, as the fork's messages race."""

    def __init__(self, folder: Path, project: Path) -> None:
        self.command = [str(folder / "node_modules" / ".bin" / "twilio-run"), "start", "--port", "0",
                        "--no-live", "--log-level", "error"]
        self.project = project
        self.process: subprocess.Popen | None = None
        self.port = 0

    def start(self) -> None:
        self.stop()
        self.port = _free_port()
        self.command[3] = str(self.port)
        self.process = subprocess.Popen(self.command, cwd=self.project, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, env={**os.environ, "FORCE_COLOR": "0"})
        _wait_for(self.port, self.process)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


def record(npm_dir: Path | None) -> None:
    folder = npm_dir or Path(tempfile.mkdtemp(prefix="twilio-run-"))
    folder.mkdir(parents=True, exist_ok=True)
    _install(folder)
    project = folder / "project"
    shutil.rmtree(project, ignore_errors=True)
    shutil.copytree(PROJECT, project)   # inside the npm folder: twilio-run finds its runtime handler
    (project / "package.json").write_text(json.dumps({  # twilio-run reads the project's package.json
        "name": "differential", "version": "1.0.0", "private": True,
        "dependencies": {"@twilio/runtime-handler": RUNTIME_HANDLER}}))
    server = _TwilioRun(folder, project)
    answers = []
    try:
        for case in corpus():
            for attempt in (1, 2):
                if server.process is None or server.process.poll() is not None:
                    server.start()
                try:
                    answer = record_answers([case], ("127.0.0.1", server.port), SECRET, {
                        str(project): "{project}", str(folder): "{npm}", f"localhost:{server.port}": "{server}"})
                except ConnectionRefusedError:
                    answer = []
                if answer and answer[0]["answer"]["status"]:
                    answers += answer
                    break
                if attempt == 2:   # refused, or closed unanswered, by a fresh server too
                    raise SystemExit(f"twilio-run gave no answer to {case.name!r}")
                server.start()   # it fell over during the request before, or just after
    finally:
        server.stop()
    RECORDING.write_text(json.dumps({
        "recorded_with": {"twilio-run": TWILIO_RUN, "@twilio/runtime-handler": RUNTIME_HANDLER,
                          "node": subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()},
        "cases": answers}, indent=1, ensure_ascii=False) + "\n")
    print(f"recorded {len(answers)} answers from twilio-run {TWILIO_RUN} into {RECORDING}")


def against(url: str) -> int:
    """Replay the recording against `url`; 0 when nothing differs but what the table allows."""
    parts = urlsplit(url)
    replayed = replay(load_recording(), (parts.hostname, parts.port or 80), SECRET)
    problems = [line for one in replayed for line in one.differences()]
    for problem in problems:
        print(problem)
    print(f"{len(replayed)} requests; {len(problems)} difference(s) the table does not allow")
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sfdcflex.runtime.differential", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--record", action="store_true", help="record twilio-run's answers (needs Node and npm)")
    mode.add_argument("--against", metavar="URL", help="compare a running runtime with the recording")
    parser.add_argument("--npm-dir", type=Path, default=None,
                        help="folder for the npm install (default: a new temporary folder)")
    args = parser.parse_args(argv)
    if args.record:
        record(args.npm_dir)
        return 0
    return against(args.against)


if __name__ == "__main__":
    sys.exit(main())
