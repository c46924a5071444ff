"""Espace Facturation: the invoices of the families the parent is subscribed to, their detail and PDF."""

from flask import Blueprint

bp = Blueprint("billing", __name__, url_prefix="/facturation")

from portail.billing import routes  # noqa: E402,F401
