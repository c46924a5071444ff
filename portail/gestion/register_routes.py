"""Pointage: the day's registers in an animator's hand (a tablet, a phone), and their closing.

Every mark is a plain form (it works without JavaScript); with htmx each tap is sent at once and only
its row comes back. static/js/pointage.js keeps in the page the marks the network did not take and
sends them again (with the time of the tap), showing "non envoyé" meanwhile.
"""

from datetime import date, timedelta

import sqlalchemy as sa
from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf.csrf import generate_csrf
from sqlalchemy.exc import IntegrityError

from portail.access import for_animators
from portail.extensions import db
from portail.files import send_photo
from portail.formatting import today_in_paris
from portail.gestion.register_html import RowWriter
from portail.gestion.routes import bp
from portail.htmx import is_htmx
from portail.models import Activity, Child, Presence, utcnow
from portail.services import registers as register_service
from portail.services.billing import runs
from portail.services.outbox import commit, rollback

PRESENCES = {"present": Presence.PRESENT, "unexcused": Presence.UNEXCUSED, "excused": Presence.EXCUSED}


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        abort(404)


def _register_url(activity_id: int, day: date, anchor: str | None = None) -> str:
    return url_for("gestion.register", activity_id=activity_id, day=day.isoformat(), _anchor=anchor)


@bp.get("/pointage")
@for_animators
def registers():
    """The day's registers: every activity open that day, by site, with its figures."""
    today = today_in_paris(utcnow())
    asked = request.args.get("jour")
    day = _day(asked) if asked else today
    activities = register_service.activities_on(day)
    figures = register_service.figures(activities, day)
    return render_template(
        "gestion/registers.html",
        day=day,
        today=today,
        previous=day - timedelta(days=1),
        following=day + timedelta(days=1),
        # (those with children expected first)
        activities=sorted(activities, key=lambda activity: figures[activity.id].expected == 0),
        figures=figures,
    )


# What a register needs of its activity (read as a row: no ORM object to build on every tap).
ACTIVITY = sa.select(Activity.id, Activity.name, Activity.site, Activity.start_date, Activity.end_date).where(
    Activity.id == sa.bindparam("activity")
)


def _open(activity_id: int, day_value: str):
    """The activity (its id, name, site and dates) and the day of a register, or 404."""
    activity = db.session.execute(ACTIVITY, {"activity": activity_id}).first()
    day = _day(day_value)
    if activity is None or day < activity.start_date or day > activity.end_date:
        abort(404)
    return activity, day


@bp.get("/pointage/<int:activity_id>/<day>")
@for_animators
def register(activity_id: int, day: str):
    """One register: the children expected, their health alerts; a tap marks."""
    activity, day = _open(activity_id, day)
    now = utcnow()
    sheet = register_service.read(activity, day, group=request.args.get("classe"))
    if register_service.audit_view(current_user, sheet, now):
        commit()
    refusal = register_service.may_edit(current_user, sheet.closing, day, now)
    return render_template(
        "gestion/register.html",
        sheet=sheet,
        writer=RowWriter(sheet, generate_csrf(), refusal),
        refusal=refusal,
        can_reopen=sheet.closing is not None and register_service.may_reopen(current_user),
        today=today_in_paris(now),
        ALL=register_service.ALL,
        here=url_for("gestion.register", activity_id=activity.id, day=day.isoformat()),
    )


@bp.post("/pointage/<int:activity_id>/<day>/enfants/<int:child_id>")
@for_animators
def register_mark(activity_id: int, day: str, child_id: int):
    """Mark a child present or absent (htmx: the row comes back, with the figures; else the register)."""
    activity, day = _open(activity_id, day)
    presence = PRESENCES.get(request.form.get("presence", ""))
    now = utcnow()
    error = None
    if presence is None:
        error = "Choisissez Présent ou Absent."
    else:
        try:
            queued = register_service.mark(
                activity,
                day,
                child_id,
                presence,
                request.form.get("reason") or None,
                current_user,
                now,
                register_service.tapped_at(request.form.get("tapped"), now),
            )
            commit()
            _hand_over(queued)
        except LookupError:
            rollback()
            abort(404)
        except register_service.RegisterError as refused:
            rollback()
            error = str(refused)
    if not is_htmx():
        if error:  # (to the top of the page, where the message is: the row's place would hide it)
            flash(error, "error")
            return redirect(_register_url(activity.id, day))
        return redirect(_register_url(activity.id, day, f"enfant-{child_id}"))
    sheet = register_service.read(activity, day, only=child_id)
    if not sheet.rows:
        abort(404)
    row = sheet.rows[0]
    refusal = register_service.may_edit(current_user, sheet.closing, day, now)
    said = error or (f"{row.first_name} {row.last_name} : {row.presence.label}" if row.presence else "")
    return (
        render_template(
            "gestion/_register_tap.html",
            sheet=sheet,
            row=RowWriter(sheet, generate_csrf(), refusal).row(row, swapped=True, error=error),
            said=said,
        ),
        422 if error else 200,  # (the row with its message: portail.js swaps 422 answers)
    )


@bp.get("/pointage/<int:activity_id>/<day>/enfants/<int:child_id>/contacts")
@for_animators
def register_contacts(activity_id: int, day: str, child_id: int):
    """Who may collect a child of this register, and their phones (htmx: into the row; else a page)."""
    activity, day = _open(activity_id, day)
    if not register_service.on_register(activity, day, child_id):
        abort(404)
    child = db.get_or_404(Child, child_id)
    return render_template(
        "gestion/_register_contacts.html" if is_htmx() else "gestion/register_contacts.html",
        activity=activity,
        day=day,
        child=child,
        contacts=register_service.contacts(child_id),
        swapped=is_htmx(),  # (into the row: the focus goes to what came in, not lost with the link)
    )


@bp.get("/pointage/<int:activity_id>/<day>/enfants/<int:child_id>/photo")
@for_animators
def register_photo(activity_id: int, day: str, child_id: int):
    """The photo of a child on this register (an animator sees no other child's)."""
    activity, day = _open(activity_id, day)
    child = db.get_or_404(Child, child_id)
    if not child.photo or not register_service.on_register(activity, day, child_id):
        abort(404)
    return send_photo(child.photo)


@bp.route("/pointage/<int:activity_id>/<day>/ajouter", methods=["GET", "POST"])
@for_animators
def register_add(activity_id: int, day: str):
    """A child enrolled in the activity who is there without a booking: found by name, marked present."""
    activity, day = _open(activity_id, day)
    if request.method == "POST":
        now = utcnow()
        try:
            child = register_service.add_present(
                activity, day, request.form.get("child_id", type=int) or 0, current_user, now
            )
            commit()
        except LookupError:
            rollback()
            abort(404)
        except register_service.RegisterError as refused:
            rollback()
            flash(str(refused), "info")
            return redirect(_register_url(activity.id, day))  # (the top of the page: its message)
        flash(f"{child.full_name} est ajouté(e) au pointage, présent(e) sans réservation.", "success")
        return redirect(_register_url(activity.id, day, f"enfant-{child.id}"))
    query = request.args.get("q", "").strip()
    return render_template(
        "gestion/register_add.html",
        activity=activity,
        day=day,
        query=query,
        found=register_service.addable(activity, day, query) if query else [],
    )


@bp.route("/pointage/<int:activity_id>/<day>/cloturer", methods=["GET", "POST"])
@for_animators
def register_close(activity_id: int, day: str):
    """Close the register: asked first, with the children not marked (they will be absent)."""
    activity, day = _open(activity_id, day)
    if request.method == "POST":
        try:
            unmarked, queued = register_service.close(activity, day, current_user, utcnow())
            commit()
            _hand_over(queued)
        except IntegrityError:
            rollback()
            flash("Ce registre est déjà clôturé.", "info")
            return redirect(_register_url(activity.id, day))
        except register_service.RegisterError as refused:
            rollback()
            flash(str(refused), "info")
            return redirect(_register_url(activity.id, day))
        flash(
            "Registre clôturé."
            + (
                f" {unmarked} enfant(s) non pointé(s) compté(s) absent(s) sans justification."
                if unmarked
                else ""
            ),
            "success",
        )
        return redirect(_register_url(activity.id, day))
    sheet = register_service.read(activity, day, group=register_service.ALL)
    if sheet.closing is not None:
        flash("Ce registre est déjà clôturé.", "info")
        return redirect(_register_url(activity.id, day))
    return render_template(
        "gestion/register_close.html",
        sheet=sheet,
        unmarked=[row for row in sheet.expected if row.presence is None],
    )


@bp.post("/pointage/<int:activity_id>/<day>/rouvrir")
@for_animators
def register_reopen(activity_id: int, day: str):
    """An agent reopens a closed register (animators may not)."""
    activity, day = _open(activity_id, day)
    try:
        queued = register_service.reopen(activity, day, current_user, utcnow())
        commit()
        _hand_over(queued)
        flash("Registre rouvert : le pointage peut être corrigé.", "success")
    except register_service.RegisterError as refused:
        rollback()
        flash(str(refused), "error")
    return redirect(_register_url(activity.id, day))


def _hand_over(queued: list) -> None:
    """The billing runs a change queued (committed with it: a month billed already) to the worker."""
    for billing_run in queued:
        runs.hand_over(billing_run)
