"""Effectifs: the children expected per day, activity and site with the kitchen's figures, on a page,
as a PDF to print and as a CSV; the lists naming children (health data) are audited reads."""

from datetime import date, timedelta
from functools import wraps

from flask import abort, render_template, request
from flask_login import current_user

from portail.files import attachment
from portail.formatting import today_in_paris
from portail.gestion.routes import bp
from portail.models import Role, utcnow
from portail.services import headcounts
from portail.services.outbox import commit

# The periods offered: (parameter, label, first day's offset from today, days).
PERIODS = {
    "aujourdhui": ("Aujourd'hui", 0, 1),
    "demain": ("Demain", 1, 1),
    "semaine": ("7 prochains jours", 0, headcounts.WEEK),
}
OFFICE = (Role.AGENT, Role.ADMIN)  # not the animators: their part of /gestion is the registers


def office_only(view):
    """403 unless the user is an agent or an admin."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        if current_user.role not in OFFICE:
            abort(403)
        return view(*args, **kwargs)

    return wrapper


def _period() -> tuple[str, date, date]:
    """The asked period (a day chosen with `jour`, else `periode`, today by default): (key, first, last).

    The key is "" for a chosen day."""
    chosen = request.args.get("jour") or ""
    if chosen:
        try:
            day = date.fromisoformat(chosen)
        except ValueError:
            abort(404)
        return "", day, day
    key = request.args.get("periode") or "aujourdhui"
    if key not in PERIODS:
        abort(404)
    _label, offset, days = PERIODS[key]
    first = today_in_paris(utcnow()) + timedelta(days=offset)
    return key, first, first + timedelta(days=days - 1)


@bp.get("/effectifs", endpoint="headcounts")
@office_only
def headcounts_page():
    """Effectifs of today, tomorrow, the coming week or a chosen day; the named lists on request."""
    key, first, last = _period()
    counts = headcounts.period(first, last)
    lists = request.args.get("listes") == "1"
    if lists:
        headcounts.audit_lists(current_user, counts, "consultation")
        commit()
    return render_template(
        "gestion/headcounts.html",
        counts=counts,
        key=key,
        periods=PERIODS,
        lists=lists,
        columns=headcounts.COLUMNS,
        chosen=first if not key else None,
    )


@bp.get("/effectifs/effectifs.<fmt>")
@office_only
def headcounts_export(fmt: str):
    """The same period as a PDF to print or a CSV (semicolons, UTF-8 with BOM), named lists included."""
    if fmt not in ("pdf", "csv"):
        abort(404)
    _key, first, last = _period()
    name, body, mimetype = headcounts.export(first, last, fmt, current_user, utcnow())
    commit()
    return attachment(body, mimetype, name)
