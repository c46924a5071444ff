"""Public pages: home."""

from flask import render_template

from portail.access import public
from portail.main import bp


@bp.get("/")
@public
def home():
    """Home page: what the portal offers, Se connecter and Créer un compte."""
    return render_template("main/home.html")
