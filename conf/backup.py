"""Backup and restore of a whole school: database, keys, certificate, data, settings.

``make_backup`` runs while the school serves: SQLite through its online
backup API (a consistent snapshot page by page, writers are not blocked for
long), PostgreSQL through ``pg_dump`` (one snapshot transaction).  Files are
copied as they are (keys and certificates change rarely; media files are
immutable once written).  ``manifest.json`` lists every file with its size
and SHA-256, the school's domain and the database kind; it is written last,
so a backup without one is incomplete.

``restore_backup`` refuses a backup whose manifest is missing, unknown or
does not match its files (damaged), and one of another school when the target
already holds a school (foreign); then it writes the files into the target
folder and loads the database (a SQLite file, or ``pg_restore`` into the
given PostgreSQL database).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from conf.settings import Settings

FORMAT = "schulhof-backup-1"
MANIFEST = "manifest.json"
SETTINGS_NAME = "schulhof.toml"


class BackupError(Exception):
    """A backup that cannot be made or must not be restored; the text says why."""


@dataclass(frozen=True)
class BackupSummary:
    directory: Path
    files: int
    bytes: int


def _sqlite_path(url: str) -> Path | None:
    if not url.startswith("sqlite"):
        return None
    path = url.split("///", 1)[1] if "///" in url else ""
    return Path(path) if path and path != ":memory:" else None


def libpq_url(url: str) -> str:
    """``postgresql+asyncpg://...`` -> ``postgresql://...`` for pg_dump and pg_restore."""
    parts = urlsplit(url)
    return urlunsplit(("postgresql", parts.netloc, parts.path, parts.query, ""))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _copy_tree(source: Path, target: Path, skip: set[Path]) -> None:
    for path in sorted(source.rglob("*")):
        if path.is_file() and path.resolve() not in skip:
            destination = target / path.relative_to(source)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, destination)


def make_backup(settings: Settings, config_path: Path, target: Path) -> BackupSummary:
    """A consistent copy of the school in ``target`` (new or empty). Blocking: run
    it in a thread (``asyncio.to_thread``) inside the server."""
    if target.exists() and any(target.iterdir()):
        raise BackupError(f"{target} is not empty")
    target.mkdir(parents=True, exist_ok=True)
    files = target / "files"
    files.mkdir()
    url = settings.database_url
    sqlite_file = _sqlite_path(url)
    skip: set[Path] = set()
    if sqlite_file is not None:
        skip = {Path(f"{sqlite_file}{suffix}").resolve() for suffix in ("", "-wal", "-shm")}
        database = {"kind": "sqlite", "file": "database.sqlite"}
        source = sqlite3.connect(f"file:{sqlite_file}?mode=ro", uri=True)
        copy = sqlite3.connect(target / "database.sqlite")
        try:
            source.backup(copy, pages=256)  # SQLite online backup API
        finally:
            copy.close()
            source.close()
    else:
        database = {"kind": "postgresql", "file": "database.pgdump"}
        env = dict(os.environ)
        password = urlsplit(url).password
        if password:
            env["PGPASSWORD"] = password
        done = subprocess.run(
            ["pg_dump", "--format=custom", "--no-owner", "--no-privileges",
             f"--file={target / 'database.pgdump'}", libpq_url(url)],
            capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0:
            raise BackupError(f"pg_dump failed: {done.stderr.strip()[:500]}")
    shutil.copy2(config_path, files / SETTINGS_NAME)
    for relative in (settings.tls.certificate, settings.tls.key):
        path = settings.path(relative)
        if path.is_file():
            destination = files / "tls" / path.name
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, destination)
    for name, folder in (("keys", settings.base_dir / "keys"), ("data", settings.data_dir)):
        if folder.is_dir():
            _copy_tree(folder, files / name, skip)
    listing: dict[str, dict[str, object]] = {}
    total = 0
    for path in sorted(target.rglob("*")):
        if path.is_file():
            size = path.stat().st_size
            total += size
            listing[path.relative_to(target).as_posix()] = {"size": size,
                                                            "sha256": _sha256(path)}
    manifest = {
        "format": FORMAT, "domain": settings.school.domain.lower(),
        "created_at": dt.datetime.now(dt.UTC).isoformat(), "database": database,
        "tls": {"certificate": Path(settings.tls.certificate).name,
                "key": Path(settings.tls.key).name},
        "files": listing}
    (target / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return BackupSummary(target, len(listing), total)


def read_manifest(backup: Path) -> dict[str, object]:
    """The manifest after every check: format, files present, sizes and checksums."""
    try:
        manifest = json.loads((backup / MANIFEST).read_text())
    except FileNotFoundError:
        raise BackupError(f"{backup}: no {MANIFEST}: not a (complete) Schulhof backup") \
            from None
    except (ValueError, UnicodeDecodeError):
        raise BackupError(f"{backup}: {MANIFEST} is damaged") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{backup}: not a Schulhof backup of format {FORMAT}")
    listing = manifest.get("files")
    if not isinstance(listing, dict):
        raise BackupError(f"{backup}: {MANIFEST} is damaged")
    present = {p.relative_to(backup).as_posix() for p in backup.rglob("*")
               if p.is_file() and p.name != MANIFEST}
    if present != set(listing):
        missing, extra = sorted(set(listing) - present), sorted(present - set(listing))
        raise BackupError(f"{backup}: damaged: missing {missing[:5]}, unexpected {extra[:5]}")
    for name, entry in listing.items():
        path = backup / name
        if not isinstance(entry, dict) or path.stat().st_size != entry.get("size") \
                or _sha256(path) != entry.get("sha256"):
            raise BackupError(f"{backup}: damaged: {name} does not match its checksum")
    return manifest


def restore_backup(backup: Path, target: Path, *, database_url: str = "") -> Path:
    """Restore into ``target``; returns the settings file to start the school with.

    ``database_url``: the PostgreSQL database to load a PostgreSQL backup into
    (its tables are replaced); for a SQLite backup the file goes where the
    restored settings put it (a relative path: inside ``target``)."""
    manifest = read_manifest(backup)
    domain = str(manifest.get("domain", ""))
    existing = target / SETTINGS_NAME
    if existing.exists():
        current = tomllib.loads(existing.read_text()).get("school", {}).get("domain", "")
        if str(current).lower() != domain:
            raise BackupError(f"foreign backup: it is of {domain}, {target} holds {current}")
    target.mkdir(parents=True, exist_ok=True)
    files = backup / "files"
    settings_text = (files / SETTINGS_NAME).read_text()
    raw = tomllib.loads(settings_text)
    restored_domain = str(raw.get("school", {}).get("domain", "")).lower()
    if restored_domain != domain:
        raise BackupError(f"{backup}: damaged: settings of {restored_domain}, manifest {domain}")
    database = manifest.get("database")
    if not isinstance(database, dict):
        raise BackupError(f"{backup}: {MANIFEST} is damaged")
    if database.get("kind") == "postgresql" and not database_url.startswith("postgresql"):
        raise BackupError("a PostgreSQL backup needs --database-url of the database to fill")
    existing.write_text(settings_text)
    for name in ("keys", "data"):
        if (files / name).is_dir():
            _copy_tree(files / name, target / name, set())
    tls = manifest.get("tls")
    if isinstance(tls, dict) and (files / "tls").is_dir():
        settings_tls = raw.get("tls", {})
        for key, default in (("certificate", "tls/cert.pem"), ("key", "tls/key.pem")):
            source = files / "tls" / str(tls.get(key, ""))
            destination = Path(str(settings_tls.get(key, default)))
            destination = destination if destination.is_absolute() else target / destination
            if source.is_file():
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, destination)
    if database.get("kind") == "sqlite":
        url = str(raw.get("database", {}).get("url", "sqlite+aiosqlite:///schulhof.db"))
        if database_url:
            url = database_url
        path = _sqlite_path(url)
        if path is None:
            raise BackupError(f"cannot restore a SQLite backup into {url}")
        path = path if path.is_absolute() else target / path
        if path.exists():
            raise BackupError(f"{path} exists: restore into a new folder")
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(backup / "database.sqlite", path)
    else:
        env = dict(os.environ)
        password = urlsplit(database_url).password
        if password:
            env["PGPASSWORD"] = password
        done = subprocess.run(
            ["pg_restore", "--clean", "--if-exists", "--no-owner", "--no-privileges",
             f"--dbname={libpq_url(database_url)}", str(backup / "database.pgdump")],
            capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0:
            raise BackupError(f"pg_restore failed: {done.stderr.strip()[:500]}")
    return existing
