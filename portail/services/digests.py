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
    DecisionNotice,
    DecisionsChoice,
    Digest,
    DigestRun,
    DigestWindow,
    LineState,
    NotificationChoice,
    Request,
    RequestKind,
    RequestLine,
    User,
    utcnow,
)
from portail.services import notification_choices
from portail.services.outbox import commit, queue_mail, queue_mails
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
    """Send the decisions of the accounts that chose a mail per decision, then every due window
    (the scheduler calls this every minute); return the mails queued."""
    catch_up = current_app.config["DIGEST_CATCH_UP"]
    return send_immediate(now, catch_up) + sum(
        send_window(day, window, now) for day, window in due_windows(now, catch_up)
    )


# The decided lines as the mails list them (what `_grouped` reads): one row per line, with its
# request's author, kind, child and activity.
DECISION_ROWS = (
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
        RequestLine.decided_at,
    )
    .join(RequestLine, RequestLine.request_id == Request.id)
    .join(Child, Child.id == Request.child_id)
    .join(Activity, Activity.id == Request.activity_id)
)


def send_immediate(now: datetime, catch_up: timedelta, grace: timedelta = timedelta(0)) -> int:
    """One mail per decision (a request's lines decided at one instant) for the accounts whose
    choice then was a mail per decision, not mailed yet, made in the last `catch_up`: a
    `DecisionNotice` row unique on (request, instant) taken in the mail's transaction, so two
    schedulers or a retried job send it once. Return the mails queued."""
    mode = notification_choices.decisions_at(Request.created_by_id, RequestLine.decided_at)
    rows = db.session.execute(
        DECISION_ROWS.where(
            RequestLine.state.in_([LineState.ACCEPTED, LineState.REFUSED]),
            # (an activity that answers at once: its receipt already said the answer)
            RequestLine.decided_by_id.is_not(None),
            RequestLine.decided_at > now - catch_up,
            RequestLine.decided_at <= now - grace,
            # (only the accounts that ever chose it: a cheap filter before the choice at each instant)
            Request.created_by_id.in_(
                sa.select(NotificationChoice.user_id).where(
                    NotificationChoice.decisions == DecisionsChoice.IMMEDIATE
                )
            ),
            mode == DecisionsChoice.IMMEDIATE,
            ~sa.exists().where(
                DecisionNotice.request_id == Request.id, DecisionNotice.decided_at == RequestLine.decided_at
            ),
        ).order_by(Request.id, RequestLine.decided_at, RequestLine.day)
    ).all()
    decisions: dict[tuple, list] = defaultdict(list)
    for row in rows:
        decisions[(row.created_by_id, row.id, row.decided_at)].append(row)
    queued = 0
    keys = iter(decisions)
    while batch := list(islice(keys, BATCH)):
        queued += _send_notices(batch, decisions)
    return queued


def _send_notices(keys: list[tuple], decisions: dict[tuple, list]) -> int:
    """One transaction: the notices this run wins, and their mails."""
    won = db.session.execute(
        upsert(DecisionNotice)
        .values(
            [
                {"user_id": user_id, "request_id": request_id, "decided_at": at}
                for user_id, request_id, at in keys
            ]
        )
        .on_conflict_do_nothing(index_elements=["request_id", "decided_at"])
        .returning(
            DecisionNotice.id, DecisionNotice.user_id, DecisionNotice.request_id, DecisionNotice.decided_at
        )
    ).all()
    if not won:
        commit()
        return 0
    users = {
        user.id: user
        for user in db.session.scalars(
            sa.select(User).where(User.id.in_({user_id for _n, user_id, _r, _a in won}))
        )
    }
    link = public_url("account.requests_list")
    sent = 0
    for notice_id, user_id, request_id, at in won:
        user = users.get(user_id)
        if user is None or not user.is_active:
            continue
        message_id = queue_mail(
            "decision_notice",
            user.email,
            first_name=user.first_name,
            decisions=_grouped(decisions[(user_id, request_id, at)]),
            link=link,
        )
        db.session.execute(
            sa.update(DecisionNotice).where(DecisionNotice.id == notice_id).values(outbox_id=message_id)
        )
        sent += 1
    commit()
    return sent


class WindowNotOver(ValueError):
    """A window cannot be sent before its end: the decisions made later would be left out."""


def _decided(day: date, window: DigestWindow) -> sa.ColumnElement:
    """The decisions a window's digests carry: those made in it for the accounts that chose the
    13:00/18:00 digests (or never chose), and, in the 18:00 window, those of the whole day (from 18:00
    the day before) for the accounts that chose one digest a day — each by the choice in force when
    it was made (a decision mailed at once is in no digest)."""
    start, end = bounds(day, window)
    mode = notification_choices.decisions_at(Request.created_by_id, RequestLine.decided_at)
    in_window = sa.and_(
        RequestLine.decided_at > start,
        RequestLine.decided_at <= end,
        sa.or_(mode.is_(None), mode == DecisionsChoice.TWICE_DAILY),
    )
    if window is DigestWindow.EVENING:
        day_start = bounds(day, DigestWindow.NOON)[0]
        in_window = sa.or_(
            in_window,
            sa.and_(
                RequestLine.decided_at > day_start,
                RequestLine.decided_at <= end,
                mode == DecisionsChoice.DAILY,
            ),
        )
    return sa.and_(RequestLine.state.in_([LineState.ACCEPTED, LineState.REFUSED]), in_window)


def send_window(day: date, window: DigestWindow, now: datetime | None = None) -> int:
    """Write the window's digests to the outbox, batch by batch; idempotent. Return the mails queued now."""
    _start, end = bounds(day, window)
    if end > (now or utcnow()):
        raise WindowNotOver(f"La fenêtre de {window.value} du {french_date(day)} n'est pas terminée.")
    decided = _decided(day, window)
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
        DECISION_ROWS.where(decided, Request.created_by_id.in_(user_ids)).order_by(
            Request.created_by_id, Child.first_name, Activity.name, RequestLine.day
        )
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
                    # (a whole day's decisions: some were made before 13:00, for a daily digest)
                    "whole_day": window is DigestWindow.EVENING
                    and any(row.decided_at <= bounds(day, DigestWindow.NOON)[1] for row in by_user[user_id]),
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
