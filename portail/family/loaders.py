"""Load a family's objects through the logged-in parent's subscriptions: 404 for anything else."""

import sqlalchemy as sa
from flask import abort, g
from flask_login import current_user

from portail.extensions import db
from portail.models import Activity, AuthorizedContact, Child, Family, Subscription

# Built once (every family page asks it): a reused statement keeps its compiled form and cache key.
FAMILIES_OF_USER = (
    sa.select(Family)
    .join(Subscription)
    .where(Subscription.user_id == sa.bindparam("user"), Subscription.ended_at.is_(None))
    .options(sa.orm.joinedload(Family.children))  # one query for the families and their children
    .order_by(Subscription.created_at)
)


_sibling = sa.orm.aliased(Child)
# A child of a family the parent is subscribed to, an activity, and the child's rank by birth in the
# family (its colour: the order of Family.children): everything a planning cell's request needs, in one query.
CELL_TARGET = (
    sa.select(
        Child,
        Activity,
        sa.select(sa.func.count())
        .where(
            _sibling.family_id == Child.family_id,
            sa.or_(
                _sibling.birth_date < Child.birth_date,
                sa.and_(_sibling.birth_date == Child.birth_date, _sibling.id < Child.id),
            ),
        )
        .scalar_subquery(),
    )
    .join(
        Subscription,
        sa.and_(
            Subscription.family_id == Child.family_id,
            Subscription.user_id == sa.bindparam("user"),
            Subscription.ended_at.is_(None),
        ),
    )
    .join(Activity, Activity.id == sa.bindparam("activity"))
    .where(Child.id == sa.bindparam("child"), Child.family_id == sa.bindparam("family"))
)


def cell_target_or_404(family_id: int, child_id: int, activity_id: int) -> tuple[Child, Activity, int]:
    """The child (of a family the parent is subscribed to), the activity and the child's rank in
    the family, else 404."""
    found = db.session.execute(
        CELL_TARGET,
        {"user": current_user.id, "family": family_id, "child": child_id, "activity": activity_id},
    ).one_or_none()
    if found is None:
        abort(404)
    return found._tuple()


def family_of_current_user(family_id: int) -> Family:
    """A family the parent is subscribed to, else 404.

    The same query gives the menus the parent's families (`nav_families`): one query, not two.
    """
    families = db.session.execute(FAMILIES_OF_USER, {"user": current_user.id}).unique().scalars().all()
    g.nav_families = families
    family = next((family for family in families if family.id == family_id), None)
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
