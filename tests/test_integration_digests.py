"""Integration: the decision digests with a real redis-server, real worker/scheduler processes and an
SMTP sink — exactly one mail per account and window, whatever runs twice, crashes or is down."""

import subprocess
import sys
from collections import Counter
from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from portail import bookings
from portail.extensions import db
from portail.models import (
    Digest,
    DigestWindow,
    OpenPeriod,
    OutboxMessage,
    OutboxStatus,
    RequestKind,
    Role,
    utcnow,
)
from portail.services import digests
from portail.services.outbox import commit
from tests.factories import canteen, enrolled_child, make_user, submit_request
from tests.support import ROOT, kill_process, mails_settled, start, wait_for

pytestmark = pytest.mark.integration


def last_ended_window(now) -> tuple[date, DigestWindow]:
    """The most recent window that has already ended (its mails are due)."""
    day, window = digests.window_of(now - digests.GRACE - timedelta(minutes=1))
    day, window = (
        (day, DigestWindow.NOON)
        if window is DigestWindow.EVENING
        else (day - timedelta(days=1), DigestWindow.EVENING)
    )
    return day, window


def decisions_for(accounts: int) -> tuple[date, DigestWindow, list[str]]:
    """`accounts` parents, each with a request decided (one accepted and one refused day) inside the
    last ended window; returns that window and the parents' addresses."""
    day, window = last_ended_window(utcnow())
    start, end = digests.bounds(day, window)
    decided_at = end - (end - start) / 2
    activity = canteen(
        start_date=date(2026, 9, 1),
        end_date=date(2030, 7, 1),
        weekdays="12345",
        open_period=OpenPeriod.ALL,
        closed_on_public_holidays=False,
    )
    db.session.add(activity)
    agent = make_user(email="agent@example.fr", role=Role.AGENT)
    db.session.flush()
    first_day = utcnow().date() + timedelta(days=21)
    days = [d for d in (first_day + timedelta(days=i) for i in range(7)) if d.isoweekday() <= 5][:2]
    emails = []
    for index in range(accounts):
        family, child = enrolled_child(activity, f"Enfant{index}", family_name=f"Famille F{index}")
        parent = make_user(email=f"parent{index}@example.fr")
        request = submit_request(family, parent, child, activity, RequestKind.RESERVATION, days, utcnow())
        db.session.flush()
        bookings.decide([request.lines[0].id], True, agent, decided_at)
        bookings.decide([request.lines[1].id], False, agent, decided_at, reason="Complet")
        emails.append(parent.email)
    # The receipts are not what this test counts: mark them sent.
    db.session.execute(sa.update(OutboxMessage).values(status=OutboxStatus.SENT))
    commit()
    return day, window, emails


def run_cli(app, day, window) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flask",
            "--app",
            "app",
            "digests",
            "send",
            "--window",
            window.value,
            "--date",
            day.isoformat(),
        ],
        cwd=ROOT,
        env=app.process_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_two_dispatchers_at_once_send_one_mail_per_account(live, redis_server, smtp):
    day, window, emails = decisions_for(12)
    redis_server.start()
    start(live, "worker")
    start(live, "worker")
    first, second = run_cli(live, day, window), run_cli(live, day, window)
    outputs = [process.communicate(timeout=60) for process in (first, second)]
    assert [process.returncode for process in (first, second)] == [0, 0], outputs
    # then nothing more can arrive
    wait_for(lambda: len(smtp.messages) >= len(emails) and mails_settled(live), timeout=60)
    recipients = Counter(address for envelope in smtp.messages for address in envelope.rcpt_tos)
    assert recipients == Counter(emails)
    db.session.expire_all()
    assert db.session.scalar(sa.select(sa.func.count(Digest.id))) == len(emails)


def claims_expired() -> bool:
    """Every row claimed for sending was claimed more than OUTBOX_STUCK_AFTER_SECONDS (3) ago."""
    with db.engine.connect() as connection:
        claims = connection.scalars(
            sa.select(OutboxMessage.claimed_at).where(OutboxMessage.status == OutboxStatus.SENDING)
        ).all()
    return all(utcnow() - claimed > timedelta(seconds=3) for claimed in claims)


def test_a_worker_killed_mid_batch_then_restarted_sends_every_mail_once(live, redis_server, smtp):
    live.process_env["OUTBOX_STUCK_AFTER_SECONDS"] = "3"
    day, window, emails = decisions_for(10)
    redis_server.start()
    smtp.stall_after(4)  # the 5th mail is held before it is accepted
    worker = start(live, "worker")
    cli = run_cli(live, day, window)
    assert cli.wait(timeout=60) == 0
    assert smtp.stalled.wait(timeout=60)
    kill_process(worker)  # crash in the middle of the batch
    smtp.release()
    assert len(smtp.messages) == 4
    wait_for(claims_expired, timeout=30)  # the dead worker's claim (OUTBOX_STUCK_AFTER_SECONDS)
    start(live, "worker")
    start(live, "scheduler")  # its relay gives back the mail the dead worker had claimed
    wait_for(lambda: len(smtp.messages) >= len(emails) and mails_settled(live), timeout=90)
    recipients = Counter(address for envelope in smtp.messages for address in envelope.rcpt_tos)
    assert recipients == Counter(emails)


def test_redis_down_at_the_window_the_mails_go_out_once_it_is_back(live, redis_server, smtp):
    # The decisions were made and the window ended while Redis was down: nothing could be scheduled.
    day, window, emails = decisions_for(5)
    assert db.session.scalar(sa.select(sa.func.count(Digest.id))) == 0
    redis_server.start()  # "13:20": Redis is back
    start(live, "worker")
    start(live, "scheduler")  # the every-minute dispatcher runs at start and catches the window up
    wait_for(lambda: len(smtp.messages) >= len(emails) and mails_settled(live), timeout=60)
    recipients = Counter(address for envelope in smtp.messages for address in envelope.rcpt_tos)
    assert recipients == Counter(emails)
    db.session.expire_all()
    assert {(d.day, d.window) for d in db.session.scalars(sa.select(Digest))} == {(day, window)}
