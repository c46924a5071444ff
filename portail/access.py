"""Access rules: every endpoint is private unless marked public; /gestion is staff only."""

from functools import wraps

from flask import Flask, abort, current_app, request
from flask_login import current_user

PUBLIC_ATTR = "portail_public"


def public(view):
    """Mark a view as reachable without logging in."""
    setattr(view, PUBLIC_ATTR, True)
    return view


def is_public(endpoint: str | None) -> bool:
    """Whether the endpoint may be reached anonymously."""
    if endpoint is None or endpoint == "static":
        return True
    view = current_app.view_functions.get(endpoint)
    return bool(getattr(view, PUBLIC_ATTR, False))


def admin_required(view):
    """403 unless the user is an admin."""
    from portail.models import Role

    @wraps(view)
    def wrapper(*args, **kwargs):
        if current_user.role is not Role.ADMIN:
            abort(403)
        return view(*args, **kwargs)

    return wrapper


def init_app(app: Flask) -> None:
    """Require a login before every non-public endpoint."""
    from portail.extensions import login_manager

    @app.before_request
    def require_login():
        if is_public(request.endpoint):
            return None
        if not current_user.is_authenticated:
            return login_manager.unauthorized()
        if request.blueprint == "gestion" and not current_user.is_staff:
            abort(403)
        return None
