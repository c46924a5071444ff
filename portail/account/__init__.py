"""Mon espace citoyen: home, Mes abonnements, Mon compte."""

from flask import Blueprint

bp = Blueprint("account", __name__, url_prefix="/mon-espace")

from portail.account import routes  # noqa: E402,F401
