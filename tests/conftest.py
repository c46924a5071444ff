"""Fixtures: the app on SQLite (and PostgreSQL for `both_dbs` tests), clients, mail capture."""

import os
import re
import shutil
from contextlib import contextmanager

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient

from portail import create_app
from portail.extensions import db, limiter, mail
from portail.models import Role
from tests.factories import PASSWORD, make_user
from tests.support import RedisServer, SmtpSink, drop_database, process_env, stop_process

STRICT = os.environ.get("PORTAIL_STRICT") == "1"
pytest_plugins = ["tests.browser_support"]  # the browser and live_server fixtures


def missing_service(what: str) -> None:
    """Skip a test whose service is absent; in strict mode (CI) fail instead."""
    if STRICT:
        pytest.fail(f"{what} is required (PORTAIL_STRICT=1)")
    pytest.skip(f"{what} is not available")


def pytest_generate_tests(metafunc):
    if "db_backend" in metafunc.fixturenames:
        both = metafunc.definition.get_closest_marker("both_dbs") is not None
        metafunc.parametrize("db_backend", ["sqlite", "postgresql"] if both else ["sqlite"])


@pytest.fixture(scope="session")
def pg_url():
    """A fresh PostgreSQL database for this test process (from TEST_DATABASE_URL)."""
    base = os.environ.get("TEST_DATABASE_URL")
    if not base:
        missing_service("PostgreSQL (TEST_DATABASE_URL)")
    suffix = os.environ.get("PYTEST_XDIST_WORKER", "main")
    url = sa.engine.make_url(base)
    name = f"{url.database}_{suffix}"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            drop_database(connection, name)
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as error:
        missing_service(f"PostgreSQL ({error.orig})")
    finally:
        admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


class IsolatedClient(FlaskClient):
    """Each request gets its own app context (fresh `g` and DB session), as in production,
    even though the test itself runs inside an app context."""

    def open(self, *args, **kwargs):
        with self.application.app_context():
            return super().open(*args, **kwargs)


_UPLOAD_DIRS: list = []


@pytest.fixture(scope="session", autouse=True)
def _upload_dir(tmp_path_factory):
    """Uploaded files go under pytest's temporary directory, which pytest cleans up."""
    _UPLOAD_DIRS.append(tmp_path_factory.mktemp("uploads"))


def make_app(db_url: str, **overrides):
    config = {"SQLALCHEMY_DATABASE_URI": db_url, "UPLOAD_DIR": str(_UPLOAD_DIRS[-1])}
    config.update(overrides)
    app = create_app("testing", config)
    # Flask-Limiter keeps "storage unreachable" on the extension, not on the app: after a test with
    # Redis down, a new app would count in a throwaway memory storage until its backoff ends, then
    # start again from zero in its own (a limit test then sees no 429). One app per process in
    # production; here every app starts with its storage presumed reachable.
    limiter._storage_dead = False
    app.test_client_class = IsolatedClient
    return app


@contextmanager
def tables(app, drop: bool = False):
    """The app's context with its tables created; after the block, the session removed, the tables
    dropped if `drop` (a database that outlives the test), the engine's connections closed."""
    with app.app_context():
        db.create_all()
        try:
            yield app
        finally:
            db.session.remove()
            if drop:
                db.drop_all()
            db.engine.dispose()


@pytest.fixture
def db_url(db_backend, tmp_path, request):
    if db_backend == "postgresql":
        return request.getfixturevalue("pg_url")
    return f"sqlite:///{tmp_path / 'test.sqlite'}"


@pytest.fixture
def app(db_url):
    with tables(make_app(db_url), drop=True) as app:
        yield app


@pytest.fixture
def redis_server(tmp_path):
    """A redis-server of the test's own (started by the test, which can stall, kill and restart it)."""
    if not shutil.which("redis-server"):
        missing_service("redis-server (Debian package redis-server)")
    server = RedisServer(tmp_path)
    yield server
    server.stop()


@pytest.fixture
def smtp():
    """An SMTP sink keeping every message it receives."""
    sink = SmtpSink()
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture
def live(tmp_path, redis_server, smtp):
    """An app on a SQLite file shared with the worker processes (`tests.support.start`), sending
    through real services."""
    yield from live_app(f"sqlite:///{tmp_path / 'integration.sqlite'}", redis_server, smtp)


def live_app(db_url: str, redis_server, smtp, drop: bool = False):
    """The app of `live` on `db_url` (`drop`: its tables dropped after), its worker processes stopped
    at the end."""
    app = make_app(
        db_url,
        REDIS_URL=redis_server.url,
        RATELIMIT_STORAGE_URI="memory://",
        RQ_SYNC=False,
        MAIL_SERVER="127.0.0.1",
        MAIL_PORT=smtp.port,
        MAIL_SUPPRESS_SEND=False,
    )
    app.processes = []
    app.process_env = process_env(db_url, redis_server.url, smtp.port, OUTBOX_RELAY_AFTER_SECONDS="0")
    with tables(app, drop=drop):
        try:
            yield app
        finally:
            for process in app.processes:
                stop_process(process)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def mails(app):
    """Every mail the app sends during the test (jobs run inline in tests)."""
    with mail.record_messages() as outbox:
        yield outbox


class Auth:
    def __init__(self, client):
        self.client = client

    def login(self, email: str, password: str = PASSWORD, **kwargs):
        return self.client.post("/connexion", data={"email": email, "password": password}, **kwargs)

    def logout(self):
        return self.client.post("/deconnexion")


@pytest.fixture
def auth(client):
    return Auth(client)


@pytest.fixture
def logged_in_agent(client, auth):
    """An agent of the town's service, logged in on `client`."""
    user = make_user(email="agent@example.fr", role=Role.AGENT, first_name="Nadia", last_name="AGENT")
    db.session.commit()
    auth.login("agent@example.fr")
    return user


def link_in(message, path_prefix: str) -> str:
    """The path of the first link in a mail's text that starts with `path_prefix`."""
    return link_in_text(message.body, path_prefix)


def link_in_text(text: str, path_prefix: str) -> str:
    match = re.search(r"https?://[^/\s]+(" + re.escape(path_prefix) + r"[^\s]*)", text)
    assert match, f"no {path_prefix} link in: {text}"
    return match.group(1)
