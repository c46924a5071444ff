"""Espace Famille: the families the parent is subscribed to."""

import sqlalchemy as sa
from flask import Blueprint, abort, redirect, render_template, url_for
from flask_login import current_user

from portail.extensions import db
from portail.models import Family, Subscription
from portail.services.subscriptions import active_families

bp = Blueprint("family", __name__, url_prefix="/famille")


def family_of_current_user(family_id: int) -> Family:
    """Load a family through the parent's active subscriptions: 404 for any other."""
    family = db.session.scalar(
        sa.select(Family)
        .join(Subscription)
        .where(
            Family.id == family_id,
            Subscription.user_id == current_user.id,
            Subscription.ended_at.is_(None),
        )
        .options(sa.orm.selectinload(Family.guardians), sa.orm.selectinload(Family.children))
    )
    if family is None:
        abort(404)
    return family


@bp.get("/")
def home():
    """Espace Famille: straight to the family when there is one, else the list."""
    families = active_families(current_user)
    if len(families) == 1:
        return redirect(url_for("family.show", family_id=families[0].id))
    return render_template("family/home.html", families=families)


@bp.get("/<int:family_id>")
def show(family_id: int):
    """Dossier Famille (summary): responsables and children."""
    return render_template("family/show.html", family=family_of_current_user(family_id))
