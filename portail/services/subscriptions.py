"""Abonnements: linking a parent account to a family with its code abonné."""

import re
from datetime import date, timedelta

import sqlalchemy as sa
from flask import current_app

from portail.extensions import db
from portail.models import Child, Family, Subscription, SubscriptionAttempt, User, utcnow
from portail.services import calendar_feeds
from portail.services.transactions import claim

GENERIC_ERROR = (
    "Aucune famille ne correspond à ce code abonné et à cette date de naissance. "
    "Vérifiez le courrier de la mairie."
)


def normalize_code(code: str) -> str:
    """Codes are typed with or without spaces and dashes, in any case."""
    return re.sub(r"[\s-]", "", code or "").upper()


def find_family(code: str, child_birth_date: date | None) -> Family | None:
    """The family with this code that has a child born on that date, else None."""
    if not code or child_birth_date is None:
        return None
    return db.session.scalar(
        sa.select(Family)
        .join(Child)
        .where(
            Family.subscriber_code == normalize_code(code),
            Child.birth_date == child_birth_date,
        )
        .limit(1)
    )


def tries_left(user: User) -> int:
    """How many failed tries remain in the current hour for this account."""
    since = utcnow() - timedelta(hours=1)
    failures = db.session.scalar(
        sa.select(sa.func.count(SubscriptionAttempt.id)).where(
            SubscriptionAttempt.user_id == user.id,
            SubscriptionAttempt.succeeded.is_(False),
            SubscriptionAttempt.created_at > since,
        )
    )
    return max(0, current_app.config["SUBSCRIPTION_TRIES_PER_HOUR"] - failures)


def record_attempt(user: User, succeeded: bool) -> None:
    """Count one try at the code abonné form."""
    db.session.add(SubscriptionAttempt(user_id=user.id, succeeded=succeeded))


def active_subscriptions(user: User) -> list[Subscription]:
    """The account's current subscriptions, with their families."""
    return current_subscriptions(Subscription.user_id == user.id, Subscription.family)


def current_subscriptions(condition, loaded) -> list[Subscription]:
    """The subscriptions not ended that meet `condition` (an account's, a family's), oldest first,
    each with its `loaded` side (the family, the account)."""
    return list(
        db.session.scalars(
            sa.select(Subscription)
            .where(condition, Subscription.ended_at.is_(None))
            .options(sa.orm.joinedload(loaded))
            .order_by(Subscription.created_at)
        )
    )


def active_families(user: User) -> list[Family]:
    """The families this account may see."""
    return [subscription.family for subscription in active_subscriptions(user)]


def subscribe(user: User, family: Family) -> Subscription:
    """Link the account to the family at once; a second call returns the existing link."""
    existing = db.session.scalar(
        sa.select(Subscription).where(
            Subscription.user_id == user.id,
            Subscription.family_id == family.id,
            Subscription.ended_at.is_(None),
        )
    )
    if existing is not None:
        return existing
    subscription = Subscription(user_id=user.id, family_id=family.id)
    db.session.add(subscription)
    db.session.flush()
    return subscription


def end(subscription: Subscription) -> None:
    """End a subscription; the family disappears from the account's menus at once, and the account's
    calendar addresses for it stop working.

    Ending an ended one changes nothing (the same click sent twice: the first ended it)."""
    if subscription.ended_at is not None:
        return
    claim(subscription, ended_at=None)
    subscription.ended_at = utcnow()
    calendar_feeds.revoke_all(subscription.user_id, subscription.family_id, subscription.ended_at)
