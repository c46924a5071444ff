"""The back office's dashboard: the figures an agent watches and the mails' status."""

from datetime import date

import sqlalchemy as sa

from portail.extensions import db
from portail.models import (
    ChangeRequest,
    ChangeStatus,
    Document,
    DocumentState,
    Family,
    LineState,
    OutboxMessage,
    RequestLine,
    Role,
    Subscription,
    User,
)
from portail.services import billing


def figures(today: date) -> dict[str, int]:
    """Families, active parents and subscriptions, and the work waiting for an agent."""
    count = db.session.scalar
    return {
        "families": count(sa.select(sa.func.count(Family.id))),
        "parents": count(
            sa.select(sa.func.count(User.id)).where(User.role == Role.PARENT, User.activated_at.is_not(None))
        ),
        "subscriptions": count(
            sa.select(sa.func.count(Subscription.id)).where(Subscription.ended_at.is_(None))
        ),
        "changes": count(
            sa.select(sa.func.count(ChangeRequest.id)).where(ChangeRequest.status == ChangeStatus.PENDING)
        ),
        "pending_lines": count(
            sa.select(sa.func.count(RequestLine.id)).where(RequestLine.state == LineState.PENDING)
        ),
        "pending_documents": count(
            sa.select(sa.func.count(Document.id)).where(Document.state == DocumentState.PENDING)
        ),
        "overdue_invoices": billing.overdue_count(today),
    }


def outbox_counts() -> dict:
    """How many mails are in each outbox status."""
    return dict(
        db.session.execute(
            sa.select(OutboxMessage.status, sa.func.count(OutboxMessage.id)).group_by(OutboxMessage.status)
        ).all()
    )
