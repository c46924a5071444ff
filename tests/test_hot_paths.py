"""Cheaper hot paths: argon2id at OWASP's setting with old hashes rehashed at login, and requests
that waited in line longer than their client would are answered 503 at once."""

import http.client
import os
import re
import runpy
import shlex
import signal
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import pytest
from argon2 import PasswordHasher, extract_parameters

from portail.extensions import db
from portail.middleware import request_start
from portail.models import User
from portail.queue import connect
from portail.services import passwords
from tests.conftest import make_app, tables
from tests.factories import PASSWORD, make_user
from tests.support import ROOT, free_port, process_env, wait_for

# argon2-cffi's defaults (RFC 9106 low-memory: 64 MiB, t = 3, p = 4): the hashes stored before.
OLD_HASHER = PasswordHasher()


def stored_hash(email: str) -> str:
    db.session.expire_all()
    return db.session.scalar(db.select(User.password_hash).where(User.email == email))


def test_new_hashes_use_owasp_argon2id_parameters():
    parameters = extract_parameters(passwords.hash_password("une phrase de passe assez longue"))
    assert parameters.type.name == "ID"
    assert (parameters.memory_cost, parameters.time_cost, parameters.parallelism) == (19 * 1024, 2, 1)
    assert not passwords.needs_rehash(passwords.hash_password("une autre phrase de passe"))


def test_the_dummy_hash_for_unknown_accounts_costs_what_an_account_costs():
    """Timing equalisation: the hash verified for an unknown e-mail has the accounts' parameters."""
    dummy = extract_parameters(passwords._DUMMY_HASH)
    real = extract_parameters(passwords.hash_password(PASSWORD))
    assert dummy == real
    assert passwords.verify_password(None, "portail-famille-dummy-password") is False


@pytest.mark.both_dbs
def test_an_old_parameter_hash_logs_in_and_is_rehashed(app, client, auth):
    user = make_user()
    user.password_hash = OLD_HASHER.hash(PASSWORD)
    db.session.commit()
    assert passwords.needs_rehash(stored_hash("parent@example.fr"))

    response = auth.login("parent@example.fr")

    assert response.status_code == 302 and response.headers["Location"].endswith("/mon-espace/")
    new = stored_hash("parent@example.fr")
    assert extract_parameters(new).memory_cost == 19 * 1024
    assert not passwords.needs_rehash(new)
    auth.logout()
    assert auth.login("parent@example.fr").status_code == 302  # the new hash verifies
    assert stored_hash("parent@example.fr") == new  # and is not rewritten again


@pytest.mark.both_dbs
def test_a_wrong_password_is_refused_and_the_old_hash_kept(app, client, auth):
    make_user()
    old = OLD_HASHER.hash(PASSWORD)
    db.session.get(User, 1).password_hash = old
    db.session.commit()

    response = auth.login("parent@example.fr", "pas le bon mot de passe")

    assert response.status_code == 200
    assert "Adresse e-mail ou mot de passe incorrect" in response.get_data(as_text=True)
    assert stored_hash("parent@example.fr") == old
    assert client.get("/mon-espace/").status_code == 302  # not logged in


def test_an_unknown_email_is_refused_like_a_wrong_password(app, client, auth):
    make_user()
    db.session.commit()
    unknown = auth.login("inconnu@example.fr").get_data(as_text=True)
    assert "Adresse e-mail ou mot de passe incorrect" in unknown


def test_a_login_costs_at_most_50_ms_of_cpu(app, client, auth):
    """The issue's target for a login alone; CPU time, which a busy shared machine does not inflate."""
    make_user()
    db.session.commit()
    auth.login("parent@example.fr")  # first request: imports, template compilation
    costs = []
    for _ in range(5):
        auth.logout()
        started = time.process_time()
        assert auth.login("parent@example.fr").status_code == 302
        costs.append(time.process_time() - started)
    assert sorted(costs)[2] <= 0.050, costs


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("t=1700000000.123", 1700000000.123),  # nginx's $msec
        ("1700000000123", 1700000000.123),  # milliseconds
        ("t=1700000000123456", 1700000000.123456),  # microseconds
        ("t=abc", None),
        ("", None),
    ],
)
def test_request_start_formats(value, seconds):
    assert request_start(value) == (pytest.approx(seconds) if seconds is not None else None)


def stamp(waited: float) -> dict:
    return {"X-Request-Start": f"t={time.time() - waited:.3f}"}


def test_a_request_that_waited_too_long_gets_503_at_once(app, client):
    response = client.get("/connexion", headers=stamp(25))
    assert response.status_code == 503
    assert response.headers["Retry-After"].isdigit()
    assert response.headers["Cache-Control"] == "no-store"
    assert "Réessayez dans quelques secondes" in response.get_data(as_text=True)


def test_a_login_post_that_waited_past_its_shorter_limit_is_not_verified(app, client, monkeypatch):
    make_user()
    db.session.commit()
    verified = []
    monkeypatch.setattr(passwords, "verify_password", lambda *args: verified.append(args) or True)
    form = {"email": "parent@example.fr", "password": PASSWORD}

    dropped = client.post("/connexion", data=form, headers=stamp(12))

    assert dropped.status_code == 503 and dropped.headers["Retry-After"]
    assert verified == []
    assert client.get("/mon-espace/").status_code == 302  # no session either
    assert client.get("/connexion", headers=stamp(12)).status_code == 200  # a GET's limit is longer


@pytest.mark.parametrize("waited", [2, None, "t=n'importe quoi", -30])
def test_requests_served_in_time_or_without_a_readable_stamp_are_answered(app, client, auth, waited):
    headers = stamp(waited) if isinstance(waited, int) else {"X-Request-Start": waited} if waited else {}
    make_user()
    db.session.commit()
    assert client.get("/connexion", headers=headers).status_code == 200
    assert auth.login("parent@example.fr", headers=headers).status_code == 302


def test_a_zero_limit_turns_the_check_off(app, client):
    from portail.middleware import QueueTimeout

    app.wsgi_app = QueueTimeout(app.wsgi_app.app, 0, 0)
    assert client.get("/connexion", headers=stamp(3600)).status_code == 200


def unit_command(name: str) -> list[str]:
    text = (ROOT / "deploy" / "systemd" / name).read_text(encoding="utf-8")
    return shlex.split(re.search(r"^ExecStart=(.+)$", text, re.M).group(1))


def test_the_web_unit_runs_gunicorn_with_the_repository_configuration(monkeypatch):
    monkeypatch.setenv("WAITING_ROOM_PROCESS_SLOTS", "")
    monkeypatch.delenv("WAITING_ROOM_PROCESS_SLOTS")
    argv = unit_command("portail-web.service")
    assert argv[0].endswith("/gunicorn") and argv[1:] == ["-c", "gunicorn.conf.py", "app:app"]
    settings = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    assert settings["preload_app"] is True and settings["worker_class"] == "gthread"
    # a GIL-bound process is busy with about two requests in flight, whatever its threads
    assert settings["threads"] > 1 and os.environ["WAITING_ROOM_PROCESS_SLOTS"] == "2"
    # no recycling of workers by default (it reset accepted connections under load), and no log line
    assert settings["accesslog"] is None and settings["max_requests"] == 0
    assert re.search(r"^MemoryMax=\S+$", (ROOT / "deploy/systemd/portail-web.service").read_text(), re.M)
    assert 0 < settings["timeout"] <= 60 and settings["workers"] >= 2


@pytest.mark.parametrize("name", ["portail-worker@.service", "portail-scheduler.service"])
def test_background_processes_run_below_the_web_workers(name):
    text = (ROOT / "deploy" / "systemd" / name).read_text(encoding="utf-8")
    assert int(re.search(r"^Nice=(\d+)$", text, re.M).group(1)) >= 5


def call(port: int, method: str, path: str, cookies: dict, form: dict | None = None, headers=None):
    """One request to the gunicorn under test, keeping its (Secure, production) cookies by hand."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    sent = {"Cookie": "; ".join(f"{key}={value}" for key, value in cookies.items()), **(headers or {})}
    body = urllib.parse.urlencode(form) if form is not None else None
    if body is not None:
        sent["Content-Type"] = "application/x-www-form-urlencoded"
    connection.request(method, path, body=body, headers=sent)
    response = connection.getresponse()
    text = response.read().decode()
    for name, value in response.getheaders():
        if name.lower() == "set-cookie":
            key, _, rest = value.partition("=")
            cookies[key] = rest.split(";", 1)[0]
    connection.close()
    return response.status, text


def test_gunicorn_serves_the_app_with_the_repository_configuration(tmp_path, redis_server):
    """The production command itself: preloaded sync workers, the login at OWASP's argon2 cost,
    and a login POST that waited past its limit dropped by the first layer."""
    redis_server.start()
    db_url = f"sqlite:///{tmp_path / 'web.sqlite'}"
    with tables(make_app(db_url)):
        make_user()
        db.session.commit()
    port = free_port()
    env = process_env(db_url, redis_server.url, 2525, GUNICORN_WORKERS="2", GUNICORN_BIND=f"127.0.0.1:{port}")
    gunicorn = subprocess.Popen(
        [str(Path(sys.executable).parent / "gunicorn"), "-c", "gunicorn.conf.py", "app:app"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        cookies: dict = {}
        wait_for(lambda: _answers(port), timeout=30)
        children = Path(f"/proc/{gunicorn.pid}/task/{gunicorn.pid}/children")
        # (one worker may answer while the other still boots on a loaded machine)
        wait_for(lambda: len(children.read_text().split()) == 2, timeout=30)
        timings = []
        for _ in range(4):
            cookies.clear()
            status, page = call(port, "GET", "/connexion", cookies)
            token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
            form = {"csrf_token": token, "email": "parent@example.fr", "password": PASSWORD}
            started = time.perf_counter()
            status, _ = call(port, "POST", "/connexion", cookies, form)
            timings.append(time.perf_counter() - started)
            assert status == 302
        # ≤ 50 ms on a quiet machine (see the README); the bound leaves room for a busy CI box,
        # and still fails at the library's default parameters (~150 ms of CPU per verification).
        assert sorted(timings)[1] < 0.120, timings
        cookies.clear()
        _, page = call(port, "GET", "/connexion", cookies)
        form["csrf_token"] = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
        status, text = call(port, "POST", "/connexion", cookies, form, stamp(11))
        assert status == 503 and "Service très demandé" in text
    finally:
        os.killpg(gunicorn.pid, signal.SIGTERM)
        gunicorn.wait(timeout=45)  # (gunicorn.conf.py's graceful_timeout is 30 s)


def _answers(port: int) -> bool:
    try:
        return call(port, "GET", "/connexion", {})[0] == 200
    except OSError:
        return False


def test_the_worker_runs_jobs_in_its_own_process_without_a_fork(live, redis_server, smtp):
    """RQ's fork per job cost ~50 ms of CPU a mail: jobs now run in the worker process itself,
    and a mail still goes out once."""
    from rq import Queue

    from portail.services.outbox import commit, queue_mail
    from tests.support import start

    redis_server.start()
    worker = start(live, "worker")
    queue = Queue(live.config["RQ_QUEUE"], connection=connect(live))
    jobs = [queue.enqueue("os.getpid") for _ in range(3)]
    wait_for(lambda: all(job.get_status(refresh=True) == "finished" for job in jobs), timeout=30)
    assert {job.return_value() for job in jobs} == {worker.pid}
    queue_mail("password_changed", "parent@example.fr", first_name="Camille")
    commit()
    wait_for(lambda: len(smtp.messages) == 1, timeout=30)
    assert smtp.messages[0].rcpt_tos == ["parent@example.fr"]
