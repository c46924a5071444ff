"""What each parent chose to receive by mail (Mon compte → Notifications): booking receipts at once
or none; decisions one mail each, in the 13:00 and 18:00 digests (the default), or in one 18:00
digest a day.

The choices are kept as a history (`NotificationChoice`, one row per change): a decision is mailed as
the choice in force at the instant it was made says (`decisions_at`), so a change of choice in the
middle of a window sends every decision once — those before the change as promised before it, those
after as promised after.
"""

from datetime import datetime

import sqlalchemy as sa

from portail.extensions import db
from portail.models import DecisionsChoice, NotificationChoice, ReceiptsChoice, User


def decisions_now(user_id: int) -> DecisionsChoice:
    """The account's choice for the decisions in force (one query)."""
    found = db.session.scalar(
        sa.select(NotificationChoice.decisions)
        .where(NotificationChoice.user_id == user_id)
        .order_by(NotificationChoice.from_at.desc(), NotificationChoice.id.desc())
        .limit(1)
    )
    return found or DecisionsChoice.TWICE_DAILY


def choose(user: User, receipts: ReceiptsChoice, decisions: DecisionsChoice, now: datetime) -> bool:
    """Record the account's choices (the decisions' from `now` on, kept in the history); False when
    nothing changes. Not committed."""
    changed = user.receipts is not receipts
    user.receipts = receipts
    if decisions_now(user.id) is not decisions:
        db.session.add(NotificationChoice(user_id=user.id, decisions=decisions, from_at=now))
        changed = True
    db.session.flush()
    return changed


def decisions_at(user_id, instant) -> sa.ScalarSelect:
    """SQL: the decisions choice of the account `user_id` in force at `instant` (columns of the
    enclosing query); NULL when it never chose (the default: the 13:00/18:00 digests)."""
    return (
        sa.select(NotificationChoice.decisions)
        .where(NotificationChoice.user_id == user_id, NotificationChoice.from_at <= instant)
        .order_by(NotificationChoice.from_at.desc(), NotificationChoice.id.desc())
        .limit(1)
        .scalar_subquery()
    )
