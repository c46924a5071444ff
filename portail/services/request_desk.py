"""The requests' desk: Mes demandes' listing, the unread flags and who awaits a reply.

The requests' transitions (submit, withdraw, decide) are in `portail.bookings.transitions`, their
history and messages in `portail.bookings.history`.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa

from portail.extensions import db
from portail.models import (
    ChangeRequest,
    ChangeStatus,
    Child,
    Document,
    EventKind,
    Guardian,
    LineState,
    Request,
    RequestEvent,
    RequestRead,
    User,
)

LINE_LABELS = {
    LineState.PENDING: "En attente",
    LineState.ACCEPTED: "Acceptée",
    LineState.REFUSED: "Refusée",
    LineState.WITHDRAWN: "Retirée",
    LineState.WAITING: "Liste d'attente",
}


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


# What Mes demandes lists, by source: the model (its rows have a family_id), the date it is listed
# by, which of its rows only (not the agent's direct edits of the file), what its items load.
SOURCES = {
    "activity": (
        Request,
        Request.created_at,
        (),
        (
            sa.orm.selectinload(Request.lines),
            sa.orm.joinedload(Request.child),
            sa.orm.joinedload(Request.activity),
        ),
    ),
    "dossier": (
        ChangeRequest,
        ChangeRequest.created_at,
        (ChangeRequest.status != ChangeStatus.DIRECT,),
        (sa.orm.joinedload(ChangeRequest.family),),
    ),
    "document": (
        Document,
        Document.uploaded_at,
        (),
        (sa.orm.joinedload(Document.type), sa.orm.joinedload(Document.child)),
    ),
}


def parent_listing(family_ids: list[int], page: int, per_page: int) -> Listing:
    """Reservation/absence requests, dossier changes and documents of these families, newest first,
    in a constant number of queries."""
    union = sa.union_all(
        *(
            sa.select(sa.literal(source).label("source"), model.id.label("id"), at.label("at")).where(
                model.family_id.in_(family_ids), *only
            )
            for source, (model, at, only, _load) in SOURCES.items()
        )
    ).subquery()
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
    for source, (model, _at, _only, load) in SOURCES.items():
        if ids[source]:
            query = sa.select(model).where(model.id.in_(ids[source])).options(*load)
            found |= {(source, item.id): item for item in db.session.scalars(query)}
    listing = Listing([], page, max((total + per_page - 1) // per_page, 1), ids["activity"])
    if ids["dossier"]:
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
