"""The waiting room through a real redis-server shared by two gunicorn processes: tickets in the
order of arrival whichever process answers, admission in that order at the opening, and parents let
through when Redis stalls."""

import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import urlparse

import pytest
import requests

from portail.extensions import db
from portail.models import Role
from portail.services import openings
from portail.waiting_room import admissions
from portail.waiting_room.gate import SCHEDULE_REFRESH
from tests.conftest import make_app, tables
from tests.factories import PASSWORD, enrolled_child, make_activity, make_user, subscribe
from tests.support import free_port, wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def serve(port: int, db_url: str, redis_url: str, log) -> subprocess.Popen:
    env = dict(
        os.environ,
        PORTAIL_ENV="development",
        SECRET_KEY="shared-secret-of-both-nodes",
        DATABASE_URL=db_url,
        REDIS_URL=redis_url,
        WAITING_ROOM_INITIAL_RATE="2",
    )
    return subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--workers", "1", "--bind", f"127.0.0.1:{port}", "app:app"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def up(base: str) -> bool:
    try:
        return requests.get(base + "/connexion", timeout=1).status_code == 200
    except requests.ConnectionError:
        return False


def logged_in(base: str, email: str) -> requests.Session:
    session = requests.Session()
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', session.get(base + "/connexion").text).group(
        1
    )
    response = session.post(
        base + "/connexion",
        data={"email": email, "password": PASSWORD, "csrf_token": token},
        headers={"Referer": base + "/connexion"},
        allow_redirects=False,
    )
    assert response.status_code == 302, response.text[:500]
    return session


@pytest.fixture
def nodes(tmp_path, redis_server):
    redis_server.start()
    db_url = f"sqlite:///{tmp_path / 'shared.sqlite'}"
    app = make_app(db_url, REDIS_URL=redis_server.url)
    ports = [free_port(), free_port()]
    log = open(tmp_path / "gunicorn.log", "ab")
    with tables(app):
        processes = [serve(port, db_url, redis_server.url, log) for port in ports]
        bases = [f"http://127.0.0.1:{port}" for port in ports]
        try:
            for base in bases:
                wait_for(lambda base=base: up(base), timeout=30)
            yield app, bases
        finally:
            for process in processes:
                process.terminate()
                process.wait(timeout=10)
            log.close()


def test_two_processes_hand_out_tickets_in_order_and_admit_in_that_order(nodes, redis_server):
    app, (first, second) = nodes
    activity = make_activity()
    family, _child = enrolled_child(activity)
    emails = [f"parent{i}@example.fr" for i in range(4)]
    for email in emails:
        subscribe(make_user(email=email), family)
    agent = make_user(email="agent@example.fr", role=Role.AGENT)
    db.session.commit()
    sessions = [logged_in(first if i % 2 == 0 else second, email) for i, email in enumerate(emails)]
    now = datetime.now(UTC)
    opens_at = now.replace(microsecond=0) + timedelta(seconds=6)
    opening = openings.announce(agent, [activity.id], opens_at, now - timedelta(minutes=5), now=now)
    db.session.commit()  # published to Redis after the commit
    time.sleep(SCHEDULE_REFRESH)  # each process reads the schedule again at most once a second
    planning = f"/famille/{family.id}/planning"

    # parents 0..2 arrive one after the other on alternate processes: tickets 1, 2, 3
    places = [sessions[i].get((first, second)[i % 2] + planning) for i in range(3)]
    assert [place.headers["X-Waiting-Room"] for place in places] == ["1", "2", "3"]
    assert all(place.status_code == 200 for place in places)
    # their cookies carry the tickets: the other process gives the same places
    assert [
        sessions[i].get((second, first)[i % 2] + planning).headers["X-Waiting-Room"] for i in range(3)
    ] == [
        "1",
        "2",
        "3",
    ]

    def through(session, base) -> bool:
        return "X-Waiting-Room" not in session.get(base + planning).headers

    wait_for(lambda: through(sessions[0], second), timeout=20)
    assert time.time() >= opens_at.timestamp()  # not a second before the opening
    wait_for(lambda: through(sessions[2], first), timeout=20)
    admitted = admissions(app.extensions["waiting_room"].redis(), opening.id)
    assert [ticket for ticket, _at in admitted] == [1, 2, 3]
    assert [at for _ticket, at in admitted] == sorted(at for _ticket, at in admitted)
    assert admitted[0][1] >= opens_at.timestamp()

    # Redis stalls: the fourth parent (no ticket yet) goes through at once, on either process
    redis_server.pause()
    try:
        started = time.monotonic()
        response = sessions[3].get(second + planning, timeout=10)
        assert response.status_code == 200 and "X-Waiting-Room" not in response.headers
        assert time.monotonic() - started < 3
    finally:
        redis_server.resume()
    assert urlparse(first).hostname == "127.0.0.1"
