"""Espace Famille: the families the parent is subscribed to, and their Dossier Famille."""

from flask import Blueprint

bp = Blueprint("family", __name__, url_prefix="/famille")

from portail.family import document_routes, planning_routes, routes  # noqa: E402,F401
