"""Processing reservation and absence requests: staff decisions, the history, messages, unread flags.

A decision applies to pending lines (one, a whole request, or a selection across requests). Accepting
a reservation takes a place with the same atomic counter as automatic activities (a full day is
refused "Complet" instead); refusing an absence keeps the day reserved. Each decision writes one
history event per request; the decision digests (services.digests) read the decided lines.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import sqlalchemy as sa
from flask import current_app

from portail.extensions import db
from portail.formatting import short_date
from portail.models import (
    Activity,
    Booking,
    BookingState,
    ChangeRequest,
    ChangeStatus,
    Child,
    Document,
    EventKind,
    Guardian,
    LineState,
    Request,
    RequestEvent,
    RequestKind,
    RequestLine,
    RequestRead,
    User,
)
from portail.services import bookings
from portail.services.outbox import queue_mail
from portail.services.transactions import claim

# Reasons offered to agents when they refuse (PRODUCT §6); "Autre" needs a message.
REFUSAL_REASONS = ["Complet", "Hors délai", "Dossier incomplet", "Autre"]
LINE_LABELS = {
    LineState.PENDING: "En attente",
    LineState.ACCEPTED: "Acceptée",
    LineState.REFUSED: "Refusée",
    LineState.WITHDRAWN: "Retirée",
}
# The same author's same message on a request within this time is the same message sent twice.
SAME_MESSAGE_WITHIN = timedelta(minutes=2)
INSERT_EVENTS = RequestEvent.__table__.insert()  # built once: the events of a new request go in one statement


class DecisionError(ValueError):
    """A decision that cannot be made (its French message is shown to the agent)."""


def short_days(days: list[date], at_most: int = 12) -> str:
    """ "04/03/2027, 05/03/2027" — a long period ends with "… (40 jours)"."""
    shown = ", ".join(short_date(day) for day in days[:at_most])
    return shown if len(days) <= at_most else f"{shown}… ({len(days)} jours)"


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
            "summary": f"Demande {asked} : {len(days)} jour{'s' if len(days) > 1 else ''} ({short_days(days[:3])}{'…' if len(days) > 3 else ''})",
        }
    ]
    for state, state_days in (decided or {}).items():
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
    db.session.connection().execute(INSERT_EVENTS, events)  # one statement
    if user is None:
        return
    context = {
        "first_name": user.first_name,
        "child": child.first_name,
        "activity": activity.name,
        "kind": kind.value,
        "request_id": request_id,
        "link": f"{current_app.config['PUBLIC_URL']}/mon-espace/demandes/{request_id}",
        # An automatic activity has already answered: the receipt says so instead of promising a decision.
        "automatic": any((decided or {}).values()),
        "accepted": len((decided or {}).get(LineState.ACCEPTED, [])),
        "refused_days": [day.isoformat() for day in (decided or {}).get(LineState.REFUSED, [])],
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


def decide(
    line_ids: list[int],
    accept: bool,
    agent: User,
    now: datetime,
    reason: str | None = None,
    message: str | None = None,
) -> dict[str, int]:
    """Accept or refuse pending lines; return how many were accepted and refused.

    Lines no longer pending (withdrawn, already decided) are skipped. Refusing needs a reason.
    """
    message = (message or "").strip() or None
    if not accept:
        if reason not in REFUSAL_REASONS:
            raise DecisionError("Choisissez le motif du refus.")
        if reason == "Autre" and not message:
            raise DecisionError("Avec le motif « Autre », écrivez un message à la famille.")
    # Claim the lines atomically: two agents deciding the same line at once decide it once.
    claimed = db.session.scalars(
        sa.update(RequestLine)
        .where(
            RequestLine.id.in_(line_ids),
            RequestLine.state == LineState.PENDING,
            RequestLine.decided_at.is_(None),
        )
        .values(decided_at=now, decided_by_id=agent.id)
        .returning(RequestLine.id)
    ).all()
    lines = db.session.scalars(
        sa.select(RequestLine)
        .where(RequestLine.id.in_(claimed))
        .options(sa.orm.selectinload(RequestLine.request))
        .execution_options(populate_existing=True)
    ).all()
    if not lines:
        raise DecisionError("Aucune ligne en attente dans la sélection : elle a peut-être déjà été traitée.")
    by_request: dict[int, list[RequestLine]] = defaultdict(list)
    for line in lines:
        by_request[line.request_id].append(line)
    counts = {"accepted": 0, "refused": 0}
    for request_lines in by_request.values():
        request = request_lines[0].request
        activity = db.session.get(Activity, request.activity_id)
        days = [line.day for line in request_lines]
        booking_of = {
            b.day: b
            for b in db.session.scalars(
                sa.select(Booking).where(
                    Booking.child_id == request.child_id,
                    Booking.activity_id == request.activity_id,
                    Booking.day.in_(days),
                )
            )
        }
        full: set[date] = set()
        if accept and request.kind is RequestKind.RESERVATION:
            full = set(days) - bookings.take_places(activity, days)
        elif accept:
            bookings.release_places(activity, days)
        decided = {LineState.ACCEPTED: [], LineState.REFUSED: []}
        for line in request_lines:
            booking = booking_of.get(line.day)
            if accept and line.day not in full:
                line.state, line.reason = LineState.ACCEPTED, None
                new_state = (
                    BookingState.RESERVED if request.kind is RequestKind.RESERVATION else BookingState.ABSENT
                )
                booking_reason = None
            else:
                line.state, line.reason = LineState.REFUSED, reason if not accept else "Complet"
                # A refused reservation shows as refused; a refused absence keeps the day reserved.
                new_state = (
                    BookingState.REFUSED
                    if request.kind is RequestKind.RESERVATION
                    else (booking.previous_state if booking else None) or BookingState.RESERVED
                )
                booking_reason = line.reason if new_state is BookingState.REFUSED else None
            line.message = message
            if booking is not None:
                booking.state, booking.reason, booking.previous_state = new_state, booking_reason, None
            decided[line.state].append(line.day)
        for state, state_days in decided.items():
            if not state_days:
                continue
            label = "Acceptée" if state is LineState.ACCEPTED else "Refusée"
            record(
                request.id,
                EventKind.DECISION,
                agent,
                by_town=True,
                summary=f"{label} : {short_days(state_days)}",
                reason=None if state is LineState.ACCEPTED else (reason if not accept else "Complet"),
                message=message,
                at=now,
            )
            counts["accepted" if state is LineState.ACCEPTED else "refused"] += len(state_days)
    return counts


def history(request: Request) -> list[RequestEvent]:
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


def unread_counts(user: User, request_ids: list[int]) -> dict[int, int]:
    """How many town events (decisions, messages) each request has since this parent last opened it."""
    if not request_ids:
        return {}
    seen = (
        sa.select(RequestRead.seen_at)
        .where(RequestRead.request_id == RequestEvent.request_id, RequestRead.user_id == user.id)
        .scalar_subquery()
    )
    rows = db.session.execute(
        sa.select(RequestEvent.request_id, sa.func.count())
        .where(
            RequestEvent.request_id.in_(request_ids),
            RequestEvent.by_town.is_(True),
            sa.or_(seen.is_(None), RequestEvent.at > seen),
        )
        .group_by(RequestEvent.request_id)
    )
    return dict(rows.all())


def awaiting_reply(request_ids: list[int]) -> set[int]:
    """The requests whose latest message from a parent came after the town's latest word (one query)."""
    if not request_ids:
        return set()
    from_parent = sa.func.max(
        sa.case(
            (
                sa.and_(RequestEvent.kind == EventKind.MESSAGE, RequestEvent.by_town.is_(False)),
                RequestEvent.at,
            )
        )
    )
    from_town = sa.func.max(sa.case((RequestEvent.by_town.is_(True), RequestEvent.at)))
    rows = db.session.execute(
        sa.select(RequestEvent.request_id, from_parent, from_town)
        .where(RequestEvent.request_id.in_(request_ids))
        .group_by(RequestEvent.request_id)
    )
    return {
        request_id
        for request_id, parent_at, town_at in rows
        if parent_at is not None and (town_at is None or parent_at > town_at)
    }


@dataclass
class Listing:
    """One page of Mes demandes: (source, object) pairs, newest first."""

    items: list[tuple[str, object]]
    page: int
    pages: int
    request_ids: list[int]
    # the people dossier rows name, kept in the identity map for `describe`
    people: list = field(default_factory=list)


def parent_listing(family_ids: list[int], page: int, per_page: int) -> Listing:
    """Reservation/absence requests, dossier changes and documents of these families, newest first,
    in a constant number of queries."""
    activity = sa.select(
        sa.literal("activity").label("source"), Request.id.label("id"), Request.created_at.label("at")
    ).where(Request.family_id.in_(family_ids))
    changes = sa.select(
        sa.literal("dossier").label("source"),
        ChangeRequest.id.label("id"),
        ChangeRequest.created_at.label("at"),
    ).where(ChangeRequest.family_id.in_(family_ids), ChangeRequest.status != ChangeStatus.DIRECT)
    sent = sa.select(
        sa.literal("document").label("source"), Document.id.label("id"), Document.uploaded_at.label("at")
    ).where(Document.family_id.in_(family_ids))
    union = sa.union_all(activity, changes, sent).subquery()
    total = db.session.scalar(sa.select(sa.func.count()).select_from(union))
    rows = db.session.execute(
        sa.select(union.c.source, union.c.id)
        .order_by(union.c.at.desc(), union.c.id.desc())
        .limit(per_page)
        .offset((page - 1) * per_page)
    ).all()
    ids = defaultdict(list)
    for source, row_id in rows:
        ids[source].append(row_id)
    found: dict[tuple[str, int], object] = {}
    listing = Listing([], page, max((total + per_page - 1) // per_page, 1), ids["activity"])
    if ids["activity"]:
        found |= {
            ("activity", item.id): item
            for item in db.session.scalars(
                sa.select(Request)
                .where(Request.id.in_(ids["activity"]))
                .options(
                    sa.orm.selectinload(Request.lines),
                    sa.orm.joinedload(Request.child),
                    sa.orm.joinedload(Request.activity),
                )
            )
        }
    if ids["document"]:
        found |= {
            ("document", item.id): item
            for item in db.session.scalars(
                sa.select(Document)
                .where(Document.id.in_(ids["document"]))
                .options(sa.orm.joinedload(Document.type), sa.orm.joinedload(Document.child))
            )
        }
    if ids["dossier"]:
        found |= {
            ("dossier", item.id): item
            for item in db.session.scalars(
                sa.select(ChangeRequest)
                .where(ChangeRequest.id.in_(ids["dossier"]))
                .options(sa.orm.joinedload(ChangeRequest.family))
            )
        }
        listing.people += db.session.scalars(
            sa.select(Guardian).where(Guardian.family_id.in_(family_ids))
        ).all()
        listing.people += db.session.scalars(sa.select(Child).where(Child.family_id.in_(family_ids))).all()
    listing.items = [
        (source, found[(source, row_id)]) for source, row_id in rows if (source, row_id) in found
    ]
    return listing


def mark_read(request: Request, user: User, now: datetime) -> None:
    read = db.session.get(RequestRead, (request.id, user.id))
    if read is None:
        db.session.add(RequestRead(request_id=request.id, user_id=user.id, seen_at=now))
    else:
        read.seen_at = now
