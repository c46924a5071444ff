"""Espace Facturation: invoices of the families the parent is subscribed to."""

from flask import Blueprint, render_template
from flask_login import current_user

from portail.services.subscriptions import active_families

bp = Blueprint("billing", __name__, url_prefix="/facturation")


@bp.get("/")
def home():
    """Espace Facturation: the invoices of each family (none are issued yet)."""
    return render_template("billing/home.html", families=active_families(current_user))
