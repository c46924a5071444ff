"""Benchmark of the decision digests (issue 5).

Builds, in a temporary SQLite file, 20,000 parent accounts with 50,000 decided days in one window,
then prints, measured in one run:
- the digest build time (every account's Digest row and outbox mail written, batch by batch),
  and its SQL query count, which grows with the number of batches, not of decisions;
- a second run of the same window (idempotent: nothing written);
- the mails per second delivered by the outbox into a local SMTP sink (aiosmtpd).
Run with `make bench`.
"""

import logging
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from portail import create_app  # noqa: E402
from portail.extensions import db  # noqa: E402
from portail.models import (  # noqa: E402
    Activity,
    Child,
    DigestWindow,
    Family,
    LineState,
    OutboxMessage,
    Request,
    RequestKind,
    RequestLine,
    User,
    utcnow,
)
from portail.services import digests, outbox  # noqa: E402
from tests.factories import canteen  # noqa: E402
from tests.support import SmtpSink  # noqa: E402

ACCOUNTS = 20_000
DECISIONS = 50_000
DAY, WINDOW = date(2027, 1, 12), DigestWindow.NOON
LATER = datetime(2027, 2, 1, tzinfo=UTC)
DELIVERED = 2_000  # mails timed through SMTP (of the 20,000 written)


def build(app) -> None:
    start, end = digests.bounds(DAY, WINDOW)
    with app.app_context():
        db.create_all()
        activity: Activity = canteen()
        db.session.add(activity)
        db.session.flush()
        connection = db.session.connection()
        connection.execute(
            sa.insert(User),
            [
                {
                    "id": i,
                    "email": f"parent{i}@example.fr",
                    "first_name": "Parent",
                    "last_name": f"P{i}",
                    "activated_at": utcnow(),
                    "session_token": f"t{i}",
                    "password_hash": "x",
                }
                for i in range(1, ACCOUNTS + 1)
            ],
        )
        connection.execute(
            sa.insert(Family),
            [
                {"id": i, "name": f"Famille P{i}", "subscriber_code": f"B{i:09d}"}
                for i in range(1, ACCOUNTS + 1)
            ],
        )
        connection.execute(
            sa.insert(Child),
            [
                {
                    "id": i,
                    "family_id": i,
                    "first_name": f"Enfant{i}",
                    "last_name": f"P{i}",
                    "birth_date": date(2017, 1, 1),
                }
                for i in range(1, ACCOUNTS + 1)
            ],
        )
        connection.execute(
            sa.insert(Request),
            [
                {
                    "id": i,
                    "family_id": i,
                    "child_id": i,
                    "activity_id": activity.id,
                    "kind": RequestKind.RESERVATION,
                    "created_by_id": i,
                    "created_at": start,
                }
                for i in range(1, ACCOUNTS + 1)
            ],
        )
        lines, step = [], (end - start) / (DECISIONS + 1)
        for n in range(DECISIONS):
            account = n % ACCOUNTS + 1
            lines.append(
                {
                    "request_id": account,
                    "day": date(2027, 3, 1) + timedelta(days=n // ACCOUNTS),
                    "decided_at": start + step * (n + 1),
                    "state": LineState.REFUSED if n % 7 == 0 else LineState.ACCEPTED,
                    "reason": "Complet" if n % 7 == 0 else None,
                    "decided_by_id": 1,
                }
            )
        connection.execute(sa.insert(RequestLine), lines)
        db.session.commit()


def count_queries(engine):
    counter = {"n": 0}

    def count(*_args):
        counter["n"] += 1

    sa.event.listen(engine, "before_cursor_execute", count)
    return counter, lambda: sa.event.remove(engine, "before_cursor_execute", count)


def main() -> None:
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every SMTP command
    directory = tempfile.mkdtemp()
    sink = SmtpSink()
    sink.start()
    app = create_app(
        "testing",
        {
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{directory}/digest.sqlite",
            "RQ_SYNC": False,
            "MAIL_SUPPRESS_SEND": False,
            "MAIL_SERVER": "127.0.0.1",
            "MAIL_PORT": sink.port,
            "PUBLIC_URL": "http://portail.test",
        },
    )
    began = time.perf_counter()
    build(app)
    print(
        f"data: {ACCOUNTS:,} accounts, {DECISIONS:,} decisions in the {WINDOW.value} window of {DAY:%d/%m/%Y} (built in {time.perf_counter() - began:.0f} s)"
    )
    # the worker's queue is not what is measured here
    outbox.enqueue = outbox.enqueue_many = lambda *args, **kwargs: None
    with app.app_context():
        counter, stop = count_queries(db.engine)
        began = time.perf_counter()
        mails = digests.send_window(DAY, WINDOW, now=LATER)
        elapsed = time.perf_counter() - began
        stop()
        batches = -(-mails // digests.BATCH)
        print(
            f"digest build: {mails:,} mails in {elapsed:.1f} s ({mails / elapsed:,.0f} mails/s), {counter['n']} SQL queries for {batches} batches of {digests.BATCH} ({counter['n'] / batches:.1f} per batch)"
        )
        counter, stop = count_queries(db.engine)
        began = time.perf_counter()
        again = digests.send_window(DAY, WINDOW, now=LATER)
        stop()
        print(
            f"same window again: {again} mails written, {time.perf_counter() - began:.1f} s, {counter['n']} SQL queries"
        )
        ids = db.session.scalars(
            sa.select(OutboxMessage.id)
            .where(OutboxMessage.template == "decision_digest")
            .order_by(OutboxMessage.id)
            .limit(DELIVERED)
        ).all()
        began = time.perf_counter()
        for message_id in ids:
            outbox.deliver(message_id)
        elapsed = time.perf_counter() - began
        print(
            f"SMTP delivery: {len(sink.messages):,} of {len(ids):,} mails received by the sink, {len(ids) / elapsed:,.0f} mails/s (one worker process)"
        )
    sink.stop()


if __name__ == "__main__":
    main()
