"""Test support shared by the test modules (named so as not to shadow `portail.services`): polling
with a deadline, SQL query counts, the same POST sent from several tabs at once (`tabs`, `fire`), the
security headers' check, and the real services of the integration tests (redis-server, RQ worker
processes, an SMTP sink)."""

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import redis
import sqlalchemy as sa
from aiosmtpd.controller import Controller

from portail.extensions import db
from portail.models import OutboxMessage, OutboxStatus

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.1):
    """Poll until predicate() is truthy; return its value or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError("condition not met in time")


def mails_settled(app) -> bool:
    """True once no more mail can go out: no outbox row waits or is being sent (a mail leaves only from
    a row it claims from pending) and no job waits in the app's queue. Read on a connection of its own,
    so that no transaction of the test holds the database."""
    from rq import Queue

    with db.engine.connect() as connection:
        busy = connection.scalar(
            sa.select(sa.func.count(OutboxMessage.id)).where(
                OutboxMessage.status.in_((OutboxStatus.PENDING, OutboxStatus.SENDING))
            )
        )
    client = redis.Redis.from_url(app.config["REDIS_URL"])
    try:
        return busy == 0 and Queue(app.config["RQ_QUEUE"], connection=client).count == 0
    finally:
        client.close()


@contextmanager
def count_queries():
    """Count the SQL statements run inside the block: `with count_queries() as counter: … counter["n"]`."""
    counter = {"n": 0}

    def before(*_args):
        counter["n"] += 1

    sa.event.listen(db.engine, "before_cursor_execute", before)
    try:
        yield counter
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", before)


def queries_for(client, url: str) -> int:
    """The number of SQL statements a GET of `url` runs (which must answer 200)."""
    with count_queries() as counter:
        assert client.get(url).status_code == 200
    return counter["n"]


# Concurrent copies of one POST (a double click, two tabs): how many, and the statements that write.
COPIES = 2
WRITES = ("INSERT", "UPDATE", "DELETE")


def tabs(app, client, count: int = COPIES) -> list:
    """`count` clients with the logged-in session of `client` (tabs of one browser)."""
    cookie = client.get_cookie("session")
    copies = []
    for _ in range(count):
        tab = app.test_client()
        tab.set_cookie("session", cookie.value)
        copies.append(tab)
    return copies


def held_at_first_write(barrier: threading.Barrier, copy: threading.local, timeout: float):
    """A `before_cursor_execute` hook: a thread whose `copy.armed` is set waits at its first write
    until every thread of `barrier` reaches theirs (or `timeout`); a copy that writes nothing (refused
    before) lets the others go on."""

    def hold(_connection, _cursor, statement, *_args):
        if getattr(copy, "armed", False) and statement.lstrip().upper().startswith(WRITES):
            copy.armed = False
            try:
                barrier.wait(timeout=timeout)
            except threading.BrokenBarrierError:
                pass

    return hold


def at_first_write_together(jobs: list, timeout: float) -> None:
    """Each job in a thread of its own, every one held at its first write until all have reached
    theirs (or `timeout`); returns once every thread has ended (an assertion error if one never does)."""
    copy = threading.local()
    hold = held_at_first_write(threading.Barrier(len(jobs)), copy, timeout)

    def run(job) -> None:
        copy.armed = True
        job()

    sa.event.listen(db.engine, "before_cursor_execute", hold)
    try:
        threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", hold)
    assert not any(thread.is_alive() for thread in threads), "a thread never ended"


def fire(clients: list, path: str, data=None, **kwargs) -> list:
    """The same POST from every client at once, each held before its first write until all have
    read; each answer's status, text and location (an exception counts as a 500).

    `data` may be a callable, called once per copy (a file to upload is read by one request only).
    """
    start = threading.Barrier(len(clients))
    answers: list = [None] * len(clients)

    def send(index: int) -> None:
        try:
            start.wait(timeout=20)
            body = data() if callable(data) else data
            response = clients[index].post(path, data=body, **kwargs)
            answers[index] = (response.status_code, response.get_data(as_text=True), response.location)
        except Exception as error:  # noqa: BLE001 - an exception is the 500 a parent would see
            answers[index] = (500, repr(error), None)

    at_first_write_together([lambda index=index: send(index) for index in range(len(clients))], timeout=5)
    assert all(answer is not None for answer in answers), "a request never answered"
    for status, text, _ in answers:
        assert status in (200, 302), text[-2000:]
    db.session.expire_all()
    return answers


def check_headers(response):
    """The security headers every page carries."""
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"


class RedisServer:
    """A throwaway redis-server on a free port, which a test can stop and restart."""

    def __init__(self, directory: Path):
        self.executable = shutil.which("redis-server")
        self.port = free_port()
        self.directory = directory
        self.process = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.executable,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        wait_for(lambda: _pings(client))

    def pause(self) -> None:
        """SIGSTOP: connections stay open and commands hang, as with a stalled Redis."""
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL, as a crash; start() then brings up an empty server (no persistence) on the same port."""
        self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.resume()  # a paused server would not act on SIGTERM
            self.process.terminate()
            self.process.wait(timeout=10)


def _pings(client) -> bool:
    try:
        return client.ping()
    except redis.exceptions.ConnectionError:
        return False


class SmtpSink:
    """An aiosmtpd server that keeps every message it receives.

    `stall_after(n)`: after n accepted messages, the next sender is held at RCPT TO (its message is
    not accepted) until `release()`, so that a test can kill the sending worker mid-batch.
    """

    def __init__(self):
        self.messages: list = []
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.stall_at: int | None = None
        self.stalled = threading.Event()
        self.released = threading.Event()

    def stall_after(self, count: int) -> None:
        self.stall_at = count

    def release(self) -> None:
        self.stall_at = None
        self.released.set()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.stall_at is not None and len(self.messages) >= self.stall_at:
            self.stalled.set()
            while not self.released.is_set():
                await asyncio.sleep(0.05)
            return "451 Try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(envelope)
        return "250 Message accepted"

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()


def process_env(db_url: str, redis_url: str, smtp_port: int, **extra) -> dict:
    """Environment of a worker or scheduler process run with the production config."""
    env = dict(
        os.environ,
        PORTAIL_ENV="production",
        SECRET_KEY="integration-secret-key",
        DATABASE_URL=db_url,
        REDIS_URL=redis_url,
        MAIL_SERVER="127.0.0.1",
        MAIL_PORT=str(smtp_port),
        PUBLIC_URL="http://portail.test",
    )
    env.update(extra)
    return env


def start_process(role: str, env: dict, log: Path | None = None) -> subprocess.Popen:
    """Start `python worker.py <role>` (worker or scheduler), its output in `log` if given."""
    output = open(log, "ab") if log else subprocess.DEVNULL
    try:
        return subprocess.Popen(
            [sys.executable, "worker.py", role],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT if log else subprocess.DEVNULL,
            start_new_session=True,  # its own process group: kill() reaches the job's work horse too
        )
    finally:
        if log:
            output.close()


def start(app, role: str, log: Path | None = None) -> subprocess.Popen:
    """Start a worker or scheduler process for the `live` app (stopped by the fixture)."""
    process = start_process(role, app.process_env, log)
    app.processes.append(process)
    return process


def kill_process(process: subprocess.Popen) -> None:
    """SIGKILL the process and its work horses, as a crash would."""
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def stop_process(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def drop_database(connection, name: str, patience: float = 30.0) -> None:
    """DROP DATABASE … WITH (FORCE), again while an autovacuum worker is on it: the app's role may end
    its own sessions but not the server's workers (autovacuum starts on a freshly filled database,
    seen on CI as "must be a member of the role whose process is being terminated")."""
    deadline = time.monotonic() + patience
    while True:
        try:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            return
        except sa.exc.ProgrammingError as error:
            if "pg_signal_backend" not in str(error.orig) or time.monotonic() > deadline:
                raise
            time.sleep(0.5)
