"""Espace Famille: the families the parent is subscribed to, and their Dossier Famille."""

from portail.family import document_routes, planning_routes  # noqa: F401  (their views register on bp)
from portail.family.routes import bp  # noqa: F401  (defined with the main routes; the app registers it)
