"""Public pages: home."""

from flask import Blueprint

bp = Blueprint("main", __name__)

from portail.main import routes  # noqa: E402,F401
