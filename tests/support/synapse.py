"""A real Synapse homeserver for the interop tests (issue 13, "Interop with Synapse").

``matrix-synapse`` from PyPI is installed once into its own virtualenv outside the
repository (``~/.cache/schulhof/synapse-<version>``, or ``$SCHULHOF_SYNAPSE_VENV``)
and reused by later runs; concurrent test workers wait for one installer under a
file lock.  Each test gets a fresh server: a generated ``homeserver.yaml`` in a
temporary folder (SQLite, a TLS federation listener with its own certificate,
the schools' certificates as ``federation_custom_ca_list``, no key notary,
rate limits off, registration through the shared secret), loopback addresses
allowed for federation (``ip_range_whitelist``).

Name resolution: Synapse resolves server names through the system resolver
(``/etc/resolv.conf``, port 53).  It runs in a private mount namespace
(``unshare --mount``) in which ``/etc/resolv.conf`` names the tests' DNS server,
so it finds the schools by their SRV ``_matrix-fed._tcp`` records exactly as a
Synapse on the internet would, and nothing outside the test sees the change.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import hmac
import os
import secrets
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from federation.keys import make_self_signed_certificate
from federation.matrix.signed_json import SigningKey, unpadded_base64

SYNAPSE_VERSION = "1.163.2"
INSTALL_TIMEOUT_SECONDS = 900
START_TIMEOUT_SECONDS = 180.0


def venv_dir() -> Path:
    configured = os.environ.get("SCHULHOF_SYNAPSE_VENV")
    if configured:
        return Path(configured)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "schulhof" / f"synapse-{SYNAPSE_VERSION}"


def _installed(python: Path) -> bool:
    if not python.exists():
        return False
    probe = subprocess.run([str(python), "-c", "import synapse; print(synapse.__version__)"],
                           capture_output=True, text=True, timeout=120)
    return probe.returncode == 0 and probe.stdout.strip() == SYNAPSE_VERSION


def ensure_synapse() -> Path:
    """The Python of a virtualenv with ``matrix-synapse`` (installed on first use)."""
    target = venv_dir()
    python = target / "bin" / "python"
    if _installed(python):
        return python
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another worker may be installing it
        if _installed(python):
            return python
        partial = target.with_name(target.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        shutil.rmtree(target, ignore_errors=True)
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base, "-m", "venv", str(partial)], check=True)
        subprocess.run([str(partial / "bin" / "python"), "-m", "pip", "install", "-q",
                        "--disable-pip-version-check", f"matrix-synapse=={SYNAPSE_VERSION}"],
                       check=True, timeout=INSTALL_TIMEOUT_SECONDS)
        # Moved into place only when complete: an interrupted install is redone.
        # (The venv's scripts keep the old path in their #! lines; we only run
        # `python -m`, which finds its packages relative to the interpreter.)
        partial.rename(target)
    if not _installed(python):
        raise RuntimeError(f"matrix-synapse {SYNAPSE_VERSION} did not install in {target}")
    return python


@dataclass(frozen=True)
class SynapseUser:
    user_id: str
    access_token: str
    device_id: str


_LOG_CONFIG = """\
version: 1
formatters:
  plain:
    format: '%(asctime)s %(name)s %(levelname)s %(message)s'
handlers:
  file:
    class: logging.FileHandler
    formatter: plain
    filename: {log}
root:
  level: INFO
  handlers: [file]
disable_existing_loggers: false
"""

class SynapseServer:
    """One Synapse homeserver named ``server_name`` on ``ip`` (federation over TLS on
    ``federation_port``, the client API over plain HTTP on ``client_port``)."""

    def __init__(self, python: Path, directory: Path, *, server_name: str, ip: str,
                 federation_port: int, client_port: int, dns_ip: str,
                 trusted_certificates: list[Path]) -> None:
        self.python = python
        self.dir = directory
        self.server_name = server_name
        self.ip = ip
        self.federation_port = federation_port
        self.client_port = client_port
        self.dns_ip = dns_ip
        self.trusted_certificates = trusted_certificates
        self.shared_secret = secrets.token_hex(16)
        self._seed = secrets.token_bytes(32)
        self.signing_key = SigningKey.from_seed(self._seed, "a_syn")
        self.certificate = directory / "tls.crt"
        self.log = directory / "homeserver.log"
        self._process: asyncio.subprocess.Process | None = None

    @property
    def client_url(self) -> str:
        return f"http://{self.ip}:{self.client_port}"

    def write_config(self) -> Path:
        import json

        d = self.dir
        d.mkdir(parents=True, exist_ok=True)
        make_self_signed_certificate(self.certificate, d / "tls.key", [self.server_name],
                                     ip_addresses=[self.ip])
        # Synapse's key file: "<algorithm> <version> <unpadded base64 seed>".
        version = self.signing_key.key_id.split(":", 1)[1]
        (d / "signing.key").write_text(f"ed25519 {version} {unpadded_base64(self._seed)}\n")
        (d / "log.yaml").write_text(_LOG_CONFIG.format(log=self.log))
        (d / "resolv.conf").write_text(
            f"nameserver {self.dns_ip}\noptions timeout:2 attempts:2\n")
        rate_off = {"per_second": 10000, "burst_count": 100000}
        config = {
            "server_name": self.server_name,
            "pid_file": str(d / "homeserver.pid"),
            "report_stats": False,
            "listeners": [
                {"port": self.federation_port, "bind_addresses": [self.ip], "type": "http",
                 "tls": True, "x_forwarded": False,
                 "resources": [{"names": ["federation", "keys"], "compress": False}]},
                {"port": self.client_port, "bind_addresses": [self.ip], "type": "http",
                 "tls": False, "x_forwarded": False,
                 "resources": [{"names": ["client"], "compress": False}]},
            ],
            "tls_certificate_path": str(self.certificate),
            "tls_private_key_path": str(d / "tls.key"),
            "federation_custom_ca_list": [str(p) for p in self.trusted_certificates],
            "federation_verify_certificates": True,
            # The schools live on loopback, which Synapse refuses by default.
            "ip_range_whitelist": ["127.0.0.0/8"],
            "trusted_key_servers": [],
            "suppress_key_server_warning": True,
            "database": {"name": "sqlite3", "args": {"database": str(d / "homeserver.db")}},
            "log_config": str(d / "log.yaml"),
            "media_store_path": str(d / "media"),
            "signing_key_path": str(d / "signing.key"),
            "registration_shared_secret": self.shared_secret,
            "enable_registration": False,
            "macaroon_secret_key": secrets.token_hex(16),
            "form_secret": secrets.token_hex(16),
            "presence": {"enabled": False},
            # Synapse makes version 12 rooms by default; Schulhof speaks 10 and 11
            # (an invite into a v12 room is refused with M_INCOMPATIBLE_ROOM_VERSION).
            "default_room_version": "11",
            "rc_message": rate_off, "rc_login": {"address": rate_off, "account": rate_off,
                                                 "failed_attempts": rate_off},
            "rc_registration": rate_off, "rc_joins": {"local": rate_off, "remote": rate_off},
            "rc_invites": {"per_room": rate_off, "per_user": rate_off,
                           "per_issuer": rate_off},
            "rc_federation": {"window_size": 1000, "sleep_limit": 10000, "sleep_delay": 1,
                              "reject_limit": 10000, "concurrent": 100},
            "rc_key_requests": rate_off,
            "rc_joins_per_room": rate_off,
            "rc_3pid_validation": rate_off,
            "rc_admin_redaction": rate_off,
        }
        path = d / "homeserver.yaml"
        # JSON is YAML: no YAML writer needed on our side.
        path.write_text(json.dumps(config, indent=1))
        return path

    async def start(self) -> None:
        config = self.dir / "homeserver.yaml"
        if not config.exists():  # written earlier when the caller needed the certificate
            config = self.write_config()
        # A private mount namespace whose /etc/resolv.conf names the test DNS server.
        script = (f'mount --bind "{self.dir / "resolv.conf"}" /etc/resolv.conf && '
                  f'exec "{self.python}" -m synapse.app.homeserver -c "{config}"')
        with open(self.dir / "stdout.log", "wb") as output:  # the child keeps its copy
            self._process = await asyncio.create_subprocess_exec(
                "unshare", "--mount", "--", "sh", "-c", script,
                stdout=output, stderr=subprocess.STDOUT, cwd=self.dir, start_new_session=True)
        await self._wait_ready()

    async def _wait_ready(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT_SECONDS
        async with aiohttp.ClientSession() as http:
            while loop.time() < deadline:
                assert self._process is not None
                if self._process.returncode is not None:
                    raise RuntimeError(f"Synapse exited ({self._process.returncode}):\n"
                                       + self.tail())
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    async with http.get(f"{self.client_url}/health") as response:
                        if response.status == 200:
                            return
                await asyncio.sleep(0.5)
        raise RuntimeError("Synapse did not start in time:\n" + self.tail())

    def tail(self, lines: int = 60) -> str:
        out = []
        for name in ("stdout.log", "homeserver.log"):
            path = self.dir / name
            if path.exists():
                out += path.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join(out)

    async def stop(self) -> None:
        process = self._process
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), 20)
        except TimeoutError:
            process.kill()
            await process.wait()
        self._process = None

    async def register(self, localpart: str, password: str, displayname: str) -> SynapseUser:
        """A user made through the shared-secret admin API
        (``POST /_synapse/admin/v1/register``)."""
        url = f"{self.client_url}/_synapse/admin/v1/register"
        async with aiohttp.ClientSession() as http:
            async with http.get(url) as response:
                nonce = (await response.json())["nonce"]
            mac = hmac.new(self.shared_secret.encode(), digestmod=hashlib.sha1)
            mac.update(b"\x00".join([nonce.encode(), localpart.encode(), password.encode(),
                                     b"notadmin"]))
            async with http.post(url, json={
                    "nonce": nonce, "username": localpart, "password": password,
                    "displayname": displayname, "admin": False,
                    "mac": mac.hexdigest()}) as response:
                body = await response.json()
                if response.status != 200:
                    raise RuntimeError(f"registration failed: {response.status} {body}")
        return SynapseUser(body["user_id"], body["access_token"], body["device_id"])

    async def client(self, user: SynapseUser, method: str, path: str,
                     body: object = None) -> tuple[int, dict[str, object]]:
        """One client API request as ``user``: (status, JSON body)."""
        async with aiohttp.ClientSession() as http, http.request(
                method, f"{self.client_url}{path}", json=body,
                headers={"Authorization": f"Bearer {user.access_token}"}) as response:
            return response.status, await response.json(content_type=None)
