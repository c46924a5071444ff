"""Load a family's objects through the logged-in parent's subscriptions: 404 for anything else."""

import sqlalchemy as sa
from flask import abort
from flask_login import current_user

from portail.extensions import db
from portail.models import AuthorizedContact, Child, Family, Subscription

# Built once (every family page asks it): a reused statement keeps its compiled form and cache key.
FAMILY_OF_USER = (
    sa.select(Family)
    .join(Subscription)
    .where(
        Family.id == sa.bindparam("family"),
        Subscription.user_id == sa.bindparam("user"),
        Subscription.ended_at.is_(None),
    )
    .options(sa.orm.joinedload(Family.children))  # one query for the family and its children
)


def family_of_current_user(family_id: int) -> Family:
    """A family the parent is subscribed to, else 404."""
    family = (
        db.session.execute(FAMILY_OF_USER, {"family": family_id, "user": current_user.id})
        .unique()
        .scalar_one_or_none()
    )
    if family is None:
        abort(404)
    return family


def member_or_404(family: Family, model, object_id: int):
    """A guardian, child, contact or change request of this family, else 404."""
    if model is AuthorizedContact:
        found = db.session.scalar(
            sa.select(AuthorizedContact)
            .join(Child)
            .where(AuthorizedContact.id == object_id, Child.family_id == family.id)
        )
    else:
        found = db.session.get(model, object_id)
        if found is not None and found.family_id != family.id:
            found = None
    if found is None:
        abort(404)
    return found
