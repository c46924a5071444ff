"""`make run` (portail/devserver.py): a worker or scheduler that dies is started again and reported
while the web server keeps running; the children link their mails to the address served."""

import email
import os
import sys
from datetime import timedelta
from email import policy

import pytest

from portail.devserver import Children, child_env, public_url
from portail.extensions import db
from portail.models import Document, DocumentScope, DocumentState, DocumentType, utcnow
from tests.conftest import make_app
from tests.factories import make_family, make_user
from tests.support import start_process, stop_process, wait_for

SLEEP = [sys.executable, "-c", "import time; time.sleep(120)"]
CRASH = [sys.executable, "-c", "raise SystemExit(3)"]


@pytest.fixture
def children():
    said = []
    group = Children(
        {"web": SLEEP, "worker": CRASH, "scheduler": SLEEP},
        env=dict(os.environ),
        say=said.append,
        first_delay=0.2,
        max_delay=0.8,
    )
    group.said = said
    yield group
    group.stop_all()


def test_a_dead_background_process_is_started_again_with_a_growing_delay_and_reported(children):
    children.start_all()
    web, scheduler = children.processes["web"], children.processes["scheduler"]
    first_worker = children.processes["worker"]
    wait_for(lambda: children.check() or len([line for line in children.said if "relancé" in line]) >= 3)
    assert children.processes["worker"] is not first_worker
    assert children.said[:6] == [
        "Le processus worker s'est arrêté (code 3) ; nouvel essai dans 0.2 s (le site reste en ligne).",
        "Le processus worker est relancé.",
        "Le processus worker s'est arrêté (code 3) ; nouvel essai dans 0.4 s (le site reste en ligne).",
        "Le processus worker est relancé.",
        "Le processus worker s'est arrêté (code 3) ; nouvel essai dans 0.8 s (le site reste en ligne).",
        "Le processus worker est relancé.",
    ]
    assert children.processes["web"] is web and web.poll() is None, "the web server keeps running"
    assert children.processes["scheduler"] is scheduler and scheduler.poll() is None


def test_the_web_server_stopping_stops_the_run(children):
    children.start_all()
    children.processes["web"].terminate()
    code = wait_for(lambda: children.check(), timeout=10)
    assert code == -15  # SIGTERM
    assert children.said[-1].startswith("Le serveur web s'est arrêté")
    children.stop_all()
    assert all(process.poll() is not None for process in children.processes.values())


@pytest.mark.parametrize(
    "host, url",
    [
        ("127.0.0.1", "http://localhost:5121"),
        ("0.0.0.0", "http://localhost:5121"),
        ("portail.local", "http://portail.local:5121"),
    ],
)
def test_the_children_link_their_mails_to_the_address_served(host, url):
    env = child_env({"PATH": "/usr/bin"}, "unix:///tmp/redis.sock", host, "5121")
    assert public_url(host, "5121") == url
    assert env == {
        "PATH": "/usr/bin",
        "PORTAIL_ENV": "development",
        "REDIS_URL": "unix:///tmp/redis.sock",
        "PUBLIC_URL": url,
    }


def test_a_public_url_given_is_kept():
    env = child_env({"PUBLIC_URL": "https://famille.test"}, "unix:///tmp/redis.sock", "127.0.0.1", "5121")
    assert env["PUBLIC_URL"] == "https://famille.test"


@pytest.mark.integration
def test_a_mail_built_by_the_worker_under_make_run_links_to_the_port_served(tmp_path, redis_server):
    """`PORT=5121 make run`: the scheduler's hourly job warns of a document expiring soon; the worker
    builds the mail, whose link must lead to port 5121 (it led to localhost:5000)."""
    redis_server.start()
    db_url = f"sqlite:///{tmp_path / 'portail.sqlite'}"
    app = make_app(db_url)
    with app.app_context():
        db.create_all()
        family = make_family()
        parent = make_user()
        kind = DocumentType(name="Attestation CAF", scope=DocumentScope.FAMILY)
        db.session.add(kind)
        db.session.flush()
        db.session.add(
            Document(
                type_id=kind.id,
                family_id=family.id,
                stored_name="attestation.pdf",
                original_name="attestation.pdf",
                mimetype="application/pdf",
                size=1000,
                state=DocumentState.VALIDATED,
                valid_until=utcnow().date() + timedelta(days=10),
                uploaded_by_id=parent.id,
            )
        )
        db.session.commit()
        family_id = family.id
        db.engine.dispose()
    # The environment `make run` gives its children (no mail server: mails go to the dev mailbox).
    base = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("MAIL_", "PUBLIC_URL", "REDIS_URL", "SECRET_KEY"))
    }
    base |= {"PORTAIL_INSTANCE": str(tmp_path), "DATABASE_URL": db_url}
    env = child_env(base, redis_server.url, "127.0.0.1", "5121")
    processes = [start_process(role, env, tmp_path / f"{role}.log") for role in ("worker", "scheduler")]
    try:
        mailbox = tmp_path / "mailbox"
        eml = wait_for(lambda: mailbox.is_dir() and sorted(mailbox.glob("*.eml")), timeout=60)[0]
    finally:
        for process in processes:
            stop_process(process)
    message = email.message_from_bytes(eml.read_bytes(), policy=policy.default)
    for part in ("plain", "html"):
        text = message.get_body(preferencelist=(part,)).get_content()
        assert f"http://localhost:5121/famille/{family_id}/pieces" in text
        assert "localhost:5000" not in text
