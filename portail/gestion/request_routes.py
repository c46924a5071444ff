"""Back-office: the reservation/absence request queue (with the families' sick days declared), decisions
one by one or in bulk, a request's history and messages."""

from datetime import date, timedelta

import sqlalchemy as sa
from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from portail import bookings
from portail.account.routes import post_message
from portail.bookings import history
from portail.extensions import db
from portail.formatting import today_in_paris
from portail.gestion.routes import bp
from portail.models import (
    Activity,
    ActivityDay,
    Child,
    Family,
    LineState,
    Request,
    RequestLine,
    utcnow,
)
from portail.services import planning, request_desk, sickness
from portail.services.outbox import commit, rollback

LINE_STATES = {
    "pending": ("En attente", LineState.PENDING),
    "accepted": ("Acceptées", LineState.ACCEPTED),
    "refused": ("Refusées", LineState.REFUSED),
}
PER_PAGE = 50
# Without a day chosen, the sick days declared from a week ago on (the certificates that may still come).
SICK_DAYS_BACK = timedelta(days=7)


def _filters() -> dict:
    args = request.args
    day = None
    if args.get("jour"):
        try:
            day = date.fromisoformat(args["jour"])
        except ValueError:
            day = None
    return {
        "activite": args.get("activite", type=int),
        "jour": day,
        "famille": (args.get("famille") or "").strip()[:100],
        "etat": args.get("etat")
        if args.get("etat") in LINE_STATES or args.get("etat") == "all"
        else "pending",
    }


@bp.get("/demandes")
def requests_queue():
    """Demandes de réservation et d'absence: one row per day, filtered; capacity and booked count per day."""
    filters = _filters()
    query = (
        sa.select(RequestLine, Request, Child, Family, Activity)
        .join(Request, RequestLine.request_id == Request.id)
        .join(Child, Child.id == Request.child_id)
        .join(Family, Family.id == Request.family_id)
        .join(Activity, Activity.id == Request.activity_id)
    )
    if filters["etat"] != "all":
        query = query.where(RequestLine.state == LINE_STATES[filters["etat"]][1])
    if filters["activite"]:
        query = query.where(Request.activity_id == filters["activite"])
    if filters["jour"]:
        query = query.where(RequestLine.day == filters["jour"])
    if filters["famille"]:
        pattern = f"%{filters['famille'].lower()}%"
        query = query.where(
            sa.or_(sa.func.lower(Family.name).like(pattern), sa.func.lower(Child.first_name).like(pattern))
        )
    total = db.session.scalar(sa.select(sa.func.count()).select_from(query.subquery()))
    page = max(request.args.get("page", 1, type=int), 1)
    rows = db.session.execute(
        query.order_by(RequestLine.day, Activity.name, Family.name, Child.first_name, RequestLine.id)
        .limit(PER_PAGE)
        .offset((page - 1) * PER_PAGE)
    ).all()
    booked = {}
    pairs = {(row.Activity.id, row.RequestLine.day) for row in rows}
    if pairs:
        booked = {
            (activity_id, day): count
            for activity_id, day, count in db.session.execute(
                sa.select(ActivityDay.activity_id, ActivityDay.day, ActivityDay.booked).where(
                    ActivityDay.activity_id.in_({a for a, _d in pairs}),
                    ActivityDay.day.in_({d for _a, d in pairs}),
                )
            )
        }
    awaiting = request_desk.awaiting_reply(list({row.Request.id for row in rows}))
    if filters["jour"]:
        first, last = filters["jour"], filters["jour"]
    else:
        first, last = today_in_paris(utcnow()) - SICK_DAYS_BACK, None
    declarations = sickness.for_staff(first, last, filters["famille"]) if not filters["activite"] else None
    return render_template(
        "gestion/requests.html",
        awaiting=awaiting,
        declarations=declarations,
        sick_since=None if filters["jour"] else first,
        rows=rows,
        total=total,
        page=page,
        pages=max((total + PER_PAGE - 1) // PER_PAGE, 1),
        filters=filters,
        states=LINE_STATES,
        activities=db.session.scalars(sa.select(Activity).order_by(Activity.name)).all(),
        booked=booked,
        reasons=bookings.REFUSAL_REASONS,
        kinds=planning.KIND_LABELS,
        line_labels=request_desk.LINE_LABELS,
    )


@bp.post("/demandes/decision")
def requests_decide():
    """Accept or refuse the selected lines (bulk), or the one line of the button pressed."""
    single = request.form.get("une", "")
    if single:
        line_id, _, verdict = single.partition(":")
        line_ids = [int(line_id)] if line_id.isdigit() else []
    else:
        verdict = request.form.get("decision", "")
        line_ids = [int(value) for value in request.form.getlist("ligne") if value.isdigit()]
    back = request.form.get("retour") or url_for("gestion.requests_queue")
    if not back.startswith("/gestion/"):
        back = url_for("gestion.requests_queue")
    if verdict not in ("accepter", "refuser"):
        abort(400)
    if not line_ids:
        flash("Cochez au moins une ligne.", "error")
        return redirect(back)
    try:
        counts = bookings.decide(
            line_ids,
            verdict == "accepter",
            current_user,
            utcnow(),
            reason=request.form.get("motif") or None,
            message=request.form.get("message"),
        )
        commit()
    except bookings.DecisionError as error:
        rollback()
        flash(str(error), "error")
        return redirect(back)
    parts = []
    if counts["accepted"]:
        parts.append(
            f"{counts['accepted']} jour{'s' if counts['accepted'] > 1 else ''} accepté{'s' if counts['accepted'] > 1 else ''}"
        )
    if counts["refused"]:
        parts.append(
            f"{counts['refused']} jour{'s' if counts['refused'] > 1 else ''} refusé{'s' if counts['refused'] > 1 else ''}"
        )
    flash(" et ".join(parts) + ".", "success")
    return redirect(back)


@bp.get("/demandes/<int:request_id>")
def request_show(request_id: int):
    """One request: its days and their state, its history, a message to the family, decisions."""
    found = db.get_or_404(Request, request_id)
    events = history.events(found)
    return render_template(
        "gestion/request_show.html",
        awaiting=request_desk.awaiting_reply([found.id]),
        item=found,
        events=events,
        state=planning.request_state(found.lines),
        kinds=planning.KIND_LABELS,
        reasons=bookings.REFUSAL_REASONS,
        pending=LineState.PENDING,
        line_labels=request_desk.LINE_LABELS,
    )


@bp.post("/demandes/<int:request_id>/message")
def request_message(request_id: int):
    """The town's message to the family about a request."""
    post_message(db.get_or_404(Request, request_id), by_town=True, sent="Message envoyé à la famille.")
    return redirect(url_for("gestion.request_show", request_id=request_id))
