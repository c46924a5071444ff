"""Accusés de traitement: at 13:00 and 18:00 Europe/Paris, one mail per parent account listing the
decisions of the window (PRODUCT §7).

Windows: the 13:00 mail of day D covers decisions made after D-1 18:00:00 up to D 13:00:00; the
18:00 mail those after D 13:00:00 up to D 18:00:00. The bounds are Paris wall-clock times turned
into UTC for each day, so daylight-saving days get the right windows.

Exactly once: each mail is a `Digest` row unique on (account, day, window), inserted with
ON CONFLICT DO NOTHING in the same transaction as its outbox row. A retried job, a second
scheduler or a restarted worker finds the row and writes nothing; the outbox then sends each row
once. A window is marked done (`DigestRun`) only after all its batches; a window missed while the
scheduler was down is picked up by the next run (`dispatch_due`, every minute).
"""

from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from itertools import islice

import sqlalchemy as sa
from flask import current_app

from portail.extensions import db
from portail.formatting import PARIS, french_date
from portail.models import (
    Activity,
    Child,
    Digest,
    DigestRun,
    DigestWindow,
    LineState,
    Request,
    RequestKind,
    RequestLine,
    User,
    utcnow,
)
from portail.services.outbox import commit, queue_mails
from portail.services.transactions import upsert
from portail.urls import public_url

BATCH = 500
GRACE = timedelta(minutes=1)  # the 13:00 mails leave between 13:01 and 13:02
ENDS = {DigestWindow.NOON: time(13, 0), DigestWindow.EVENING: time(18, 0)}


def bounds(day: date, window: DigestWindow) -> tuple[datetime, datetime]:
    """The (start, end] of a window in UTC: decisions strictly after start, up to end included."""
    if window is DigestWindow.NOON:
        start = datetime.combine(day - timedelta(days=1), ENDS[DigestWindow.EVENING], PARIS)
    else:
        start = datetime.combine(day, ENDS[DigestWindow.NOON], PARIS)
    end = datetime.combine(day, ENDS[window], PARIS)
    return start.astimezone(UTC), end.astimezone(UTC)


def window_of(instant: datetime) -> tuple[date, DigestWindow]:
    """The window whose mail will carry a decision made at `instant`."""
    local = instant.astimezone(PARIS)
    day, clock = local.date(), local.timetz().replace(tzinfo=None)
    if clock <= ENDS[DigestWindow.NOON]:
        return day, DigestWindow.NOON
    if clock <= ENDS[DigestWindow.EVENING]:
        return day, DigestWindow.EVENING
    return day + timedelta(days=1), DigestWindow.NOON


def due_windows(
    now: datetime, catch_up: timedelta, grace: timedelta = GRACE
) -> list[tuple[date, DigestWindow]]:
    """The windows that ended between `catch_up` and `grace` ago and are not done yet, oldest first.

    The grace lets the decisions made at the last second of a window commit before it is read."""
    today = now.astimezone(PARIS).date()
    candidates = [
        (day, window)
        for day in (today - timedelta(days=n) for n in range(catch_up.days + 1, -1, -1))
        for window in (DigestWindow.NOON, DigestWindow.EVENING)
        if now - catch_up <= bounds(day, window)[1] <= now - grace
    ]
    if not candidates:
        return []
    done = set(
        db.session.execute(
            sa.select(DigestRun.day, DigestRun.window).where(DigestRun.day >= candidates[0][0])
        ).all()
    )
    return [candidate for candidate in candidates if candidate not in done]


def dispatch_due(now: datetime) -> int:
    """Send every due window (the scheduler calls this every minute); return the mails queued."""
    return sum(
        send_window(day, window, now)
        for day, window in due_windows(now, current_app.config["DIGEST_CATCH_UP"])
    )


class WindowNotOver(ValueError):
    """A window cannot be sent before its end: the decisions made later would be left out."""


def send_window(day: date, window: DigestWindow, now: datetime | None = None) -> int:
    """Write the window's digests to the outbox, batch by batch; idempotent. Return the mails queued now."""
    start, end = bounds(day, window)
    if end > (now or utcnow()):
        raise WindowNotOver(f"La fenêtre de {window.value} du {french_date(day)} n'est pas terminée.")
    decided = sa.and_(
        RequestLine.decided_at > start,
        RequestLine.decided_at <= end,
        RequestLine.state.in_([LineState.ACCEPTED, LineState.REFUSED]),
    )
    already = sa.exists().where(
        Digest.user_id == Request.created_by_id, Digest.day == day, Digest.window == window
    )
    accounts = db.session.scalars(  # (a resumed or repeated run skips the accounts already done)
        sa.select(Request.created_by_id)
        .join(RequestLine)
        .where(decided, Request.created_by_id.is_not(None), ~already)
        .distinct()
        .order_by(Request.created_by_id)
    ).all()
    queued = 0
    ids = iter(accounts)
    while batch := list(islice(ids, BATCH)):
        queued += _send_batch(batch, day, window, decided)
    db.session.execute(
        upsert(DigestRun).values(day=day, window=window, mails=queued).on_conflict_do_nothing()
    )
    commit()
    return queued


def _send_batch(user_ids: list[int], day: date, window: DigestWindow, decided) -> int:
    """One transaction: the batch's decisions (one query), the digest rows this run wins (one
    statement), their outbox rows (one bulk insert)."""
    rows = db.session.execute(
        sa.select(
            Request.created_by_id,
            Request.id,
            Request.kind,
            Child.first_name,
            Activity.name,
            RequestLine.day,
            RequestLine.state,
            RequestLine.reason,
            RequestLine.message,
        )
        .join(RequestLine, RequestLine.request_id == Request.id)
        .join(Child, Child.id == Request.child_id)
        .join(Activity, Activity.id == Request.activity_id)
        .where(decided, Request.created_by_id.in_(user_ids))
        .order_by(Request.created_by_id, Child.first_name, Activity.name, RequestLine.day)
    ).all()
    by_user: dict[int, list] = defaultdict(list)
    for row in rows:
        by_user[row.created_by_id].append(row)
    won = db.session.execute(
        upsert(Digest)
        .values(
            [
                {"user_id": user_id, "day": day, "window": window, "decisions": len(lines)}
                for user_id, lines in by_user.items()
            ]
        )
        .on_conflict_do_nothing(index_elements=["user_id", "day", "window"])
        .returning(Digest.id, Digest.user_id)
    ).all()
    if not won:
        commit()
        return 0
    users = {
        user.id: user
        for user in db.session.scalars(sa.select(User).where(User.id.in_([user_id for _id, user_id in won])))
    }
    link = public_url("account.requests_list")
    recipients = {}
    for digest_id, user_id in won:
        user = users.get(user_id)
        if user is not None and user.is_active:
            recipients[user.email] = (
                digest_id,
                {
                    "first_name": user.first_name,
                    "day": day.isoformat(),
                    "window": window.value,
                    "decisions": _grouped(by_user[user_id]),
                    "link": link,
                },
            )
    ids = queue_mails(
        "decision_digest", [(email, context) for email, (_digest_id, context) in recipients.items()]
    )
    messages = [(recipients[email][0], message_id) for email, message_id in ids.items()]
    if messages:
        db.session.execute(
            sa.update(Digest),
            [{"id": digest_id, "outbox_id": message_id} for digest_id, message_id in messages],
        )
    commit()
    return len(messages)


def _grouped(rows) -> list[dict]:
    """The lines of one account, one entry per request and outcome (with its dates)."""
    entries: dict[tuple, dict] = {}
    for row in rows:
        key = (row.id, row.state, row.reason, row.message)
        entry = entries.setdefault(
            key,
            {
                "child": row.first_name,
                "activity": row.name,
                "kind": "Réservation" if row.kind is RequestKind.RESERVATION else "Absence",
                "accepted": row.state is LineState.ACCEPTED,
                "reason": row.reason,
                "message": row.message,
                "days": [],
            },
        )
        entry["days"].append(row.day.isoformat())
    return list(entries.values())
