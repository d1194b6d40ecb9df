"""README's Deployment section, run as an operator would, so it cannot drift from the code.

The install commands run with /opt/sfdcflex moved into a temporary folder, once per session
(tests/system/conftest.py: a virtual environment with the built package, gunicorn and
waitress); the systemd unit's ExecStart, the gunicorn and waitress command lines, the nginx
snippet and the secret command run as written, with only ports (0), paths and the settings
file changed.
"""
from __future__ import annotations

import configparser
import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.crm import FLEX_URL, seed
from tests.support.deployment import (OPT, SETTINGS_FILE, blocks, clean_environment, shell_lines,
                                      split_command)
from tests.support.http import call
from tests.support.processes import Started

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def standins():
    from sfdcflex.demo.standins import IamStandIn, SalesforceStandIn, SyncStandIn
    sf, iam, sync = SalesforceStandIn(), IamStandIn(), SyncStandIn()
    for standin in (sf, iam, sync):
        standin.start()
    seed(sf, iam)
    yield sf, iam, sync
    for standin in (sf, iam, sync):
        standin.stop()


def write_settings(path: Path, standins, store: Path, **more: str) -> Path:
    from tests.support.processes import settings_for, write_env_file
    settings = settings_for(*standins, store)
    del settings["STATE_SECRET"]   # generated beside the store, as on a fresh install
    return write_env_file(path, {**settings, **more})


def link_and_look_up(url: str, iam, public_url: str | None = None) -> None:
    """Link alice through the server at `url` (whose callback is public_url's), then look up a caller."""
    from sfdcflex.demo.standins.salesforce import submit_consent
    public_url = public_url or url
    token = iam.issue_token("alice@example.com")
    start = call(url, "POST", "/auth", body={"Token": token, "origin": public_url})
    assert start.status == 200, start.body
    assert f"redirect_uri={public_url.replace(':', '%3A').replace('/', '%2F')}%2Foauth-callback" \
        in start.json()["authorize_url"]
    location = submit_consent(start.json()["authorize_url"], "alice@example.com")
    assert location.startswith(public_url + "/oauth-callback?"), location
    assert call(url, "GET", location[len(public_url):]).status == 200
    contact = call(url, "POST", "/get-contact", body={"Token": token, "phone": "(415) 555-0101"})
    assert contact.status == 200 and contact.json()["cust_name"] == "Ada Lovelace"


# --- the tests -------------------------------------------------------------------------------

def test_rehearsal_commands_start_a_real_server_against_the_demo_stand_ins(tmp_path):
    from sfdcflex.demo.standins.salesforce import submit_consent
    demo_line, rehearsal_line = shell_lines("rehearsal.env")
    env_file = tmp_path / "rehearsal.env"
    demo_argv = split_command(demo_line.replace("rehearsal.env", str(env_file)), Path(OPT))[1]
    demo = Started([sys.executable, *demo_argv[1:], "--port", "0"], cwd=ROOT, env=clean_environment(tmp_path))
    try:
        demo.wait_for(r"Rehearsal settings written to ")
        assert env_file.stat().st_mode & 0o777 == 0o600   # it holds the stand-ins' secrets
        iam_url = demo.wait_for(r"Twilio IAM stand-in \(Flex tokens\):\s+(\S+)").group(1)
        rehearsal_argv = split_command(rehearsal_line.replace("rehearsal.env", str(env_file))
                                       .replace("--port 3001", "--port 0"), Path(OPT))[1]
        rehearsal = Started([sys.executable, *rehearsal_argv[1:]], cwd=ROOT, env=clean_environment(tmp_path))
        try:
            url = rehearsal.wait_for(r"sfdcflex listening on (\S+)").group(1)
            token = call(iam_url, "POST", "/demo/token", body={"realm_user_id": "alice@sfdcflex.demo"}).json()["token"]
            start = call(url, "POST", "/auth", body={"Token": token, "origin": url}).json()
            location = submit_consent(start["authorize_url"], "alice@sfdcflex.demo")
            assert call(url, "GET", location[len(url):]).status == 200   # the rehearsing server's callback
            user = call(url, "POST", "/get-user", body={"Token": token})
            assert user.status == 200 and user.json()["sfdc_username"] == "alice@sfdcflex.demo"
        finally:
            assert rehearsal.stop() == 0
    finally:
        assert demo.stop() == 0


def test_setup_cfg_lists_every_package():
    listed = configparser.ConfigParser()
    listed.read(ROOT / "setup.cfg")
    packages = set(listed["options"]["packages"].split())
    found = {".".join(path.parent.relative_to(ROOT).parts) for path in (ROOT / "sfdcflex").rglob("__init__.py")}
    assert packages == found | {"sfdcflex.functions"}


def test_the_state_secret_command_makes_a_secret_long_enough():
    from sfdcflex.config import MIN_STATE_SECRET
    _, argv = split_command(shell_lines("secrets.token_urlsafe")[0], Path(OPT))
    made = [subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout.strip() for _ in range(2)]
    assert len(made[0]) >= MIN_STATE_SECRET and made[0] != made[1]


def test_rotating_the_state_secret_keeps_links_and_refuses_links_in_progress(crm_factory):
    from sfdcflex.demo.standins.salesforce import submit_consent
    before = crm_factory(STATE_SECRET="a" * 40)
    before.link("alice@example.com")
    started = before.post("/auth", {"Token": before.token("bob@example.com"), "origin": before.url})
    location = submit_consent(started.json()["authorize_url"], "bob@example.com")
    after = crm_factory(STATE_SECRET="b" * 40)   # restarted with the new secret, same token store
    alice = after.post("/get-user", {"Token": after.token("alice@example.com")})
    assert alice.status == 200 and alice.json()["sfdc_username"] == "alice@example.com"
    refused = call(after.url, "GET", location[len(before.url):])
    assert refused.status == 403 and b"invalid_state" in refused.body


@pytest.mark.slow
def test_install_gives_a_working_sfdcflex_command(opt, standins, tmp_path):
    env = clean_environment(tmp_path)
    version = shell_lines("sfdcflex --version")[0]
    from sfdcflex import __version__
    assert subprocess.run(split_command(version, opt)[1], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=60).stdout.strip() == f"sfdcflex {__version__}"
    where = subprocess.run([str(opt / "venv" / "bin" / "python"), "-c",
                            "from sfdcflex.assembly import default_functions_folder as f; print(f())"],
                           capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60).stdout.strip()
    assert where.startswith(str(opt)) and (Path(where) / "get-contact.py").is_file()
    settings = write_settings(tmp_path / "sfdcflex.env", standins, tmp_path / "store" / "tokens.json")
    check = shell_lines("--check")[0].replace(SETTINGS_FILE, str(settings))
    done = subprocess.run(split_command(check, opt)[1], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=60)
    assert done.returncode == 0 and "complete and valid" in done.stdout, done.stderr
    settings.write_text(settings.read_text().replace("SFDC_CLIENT_ID=", "SFDC_CLIENT_ID=\nSFDC_CLIEN_ID="))
    done = subprocess.run(split_command(check, opt)[1], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=60)
    assert done.returncode == 2 and "did you mean SFDC_CLIENT_ID?" in done.stderr


@pytest.mark.slow
def test_the_systemd_unit_starts_serves_and_stops_cleanly(opt, standins, tmp_path):
    unit = configparser.ConfigParser(interpolation=None, strict=False)
    unit.optionxform = str
    unit.read_string(blocks("ini")[0])
    service = unit["Service"]
    assert service["Restart"] == "on-failure" and service["KillSignal"] == "SIGTERM"
    assert service["User"] not in ("", "root") and service["StateDirectory"]
    assert service["RestartPreventExitStatus"] == "2"   # what a configuration problem exits with
    assert float(service["TimeoutStopSec"]) > 10   # longer than the drain (--timeout, 10 s)
    state = tmp_path / "var-lib"   # %S, systemd's state folder; StateDirectory makes it
    (state / service["StateDirectory"]).mkdir(parents=True)
    settings = write_settings(tmp_path / "sfdcflex.env", standins, tmp_path / "not-used" / "tokens.json")
    command = service["ExecStart"].replace(SETTINGS_FILE, str(settings)).replace("--port 3000", "--port 0")
    env = clean_environment(tmp_path)
    name, _, value = service["Environment"].partition("=")
    env[name] = value.replace("%S", str(state))
    server = Started(split_command(command, opt)[1], env=env,
                     cwd=Path(service["WorkingDirectory"].replace("%S", str(state))))
    try:
        url = server.wait_for(r"sfdcflex listening on (\S+)").group(1)
        assert call(url, "GET", "/healthz").json()["status"] == "ok"
        link_and_look_up(url, standins[1])
        assert (state / "sfdcflex" / "tokens.json").is_file()   # TOKEN_STORE_PATH from the unit
        assert not (tmp_path / "not-used").exists()
        stopping = time.monotonic()
        assert server.stop(getattr(signal, service["KillSignal"])) == 0
        assert time.monotonic() - stopping < float(service["TimeoutStopSec"])
    finally:
        server.stop(signal.SIGKILL)
    assert re.search(r"INFO 200 POST /get-contact", "".join(server.output))


WSGI_SERVERS = {"gunicorn": r"Listening at: (http://127\.0\.0\.1:\d+)",
                "waitress-serve": r"Serving on (http://127\.0\.0\.1:\d+)"}


@pytest.mark.slow
@pytest.mark.parametrize("program", sorted(WSGI_SERVERS))
def test_wsgi_servers_started_with_readme_commands_serve_and_log(program, opt, standins, tmp_path):
    line = next(line for line in shell_lines(f"/bin/{program} ") if "PUBLIC_URL=" in line)
    assignments, argv = split_command(line.replace("127.0.0.1:3000", "127.0.0.1:0"), opt)
    write_settings(tmp_path / ".env", standins, tmp_path / "store" / "tokens.json")
    env = {**clean_environment(tmp_path), **assignments}
    if program == "waitress-serve":
        env["LOG_FORMAT"] = "json"
    server = Started(argv, cwd=tmp_path, env=env)
    try:
        url = server.wait_for(WSGI_SERVERS[program]).group(1)
        assert call(url, "GET", "/healthz").json()["status"] == "ok"
        link_and_look_up(url, standins[1], public_url=assignments["PUBLIC_URL"])
        # Written while the server runs, by the log writer of the worker that served it.
        logged = server.wait_for(r"200 POST /get-contact", timeout=5).string
        if program == "waitress-serve":
            assert json.loads(logged)["message"].startswith("200 POST /get-contact")
        # The last request's line is written even though SIGTERM follows at once.
        assert call(url, "POST", "/unlink", body={"Token": standins[1].issue_token("alice@example.com")}).status == 200
        server.stop()
    finally:
        server.stop(signal.SIGKILL)
    output = "".join(server.output)
    assert re.search(r"200 POST /unlink", output), output
    assert "Traceback" not in output and standins[0].client_secret not in output


@pytest.mark.slow
def test_a_wsgi_server_without_public_url_says_why_it_failed(opt, standins, tmp_path):
    line = next(line for line in shell_lines("/bin/gunicorn "))
    _, argv = split_command(line.replace("127.0.0.1:3000", "127.0.0.1:0"), opt)
    write_settings(tmp_path / ".env", standins, tmp_path / "store" / "tokens.json")
    done = subprocess.run(argv, cwd=tmp_path, env=clean_environment(tmp_path), capture_output=True,
                          text=True, timeout=60)
    assert done.returncode != 0
    assert "sfdcflex: config: PUBLIC_URL must be set when sfdcflex runs under a WSGI server" in done.stderr


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed (.ci/run installs it)")
def test_the_nginx_snippet_passes_what_sfdcflex_relies_on(standins, tmp_path):
    settings = write_settings(tmp_path / "test.env", standins, tmp_path / "store" / "tokens.json")
    server = Started([sys.executable, str(ROOT / "run.py"), "--env", str(settings), "--port", "0"],
                     cwd=ROOT, env=clean_environment(tmp_path))
    nginx = None
    try:
        upstream = server.wait_for(r"sfdcflex listening on (\S+)").group(1)
        port = free_port()
        site, zone = blocks("nginx")[:2]
        site = re.sub(r"^\s*ssl_certificate.*\n", "", site, flags=re.M)
        site = site.replace("listen 443 ssl;", f"listen 127.0.0.1:{port};")
        site = site.replace("http://127.0.0.1:3000", upstream)
        (tmp_path / "nginx.conf").write_text(
            # One process, so no worker drops to a user who cannot write the test's temp folder.
            f"daemon off;\nmaster_process off;\npid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\n"
            "events {}\nhttp {\n"
            f"access_log off;\nclient_body_temp_path {tmp_path}/body;\nproxy_temp_path {tmp_path}/proxy;\n"
            f"{zone}\n{site}\n}}\n")
        nginx = Started(["nginx", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
                        cwd=tmp_path, env=clean_environment(tmp_path))
        front = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                health = call(front, "GET", "/healthz", headers={"Host": "crm.example.com"})
                break
            except OSError:
                time.sleep(0.05)
        assert health.status == 200
        # /metrics: for Prometheus on the inside, never through the public address.
        assert call(front, "GET", "/metrics").status == 404
        assert call(upstream, "GET", "/metrics").status == 200
        # The paths that need no Flex token are limited per address (burst 20, then 429); the rest is not.
        statuses = [call(front, "GET", "/oauth-callback?error=x").status for _ in range(30)]
        assert 429 in statuses and statuses[0] != 429
        assert call(front, "POST", "/get-user", body={"Token": "t"}).status != 429
        token = standins[1].issue_token("alice@example.com")
        answer = call(front, "POST", "/get-user", body={"Token": token},
                      headers={"Origin": FLEX_URL, "Host": "crm.example.com"})
        assert answer.status == 404 and answer.json()["error"] == "not_linked"
        assert answer.headers["Access-Control-Allow-Origin"] == FLEX_URL
        # Past nginx's default 1m, within Twilio's 6 MiB: nginx passes it on, and sfdcflex answers
        # its own JSON 413 (MAX_FUNCTION_BODY, 64 KiB for the integration's functions), not nginx's HTML.
        large = call(front, "POST", "/get-user", body=b"x" * (2 * 1024 * 1024),
                     headers={"Content-Type": "application/json"})
        assert large.status == 413 and large.json()["error"] == "payload_too_large"
        assert call(front, "POST", "/get-user", body=b"x" * (6 * 1024 * 1024 + 1),
                    headers={"Content-Type": "application/json"}).status == 413
    finally:
        if nginx:
            nginx.stop(signal.SIGQUIT)
        server.stop()
