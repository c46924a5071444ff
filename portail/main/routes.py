"""Public pages: home, and the health check."""

from flask import Blueprint, render_template

from portail.access import public

bp = Blueprint("main", __name__)


@bp.get("/")
@public
def home():
    """Home page: what the portal offers, Se connecter and Créer un compte."""
    return render_template("main/home.html")


@bp.get("/sante")
@public
def health():
    """The process answers: for the reverse proxy's health checks and the benchmarks' ceiling (no
    database, no Redis, no template)."""
    return "ok\n", 200, {"Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store"}
