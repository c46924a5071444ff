"""Sign-up, activation, login, logout and password reset."""

from flask import Blueprint

bp = Blueprint("auth", __name__)

from portail.auth import routes  # noqa: E402,F401
