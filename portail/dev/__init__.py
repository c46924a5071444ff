"""Development tools: the dev mailbox (404 outside development)."""

from flask import Blueprint

bp = Blueprint("dev", __name__, url_prefix="/dev")

from portail.dev import routes  # noqa: E402,F401
