"""Settings: the TOML file, its checks, environment overrides and the file ``init`` writes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from conf.app import build_policy
from conf.settings import (
    DatabaseSettings,
    PartnerSchool,
    PolicySettings,
    SchoolSettings,
    Settings,
    SettingsError,
    load_settings,
    render_settings_toml,
)
from directory.policy import PolicyRules

GOOD = """
[school]
domain = "gymnasium-nord.example"
name = "Gymnasium Nord"
extra_domains = ["gym-nord.example"]

[database]
url = "postgresql+asyncpg://schulhof@db.internal/schulhof"

[listen]
bind = "0.0.0.0"
smtp = 25
imap = 143

[auth]
max_delay_seconds = 60       # an integer where a float is wanted is fine

[import]
leaver_grace_days = 30

[[partners]]
domain = "realschule-sued.example"
dkim_selector = "s1"
"""


def write(tmp_path: Path, text: str, name: str = "schulhof.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_complete_file_loads(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, GOOD), environ={})
    assert s.base_dir == tmp_path.resolve()
    assert s.school.domain == "gymnasium-nord.example"
    assert s.school.extra_domains == ("gym-nord.example",)
    assert s.local_domains == ("gymnasium-nord.example", "gym-nord.example")
    assert s.database_url == "postgresql+asyncpg://schulhof@db.internal/schulhof"
    assert (s.listen.bind, s.listen.smtp, s.listen.imap) == ("0.0.0.0", 25, 143)
    assert s.listen.submission == 2587  # untouched keys keep their defaults
    assert s.auth.max_delay_seconds == 60.0 and isinstance(s.auth.max_delay_seconds, float)
    assert s.importer.leaver_grace_days == 30  # [import] is the importer field
    assert s.partners == (PartnerSchool(domain="realschule-sued.example", dkim_selector="s1"),)
    assert s.partner_domains == frozenset({"realschule-sued.example"})
    assert s.smtp_hostname == "mail.gymnasium-nord.example"


def test_an_empty_file_gives_the_defaults(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path, ""), environ={}) == Settings(
        base_dir=tmp_path.resolve())


def test_settings_are_frozen(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, GOOD), environ={})
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.listen.smtp = 26  # type: ignore[misc]


@pytest.mark.parametrize(("text", "names"), [
    ("[smtpd]\nmax_recipients = 5\n", ["[smtpd]", "unknown section"]),
    ("base_dir = '/etc'\n", ["base_dir", "unknown section"]),
    ("[smtp]\nmax_recipient = 5\n", ["smtp.max_recipient", "unknown key"]),
    ("[import]\nprofil = 'x'\n", ["import.profil", "unknown key"]),
    ("[[partners]]\ndomain = 'a.example'\nselector = 'x'\n", ["partners[0].selector"]),
    ("[listen]\nsmtp = '25'\n", ["listen.smtp", "integer", "'25'"]),
    ("[listen]\nsmtp = true\n", ["listen.smtp", "integer"]),
    ("[listen]\nsmtp = 25.0\n", ["listen.smtp", "integer"]),
    ("[auth]\nmax_delay_seconds = false\n", ["auth.max_delay_seconds", "number"]),
    ("[auth]\nmax_delay_seconds = '30'\n", ["auth.max_delay_seconds", "number"]),
    ("[policy]\npupils_external = 'yes'\n", ["policy.pupils_external", "bool"]),
    ("[policy]\npupils_external = 1\n", ["policy.pupils_external", "bool"]),
    ("[school]\nname = 5\n", ["school.name", "str"]),
    ("[school]\nextra_domains = 'b.example'\n", ["school.extra_domains", "list"]),
    ("[school]\nextra_domains = ['b.example', 3]\n", ["school.extra_domains[1]", "str"]),
    ("school = 'x'\n", ["school", "table"]),
    ("[[partners]]\ndkim_selector = 's1'\n", ["partners[0]", "domain"]),
    ("partners = 'a.example'\n", ["partners", "list"]),
])
def test_a_bad_file_is_refused_naming_file_and_key(tmp_path: Path, text: str,
                                                   names: list[str]) -> None:
    path = write(tmp_path, text, "kaputt.toml")
    with pytest.raises(SettingsError) as caught:
        load_settings(path, environ={})
    message = str(caught.value)
    assert str(path) in message
    for name in names:
        assert name in message


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "nirgends.toml"
    with pytest.raises(SettingsError, match="not found") as caught:
        load_settings(path, environ={})
    assert str(path) in str(caught.value)


def test_bad_toml_is_named_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, '[school]\ndomain = "a.example"\nname = Schule\n', "kaputt.toml")
    with pytest.raises(SettingsError, match="not valid TOML") as caught:
        load_settings(path, environ={})
    assert str(path) in str(caught.value) and "line 3" in str(caught.value)


# --- environment ---------------------------------------------------------------------

def test_environment_overrides_single_keys(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, GOOD), environ={
        "SCHULHOF_DATABASE_URL": "sqlite+aiosqlite:////var/lib/schulhof/db.sqlite",
        "SCHULHOF_LISTEN_SMTP": "2525",
        "SCHULHOF_POLICY_PUPILS_EXTERNAL": "yes",
        "SCHULHOF_DATABASE_ECHO": "off",
        "SCHULHOF_SCHOOL_EXTRA_DOMAINS": "a.example, b.example,,",
        "SCHULHOF_AUTH_MAX_DELAY_SECONDS": "12.5",
        "SCHULHOF_SMTP_MAX_MESSAGE_SIZE": "1048576",  # key with underscores
        "SCHULHOF_IMPORT_PROFILE": "untis",  # [import] section
    })
    assert s.database_url == "sqlite+aiosqlite:////var/lib/schulhof/db.sqlite"
    assert s.listen.smtp == 2525 and s.listen.imap == 143  # the rest of [listen] stays
    assert s.policy.pupils_external is True
    assert s.database.echo is False
    assert s.school.extra_domains == ("a.example", "b.example")
    assert s.school.domain == "gymnasium-nord.example"
    assert s.auth.max_delay_seconds == 12.5
    assert s.smtp.max_message_size == 1048576
    assert s.importer.profile == "untis" and s.importer.leaver_grace_days == 30


@pytest.mark.parametrize("true_text", ["1", "true", "True", "yes", "on", " ON "])
def test_environment_booleans(tmp_path: Path, true_text: str) -> None:
    s = load_settings(write(tmp_path, ""), environ={"SCHULHOF_POLICY_PARENTS_EXTERNAL": true_text,
                                                    "SCHULHOF_POLICY_PUPILS_PARTNER_SCHOOLS": "0"})
    assert s.policy.parents_external is True
    assert s.policy.pupils_partner_schools is False


def test_environment_variables_that_are_not_settings_are_ignored(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, ""), environ={
        "SCHULHOF_CONFIG": "/etc/schulhof.toml",
        "SCHULHOF_TEST_DATABASE_URL": "postgresql+asyncpg://x/y",
        "SCHULHOF_LISTEN_NOPE": "1",
        "SCHULHOF_PARTNERS_DOMAIN": "x.example",
        "DATABASE_URL": "postgresql+asyncpg://x/y",
    })
    assert s == Settings(base_dir=tmp_path.resolve())


@pytest.mark.parametrize(("name", "value"), [
    ("SCHULHOF_LISTEN_SMTP", "zwei"),
    ("SCHULHOF_LISTEN_SMTP", "true"),
    ("SCHULHOF_AUTH_MAX_DELAY_SECONDS", "lang"),
    ("SCHULHOF_POLICY_PUPILS_EXTERNAL", "vielleicht"),
])
def test_a_bad_environment_value_is_named(tmp_path: Path, name: str, value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(write(tmp_path, ""), environ={name: value})
    assert name in str(caught.value) and repr(value) in str(caught.value)


def test_the_process_environment_is_the_default(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCHULHOF_LISTEN_IMAP", "1143")
    assert load_settings(write(tmp_path, "")).listen.imap == 1143


# --- paths -----------------------------------------------------------------------------

def test_a_relative_sqlite_url_is_relative_to_the_config_dir(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config_dir = tmp_path / "etc" / "schule"
    config_dir.mkdir(parents=True)
    monkeypatch.chdir(tmp_path)  # not the config dir
    s = load_settings(write(config_dir, '[database]\nurl = "sqlite+aiosqlite:///daten/s.db"\n'),
                      environ={})
    assert s.database_url == f"sqlite+aiosqlite:///{config_dir.resolve()}/daten/s.db"
    s = load_settings(config_dir / "schulhof.toml",
                      environ={"SCHULHOF_DATABASE_URL": "sqlite:///x.db"})
    assert s.database_url == f"sqlite:///{config_dir.resolve()}/x.db"
    # Absolute paths, in-memory databases and other backends are left alone.
    for url in ("sqlite+aiosqlite:////srv/s.db", "sqlite+aiosqlite:///:memory:",
                "sqlite+aiosqlite://", "postgresql+asyncpg://u@h/db"):
        s = load_settings(config_dir / "schulhof.toml", environ={"SCHULHOF_DATABASE_URL": url})
        assert s.database_url == url


def test_other_relative_paths_are_relative_to_the_config_dir(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, '[tls]\nkey = "/etc/ssl/k.pem"\n'), environ={})
    assert s.path(s.tls.certificate) == tmp_path.resolve() / "tls" / "cert.pem"
    assert s.path(s.tls.key) == Path("/etc/ssl/k.pem")
    assert s.data_dir == tmp_path.resolve() / "data"


# --- the file `schulhof init` writes ------------------------------------------------------

def test_rendered_defaults_load_back_equal(tmp_path: Path) -> None:
    settings = Settings(base_dir=tmp_path.resolve())
    assert load_settings(write(tmp_path, render_settings_toml(settings)), environ={}) == settings


def test_rendered_settings_load_back_equal(tmp_path: Path) -> None:
    settings = Settings(
        base_dir=tmp_path.resolve(),
        school=SchoolSettings(domain="schule.example", name='Schule "Am Bach" \\ Süd',
                              extra_domains=("a.example", "b.example")),
        database=DatabaseSettings(url="postgresql+asyncpg://u:p@h:5433/db", echo=True),
        policy=PolicySettings(pupils_external=True, pupils_partner_schools=False),
        partners=(PartnerSchool("p1.example"),
                  PartnerSchool("p2.example", dkim_selector="s", matrix_server="m.p2.example")),
    )
    settings = dataclasses.replace(
        settings, auth=dataclasses.replace(settings.auth, max_delay_seconds=0.25))
    text = render_settings_toml(settings)
    assert "[import]" in text and "[importer]" not in text
    assert load_settings(write(tmp_path, text), environ={}) == settings


def test_rendered_strings_with_control_characters_load_back(tmp_path: Path) -> None:
    settings = Settings(base_dir=tmp_path.resolve(),
                        school=SchoolSettings(name="Schule\nam Bach\r\x7f\x00\tSüd"))
    assert load_settings(write(tmp_path, render_settings_toml(settings)), environ={}) == settings


# --- settings into objects ----------------------------------------------------------------

@pytest.mark.parametrize("switch", [f.name for f in dataclasses.fields(PolicySettings)])
def test_each_policy_switch_reaches_the_role_policy(switch: str) -> None:
    defaults = build_policy(Settings()).rules
    assert defaults == PolicyRules()  # the settings' defaults are the policy's defaults
    flipped_settings = dataclasses.replace(PolicySettings(),
                                           **{switch: not getattr(PolicySettings(), switch)})
    rules = build_policy(Settings(policy=flipped_settings)).rules
    assert getattr(rules, switch) is not getattr(defaults, switch)
    assert dataclasses.replace(rules, **{switch: getattr(defaults, switch)}) == defaults


def test_the_send_limit_reaches_the_matrix_rate_limiter() -> None:
    from conf.wiring.matrix import rate_limits
    from messenger.ratelimit import RateLimit, RateLimits

    limits = rate_limits(2.5, 7)
    assert limits.rules["send"][0] == RateLimit(2.5, 7)
    # The other actions and the per-address send bucket keep their defaults.
    defaults = RateLimits().rules
    assert limits.rules["send"][1] == defaults["send"][1]
    assert {k: v for k, v in limits.rules.items() if k != "send"} == {
        k: v for k, v in defaults.items() if k != "send"}


@pytest.mark.parametrize(("per_second", "burst"), [(0, 10), (-1, 10), (5, 0)])
def test_a_send_limit_that_would_block_everyone_is_refused(per_second: float,
                                                           burst: int) -> None:
    from conf.wiring.matrix import rate_limits

    with pytest.raises(ValueError, match="send_messages_per_second"):
        rate_limits(per_second, burst)
