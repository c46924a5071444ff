"""A request's history: its events (creation, decisions, messages, withdrawals) and the receipt mail.

The transitions (`transitions`) write an event with each change of state; parents and agents add
messages here.
"""

from datetime import date, datetime, timedelta

import sqlalchemy as sa

from portail.bookings.errors import DecisionError
from portail.extensions import db
from portail.formatting import short_date
from portail.models import (
    Activity,
    Child,
    EventKind,
    LineState,
    ReceiptsChoice,
    Request,
    RequestEvent,
    RequestKind,
    User,
)
from portail.services.outbox import queue_mail
from portail.services.transactions import claim
from portail.urls import public_url

# The same author's same message on a request within this time is the same message sent twice.
SAME_MESSAGE_WITHIN = timedelta(minutes=2)
INSERT_EVENTS = RequestEvent.__table__.insert()  # built once: the events of a new request go in one statement


def short_days(days: list[date], at_most: int = 12) -> str:
    """ "04/03/2027, 05/03/2027" — a long period ends with "… (40 jours)"."""
    shown = ", ".join(short_date(day) for day in days[:at_most])
    return shown if len(days) <= at_most else f"{shown}… ({len(days)} jours)"


def counted_days(days: list[date], at_most: int = 12) -> str:
    """ "1 jour (04/03/2027)", "40 jours (04/03/2027, 05/03/2027, 08/03/2027…)": the first `at_most`
    days listed."""
    counted = f"{len(days)} jour{'s' if len(days) > 1 else ''}"
    return f"{counted} ({short_days(days[:at_most])}{'…' if len(days) > at_most else ''})"


def record(
    request_id: int,
    kind: EventKind,
    author: User | None,
    *,
    by_town: bool,
    summary: str = "",
    reason: str | None = None,
    message: str | None = None,
    at: datetime | None = None,
) -> RequestEvent:
    """One event in a request's history (`by_town`: written by staff, new for the parents)."""
    event = RequestEvent(
        request_id=request_id,
        kind=kind,
        author_id=author.id if author else None,
        by_town=by_town,
        summary=summary,
        reason=reason,
        message=message,
    )
    if at is not None:
        event.at = at
    db.session.add(event)
    return event


def created(
    request_id: int,
    kind: RequestKind,
    child: Child,
    activity: Activity,
    user: User | None,
    days: list[date],
    now: datetime,
    decided: dict[LineState, list[date]] | None = None,
    period: tuple | None = None,
) -> None:
    """The history's first lines (and the automatic decision, if any), and the accusé de réception
    to the parent who asked (PRODUCT §7); `period` is the form's (from, to, weekdays)."""
    asked = "de réservation" if kind is RequestKind.RESERVATION else "d'absence"
    events = [
        {
            "request_id": request_id,
            "kind": EventKind.CREATED,
            "author_id": user.id if user else None,
            "by_town": False,
            "at": now,
            "reason": None,
            "summary": f"Demande {asked} : {counted_days(days, at_most=3)}",
        }
    ]
    decided = dict(decided or {})
    in_line = decided.pop(LineState.WAITING, [])
    for state, state_days in decided.items():
        if state_days:
            label = "Acceptée automatiquement" if state is LineState.ACCEPTED else "Refusée automatiquement"
            events.append(
                {
                    "request_id": request_id,
                    "kind": EventKind.DECISION,
                    "author_id": None,
                    "by_town": False,
                    "at": now,
                    "summary": f"{label} : {short_days(state_days)}",
                    "reason": None if state is LineState.ACCEPTED else "Complet",
                }
            )
    if in_line:
        events.append(
            {
                "request_id": request_id,
                "kind": EventKind.WAITING_LIST,
                "author_id": None,
                "by_town": False,
                "at": now,
                "summary": f"Inscrite sur la liste d'attente : {short_days(in_line)}",
                "reason": None,
            }
        )
    db.session.connection().execute(INSERT_EVENTS, events)  # one statement
    if user is None or user.receipts is ReceiptsChoice.NONE:  # (Mon compte → Notifications)
        return
    context = {
        "first_name": user.first_name,
        "child": child.first_name,
        "activity": activity.name,
        "kind": kind.value,
        "request_id": request_id,
        "link": public_url("account.request_history", request_id=request_id),
        # An automatic activity has already answered: the receipt says so instead of promising a decision.
        "automatic": any(decided.values()),
        "accepted": len(decided.get(LineState.ACCEPTED, [])),
        "refused_days": [day.isoformat() for day in decided.get(LineState.REFUSED, [])],
        "waiting_days": [day.isoformat() for day in in_line],
    }
    if period:
        start, end, weekdays = period
        context |= {
            "period": True,
            "start": start.isoformat(),
            "end": end.isoformat(),
            "weekdays": weekdays or "",
            "count": len(days),
        }
    else:
        context |= {"period": False, "day": days[0].isoformat()}
    queue_mail("booking_receipt", user.email, **context)


def events(request: Request) -> list[RequestEvent]:
    """The events of a request, oldest first, with their authors."""
    return list(
        db.session.scalars(
            sa.select(RequestEvent)
            .where(RequestEvent.request_id == request.id)
            .options(sa.orm.joinedload(RequestEvent.author))
            .order_by(RequestEvent.at, RequestEvent.id)
        )
    )


def add_message(request: Request, author: User, text: str, *, by_town: bool, now: datetime) -> RequestEvent:
    """Write a message in a request's history; the same message sent twice at once is written once."""
    text = (text or "").strip()
    if not text:
        raise DecisionError("Écrivez votre message.")
    if len(text) > 2000:
        raise DecisionError("Le message ne doit pas dépasser 2000 caractères.")
    claim(request)  # the request's writers take turns: the read below sees a copy just written
    same = db.session.scalar(
        sa.select(RequestEvent).where(
            RequestEvent.request_id == request.id,
            RequestEvent.kind == EventKind.MESSAGE,
            RequestEvent.author_id == author.id,
            RequestEvent.message == text,
            RequestEvent.at >= now - SAME_MESSAGE_WITHIN,
        )
    )
    if same is not None:
        return same
    return record(
        request.id, EventKind.MESSAGE, author, by_town=by_town, summary="Message", message=text, at=now
    )
