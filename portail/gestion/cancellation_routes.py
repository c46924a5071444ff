"""Back-office: Annulations de service (a strike, an exceptional closure, a teacher absent), for agents
and admins."""

from functools import wraps

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user

from portail import bookings
from portail.extensions import db
from portail.forms import form_page
from portail.gestion.cancellation_forms import CancellationForm
from portail.gestion.routes import bp
from portail.models import Activity, Role, ServiceCancellation, utcnow
from portail.services import activities as activity_service
from portail.services import cancellations
from portail.services.billing import runs
from portail.services.outbox import rollback


def agents_only(view):
    """403 unless the user is an agent or an admin (an animator runs the registers, not the service)."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        if current_user.role not in (Role.AGENT, Role.ADMIN):
            abort(403)
        return view(*args, **kwargs)

    return wrapper


@bp.route("/annulations", methods=["GET", "POST"])
@agents_only
def cancellations_page():
    """Annulations de service: the form (what it would take is shown before it is confirmed) and the
    cancellations saved, each with its undo."""
    form = CancellationForm()
    activities = activity_service.all_activities()
    form.activity.choices = [(0, "— Choisir —")] + [
        (activity.id, f"{activity.name} — {activity.site}" if activity.site else activity.name)
        for activity in activities
    ]
    if request.form.get("modifier") or not form.validate_on_submit():
        return _page(form)
    activity = db.session.get(Activity, form.activity.data)
    first, last = form.first_day.data, form.last
    reason = cancellations.reason_of(form.reason.data, form.detail.data)
    zone = current_app.config["SCHOOL_ZONE"]
    if not request.form.get("confirmer"):
        try:
            impact = cancellations.impact(activity, first, last, zone)
        except cancellations.CancellationError as error:
            form.form_errors.append(str(error))
            return _page(form)
        return render_template(
            "gestion/cancellation_confirm.html",
            form=form,
            activity=activity,
            period=cancellations.period_words(first, last),
            reason=reason,
            impact=impact,
        )
    try:
        outcome = bookings.with_retries(
            lambda: cancellations.cancel(activity, first, last, reason, current_user, utcnow(), zone)
        )
    except cancellations.CancellationError as error:
        rollback()
        form.form_errors.append(str(error))
        return _page(form)
    _hand_over(outcome)
    if outcome.done:
        flash(
            f"Service annulé {cancellations.period_text(outcome.cancellation)} ({activity.name}) : "
            "les familles concernées sont prévenues par e-mail.",
            "success",
        )
    else:
        flash("Cette annulation était déjà enregistrée : rien n'a changé.", "success")
    return redirect(url_for("gestion.cancellations_page"))


@bp.post("/annulations/<int:cancellation_id>/lever")
@agents_only
def cancellation_undo(cancellation_id: int):
    """Annuler l'annulation: the days come back as they were, the families are told (a second click
    answers with the list as it is)."""
    cancellation = db.get_or_404(ServiceCancellation, cancellation_id)
    outcome = bookings.with_retries(lambda: cancellations.undo(cancellation, current_user, utcnow()))
    _hand_over(outcome)
    if outcome.done:
        flash(
            f"L'annulation {cancellations.period_text(cancellation)} est levée : les jours sont rétablis "
            "et les familles concernées prévenues.",
            "success",
        )
    else:
        flash("Cette annulation était déjà levée : rien n'a changé.", "success")
    return redirect(url_for("gestion.cancellations_page"))


def _page(form: CancellationForm):
    """The page with its form (422 when posted and shown again) and the cancellations saved."""
    return form_page(
        "gestion/cancellations.html",
        form=form,
        items=cancellations.recent(),
        period_text=cancellations.period_text,
    )


def _hand_over(outcome: cancellations.Outcome) -> None:
    """The billing runs the change queued (committed with it) to the worker."""
    for run in outcome.runs:
        runs.hand_over(run)
