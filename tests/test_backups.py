"""Backups: the restore drill on SQLite and PostgreSQL — the demo town backed up, restored into an
empty database and upload folder, checked row for row and byte for byte, then used (a parent logs
in and downloads her document); altered, incomplete or misplaced restores are refused and write
nothing."""

import hashlib
import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from portail import demo
from portail.extensions import db
from portail.models import Booking, Document, Family, Invoice, User, utcnow
from portail.services import backups
from tests.conftest import make_app, tables
from tests.support import drop_database

pytestmark = pytest.mark.both_dbs

MODELS = (Family, User, Booking, Document, Invoice)


@pytest.fixture
def target_url(db_backend, db_url, tmp_path):
    """An empty database to restore into, beside the test's own."""
    if db_backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'restored.sqlite'}"
        return
    url = sa.engine.make_url(db_url)
    name = f"{url.database}_restore"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        drop_database(connection, name)
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield url.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as connection:
        drop_database(connection, name)
    admin.dispose()


@pytest.fixture
def backed_up(db_url, tmp_path):
    """The demo town, backed up: (backup folder, rows per model, uploaded files' digests, a document)."""
    source = make_app(db_url, UPLOAD_DIR=str(tmp_path / "uploads"))
    with tables(source, drop=True):
        demo.load()
        db.session.commit()
        folder = backups.create(tmp_path / "backups", utcnow())
        rows = {
            model.__name__: db.session.scalar(sa.select(sa.func.count()).select_from(model))
            for model in MODELS
        }
        document = db.session.scalars(sa.select(Document).order_by(Document.id)).first()
        saved = (document.id, document.family_id, document.family.subscriptions[0].user.email)
        db.session.commit()  # (nothing held open on the source while the test runs)
        yield folder, rows, digests(tmp_path / "uploads"), saved


def digests(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in folder.rglob("*")
        if path.is_file()
    }


def test_the_restore_drill_gives_back_every_row_and_file_and_the_town_works(backed_up, target_url, tmp_path):
    folder, rows, files, (document_id, family_id, email) = backed_up
    assert rows["Family"] > 0 and rows["Booking"] > 100 and rows["Document"] > 0 and files
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["upload_files"] == len(files) and manifest["tables"]["family"] == rows["Family"]
    target = make_app(target_url, UPLOAD_DIR=str(tmp_path / "restored"))
    with target.app_context():
        try:
            backups.restore(folder)
            restored = {
                model.__name__: db.session.scalar(sa.select(sa.func.count()).select_from(model))
                for model in MODELS
            }
            assert restored == rows
            assert digests(tmp_path / "restored") == files
            client = target.test_client()
            client.post("/connexion", data={"email": email, "password": demo.DEMO_PASSWORD})
            answer = client.get(f"/famille/{family_id}/pieces/{document_id}/fichier")
            stored = db.session.get(Document, document_id).stored_name
            assert answer.status_code == 200
            assert answer.data == next((tmp_path / "restored").rglob(stored)).read_bytes()
        finally:
            db.session.remove()
            db.drop_all()
            db.engine.dispose()


def test_a_restore_over_data_is_refused_unless_forced(backed_up, target_url, tmp_path):
    folder, rows, files, _document = backed_up
    target = make_app(target_url, UPLOAD_DIR=str(tmp_path / "restored"))
    with target.app_context():
        try:
            backups.restore(folder)
            family = db.session.scalars(sa.select(Family).order_by(Family.id)).first()
            family.name = "Famille CHANGÉE APRÈS LA SAUVEGARDE"
            db.session.commit()
            with pytest.raises(backups.BackupError, match="contient déjà des données"):
                backups.restore(folder)
            assert db.session.scalar(
                sa.select(sa.func.count()).select_from(Family).where(Family.name.like("%CHANG%"))
            )
            backups.restore(folder, force=True)  # the operator's deliberate replacement
            assert not db.session.scalar(
                sa.select(sa.func.count()).select_from(Family).where(Family.name.like("%CHANG%"))
            )
            assert db.session.scalar(sa.select(sa.func.count()).select_from(Booking)) == rows["Booking"]
            assert digests(tmp_path / "restored") == files
        finally:
            db.session.remove()
            db.drop_all()
            db.engine.dispose()


def test_an_altered_or_incomplete_backup_is_refused_before_anything_is_written(
    backed_up, target_url, tmp_path
):
    folder, _rows, _files, _document = backed_up
    dump = next(path for path in folder.iterdir() if path.name.startswith("database."))
    target = make_app(target_url, UPLOAD_DIR=str(tmp_path / "restored"))
    with target.app_context():
        original = dump.read_bytes()
        dump.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
        with pytest.raises(backups.BackupError, match="altérée"):
            backups.restore(folder)
        dump.unlink()
        with pytest.raises(backups.BackupError, match="incomplète"):
            backups.restore(folder)
        with pytest.raises(backups.BackupError, match="pas une sauvegarde"):
            backups.restore(tmp_path)
        assert sa.inspect(db.engine).get_table_names() == []
        assert not (tmp_path / "restored").exists() or not any((tmp_path / "restored").iterdir())
        db.engine.dispose()


def test_old_backups_are_pruned_to_the_newest(tmp_path):
    for stamp in ("20261201-010000", "20261202-010000", "20261203-010000"):
        (tmp_path / f"portail-{stamp}").mkdir()
        (tmp_path / f"portail-{stamp}" / "manifest.json").write_text("{}")
    (tmp_path / "portail-unfinished").mkdir()  # no manifest: not a backup, left alone
    removed = backups.prune(tmp_path, keep=2)
    assert [path.name for path in removed] == ["portail-20261201-010000"]
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "portail-20261202-010000",
        "portail-20261203-010000",
        "portail-unfinished",
    ]
