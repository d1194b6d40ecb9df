"""run.py's start-up as a user meets it: bad arguments and settings stopped in one line (exit 2),
--version, and --check reporting every mistake at once.

cli.main runs in this process (the `run_main` fixture, tests/conftest.py); run.py and `python -m
sfdcflex` as processes are tested as a user runs them, here, in tests/test_readme.py and in
tests/system/test_signals.py.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sfdcflex.cli import parse_args


ROOT = Path(__file__).resolve().parent.parent


def test_http_upstream_that_is_not_loopback_is_refused(tmp_path):
    env = tmp_path / ".env"
    env.write_text("ACCOUNT_SID=AC" + "0" * 32 + "\nAUTH_TOKEN=t\nSFDC_ORG_ID=00D5e000000AbCd\n"
                   "SFDC_INSTANCE_URL=http://example.my.salesforce.com\nSFDC_CLIENT_ID=id\n"
                   "SFDC_CLIENT_SECRET=shh\nFLEX_INSTANCE_URL=https://flex.twilio.com\n")
    done = subprocess.run([sys.executable, "-m", "sfdcflex", "--env", str(env), "--port", "0"],
                          cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "SFDC_INSTANCE_URL" in done.stderr


@pytest.mark.parametrize("args", [["--timeout", "0"], ["--max-concurrency", "0"], ["--store", "sync"], ["--trace"]])
def test_bad_arguments_are_refused(args):
    with pytest.raises(SystemExit):
        parse_args(args)


def test_missing_setting_stops_start_up_with_one_line(tmp_path, run_main):
    env = tmp_path / ".env"
    env.write_text("# no org id\nACCOUNT_SID=AC" + "0" * 32 + "\nAUTH_TOKEN=secret-auth-token\n"
                   "SFDC_INSTANCE_URL=https://example.my.salesforce.com\nSFDC_CLIENT_ID=id\n"
                   "SFDC_CLIENT_SECRET=shh\nFLEX_INSTANCE_URL=https://flex.twilio.com\n")
    code, out, err = run_main("--env", str(env), "--port", "0")
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "SFDC_ORG_ID" in lines[0]
    assert "secret-auth-token" not in err + out


def test_a_port_already_taken_is_one_line_and_exit_2(run_main):
    import socket
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, out, err = run_main("--demo", "--port", str(port))
    assert code == 2 and err.strip() == f"sfdcflex: cannot listen on 127.0.0.1:{port}: Address already in use"


def test_an_env_file_that_does_not_exist_is_an_error_naming_it(tmp_path, run_main):
    missing = tmp_path / "typo.env"
    for args in (["--check"], ["--port", "0"]):
        code, out, err = run_main("--env", str(missing), *args)
        assert code == 2
        assert err.strip() == f"sfdcflex: config: env file {missing} does not exist"


def test_version(run_main, capsys):
    from sfdcflex import __version__
    with pytest.raises(SystemExit) as exited:
        run_main("--version")
    assert exited.value.code == 0 and capsys.readouterr().out.strip() == f"sfdcflex {__version__}"


def good_settings(tmp_path: Path) -> str:
    return ("ACCOUNT_SID=AC" + "0" * 32 + "\nAUTH_TOKEN=secret-auth-token\nSFDC_ORG_ID=00D5e000000AbCd\n"
            "SFDC_INSTANCE_URL=https://example.my.salesforce.com\nSFDC_CLIENT_ID=id\n"
            f"SFDC_CLIENT_SECRET=shh\nFLEX_INSTANCE_URL=https://flex.twilio.com\n"
            f"TOKEN_STORE_PATH={tmp_path / 'store' / 'tokens.json'}\n")


def test_check_prints_every_mistake_at_once_and_serves_nothing(tmp_path, run_main):
    env = tmp_path / "three-mistakes.env"
    env.write_text(good_settings(tmp_path)
                   .replace("ACCOUNT_SID=AC" + "0" * 32, "ACCOUNT_SID=ACxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx")
                   .replace("SFDC_CLIENT_ID=", "SFDC_CLEINT_ID=") + "CACHE_TTL=forever\n")
    for args in (["--check"], ["--port", "0"]):   # start-up runs the same validation
        code, out, err = run_main("--env", str(env), *args)
        assert code == 2, err
        lines = err.strip().splitlines()
        assert lines == [
            "sfdcflex: config: SFDC_CLEINT_ID is not a setting sfdcflex knows; did you mean SFDC_CLIENT_ID?",
            "sfdcflex: config: ACCOUNT_SID still holds the placeholder from .env.example; put your own value there",
            "sfdcflex: config: CACHE_TTL must be a number from 0 to 86400",
            "sfdcflex: 3 problems; nothing was started",
        ]
        assert "listening" not in out and "secret-auth-token" not in out + err


def test_check_passes_a_good_file_and_notes_names_only_functions_read(tmp_path, run_main):
    env = tmp_path / "good.env"
    env.write_text(good_settings(tmp_path) + "MY_GREETING=hi\n")
    code, out, err = run_main("--env", str(env), "--check")
    assert code == 0, err
    assert "complete and valid" in out
    assert f"token store: JSON file {tmp_path / 'store' / 'tokens.json'}" in out
    assert "MY_GREETING is not a sfdcflex setting; functions see it as context.MY_GREETING" in out
    assert not (tmp_path / "store").exists()   # --check creates nothing


def test_check_looks_at_the_token_store_folder(tmp_path, run_main, caplog):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    env = tmp_path / "store.env"
    env.write_text(good_settings(tmp_path).replace(str(tmp_path / "store"), str(blocker)))
    code, out, err = run_main("--env", str(env), "--check")
    assert code == 2
    assert f"TOKEN_STORE_PATH: {blocker} is not a folder" in err
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "tokens.json").write_text("{damaged")
    env.write_text(good_settings(tmp_path))
    code, out, err = run_main("--env", str(env), "--check")
    assert code == 2 and "TOKEN_STORE_PATH: The token store is damaged" in err
    assert "is not valid JSON" in caplog.text   # the path and the reason: in the log, on stderr


def test_check_reports_settings_and_functions_problems_together(tmp_path, run_main):
    env = tmp_path / "one-mistake.env"
    env.write_text(good_settings(tmp_path).replace("SFDC_ORG_ID=00D5e000000AbCd\n", ""))
    code, out, err = run_main("--env", str(env), "--check", "--functions", str(tmp_path / "no-functions"))
    assert code == 2
    assert "SFDC_ORG_ID is required" in err
    assert f"functions: folder {tmp_path / 'no-functions'} does not exist" in err
