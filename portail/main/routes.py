"""Public pages: home."""

from flask import Blueprint, render_template

from portail.access import public

bp = Blueprint("main", __name__)


@bp.get("/")
@public
def home():
    """Home page: what the portal offers, Se connecter and Créer un compte."""
    return render_template("main/home.html")
