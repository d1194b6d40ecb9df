"""Configuration: required names, defaults, URL rules, org ids, and errors that never leak secrets."""
from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path

import pytest

from sfdcflex.clients.errors import UrlRefused
from sfdcflex.clients.salesforce import SalesforceClient
from sfdcflex.config import (DEFAULT_ENV_FILE, check_settings, client_refusals_as_config_errors, load_config,
                             read_settings, same_org, settings_from)
from sfdcflex.runtime.errors import ConfigError
from tests.support.bounded import returns_within
from tests.support.users import NOBODY, as_nobody

GOOD = {
    "ACCOUNT_SID": "AC" + "0123456789abcdef" * 2,
    "AUTH_TOKEN": "authtokensecret",
    "SFDC_INSTANCE_URL": "https://acme.my.salesforce.com/",
    "SFDC_ORG_ID": "00D5g000004AbCdEAK",
    "SFDC_CLIENT_ID": "3MVG9client",
    "SFDC_CLIENT_SECRET": "clientsecretvalue",
    "FLEX_INSTANCE_URL": "https://flex.twilio.com",
}


def config_error(**changes) -> str:
    values = {**GOOD, **changes}
    values = {name: value for name, value in values.items() if value is not None}
    with pytest.raises(ConfigError) as caught:
        load_config(values)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_defaults():
    config = load_config(GOOD)
    assert config.sfdc_instance_url == "https://acme.my.salesforce.com"
    assert config.sfdc_login_url == config.sfdc_instance_url
    assert config.sfdc_api_version == "62.0"
    assert config.public_url is None
    assert config.token_store == "json"
    assert config.token_store_path == Path(".data/tokens.json")
    assert config.twilio_iam_url == "https://iam.twilio.com"
    assert config.twilio_sync_url == "https://sync.twilio.com"
    assert config.state_secret is None
    assert (config.cache_size, config.cache_ttl) == (100, 300.0)
    assert config.sync_link_recheck == 0.0
    assert config.health_path == "/healthz"
    assert config.values["SFDC_CLIENT_ID"] == "3MVG9client"


def test_every_setting_can_be_given():
    config = load_config({
        **GOOD, "TOKEN_STORE": "Sync", "SYNC_SERVICE_SID": "IS" + "a" * 32,
        "SFDC_LOGIN_URL": "https://login.salesforce.com", "SFDC_API_VERSION": "61.0",
        "PUBLIC_URL": "https://crm.example.com/flex/", "TOKEN_STORE_PATH": "/var/lib/tokens.json",
        "TWILIO_IAM_URL": "http://127.0.0.1:9001", "TWILIO_SYNC_URL": "http://localhost:9002",
        "STATE_SECRET": "k" * 40, "CACHE_SIZE": "5", "CACHE_TTL": "0", "SYNC_LINK_RECHECK": "2.5",
        "HEALTH_PATH": "/sfdcflex/health",
    })
    assert config.sync_link_recheck == 2.5 and config.health_path == "/sfdcflex/health"
    assert config.token_store == "sync"
    assert config.sync_service_sid == "IS" + "a" * 32
    assert config.public_url == "https://crm.example.com/flex"
    assert config.twilio_iam_url == "http://127.0.0.1:9001"
    assert config.state_secret == b"k" * 40
    assert (config.cache_size, config.cache_ttl) == (5, 0.0)
    assert config.token_store_path == Path("/var/lib/tokens.json")


def test_repr_never_shows_secrets():
    config = load_config({**GOOD, "STATE_SECRET": "statesecret" * 4})
    text = repr(config)
    assert "AC0123456789" in text
    for secret in ("authtokensecret", "clientsecretvalue", "statesecret"):
        assert secret not in text


@pytest.mark.parametrize("name", [
    "ACCOUNT_SID", "AUTH_TOKEN", "SFDC_INSTANCE_URL", "SFDC_ORG_ID", "SFDC_CLIENT_ID",
    "SFDC_CLIENT_SECRET", "FLEX_INSTANCE_URL",
])
def test_each_required_setting_is_named_when_missing(name):
    assert config_error(**{name: None}) == f"config: {name} is required (see .env.example)"
    assert name in config_error(**{name: "   "})


def test_sync_store_needs_a_sync_service_sid():
    assert "SYNC_SERVICE_SID" in config_error(TOKEN_STORE="sync")
    assert "SYNC_SERVICE_SID" in config_error(TOKEN_STORE="sync", SYNC_SERVICE_SID="IS123")
    assert "TOKEN_STORE must be json or sync" in config_error(TOKEN_STORE="redis")


@pytest.mark.parametrize("name, value, fragment", [
    ("ACCOUNT_SID", "AC123", "AC followed by 32 hex digits"),
    ("ACCOUNT_SID", "SK" + "0" * 32, "AC followed by 32 hex digits"),
    ("SFDC_ORG_ID", "00D5g000004ABC", "15- or 18-character Salesforce org id (starts with 00D)"),
    ("SFDC_ORG_ID", "0055g000004ABCDEAQ", "starts with 00D"),
    ("SFDC_API_VERSION", "v62", "such as 62.0"),
    ("CACHE_SIZE", "0", "CACHE_SIZE must be a whole number from 1 to 100000"),
    ("CACHE_SIZE", "lots", "CACHE_SIZE must be a whole number"),
    ("CACHE_TTL", "-1", "CACHE_TTL must be a number from 0 to 86400"),
    ("CACHE_TTL", "nan", "CACHE_TTL"),
    ("CACHE_TTL", "inf", "CACHE_TTL"),
    ("SYNC_LINK_RECHECK", "301", "SYNC_LINK_RECHECK must be a number from 0 to 300"),
    ("SYNC_LINK_RECHECK", "-0.5", "SYNC_LINK_RECHECK must be a number from 0 to 300"),
    ("STATE_SECRET", "short", "at least 32 characters"),
    ("HEALTH_PATH", "healthz", "HEALTH_PATH must be a path of plain segments such as /healthz"),
    ("HEALTH_PATH", "/health?x=1", "HEALTH_PATH must be a path"),
    ("HEALTH_PATH", "/a/../healthz", "HEALTH_PATH must be a path"),
    ("HEALTH_PATH", "/health%7A", "HEALTH_PATH must be a path"),
    ("HEALTH_PATH", "/", "HEALTH_PATH must be a path"),
])
def test_malformed_values_are_named(name, value, fragment):
    assert fragment in config_error(**{name: value})


@pytest.mark.parametrize("value, fragment", [
    ("http://acme.my.salesforce.com", "must use https://"),
    ("http://10.0.0.5", "must use https://"),
    ("ftp://acme.example.com", "absolute https:// URL"),
    ("acme.my.salesforce.com", "absolute https:// URL"),
    ("https://acme.example.com/?x=1", "query string"),
    ("https://acme.example.com/#top", "fragment"),
    ("https://user:pw@acme.example.com", "user name or password"),
    ("https://acme.example.com:99999", "not a valid URL"),
])
def test_bad_urls_are_refused_with_a_reason(value, fragment):
    message = config_error(SFDC_INSTANCE_URL=value)
    assert message.startswith("config: SFDC_INSTANCE_URL")
    assert fragment in message


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8080", "http://127.9.9.9", "http://[::1]:3000", "http://localhost:3000",
])
def test_plain_http_is_allowed_on_loopback(url):
    assert load_config({**GOOD, "SFDC_INSTANCE_URL": url}).sfdc_instance_url == url


def test_errors_never_echo_secret_values():
    message = config_error(STATE_SECRET="tooshortsecret")
    assert "tooshortsecret" not in message


def eighteen(id15: str) -> str:
    """Salesforce's documented 15 -> 18 conversion: one suffix letter per 5 characters."""
    suffix = ""
    for start in (0, 5, 10):
        bits = sum(1 << i for i, char in enumerate(id15[start:start + 5]) if "A" <= char <= "Z")
        suffix += "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"[bits]
    return id15 + suffix


def test_org_ids_compare_across_15_and_18_characters():
    short = "00D5g000004AbCd"
    long = eighteen(short)
    assert long == "00D5g000004AbCdEAK"
    assert same_org(long, short)
    assert same_org(short, long)
    assert same_org(long, long)
    assert same_org(" " + short, long + "\n")
    # The 18-character suffix restores the case of a case-folded id.
    assert same_org(long.lower(), short)
    assert same_org(long.upper(), short)
    assert not same_org(short, short.lower())   # 15-character ids are case-sensitive
    assert not same_org("00D5g000004AbCe", long)
    assert not same_org(eighteen("00D5g000004AbCe"), long)
    assert not same_org(long, "")
    assert not same_org(None, short)
    assert load_config({**GOOD, "SFDC_ORG_ID": long}).sfdc_org_id == long


def test_environment_overrides_the_env_file_for_known_names_only():
    merged = settings_from({"AUTH_TOKEN": "file", "OTHER": "x"},
                           {"AUTH_TOKEN": "env", "HOME": "/root"})
    assert merged == {"AUTH_TOKEN": "env", "OTHER": "x"}


@pytest.mark.parametrize("raw,expected", [
    (None, False), ("", False), ("true", True), ("TRUE", True), (" yes ", True), ("on", True),
    ("1", True), ("false", False), ("No", False), ("off", False), ("0", False)])
def test_original_plugin_login_is_a_yes_no_setting(raw, expected):
    values = {**GOOD, "ORIGINAL_PLUGIN_LOGIN": raw} if raw is not None else GOOD
    assert load_config(values).original_plugin_login is expected


@pytest.mark.parametrize("raw", ["maybe", "2", "enabled", "t rue"])
def test_original_plugin_login_refuses_what_it_cannot_read(raw):
    assert config_error(ORIGINAL_PLUGIN_LOGIN=raw) == "config: ORIGINAL_PLUGIN_LOGIN must be true or false"


def test_every_problem_is_reported_at_once():
    values = {**GOOD, "ACCOUNT_SID": "AC123", "CACHE_TTL": "-1"}
    del values["SFDC_CLIENT_ID"]
    with pytest.raises(ConfigError) as caught:
        load_config(values)
    problems = caught.value.problems
    assert len(problems) == 3
    assert any(p.startswith("config: ACCOUNT_SID must be") for p in problems)
    assert "config: SFDC_CLIENT_ID is required (see .env.example)" in problems
    assert any(p.startswith("config: CACHE_TTL must be") for p in problems)


def test_the_placeholders_of_env_example_are_refused():
    from sfdcflex.runtime.envfile import read_env_file
    example = read_env_file(Path(__file__).resolve().parent.parent / ".env.example")
    with pytest.raises(ConfigError) as caught:
        load_config({**GOOD, **{k: v for k, v in example.items() if v}})
    placeholders = {p.split()[1] for p in caught.value.problems if "placeholder" in p}
    assert placeholders == {"ACCOUNT_SID", "SFDC_INSTANCE_URL", "SFDC_ORG_ID"}
    # An org id made of x's would otherwise pass: 00D and 15 letters is a valid shape.
    assert "placeholder" in config_error(SFDC_ORG_ID="00Dxxxxxxxxxxxxxxx")
    assert "placeholder" in config_error(SFDC_INSTANCE_URL="https://your-domain.my.salesforce.com")


def test_a_misspelt_setting_gets_a_did_you_mean_and_other_names_pass():
    message = config_error(SFDC_CLEINT_ID="x")
    assert message == ("config: SFDC_CLEINT_ID is not a setting sfdcflex knows; "
                       "did you mean SFDC_CLIENT_ID?")
    assert "did you mean TOKEN_STORE_PATH?" in config_error(TOKEN_STORE_PAHT="/x")
    # As on Twilio, a function of your own may read its own names from context.
    assert load_config({**GOOD, "MY_FUNCTION_GREETING": "hi"}).values["MY_FUNCTION_GREETING"] == "hi"


def test_log_settings():
    config = load_config({**GOOD, "LOG_LEVEL": "WARNING", "LOG_FORMAT": "json"})
    assert (config.log_level, config.log_format) == ("warning", "json")
    assert load_config(GOOD).log_level == "info" and load_config(GOOD).log_format == "text"
    assert "LOG_FORMAT must be text or json" in config_error(LOG_FORMAT="xml")
    assert "LOG_LEVEL must be" in config_error(LOG_LEVEL="loud")


def test_a_misspelt_required_setting_is_one_problem_not_two():
    values = {**GOOD, "SFDC_CLEINT_ID": GOOD["SFDC_CLIENT_ID"]}
    del values["SFDC_CLIENT_ID"]
    with pytest.raises(ConfigError) as caught:
        load_config(values)
    assert caught.value.problems == (
        "config: SFDC_CLEINT_ID is not a setting sfdcflex knows; did you mean SFDC_CLIENT_ID?",)


# --- reading and checking the settings --------------------------------------------------------------

@pytest.fixture
def clean_environment(monkeypatch):
    """No setting of the test runner's own environment leaks into the settings read."""
    for name in ("ACCOUNT_SID", "AUTH_TOKEN", "TOKEN_STORE", "TOKEN_STORE_PATH", "SFDC_ORG_ID"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _env_file(path: Path, values: dict[str, str]) -> Path:
    path.write_text("".join(f"{name}={value}\n" for name, value in values.items()))
    return path


def test_settings_come_from_the_file_then_the_environment_then_overrides(tmp_path, clean_environment):
    env = _env_file(tmp_path / "my.env", {**GOOD, "AUTH_TOKEN": "from-file", "SFDC_ORG_ID": "00D5g000004AbCd"})
    clean_environment.setenv("AUTH_TOKEN", "from-environment")
    config = read_settings(env, {"SFDC_ORG_ID": "00D5g000004XyZw"})
    assert (config.auth_token, config.sfdc_org_id) == ("from-environment", "00D5g000004XyZw")


def test_with_no_file_named_the_env_file_here_is_read_when_there_is_one(tmp_path, clean_environment):
    clean_environment.chdir(tmp_path)
    with pytest.raises(ConfigError, match="ACCOUNT_SID is required"):
        read_settings()                     # no .env here, nothing in the environment
    _env_file(tmp_path / DEFAULT_ENV_FILE, GOOD)
    assert read_settings().account_sid == GOOD["ACCOUNT_SID"]


def test_a_named_env_file_must_exist(tmp_path):
    with pytest.raises(ConfigError) as caught:
        read_settings(tmp_path / "typo.env")
    assert caught.value.problems == (f"config: env file {tmp_path / 'typo.env'} does not exist",)


def test_checking_looks_at_the_token_store_folder_too(tmp_path, clean_environment):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    env = _env_file(tmp_path / "my.env", {**GOOD, "TOKEN_STORE_PATH": str(blocker / "tokens.json")})
    assert read_settings(env).token_store_path == blocker / "tokens.json"   # reading alone does not look
    with pytest.raises(ConfigError, match=f"TOKEN_STORE_PATH: {blocker} is not a folder"):
        check_settings(env)


def test_a_url_a_client_refuses_stops_start_up_with_the_client_s_line():
    with pytest.raises(ConfigError) as caught, client_refusals_as_config_errors():
        SalesforceClient("http://example.com", "id", "secret")
    assert caught.value.problems == (
        "SFDC_INSTANCE_URL must use https:// (http:// is allowed only for localhost / 127.0.0.1 / ::1)",)
    assert not isinstance(caught.value, UrlRefused)


# --- the settings file on disk: it names the upstreams and holds the secrets ------------------

def _problems(env: Path) -> list[str]:
    try:
        read_settings(env)
    except ConfigError as error:
        return list(error.problems)
    return []


def test_our_settings_file_is_closed_to_other_users_when_it_holds_a_secret(tmp_path, clean_environment,
                                                                          caplog):
    """Ours: made unwritable by others, and unreadable by others when it holds a secret (the
    group may still read it), saying so in the log; a file without secrets stays readable."""
    env = _env_file(tmp_path / "my.env", GOOD)
    env.chmod(0o666)
    assert read_settings(env).auth_token == GOOD["AUTH_TOKEN"]
    assert stat.S_IMODE(env.stat().st_mode) == 0o640
    assert f"env file {env} was mode 0666, open to other users; made it 0640" in caplog.text
    plain = tmp_path / "plain.env"
    plain.write_text("LOG_LEVEL=debug\n")
    plain.chmod(0o666)
    _problems(plain)
    assert stat.S_IMODE(plain.stat().st_mode) == 0o644


def test_a_settings_file_of_another_user_is_refused_in_one_line(tmp_path, clean_environment):
    env = _env_file(tmp_path / "my.env", GOOD)
    os.chown(env, NOBODY, NOBODY)
    assert _problems(env) == [f"config: env file {env} belongs to user id {NOBODY}, neither this "
                              f"process's user ({os.geteuid()}) nor root; give it to one of them (chown)"]


def test_a_root_settings_file_others_may_write_or_read_is_refused_for_the_service_user(clean_environment):
    """The service user cannot fix root's file: it is refused, saying what is wrong and the chmod."""
    if os.geteuid() != 0:
        pytest.skip("needs root to make a file of root's")
    top = Path(tempfile.mkdtemp(prefix="sfdcflex-settings-"))
    try:
        top.chmod(0o755)
        env = _env_file(top / "sfdcflex.env", GOOD)
        env.chmod(0o646)
        assert as_nobody(lambda: _problems(env)) == [
            f"config: env file {env} is writable by other users (mode 0646); chmod go-w it"]
        env.chmod(0o644)
        assert as_nobody(lambda: _problems(env)) == [
            f"config: env file {env} is readable by every user and holds secrets (mode 0644); chmod o-rwx it"]
        _env_file(env, {"LOG_LEVEL": "debug"})
        assert as_nobody(lambda: _problems(env))[0].startswith("config: ACCOUNT_SID is required")
        assert stat.S_IMODE(env.stat().st_mode) == 0o644
    finally:
        shutil.rmtree(top)


def test_a_fifo_as_the_settings_file_is_refused_not_waited_on(tmp_path, clean_environment):
    env = tmp_path / "fifo.env"
    os.mkfifo(env, 0o600)
    assert returns_within(5, lambda: _problems(env)) == [f"config: env file {env} is not a regular file"]


def test_metrics_access_settings_default_to_loopback_and_are_checked():
    import ipaddress
    config = load_config(GOOD)
    assert config.metrics_allow == (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1"))
    assert config.metrics_token is None
    given = load_config({**GOOD, "METRICS_ALLOW": "10.0.0.0/8, 192.168.1.7", "METRICS_TOKEN": "t" * 16})
    assert given.metrics_allow == (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("192.168.1.7/32"))
    assert given.metrics_token == "t" * 16 and "t" * 16 not in repr(given)
    assert load_config({**GOOD, "METRICS_ALLOW": "none"}).metrics_allow == ()
    assert "METRICS_ALLOW must be addresses or networks" in config_error(METRICS_ALLOW="10.0.0.0/33")
    assert "METRICS_TOKEN must be at least 16 characters" in config_error(METRICS_TOKEN="short")
