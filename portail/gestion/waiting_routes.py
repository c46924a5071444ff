"""Back-office: Listes d'attente. The lines of the full days from today on, each in its order, per
activity and day; an agent moves a child to the head of its line, or removes it with a reason the
family reads (the transitions: bookings.promote, bookings.remove_from_line; the lines read by
services.waiting_lines)."""

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user

from portail import bookings
from portail.extensions import db
from portail.formatting import french_day, today_in_paris
from portail.gestion.routes import bp
from portail.models import Activity, Child, WaitingEntry, utcnow
from portail.services import waiting_lines
from portail.services.outbox import rollback


@bp.get("/listes-attente")
def waiting_lists():
    """Listes d'attente: the lines of the days from today on, in order, with the day's places; by activity."""
    activity_id = request.args.get("activite", type=int)
    page = max(request.args.get("page", 1, type=int), 1)
    found, total = waiting_lines.lines(activity_id, today_in_paris(utcnow()), page)
    return render_template(
        "gestion/waiting_lists.html",
        lines=found,
        total=total,
        page=page,
        pages=max((total + waiting_lines.PER_PAGE - 1) // waiting_lines.PER_PAGE, 1),
        activity_id=activity_id,
        activities=waiting_lines.activities_to_filter(),
    )


@bp.post("/listes-attente/<int:entry_id>/en-tete")
def waiting_promote(entry_id: int):
    """Passer en tête: the child first in its day's line (a place free is offered to it at once)."""
    entry = db.get_or_404(WaitingEntry, entry_id)
    child, line = _names(entry)
    if not _act(lambda: bookings.promote(entry_id, current_user, utcnow())):
        return redirect(_back())
    if db.session.get(WaitingEntry, entry_id).offered_at is not None:
        flash(f"Une place était libre ({line}) : elle est proposée à {child}.", "success")
    else:
        flash(f"{child} est en tête de la liste d'attente ({line}).", "success")
    return redirect(_back())


@bp.post("/listes-attente/<int:entry_id>/retirer")
def waiting_remove(entry_id: int):
    """Retirer de la liste, with a reason the family reads: the day refused with it, a place held for
    the child passed to the next in line."""
    entry = db.get_or_404(WaitingEntry, entry_id)
    (child, line), reason = _names(entry), request.form.get("motif", "")
    if _act(lambda: bookings.remove_from_line(entry_id, current_user, reason, utcnow())):
        flash(f"{child} n'est plus sur la liste d'attente ({line}) : la famille lira le motif.", "success")
    return redirect(_back())


def _act(change) -> bool:
    """Run a change of a line (retried on a concurrent write, committed); whether it was made. A change
    the line no longer allows (a double click, another agent first) or a missing reason is flashed."""
    try:
        bookings.with_retries(change)
    except bookings.DecisionError as error:
        rollback()
        flash(str(error), "error")
        return False
    return True


def _names(entry: WaitingEntry) -> tuple[str, str]:
    """The child of an entry and its line (activity and day), as the flash messages name them."""
    child = db.session.get(Child, entry.child_id)
    activity = db.session.get(Activity, entry.activity_id)
    return child.full_name, f"{activity.name}, {french_day(entry.day)}"


def _back() -> str:
    """The list as the agent filtered it (`retour`), never another site's page."""
    home = url_for("gestion.waiting_lists")
    back = request.form.get("retour") or home
    return back if back.startswith(home) else home
