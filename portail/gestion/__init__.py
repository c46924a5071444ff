"""Back-office of the children's service (agents and admins only)."""

from flask import Blueprint

bp = Blueprint("gestion", __name__, url_prefix="/gestion")

from portail.gestion import (  # noqa: E402,F401
    activity_routes,
    billing_routes,
    document_routes,
    dossier_routes,
    request_routes,
    routes,
)
