"""Typed, frozen settings read from one TOML file plus environment overrides.

Every section is a frozen dataclass; the loader checks every key and type and
names the file and the key when something is wrong, so a typo fails at start
instead of silently using a default.  Environment variables override single
keys: ``SCHULHOF_<SECTION>_<KEY>`` (e.g. ``SCHULHOF_DATABASE_URL``).
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENV_PREFIX = "SCHULHOF_"


class SettingsError(ValueError):
    """A settings file or override is invalid; the message names file and key."""


@dataclass(frozen=True)
class SchoolSettings:
    domain: str = "schule.example"
    name: str = "Demo-Schule"
    # Further mail domains this school receives mail for (aliases of the school).
    extra_domains: tuple[str, ...] = ()
    # Where message bodies, media and other files live; relative to the config file.
    data_dir: str = "data"
    # The language of what is printed for people (password letters): de or en.
    language: str = "de"


@dataclass(frozen=True)
class DatabaseSettings:
    # SQLAlchemy async URL. Relative sqlite paths are relative to the config file.
    url: str = "sqlite+aiosqlite:///schulhof.db"
    echo: bool = False


@dataclass(frozen=True)
class TlsSettings:
    certificate: str = "tls/cert.pem"
    key: str = "tls/key.pem"


@dataclass(frozen=True)
class ListenSettings:
    """Listener addresses. A port of 0 picks a free port (tests); -1 disables."""

    bind: str = "127.0.0.1"
    # Reverse proxies in front of the HTTP listeners (Matrix, webmail), as
    # addresses or networks: from them, X-Forwarded-For names the client
    # (for login throttling and rate limits).  Empty: the header is ignored.
    trusted_proxies: tuple[str, ...] = ()
    smtp: int = 2525
    submission: int = 2587
    submissions: int = 2465
    imap: int = 2143
    imaps: int = 2993
    matrix: int = 8008
    web: int = 8080
    # A plain-HTTP port that only redirects browsers to the webmail's HTTPS
    # (80 in production when nothing else serves it); -1: none.
    web_http_redirect: int = -1
    # The HTTPS port the redirect points at when a NAT or port forward puts
    # the webmail elsewhere than ``web`` (e.g. 443 -> 8080); 0: ``web`` itself.
    web_public_port: int = 0
    # Matrix Server-Server API (TLS with the school certificate); 8448 is the
    # spec's default port, which other servers try when no SRV record says otherwise.
    federation: int = 8448
    # ManageSieve (RFC 5804) for mail filter and vacation scripts; 4190 in production.
    managesieve: int = 2419
    # SO_REUSEPORT on every listener: ``serve --workers N`` sets it for its workers;
    # set it to start a second ``serve`` beside a running one (restart without a gap).
    reuse_port: bool = False


@dataclass(frozen=True)
class ServerSettings:
    """The ``schulhof serve`` processes (README "Several processes and hosts")."""

    # Worker processes sharing the listening ports; 0 (the default): one per core.
    # On SQLite always one (a second writer would only queue behind the first).
    workers: int = 0
    # How a process tells the others about changes (IMAP IDLE, /sync, login
    # throttling): "auto" = PostgreSQL LISTEN/NOTIFY when there are several
    # workers; "postgres" = always (several hosts, one worker each); "none".
    cross_process: str = "auto"


@dataclass(frozen=True)
class HttpSettings:
    """The HTTP listeners (Matrix, webmail) against slow and greedy clients;
    see federation.http_guard."""

    # From the connection (or a request's first byte) to the end of its headers.
    header_timeout_seconds: float = 30.0
    # The longest pause inside a request body; a body must also arrive within
    # this plus its length at min_body_bytes_per_second.
    body_timeout_seconds: float = 60.0
    min_body_bytes_per_second: int = 8 * 1024
    # Idle time between two requests on one connection.
    keepalive_timeout_seconds: float = 75.0
    # Open connections per client address and listener (0: unlimited); trusted
    # proxies are exempt.  Generous: a school behind one NAT address shares it.
    max_connections_per_ip: int = 500


@dataclass(frozen=True)
class SmtpSettings:
    max_message_size: int = 25 * 1024 * 1024
    max_recipients: int = 100
    max_line_length: int = 1000
    max_errors: int = 10
    idle_timeout_seconds: float = 300.0
    max_connections_per_ip: int = 20
    hostname: str = ""  # defaults to mail.<domain>
    # The MTA-STS policy mode the webmail port serves at /.well-known/mta-sts.txt
    # and ``dns-records`` publishes the id of (RFC 8461 5): enforce, testing, none.
    mta_sts_mode: str = "enforce"


@dataclass(frozen=True)
class LogSettings:
    """Logging of ``serve`` and the other commands (``--verbose`` means DEBUG)."""

    level: str = "INFO"  # DEBUG, INFO, WARNING, ERROR
    format: str = "logfmt"  # logfmt or json


@dataclass(frozen=True)
class SpamSettings:
    """rspamd (HTTP protocol) on the MX; an empty ``rspamd_url`` turns it off."""

    rspamd_url: str = ""  # the normal worker, e.g. http://127.0.0.1:11333
    rspamd_controller_url: str = ""  # for training from Junk moves, e.g. :11334
    rspamd_password: str = ""  # the controller's password, if it asks for one
    fail_open: bool = True  # rspamd unreachable: accept (header + warning) or 451
    timeout_seconds: float = 15.0


@dataclass(frozen=True)
class MetricsSettings:
    """Prometheus metrics, /healthz and /readyz (plain HTTP: keep it on loopback
    or a management network)."""

    bind: str = "127.0.0.1"
    port: int = 9464  # -1: off


@dataclass(frozen=True)
class ImapSettings:
    max_literal_size: int = 64 * 1024 * 1024
    max_line_length: int = 64 * 1024
    idle_timeout_seconds: float = 30 * 60.0
    max_errors: int = 20
    # Open connections per client IP (0 = unlimited), checked at connect,
    # before login, so it cannot be per user like Dovecot's 10 per user+IP.
    # A whole school building often sits behind one NAT address: a few hundred
    # phones and laptops, each mail app holding several connections (IDLE on
    # INBOX and more). 500 leaves room for that and still stops one client
    # from opening thousands.
    max_connections_per_ip: int = 500
    # Before login: the time a client has for each command, and the largest
    # literal (a user name or password; RFC 7888: larger LITERAL+ closes).
    prelogin_timeout_seconds: float = 60.0
    max_prelogin_literal_size: int = 8 * 1024


@dataclass(frozen=True)
class MatrixSettings:
    """The messenger (Matrix Client-Server API)."""

    # Directory groups become rooms; how often the server re-checks them.
    group_sync_interval_seconds: float = 60.0
    # Group members are joined to their group's room (false: only invited).
    auto_join_group_rooms: bool = True
    max_upload_mib: int = 20
    # Messages one user may send: a token bucket (spec: Client-Server API 3.4).
    # Beyond the burst a client gets 429 with retry_after_ms (about 100 ms at 10/s);
    # matrix-nio and the Element apps wait and resend silently, so a script posting
    # faster than this sees latency, not errors.
    send_messages_per_second: float = 10.0
    send_burst: int = 100
    # The push gateways phones may register (exact notify URLs).  The server
    # POSTs to a pusher's URL, so an open list would let any user make it call
    # hosts inside the school network.  The defaults are the gateways of the apps
    # schools use: Element, Element X (matrix.org's Sygnal) and FluffyChat.  A
    # school with its own Sygnal, or UnifiedPush (ntfy), lists those URLs too.
    push_gateways: tuple[str, ...] = ("https://matrix.org/_matrix/push/v1/notify",
                                      "https://push.fluffychat.im/_matrix/push/v1/notify")


@dataclass(frozen=True)
class QuotaSettings:
    """Mailbox quota per role in MiB (0 = unlimited)."""

    pupil: int = 1024
    parent: int = 1024
    teacher: int = 4096
    staff: int = 4096
    admin: int = 0


@dataclass(frozen=True)
class PolicySettings:
    """Who may write to whom; see directory.policy.RolePolicy."""

    pupils_external: bool = False
    pupils_partner_schools: bool = True
    parents_reach_pupils: bool = False
    parents_external: bool = False


@dataclass(frozen=True)
class AuthSettings:
    # Failed logins of one account from one address before the growing delay
    # starts, and its cap (directory.auth.LoginThrottle).
    free_failures: int = 3
    max_delay_seconds: float = 30.0
    # A count is forgotten this long after its last failure.
    failure_window_seconds: float = 900.0
    # Failures of one account from all addresses before it is slowed for everyone
    # but its known addresses; that lock is at most 60 s.
    account_free_failures: int = 50
    account_max_delay_seconds: float = 60.0
    # Distinct accounts failing from one address (a school NAT: be generous)
    # before that address is slowed.
    ip_failing_accounts: int = 300
    # A password verified this long ago against the same stored hash is taken
    # without argon2id again (directory.verified_logins); 0: verify every login.
    verified_login_seconds: float = 900.0


@dataclass(frozen=True)
class ImportSettings:
    leaver_grace_days: int = 90
    profile: str = "generic"
    password_length: int = 12


@dataclass(frozen=True)
class ChatSettings:
    """Messenger rights (messenger.chat_rights): the roles that may open rooms and start
    direct chats, and groups whose members may too (an account gets the widest).
    Parents are in neither by default: they answer in chats a teacher opened."""

    create_rooms: tuple[str, ...] = ("teacher", "staff", "admin")
    start_direct: tuple[str, ...] = ("teacher", "staff", "admin", "pupil")
    create_rooms_groups: tuple[str, ...] = ()
    start_direct_groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class QuietHoursSettings:
    """No push notifications in quiet hours (messenger.quiet_hours); messages still
    arrive in the app.  ``roles``: per-role windows, "teacher=off" or
    "pupil=19:00-07:00"; each person may override in the app's account data."""

    enabled: bool = True
    window: str = "20:00-07:00"
    weekends: bool = True
    timezone: str = "Europe/Berlin"
    roles: tuple[str, ...] = ()


@dataclass(frozen=True)
class BridgeSettings:
    """Mail and chat meet (issue 18): ``mail_to_rooms`` posts a mail delivered to a group
    address into the group's room (conf.wiring.bridge).  A school setting until groups
    have settings of their own."""

    mail_to_rooms: bool = True
    # Room -> mail (issue 18.2): announcements (rooms of groups whose members may not
    # post) someone has not read after ``digest_delay_seconds`` are mailed to them
    # (and to pupils' parents where the group allows it), at most one digest per
    # person per ``digest_period_seconds``; ``serve`` looks every ``digest_check_seconds``.
    room_digests: bool = True
    digest_delay_seconds: float = 2 * 3600.0
    digest_period_seconds: float = 24 * 3600.0
    digest_check_seconds: float = 300.0


@dataclass(frozen=True)
class RetentionSettings:
    """How long the school keeps what (GDPR Art. 5(1)(e)); defaults from German school
    practice.  ``schulhof serve`` runs the clean-up daily at ``daily_at`` (server local
    time, HH:MM), ``schulhof purge`` on demand (e.g. from cron).  0 days: never."""

    trash_days: int = 30
    junk_days: int = 30
    # Messages in class rooms are kept one school year (then their content is redacted).
    class_chat_days: int = 365
    # Client IP addresses (audit log, devices' last seen address): six months.
    personal_log_days: int = 183
    # The audit log itself (who did what, without addresses after personal_log_days).
    audit_days: int = 730
    daily_at: str = "03:30"
    run_daily: bool = True


@dataclass(frozen=True)
class FederationSettings:
    # Empty list: the system resolver. Tests point this at a DNS server on loopback.
    dns_nameservers: tuple[str, ...] = ()
    dns_port: int = 53
    # Cache DNS answers for their TTL (inbound SPF/DMARC lookups repeat a lot).
    dns_cache: bool = True
    remote_smtp_port: int = 25
    retry_give_up_hours: float = 120.0
    delay_warning_hours: float = 4.0
    first_retry_seconds: float = 300.0
    # Outbound TLS: a CA bundle instead of the system trust store ("" = system),
    # and whether MTA-STS (RFC 8461) and DANE (RFC 7672) policies are enforced.
    tls_ca_file: str = ""
    mta_sts: bool = True
    dane: bool = True
    # Matrix federation: servers besides the partner schools' that may exchange
    # chat with this school, servers trusted to vouch for other servers' keys
    # (notaries, POST /_matrix/key/v2/query), and how long others may cache our key.
    matrix_servers: tuple[str, ...] = ()
    matrix_notary_servers: tuple[str, ...] = ()
    matrix_key_validity_hours: float = 24.0


@dataclass(frozen=True)
class PartnerSchool:
    domain: str
    dkim_selector: str = ""
    matrix_server: str = ""


@dataclass(frozen=True)
class Settings:
    """All settings of one school. ``base_dir`` is the config file's folder."""

    base_dir: Path = Path(".")
    school: SchoolSettings = field(default_factory=SchoolSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    tls: TlsSettings = field(default_factory=TlsSettings)
    listen: ListenSettings = field(default_factory=ListenSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    imap: ImapSettings = field(default_factory=ImapSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    spam: SpamSettings = field(default_factory=SpamSettings)
    log: LogSettings = field(default_factory=LogSettings)
    matrix: MatrixSettings = field(default_factory=MatrixSettings)
    quota: QuotaSettings = field(default_factory=QuotaSettings)
    policy: PolicySettings = field(default_factory=PolicySettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    importer: ImportSettings = field(default_factory=ImportSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    chat: ChatSettings = field(default_factory=ChatSettings)
    quiet_hours: QuietHoursSettings = field(default_factory=QuietHoursSettings)
    bridge: BridgeSettings = field(default_factory=BridgeSettings)
    federation: FederationSettings = field(default_factory=FederationSettings)
    server: ServerSettings = field(default_factory=ServerSettings)
    partners: tuple[PartnerSchool, ...] = ()

    # --- derived values, resolved against base_dir -------------------------
    def path(self, relative: str) -> Path:
        p = Path(relative)
        return p if p.is_absolute() else (self.base_dir / p)

    @property
    def data_dir(self) -> Path:
        return self.path(self.school.data_dir)

    @property
    def database_url(self) -> str:
        return resolve_sqlite_url(self.database.url, self.base_dir)

    @property
    def local_domains(self) -> tuple[str, ...]:
        return (self.school.domain.lower(), *(d.lower() for d in self.school.extra_domains))

    @property
    def smtp_hostname(self) -> str:
        return self.smtp.hostname or f"mail.{self.school.domain}"

    @property
    def partner_domains(self) -> frozenset[str]:
        return frozenset(p.domain.lower() for p in self.partners)

    @property
    def matrix_federation_servers(self) -> frozenset[str]:
        """Matrix servers this school federates with: each partner's (its
        ``matrix_server``, else its domain) and ``federation.matrix_servers``."""
        partners = {(p.matrix_server or p.domain).lower() for p in self.partners}
        return frozenset(partners | {s.lower() for s in self.federation.matrix_servers})


# TOML section name -> Settings field name, where they differ.
_SECTION_FIELDS = {"import": "importer"}
_FIELD_SECTIONS = {v: k for k, v in _SECTION_FIELDS.items()}


def resolve_sqlite_url(url: str, base_dir: Path) -> str:
    """Make a relative SQLite file URL absolute against ``base_dir``."""
    for prefix in ("sqlite+aiosqlite:///", "sqlite:///"):
        if url.startswith(prefix):
            rest = url[len(prefix):]
            if rest and not rest.startswith("/") and not rest.startswith(":memory:"):
                return prefix + str((base_dir / rest).resolve())
    return url


def load_settings(path: Path | str, environ: Mapping[str, str] | None = None) -> Settings:
    """Read ``path`` (TOML) and apply environment overrides."""
    path = Path(path)
    environ = os.environ if environ is None else environ
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SettingsError(f"{path}: settings file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: not valid TOML: {exc}") from None
    return settings_from_mapping(raw, source=str(path), base_dir=path.parent.resolve(),
                                 environ=environ)


def settings_from_mapping(raw: Mapping[str, Any], *, source: str, base_dir: Path,
                          environ: Mapping[str, str] | None = None) -> Settings:
    values: dict[str, Any] = {"base_dir": base_dir}
    hints = typing.get_type_hints(Settings)
    for key, value in raw.items():
        name = _SECTION_FIELDS.get(key, key)
        if name == "base_dir" or name not in hints:
            raise SettingsError(f"{source}: unknown section [{key}]")
        values[name] = _convert(value, hints[name], f"{source}: {key}")
    settings = _apply_environment(Settings(**values), environ or {})
    _check_choices(settings, source)
    return settings


_CHOICES = {("log", "level"): ("DEBUG", "INFO", "WARNING", "ERROR"),
            ("log", "format"): ("logfmt", "json"),
            ("smtp", "mta_sts_mode"): ("enforce", "testing", "none"),
            ("school", "language"): ("de", "en")}


def _check_choices(settings: Settings, source: str) -> None:
    for (section, key), allowed in _CHOICES.items():
        value = getattr(getattr(settings, section), key)
        if value not in allowed and str(value).upper() not in allowed:
            raise SettingsError(f"{source}: {section}.{key} must be one of "
                                f"{', '.join(allowed)}, not {value!r}")


def _apply_environment(settings: Settings, environ: Mapping[str, str]) -> Settings:
    changes: dict[str, Any] = {}
    for env_key, text in environ.items():
        if not env_key.startswith(ENV_PREFIX):
            continue
        rest = env_key[len(ENV_PREFIX):].lower()
        section_name, _, key = rest.partition("_")
        section_field = _SECTION_FIELDS.get(section_name, section_name)
        section = changes.get(section_field, getattr(settings, section_field, None))
        if not dataclasses.is_dataclass(section) or isinstance(section, type) or key not in {
            f.name for f in dataclasses.fields(section)
        }:
            continue  # other SCHULHOF_ variables (e.g. test switches) are not settings
        hint = typing.get_type_hints(type(section))[key]
        value = _parse_env_value(text, hint, env_key)
        changes[section_field] = dataclasses.replace(section, **{key: value})
    return dataclasses.replace(settings, **changes) if changes else settings


def _parse_env_value(text: str, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if hint is bool:
        lowered = text.strip().lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise SettingsError(f"environment {where}: expected true/false, got {text!r}")
    if origin is tuple:
        return tuple(part.strip() for part in text.split(",") if part.strip())
    try:
        return hint(text)
    except ValueError:
        raise SettingsError(
            f"environment {where}: expected {hint.__name__}, got {text!r}"
        ) from None


def _convert(value: Any, hint: Any, where: str) -> Any:
    """Check ``value`` against the type hint and convert (tables -> dataclasses)."""
    origin = typing.get_origin(hint)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise SettingsError(f"{where}: expected a table")
        hints = typing.get_type_hints(hint)
        known = {f.name for f in dataclasses.fields(hint)}
        kwargs = {}
        for key, item in value.items():
            if key not in known:
                raise SettingsError(f"{where}.{key}: unknown key")
            kwargs[key] = _convert(item, hints[key], f"{where}.{key}")
        try:
            return hint(**kwargs)
        except TypeError as exc:  # a required key is missing
            raise SettingsError(f"{where}: {exc}") from None
    if origin is tuple:
        (item_hint, *_rest) = typing.get_args(hint)
        if not isinstance(value, list):
            raise SettingsError(f"{where}: expected a list")
        return tuple(_convert(v, item_hint, f"{where}[{i}]") for i, v in enumerate(value))
    if origin in (types.UnionType, typing.Union):
        raise SettingsError(f"{where}: unsupported type")  # no unions in settings
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SettingsError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SettingsError(f"{where}: expected an integer, got {value!r}")
        return value
    if not isinstance(value, hint):
        raise SettingsError(f"{where}: expected {hint.__name__}, got {value!r}")
    return value


def render_settings_toml(settings: Settings) -> str:
    """Write settings back as TOML (used by ``schulhof init``); every key shown."""
    lines: list[str] = []
    for f in dataclasses.fields(settings):
        if f.name in ("base_dir", "partners"):
            continue
        section = getattr(settings, f.name)
        lines.append(f"[{_FIELD_SECTIONS.get(f.name, f.name)}]")
        for sf in dataclasses.fields(section):
            lines.append(f"{sf.name} = {_toml_value(getattr(section, sf.name))}")
        lines.append("")
    lines.append("# Partner schools: pupils may write to them (policy.pupils_partner_schools).")
    for partner in settings.partners:
        lines.append("[[partners]]")
        for pf in dataclasses.fields(partner):
            lines.append(f"{pf.name} = {_toml_value(getattr(partner, pf.name))}")
    if not settings.partners:
        lines.append('# [[partners]]\n# domain = "partnerschule.example"')
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return '"' + "".join(_toml_char(c) for c in str(value)) + '"'


def _toml_char(char: str) -> str:
    """Escape one character for a TOML basic string (TOML 1.0, section String)."""
    if char == '"':
        return '\\"'
    if char == "\\":
        return "\\\\"
    if char < " " or char == "\x7f":
        return {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}.get(
            char, f"\\u{ord(char):04x}")
    return char
