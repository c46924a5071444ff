"""Back office: openings of registration (the waiting room's schedule): list, announce, change
before the queue starts, cancel."""

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user

from portail.extensions import db
from portail.forms import form_page
from portail.gestion.forms import OpeningForm
from portail.gestion.routes import bp, saved
from portail.models import Opening, utcnow
from portail.services import activities as activity_service
from portail.services import openings
from portail.services.outbox import rollback


@bp.get("/ouvertures")
def openings_list():
    """Ouvertures des inscriptions: those to come and the recent ones, with their queue."""
    now = utcnow()
    openings.publish(now)  # mends a schedule that Redis missed when an opening was saved (Redis was down)
    items = openings.listed(now)
    figures = {
        item.id: openings.queue_figures(item) for item in items if item.started(now) and not item.cancelled
    }
    return render_template("gestion/openings.html", items=items, now=now, figures=figures)


@bp.route("/ouvertures/formulaire", methods=["GET", "POST"])
def opening_edit():
    """Announce an opening, or change one (`?ouverture=<id>`) whose queue has not started."""
    opening_id = request.args.get("ouverture", type=int)
    opening = db.get_or_404(Opening, opening_id) if opening_id else None
    now = utcnow()
    if opening and (reason := openings.frozen(opening, now)):
        flash(reason, "error")
        return redirect(url_for("gestion.openings_list"))
    form = OpeningForm()
    form.activities.choices = [(a.id, a.name) for a in activity_service.all_activities()]
    if request.method == "GET" and opening:
        form.fill(opening)
    if form.validate_on_submit():
        try:
            if opening:
                openings.update(opening, current_user, **form.values(), now=now)
            else:
                opening = openings.announce(current_user, **form.values(), now=now)
        except openings.OpeningError as error:
            rollback()
            form.form_errors.append(str(error))
        else:
            return saved("L'ouverture des inscriptions est enregistrée.", url_for("gestion.openings_list"))
    return form_page("gestion/opening_form.html", form=form, opening=opening)


@bp.post("/ouvertures/<int:opening_id>/annuler")
def opening_cancel(opening_id: int):
    """Cancel an opening (twice, a double click: the list as it is)."""
    opening = db.get_or_404(Opening, opening_id)
    openings.cancel(opening, current_user)
    return saved("L'ouverture des inscriptions est annulée.", url_for("gestion.openings_list"))
