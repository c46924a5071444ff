"""Access rules: every endpoint is private unless marked public; /gestion is staff only, and of it
animators reach the registers only (views marked `for_animators`)."""

from functools import wraps

from flask import Flask, abort, current_app, request
from flask_login import current_user

PUBLIC_ATTR = "portail_public"
ANIMATORS_ATTR = "portail_animators"


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


def for_animators(view):
    """Mark a back-office view as open to animators too (the registers); every other /gestion view
    is for agents and administrators only."""
    setattr(view, ANIMATORS_ATTR, True)
    return view


def _animators_allowed(endpoint: str | None) -> bool:
    view = current_app.view_functions.get(endpoint or "")
    return bool(getattr(view, ANIMATORS_ATTR, False))


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
    from portail.models import Role

    @app.before_request
    def require_login():
        if is_public(request.endpoint):
            return None
        if not current_user.is_authenticated:
            return login_manager.unauthorized()
        if request.blueprint == "gestion" and not current_user.is_staff:
            abort(403)
        if (
            request.blueprint == "gestion"
            and current_user.role is Role.ANIMATOR
            and not _animators_allowed(request.endpoint)
        ):
            abort(403)
        return None
