"""Integration: a real worker and scheduler ride out a stalled Redis, a killed one and a locked
database; the receipts made meanwhile go out once, and both processes are still running."""

import sqlite3
import threading
import time
from collections import Counter
from datetime import timedelta

import pytest
import sqlalchemy as sa

from portail.extensions import db
from portail.models import OutboxMessage, OutboxStatus, RequestKind, utcnow
from portail.services.outbox import commit
from tests.conftest import make_app
from tests.factories import enrolled_child, make_activity, make_user, submit_request
from tests.support import mails_settled, start, wait_for

pytestmark = pytest.mark.integration

STALL = 15  # seconds Redis is paused: longer than a command can wait (two tries of 5 s, portail.queue)
DOWN = 7  # seconds Redis is dead: longer than the relay's interval (5 s)


def make_receipts(activity, tag: str, count: int) -> list[str]:
    """`count` parents each ask for a day; their receipts wait in the outbox for the relay."""
    day = utcnow().date() + timedelta(days=14)
    while day.isoweekday() > 5:
        day += timedelta(days=1)
    emails = []
    for n in range(count):
        family, child = enrolled_child(activity, f"Enfant{n}", family_name=f"Famille {tag.upper()}{n}")
        parent = make_user(email=f"{tag}{n}@example.fr")
        submit_request(family, parent, child, activity, RequestKind.RESERVATION, [day], utcnow())
        emails.append(parent.email)
    commit()
    return emails


def delivered(smtp) -> Counter:
    return Counter(address for envelope in smtp.messages for address in envelope.rcpt_tos)


def test_worker_and_scheduler_ride_out_redis_and_database_outages(live, redis_server, smtp, tmp_path):
    logs = {role: tmp_path / f"{role}.log" for role in ("worker", "scheduler")}
    processes = {role: start(live, role, logs[role]) for role in logs}

    def still_running():
        for role, process in processes.items():
            assert process.poll() is None, f"the {role} exited:\n{logs[role].read_text()[-3000:]}"

    def all_out(expected) -> bool:
        still_running()
        return delivered(smtp) == Counter(expected)

    def waiting_for_redis() -> bool:
        still_running()
        return all("Redis unreachable" in log.read_text() for log in logs.values())

    # Started before Redis (a boot where Redis comes up last): they wait for it.
    wait_for(waiting_for_redis, timeout=60)
    redis_server.start()
    activity = make_activity()
    expected = make_receipts(activity, "avant", 1)
    wait_for(lambda: all_out(expected), timeout=30)

    # Redis stalls (its connections stay open, nothing answers) while parents make requests.
    redis_server.pause()
    expected += make_receipts(activity, "pause", 3)
    time.sleep(STALL)  # the length of the outage (a fixed wait on purpose: the stall must last that long)
    redis_server.resume()
    still_running()
    wait_for(lambda: all_out(expected), timeout=90)

    # Redis crashes and comes back empty on the same port (the outbox, in the database, is what
    # says which mails are due); the database is locked when it is back, so the worker's jobs fail.
    redis_server.kill()
    expected += make_receipts(activity, "panne", 3)
    time.sleep(DOWN)  # the length of the outage (a fixed wait on purpose: Redis stays dead that long)
    lock = sqlite3.connect(db.engine.url.database, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    try:
        redis_server.start()
        wait_for(lambda: "database is locked" in logs["worker"].read_text(), timeout=60)
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    still_running()
    wait_for(lambda: all_out(expected), timeout=90)

    wait_for(lambda: mails_settled(live), timeout=30)  # then nothing more can arrive
    assert delivered(smtp) == Counter(expected)  # each mail went out once
    still_running()
    db.session.expire_all()
    assert set(db.session.scalars(sa.select(OutboxMessage.status))) == {OutboxStatus.SENT}
    for process in processes.values():  # SIGTERM (a service manager's stop) still ends them
        process.terminate()
    assert [process.wait(timeout=30) for process in processes.values()] == [0, 0]


def test_the_site_answers_while_redis_is_stalled(tmp_path, redis_server):
    """The rate limits live in Redis: a login during a stall is answered (its limits fall back to
    memory) instead of waiting for Redis to wake up."""
    redis_server.start()
    app = make_app(
        f"sqlite:///{tmp_path / 'site.sqlite'}", REDIS_URL=redis_server.url, RATELIMIT_STORAGE_URI=None
    )
    with app.app_context():
        db.create_all()
        make_user()
        commit()
    client = app.test_client()
    assert (
        client.post("/connexion", data={"email": "parent@example.fr", "password": "faux"}).status_code == 200
    )
    redis_server.pause()
    answers = []
    login = threading.Thread(
        target=lambda: answers.append(
            client.post("/connexion", data={"email": "parent@example.fr", "password": "faux"}).status_code
        ),
        daemon=True,
    )
    began = time.monotonic()
    login.start()
    login.join(timeout=STALL)
    assert answers == [200], f"no answer after {time.monotonic() - began:.0f} s"
    redis_server.resume()
