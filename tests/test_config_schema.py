"""Configuration per environment, SQLite pragmas, migrations matching the models, dev mailbox."""

import os
import subprocess
import sys

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from portail import create_app
from portail.extensions import db
from tests.factories import make_user

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_production_refuses_to_start_without_its_settings():
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"SECRET_KEY", "DATABASE_URL", "REDIS_URL", "MAIL_SERVER", "PUBLIC_URL"}
    }
    env["PORTAIL_ENV"] = "production"
    result = subprocess.run(
        [sys.executable, "-c", "from portail import create_app; create_app()"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert (
        "Missing production settings: DATABASE_URL, MAIL_SERVER, PUBLIC_URL, REDIS_URL, SECRET_KEY"
        in result.stderr
    )


def test_production_starts_with_its_settings():
    env = dict(
        os.environ,
        PORTAIL_ENV="production",
        SECRET_KEY="s" * 32,
        DATABASE_URL="sqlite:////tmp/portail-prod-check.sqlite",
        REDIS_URL="redis://127.0.0.1:6379/0",
        MAIL_SERVER="smtp.example.fr",
        PUBLIC_URL="https://famille.example.fr",
    )
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from portail import create_app; a = create_app(); print(a.config['SESSION_COOKIE_SECURE'])",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"


def test_unknown_environment_is_refused():
    with pytest.raises(RuntimeError):
        create_app("staging")


def test_sqlite_connections_use_wal_busy_timeout_and_foreign_keys(app):
    with db.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


@pytest.mark.both_dbs
def test_foreign_keys_are_enforced(app):
    from portail.models import Subscription

    db.session.add(Subscription(user_id=999, family_id=999))
    with pytest.raises(sa.exc.IntegrityError):
        db.session.commit()
    db.session.rollback()


@pytest.mark.both_dbs
def test_email_is_stored_lowercase_by_a_database_check(app):
    user = make_user()
    db.session.commit()
    with pytest.raises(sa.exc.IntegrityError):
        db.session.execute(
            sa.text("UPDATE user_account SET email = 'UPPER@EXAMPLE.FR' WHERE id = :id"), {"id": user.id}
        )
        db.session.commit()
    db.session.rollback()


@pytest.mark.both_dbs
def test_migrations_build_exactly_the_models_schema(db_url, db_backend):
    from flask_migrate import upgrade

    from tests.conftest import make_app

    app = make_app(db_url)
    with app.app_context():
        db.drop_all()
        with db.engine.begin() as connection:
            connection.execute(sa.text("DROP TABLE IF EXISTS alembic_version"))
        upgrade()
        with db.engine.connect() as connection:
            diff = compare_metadata(MigrationContext.configure(connection), db.metadata)
        assert diff == []
        db.drop_all()
        with db.engine.begin() as connection:
            connection.execute(sa.text("DROP TABLE IF EXISTS alembic_version"))
        db.engine.dispose()


def test_dev_mailbox_lists_sent_mails_with_clickable_links(tmp_path):
    from portail.services import outbox

    app = create_app(
        "development",
        {
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'dev.sqlite'}",
            "DEV_MAILBOX_DIR": str(tmp_path / "mailbox"),
            "RQ_SYNC": True,
            "REDISLITE_DB": None,
            "TESTING": True,
        },
    )
    with app.app_context():
        db.create_all()
        with app.test_request_context():
            message_id = outbox.queue_mail(
                "activation", "a@example.fr", first_name="A", link="http://localhost/activation/abc", hours=48
            )
            db.session.commit()
        outbox.deliver(message_id)
        client = app.test_client()
        listing = client.get("/dev/mailbox").get_data(as_text=True)
        assert "a@example.fr" in listing and "Activez votre compte" in listing
        name = next((tmp_path / "mailbox").glob("*.eml")).stem
        page = client.get(f"/dev/mailbox/{name}").get_data(as_text=True)
        assert '<a href="http://localhost/activation/abc">' in page
        assert client.get("/dev/mailbox/..%2Fdev.sqlite").status_code == 404
        db.drop_all()
