"""Backups of the database and the uploaded files, and their restore.

A backup is a folder `portail-YYYYMMDD-HHMMSS/` holding:
- `database.dump` (PostgreSQL: `pg_dump --format=custom` of one snapshot) or `database.sqlite` (SQLite:
  the online backup API's consistent copy);
- `uploads.tar.gz`, the upload folder (photos, pièces justificatives), archived after the database,
  so every file the dump refers to is in it (a file added meanwhile is only an unused extra);
- `manifest.json`: when, which database kind, the rows of every table counted in the dump's own
  snapshot, the number of uploaded files, and the SHA-256 of the two files.

`restore` checks the checksums first, refuses a destination that already holds data (unless
forced), restores both, then counts the rows again and compares them with the manifest: a restore
that does not give back what was saved says so.
"""

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
from flask import current_app

from portail.extensions import db

MANIFEST = "manifest.json"
UPLOADS = "uploads.tar.gz"
DUMPS = {"postgresql": "database.dump", "sqlite": "database.sqlite"}


class BackupError(Exception):
    """A backup or restore that cannot be done; the message says why, in French."""


def create(directory: Path, now: datetime) -> Path:
    """Back up the database and the upload folder into a new folder under `directory`."""
    target = Path(directory) / f"portail-{now:%Y%m%d-%H%M%S}"
    try:
        target.mkdir(parents=True)
    except FileExistsError:
        raise BackupError(f"La sauvegarde {target} existe déjà.") from None
    dialect = db.engine.dialect.name
    dump = target / DUMPS[dialect]
    if dialect == "postgresql":
        counts = _dump_postgresql(dump)
    else:
        counts = _dump_sqlite(dump)
    uploads = Path(current_app.config["UPLOAD_DIR"])
    with tarfile.open(target / UPLOADS, "w:gz") as archive:
        if uploads.is_dir():
            for path in sorted(uploads.rglob("*")):
                archive.add(path, arcname=str(path.relative_to(uploads)), recursive=False)
        files = sum(1 for member in archive.getmembers() if member.isfile())
    manifest = {
        "created_at": now.isoformat(),
        "database": dialect,
        "tables": counts,
        "upload_files": files,
        "sha256": {name: _sha256(target / name) for name in (dump.name, UPLOADS)},
    }
    (target / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return target


def restore(source: Path, force: bool = False) -> dict:
    """Restore a backup folder into this app's database and upload folder; its manifest back.

    Refused, with nothing written, when the backup is altered or incomplete, when it was made from
    another kind of database, or (unless `force`) when the database or the upload folder holds data."""
    source = Path(source)
    manifest = verify(source)
    dialect = db.engine.dialect.name
    if manifest["database"] != dialect:
        raise BackupError(f"Cette sauvegarde vient d'une base {manifest['database']}, pas {dialect}.")
    uploads = Path(current_app.config["UPLOAD_DIR"])
    if not force:
        if any(rows for name, rows in _counts_of(db.engine).items() if name != "alembic_version"):
            raise BackupError("La base de destination contient déjà des données (--force pour la remplacer).")
        if uploads.is_dir() and any(uploads.iterdir()):
            raise BackupError(f"Le dossier {uploads} n'est pas vide (--force pour le remplacer).")
    db.session.remove()
    db.engine.dispose()
    if dialect == "postgresql":
        _restore_postgresql(source / DUMPS[dialect])
    else:
        _restore_sqlite(source / DUMPS[dialect])
    if force and uploads.is_dir():
        shutil.rmtree(uploads)
    uploads.mkdir(parents=True, exist_ok=True)
    with tarfile.open(source / UPLOADS, "r:gz") as archive:
        archive.extractall(uploads, filter="data")
    counts = _counts_of(db.engine)
    if counts != manifest["tables"]:
        differ = sorted(name for name in manifest["tables"] if counts.get(name) != manifest["tables"][name])
        raise BackupError(f"La restauration ne redonne pas les lignes sauvegardées : {', '.join(differ)}.")
    files = sum(1 for path in uploads.rglob("*") if path.is_file())
    if files != manifest["upload_files"]:
        raise BackupError(f"{files} fichiers restaurés au lieu de {manifest['upload_files']}.")
    return manifest


def verify(source: Path) -> dict:
    """The manifest of a backup folder whose files are all present and unaltered."""
    try:
        manifest = json.loads((Path(source) / MANIFEST).read_text())
        expected = manifest["sha256"]
    except (OSError, ValueError, KeyError):
        raise BackupError(f"{source} n'est pas une sauvegarde (manifest.json absent ou illisible).") from None
    for name, digest in expected.items():
        path = Path(source) / name
        if not path.is_file():
            raise BackupError(f"Sauvegarde incomplète : {name} manque.")
        if _sha256(path) != digest:
            raise BackupError(f"Sauvegarde altérée : {name} ne correspond pas à son empreinte.")
    return manifest


def prune(directory: Path, keep: int) -> list[Path]:
    """Remove all but the `keep` newest backup folders of `directory`; those removed."""
    found = sorted(path for path in Path(directory).glob("portail-*") if (path / MANIFEST).is_file())
    removed = found[: max(len(found) - keep, 0)]
    for path in removed:
        shutil.rmtree(path)
    return removed


def _dump_postgresql(dump: Path) -> dict[str, int]:
    """pg_dump of the snapshot in which the rows are counted: the counts describe the dump."""
    dsn, env = _libpq()
    with db.engine.connect() as connection:
        connection = connection.execution_options(isolation_level="REPEATABLE READ")
        with connection.begin():
            snapshot = connection.scalar(sa.text("SELECT pg_export_snapshot()"))
            counts = _counts(connection)
            _run(
                ["pg_dump", "--format=custom", "--no-owner", "--no-acl", f"--snapshot={snapshot}"]
                + ["--file", str(dump), dsn],
                env,
            )
    return counts


def _restore_postgresql(dump: Path) -> None:
    """pg_restore, dropping first what the dump creates (an empty schema from `flask db upgrade`, or
    the data `force` replaces)."""
    dsn, env = _libpq()
    command = ["pg_restore", "--no-owner", "--no-acl", "--clean", "--if-exists", "--exit-on-error"]
    _run([*command, "--single-transaction", "--dbname", dsn, str(dump)], env)


def _dump_sqlite(dump: Path) -> dict[str, int]:
    with sqlite3.connect(_sqlite_path()) as source, sqlite3.connect(dump) as copy:
        source.backup(copy)
    copy_engine = sa.create_engine(f"sqlite:///{dump}")
    try:
        return _counts_of(copy_engine)
    finally:
        copy_engine.dispose()


def _restore_sqlite(dump: Path) -> None:
    with sqlite3.connect(dump) as copy, sqlite3.connect(_sqlite_path()) as target:
        copy.backup(target)


def _sqlite_path() -> str:
    path = db.engine.url.database
    if not path or path == ":memory:":
        raise BackupError("Une base SQLite en mémoire ne se sauvegarde pas.")
    return path


def _counts_of(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as connection:
        return _counts(connection)


def _counts(connection: sa.Connection) -> dict[str, int]:
    """The rows of each of the app's tables (and Alembic's) that exist in this database."""
    present = set(sa.inspect(connection).get_table_names())
    names = [table.name for table in db.metadata.sorted_tables] + ["alembic_version"]
    return {
        name: connection.scalar(sa.select(sa.func.count()).select_from(sa.table(name)))
        for name in names
        if name in present
    }


def _libpq() -> tuple[str, dict]:
    """The database's libpq URL without its password, and an environment that carries it."""
    url = db.engine.url
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = url.password
    return url.set(drivername="postgresql", password=None).render_as_string(hide_password=False), env


def _run(command: list[str], env: dict) -> None:
    try:
        subprocess.run(command, env=env, check=True, capture_output=True, text=True)
    except FileNotFoundError:
        raise BackupError(f"{command[0]} est introuvable (paquet postgresql-client).") from None
    except subprocess.CalledProcessError as error:
        raise BackupError(f"{command[0]} a échoué : {error.stderr.strip()[-500:]}") from None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
