"""Back-office: activities and their rules, closing days, enrolments of a family's children."""

import sqlalchemy as sa
from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user

from portail.extensions import db
from portail.formatting import french_date, french_day, short_date
from portail.gestion import bp
from portail.gestion.activity_forms import ActivityForm, ClosingDayForm, DayEntryForm, EnrolmentForm
from portail.gestion.routes import family_or_404
from portail.models import (
    Activity,
    Child,
    ClosingDay,
    DeadlineKind,
    Enrolment,
    OpenPeriod,
    RequestKind,
    ValidationMode,
    utcnow,
)
from portail.services import bookings
from portail.services.audit import record
from portail.services.outbox import commit, rollback
from portail.services.transactions import claim, twin

DEADLINE_FIELDS = ("kind", "days", "time", "working_days", "weekday")


@bp.get("/activites")
def activities():
    """Activités: list with their rules."""
    items = db.session.scalars(sa.select(Activity).order_by(Activity.name)).all()
    return render_template("gestion/activities.html", items=items)


def _activity_or_404(activity_id: int) -> Activity:
    activity = db.session.get(Activity, activity_id)
    if activity is None:
        abort(404)
    return activity


def _fill_form(form: ActivityForm, activity: Activity) -> None:
    form.name.data, form.site.data = activity.name, activity.site
    form.weekdays.data = list(activity.weekdays)
    form.start_date.data, form.end_date.data, form.capacity.data = (
        activity.start_date,
        activity.end_date,
        activity.capacity,
    )
    form.validation_mode.data, form.open_period.data = (
        activity.validation_mode.value,
        activity.open_period.value,
    )
    form.closed_on_public_holidays.data = activity.closed_on_public_holidays
    for prefix in ("booking_deadline", "absence_deadline"):
        for name in DEADLINE_FIELDS:
            value = getattr(activity, f"{prefix}_{name}")
            form[f"{prefix}_{name}"].data = (
                value.value if name == "kind" else (str(value) if name == "weekday" and value else value)
            )


def _apply_form(form: ActivityForm, activity: Activity) -> None:
    activity.name, activity.site = form.name.data.strip(), (form.site.data or "").strip() or None
    activity.weekdays = "".join(sorted(form.weekdays.data))
    activity.start_date, activity.end_date, activity.capacity = (
        form.start_date.data,
        form.end_date.data,
        form.capacity.data,
    )
    activity.validation_mode = ValidationMode(form.validation_mode.data)
    activity.open_period = OpenPeriod(form.open_period.data)
    activity.closed_on_public_holidays = form.closed_on_public_holidays.data
    for prefix in ("booking_deadline", "absence_deadline"):
        setattr(activity, f"{prefix}_kind", DeadlineKind(form[f"{prefix}_kind"].data))
        setattr(activity, f"{prefix}_days", form[f"{prefix}_days"].data or 0)
        setattr(activity, f"{prefix}_time", form[f"{prefix}_time"].data)
        setattr(activity, f"{prefix}_working_days", form[f"{prefix}_working_days"].data)
        weekday = form[f"{prefix}_weekday"].data
        setattr(activity, f"{prefix}_weekday", int(weekday) if weekday else None)


@bp.route("/activites/nouvelle", methods=["GET", "POST"])
@bp.route("/activites/<int:activity_id>/modifier", methods=["GET", "POST"])
def activity_edit(activity_id: int | None = None):
    """Create or change an activity and its rules (deadlines, capacity, validation, closures)."""
    activity = _activity_or_404(activity_id) if activity_id else None
    form = ActivityForm()
    if request.method == "GET" and activity:
        _fill_form(form, activity)
    if form.validate_on_submit():
        claim(current_user)  # (the same form sent twice: the copies take turns)
        same = dict(name=form.name.data.strip(), start_date=form.start_date.data, end_date=form.end_date.data)
        if activity is None and (done := twin(Activity, **same)) is not None:
            flash(f"L'activité « {done.name} » est enregistrée.", "success")
            return redirect(url_for("gestion.activities"))
        if activity is None:
            activity = Activity(
                name="",
                weekdays="",
                start_date=form.start_date.data,
                end_date=form.end_date.data,
                validation_mode=ValidationMode.MANUAL,
            )
            db.session.add(activity)
        _apply_form(form, activity)
        db.session.flush()
        record(current_user, "activity.saved", "activity", activity.id, activity.name)
        commit()
        flash(f"L'activité « {activity.name} » est enregistrée.", "success")
        return redirect(url_for("gestion.activities"))
    return render_template("gestion/activity_form.html", form=form, activity=activity), (
        422 if request.method == "POST" else 200
    )


@bp.route("/activites/<int:activity_id>/fermetures", methods=["GET", "POST"])
def activity_closures(activity_id: int):
    """Jours de fermeture entered by staff (public and school holidays are automatic)."""
    activity = _activity_or_404(activity_id)
    form = ClosingDayForm()
    if form.validate_on_submit():
        claim(current_user)  # (the same day sent twice: the second copy finds it closed)
        if twin(ClosingDay, activity_id=activity.id, day=form.day.data) is None:
            db.session.add(
                ClosingDay(activity_id=activity.id, day=form.day.data, reason=form.reason.data.strip())
            )
            record(
                current_user,
                "activity.closed",
                "activity",
                activity.id,
                f"{french_date(form.day.data)} : {form.reason.data}",
            )
        commit()
        flash("Jour de fermeture ajouté.", "success")
        return redirect(url_for("gestion.activity_closures", activity_id=activity.id))
    days = db.session.scalars(
        sa.select(ClosingDay).where(ClosingDay.activity_id == activity.id).order_by(ClosingDay.day)
    ).all()
    return render_template("gestion/activity_closures.html", activity=activity, form=form, days=days), (
        422 if request.method == "POST" else 200
    )


@bp.post("/activites/<int:activity_id>/fermetures/<int:closing_id>/supprimer")
def activity_closure_delete(activity_id: int, closing_id: int):
    """Remove a closing day (removing it twice, a double click, answers with the list as it is)."""
    activity = _activity_or_404(activity_id)
    row = db.session.get(ClosingDay, closing_id)
    if row is None:
        return redirect(url_for("gestion.activity_closures", activity_id=activity.id))
    if row.activity_id != activity_id:
        abort(404)
    claim(row)  # (removed once: a copy sent at the same moment then finds it gone)
    db.session.delete(row)
    record(current_user, "activity.reopened", "activity", activity_id, french_date(row.day))
    commit()
    return redirect(url_for("gestion.activity_closures", activity_id=activity_id))


@bp.route("/familles/<int:family_id>/inscriptions", methods=["GET", "POST"])
def enrolments(family_id: int):
    """Inscriptions of a family's children: list, and enrol several children at once."""
    family = family_or_404(family_id)
    activities_ = db.session.scalars(sa.select(Activity).order_by(Activity.name)).all()
    form = EnrolmentForm()
    form.children.choices = [(c.id, c.full_name) for c in family.children]
    form.activity.choices = [(a.id, a.name) for a in activities_]
    if form.validate_on_submit():
        claim(current_user)  # (the same form sent twice: the second copy finds the enrolments)
        values = dict(
            activity_id=form.activity.data,
            start_date=form.start_date.data,
            end_date=form.end_date.data,
            weekdays="".join(sorted(form.weekdays.data or [])) or None,
        )
        new = [
            child_id
            for child_id in form.children.data
            if twin(Enrolment, child_id=child_id, **values) is None
        ]
        for child_id in new:
            db.session.add(Enrolment(child_id=child_id, **values))
        if new:
            record(current_user, "enrolment.created", "family", family.id, f"{len(new)} inscription(s)")
        commit()
        flash("Inscription enregistrée.", "success")
        return redirect(url_for("gestion.enrolments", family_id=family.id))
    rows = db.session.scalars(
        sa.select(Enrolment)
        .where(Enrolment.child_id.in_([c.id for c in family.children]))
        .options(sa.orm.joinedload(Enrolment.activity), sa.orm.joinedload(Enrolment.child))
        .order_by(Enrolment.start_date)
    ).all()
    return render_template("gestion/enrolments.html", family=family, form=form, rows=rows), (
        422 if request.method == "POST" else 200
    )


@bp.post("/familles/<int:family_id>/inscriptions/<int:enrolment_id>/supprimer")
def enrolment_delete(family_id: int, enrolment_id: int):
    """Remove an enrolment (its bookings stay, with their history); removing it twice, a double
    click, answers with the list as it is."""
    family = family_or_404(family_id)
    row = db.session.get(Enrolment, enrolment_id)
    if row is None:
        return redirect(url_for("gestion.enrolments", family_id=family.id))
    if row.child.family_id != family_id:
        abort(404)
    claim(row)  # (removed once: a copy sent at the same moment then finds it gone)
    db.session.delete(row)
    record(current_user, "enrolment.deleted", "family", family_id, row.activity.name)
    commit()
    return redirect(url_for("gestion.enrolments", family_id=family_id))


@bp.route("/familles/<int:family_id>/saisie", methods=["GET", "POST"])
def day_entry(family_id: int):
    """Saisie par le service: reserve a day or record an absence for a child, whatever the deadline
    (a parent's phone call, a child present without a booking). Billing sees if it was late."""
    family = family_or_404(family_id)
    form = DayEntryForm()
    form.child.choices = [(0, "— Choisir —")] + [(c.id, c.full_name) for c in family.children]
    form.activity.choices = [(0, "— Choisir —")] + [
        (a.id, a.name) for a in db.session.scalars(sa.select(Activity).order_by(Activity.name))
    ]
    if form.validate_on_submit():
        child = db.session.get(Child, form.child.data)  # one of the family's (checked by the form)
        activity = db.session.get(Activity, form.activity.data)
        kind = RequestKind.RESERVATION if form.kind.data == "reservation" else RequestKind.ABSENCE
        try:
            entry = bookings.record_by_town(
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
            record(
                current_user,
                "booking.entered",
                "request",
                entry.id,
                f"{child.full_name}, {activity.name}, {short_date(form.day.data)}",
            )
            commit()
            label = "Réservation" if kind is RequestKind.RESERVATION else "Absence"
            flash(
                f"{label} du {french_day(form.day.data)} enregistrée pour {child.first_name} ({activity.name}).",
                "success",
            )
            return redirect(url_for("gestion.day_entry", family_id=family.id))
    return render_template("gestion/day_entry.html", family=family, form=form), (
        422 if request.method == "POST" else 200
    )
