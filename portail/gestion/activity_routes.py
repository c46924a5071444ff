"""Back-office: activities and their rules, closing days, enrolments of a family's children."""

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user

from portail import bookings
from portail.extensions import db
from portail.formatting import french_day
from portail.forms import form_page
from portail.gestion.forms import ActivityForm, ClosingDayForm, DayEntryForm, EnrolmentForm
from portail.gestion.routes import bp, saved
from portail.models import Activity, Child, ClosingDay, Enrolment, Family, RequestKind, utcnow
from portail.services import activities as activity_service
from portail.services import billing
from portail.services.outbox import commit, rollback


@bp.get("/activites")
def activities():
    """Activités: list with their rules."""
    return render_template("gestion/activities.html", items=activity_service.all_activities())


@bp.route("/activites/nouvelle", methods=["GET", "POST"])
@bp.route("/activites/<int:activity_id>/modifier", methods=["GET", "POST"])
def activity_edit(activity_id: int | None = None):
    """Create or change an activity and its rules (deadlines, capacity, validation, closures)."""
    activity = db.get_or_404(Activity, activity_id) if activity_id else None
    form = ActivityForm()
    if request.method == "GET" and activity:
        form.fill(activity)
    if form.validate_on_submit():
        values = form.values()
        opens = activity is not None and _opens_places(activity, values)
        activity = activity_service.save_activity(activity, values, current_user)
        response = saved(f"L'activité « {activity.name} » est enregistrée.", url_for("gestion.activities"))
        # (the minute's job would offer them too: this way the families waiting hear at once)
        if opens and (offered := bookings.offer_open_places(utcnow(), activity.id)):
            plural = "s" if offered > 1 else ""
            flash(
                f"{offered} place{plural} libérée{plural} : proposée{plural} aux familles en tête "
                "de liste d'attente.",
                "success",
            )
        return response
    return form_page("gestion/activity_form.html", form=form, activity=activity)


def _opens_places(activity: Activity, values: dict) -> bool:
    """Whether the change may free places for the lines waiting: a capacity raised or removed, the list
    switched on."""
    capacity = values["capacity"]
    raised = activity.capacity is not None and (capacity is None or capacity > activity.capacity)
    return raised or (values["waiting_list"] and not activity.waiting_list)


@bp.route("/activites/<int:activity_id>/fermetures", methods=["GET", "POST"])
def activity_closures(activity_id: int):
    """Jours de fermeture entered by staff (public and school holidays are automatic)."""
    activity = db.get_or_404(Activity, activity_id)
    form = ClosingDayForm()
    if form.validate_on_submit():
        activity_service.close_day(activity, form.day.data, form.reason.data, current_user)
        return saved(
            "Jour de fermeture ajouté.", url_for("gestion.activity_closures", activity_id=activity.id)
        )
    days = activity_service.closing_days(activity)
    return form_page("gestion/activity_closures.html", activity=activity, form=form, days=days)


@bp.post("/activites/<int:activity_id>/fermetures/<int:closing_id>/supprimer")
def activity_closure_delete(activity_id: int, closing_id: int):
    """Remove a closing day (removing it twice, a double click, answers with the list as it is)."""
    activity = db.get_or_404(Activity, activity_id)
    back = url_for("gestion.activity_closures", activity_id=activity.id)
    return _remove_listed(
        ClosingDay, closing_id, lambda row: row.activity_id == activity_id, activity_service.reopen_day, back
    )


@bp.route("/familles/<int:family_id>/inscriptions", methods=["GET", "POST"])
def enrolments(family_id: int):
    """Inscriptions of a family's children: list, and enrol several children at once."""
    family = db.get_or_404(Family, family_id)
    form = EnrolmentForm()
    form.children.choices = [(c.id, c.full_name) for c in family.children]
    form.activity.choices = [(a.id, a.name) for a in activity_service.all_activities()]
    if form.validate_on_submit():
        activity_service.enrol(family, form.children.data, form.values(), current_user)
        return saved("Inscription enregistrée.", url_for("gestion.enrolments", family_id=family.id))
    rows = activity_service.enrolments_of(family)
    return form_page("gestion/enrolments.html", family=family, form=form, rows=rows)


@bp.post("/familles/<int:family_id>/inscriptions/<int:enrolment_id>/supprimer")
def enrolment_delete(family_id: int, enrolment_id: int):
    """Remove an enrolment (its bookings stay, with their history); removing it twice, a double
    click, answers with the list as it is."""
    family = db.get_or_404(Family, family_id)
    back = url_for("gestion.enrolments", family_id=family.id)
    return _remove_listed(
        Enrolment,
        enrolment_id,
        lambda row: row.child.family_id == family_id,
        activity_service.remove_enrolment,
        back,
    )


def _remove_listed(model, row_id: int, belongs, remove, back: str):
    """Remove a row of a list and go back to the list: a row already gone (removed twice, a double
    click) answers with the list as it is, a row of another list is 404."""
    row = db.session.get(model, row_id)
    if row is None:
        return redirect(back)
    if not belongs(row):
        abort(404)
    remove(row, current_user)
    commit()
    return redirect(back)


@bp.route("/familles/<int:family_id>/saisie", methods=["GET", "POST"])
def day_entry(family_id: int):
    """Saisie par le service: reserve a day or record an absence for a child, whatever the deadline
    (a parent's phone call, a child present without a booking). Billing sees if it was late."""
    family = db.get_or_404(Family, family_id)
    form = DayEntryForm()
    form.child.choices = [(0, "— Choisir —")] + [(c.id, c.full_name) for c in family.children]
    activities = activity_service.all_activities()
    form.activity.choices = [(0, "— Choisir —")] + [(a.id, a.name) for a in activities]
    if form.validate_on_submit():
        child = db.session.get(Child, form.child.data)  # one of the family's (checked by the form)
        activity = db.session.get(Activity, form.activity.data)
        kind = RequestKind.RESERVATION if form.kind.data == "reservation" else RequestKind.ABSENCE
        try:
            bookings.record_by_town(
                family.id,
                current_user,
                child,
                activity,
                kind,
                form.day.data,
                utcnow(),
                current_app.config["SCHOOL_ZONE"],
            )
        except bookings.AlreadyRequested as error:  # (the same entry sent twice: it is done)
            rollback()
            flash(str(error), "success")
            return redirect(url_for("gestion.day_entry", family_id=family.id))
        except bookings.BookingError as error:
            rollback()
            form.form_errors.append(str(error))
        else:
            commit()
            label = "Réservation" if kind is RequestKind.RESERVATION else "Absence"
            flash(
                f"{label} du {french_day(form.day.data)} enregistrée pour {child.first_name} ({activity.name})."
                + _late_text(billing.late_entry(family.id, activity, kind, form.day.data, utcnow())),
                "success",
            )
            return redirect(url_for("gestion.day_entry", family_id=family.id))
    surcharges = billing.late_surcharges(activities, billing.today_in_paris(utcnow()))
    return form_page("gestion/day_entry.html", family=family, form=form, surcharges=surcharges)


def _late_text(late: billing.LateEntry | None) -> str:
    """What billing will charge for a day entered after its deadline, said to the agent at once."""
    if late is None:
        return ""
    if late.kind is RequestKind.ABSENCE:
        if not late.billed:
            return " Absence saisie après le délai : elle n'est pas facturée (tarif de l'activité)."
        return f" Absence saisie après le délai : ce jour reste facturé {billing.euros(late.price_cents)} (tarif de l'activité)."
    if late.tariff is None:
        return " Saisie après le délai ; aucun tarif n'est fixé pour ce jour."
    if not late.surcharge_cents:
        return f" Saisie après le délai : ce jour sera facturé {billing.euros(late.price_cents)}, sans majoration."
    return (
        f" Saisie après le délai : ce jour sera facturé {billing.euros(late.price_cents)}"
        f" + majoration de {billing.euros(late.surcharge_cents)}."
    )
