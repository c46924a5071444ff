"""What only development may do (demo data, dev mailbox) and what only production sends (HSTS)."""

import os
import subprocess
import sys

import pytest
import sqlalchemy as sa

from portail import create_app
from portail.extensions import db
from portail.models import User
from tests.conftest import tables

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def production_env(db_path) -> dict:
    """The environment of a production deployment, on a throwaway SQLite database."""
    return dict(
        os.environ,
        PORTAIL_ENV="production",
        SECRET_KEY="s" * 32,
        DATABASE_URL=f"sqlite:///{db_path}",
        REDIS_URL="redis://127.0.0.1:1/0",
        MAIL_SERVER="smtp.example.fr",
        PUBLIC_URL="https://famille.example.fr",
    )


@pytest.fixture
def production_app(tmp_path):
    """The production config, with its settings given directly (no environment variables)."""
    app = create_app(
        "production",
        {
            "TESTING": True,  # skips the environment check only; everything else is production
            "SECRET_KEY": "s" * 32,
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'prod.sqlite'}",
            "RATELIMIT_STORAGE_URI": "memory://",
        },
    )
    with tables(app):
        yield app


@pytest.fixture
def development_app(tmp_path):
    app = create_app(
        "development",
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'dev.sqlite'}",
            "DEV_MAILBOX_DIR": str(tmp_path / "mailbox"),
            "REDISLITE_DB": None,
            "RATELIMIT_STORAGE_URI": "memory://",
        },
    )
    with tables(app):
        yield app


def test_demo_load_is_refused_in_production_and_creates_no_account(tmp_path):
    db_path = tmp_path / "prod.sqlite"
    schema = create_app("testing", {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{db_path}"})
    with schema.app_context():
        db.create_all()
        db.engine.dispose()
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app", "demo", "load"],
        cwd=ROOT,
        env=production_env(db_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "Données de démonstration refusées hors développement" in result.stderr
    assert "Demo data is refused outside development" in result.stderr
    engine = sa.create_engine(f"sqlite:///{db_path}")
    with engine.connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(User.__table__)).scalar() == 0
    engine.dispose()


def test_demo_load_works_in_development(development_app):
    result = development_app.test_cli_runner().invoke(args=["demo", "load"])
    assert result.exit_code == 0, result.output
    assert db.session.scalar(sa.select(User).where(User.email == "admin@demo.fr")) is not None


@pytest.mark.parametrize("path", ["/dev/mailbox", "/dev/mailbox/20260101-000000-abc"])
def test_dev_mailbox_is_404_in_production(production_app, path):
    assert production_app.test_client().get(path).status_code == 404


def test_production_sends_hsts(production_app):
    response = production_app.test_client().get("/")
    assert response.status_code == 200
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"


def test_development_and_tests_send_no_hsts(development_app, client):
    """HSTS on http://localhost would make browsers refuse the dev server for a year."""
    assert "Strict-Transport-Security" not in development_app.test_client().get("/").headers
    assert "Strict-Transport-Security" not in client.get("/").headers
