"""Back-office activities, closing days and enrolments."""

from datetime import date

import pytest
import sqlalchemy as sa

from portail.extensions import db
from portail.models import Activity, ClosingDay, DeadlineKind, Enrolment, ValidationMode
from tests.factories import make_family

pytestmark = pytest.mark.both_dbs

ACTIVITY = {
    "name": "Restauration scolaire",
    "site": "École Jules Ferry",
    "weekdays": ["1", "2", "4", "5"],
    "start_date": "2026-09-01",
    "end_date": "2027-07-03",
    "capacity": "120",
    "validation_mode": "manuelle",
    "open_period": "school_days",
    "closed_on_public_holidays": "y",
    "booking_deadline_kind": "days_before",
    "booking_deadline_days": "2",
    "booking_deadline_time": "10:00",
    "booking_deadline_working_days": "y",
    "absence_deadline_kind": "previous_week",
    "absence_deadline_days": "0",
    "absence_deadline_time": "12:00",
    "absence_deadline_weekday": "4",
}


def test_create_an_activity_with_its_rules(client, logged_in_agent):
    assert client.post("/gestion/activites/nouvelle", data=ACTIVITY).status_code == 302
    activity = db.session.scalar(sa.select(Activity))
    assert (activity.weekdays, activity.capacity, activity.validation_mode) == (
        "1245",
        120,
        ValidationMode.MANUAL,
    )
    assert (activity.booking_deadline_days, activity.booking_deadline_working_days) == (2, True)
    assert (activity.absence_deadline_kind, activity.absence_deadline_weekday) == (
        DeadlineKind.PREVIOUS_WEEK,
        4,
    )
    assert "Restauration scolaire" in client.get(f"/gestion/activites/{activity.id}/modifier").get_data(
        as_text=True
    )


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("name", "", "Ce champ est obligatoire."),
        ("weekdays", [], "Cochez au moins un jour."),
        ("end_date", "2026-01-01", "après la date de début"),
        ("capacity", "-1", "Entre 0 et 10000."),
        ("absence_deadline_weekday", "", "Choisissez le jour de la semaine précédente."),
    ],
)
def test_activity_form_rejects_bad_input(client, logged_in_agent, field, value, message):
    response = client.post("/gestion/activites/nouvelle", data={**ACTIVITY, field: value})
    assert response.status_code == 422 and message in response.get_data(as_text=True)
    assert db.session.scalar(sa.select(sa.func.count(Activity.id))) == 0


def test_closing_days_and_enrolments(client, logged_in_agent):
    client.post("/gestion/activites/nouvelle", data=ACTIVITY)
    activity = db.session.scalar(sa.select(Activity))
    client.post(f"/gestion/activites/{activity.id}/fermetures", data={"day": "2026-12-03", "reason": "grève"})
    assert db.session.scalar(sa.select(ClosingDay.reason)) == "grève"
    family = make_family(children=(("Léa", date(2016, 3, 14)), ("Tom", date(2019, 9, 2))))
    db.session.commit()
    ids = [str(c.id) for c in family.children]
    bad = client.post(
        f"/gestion/familles/{family.id}/inscriptions",
        data={"activity": activity.id, "start_date": "2026-09-01", "end_date": "2027-07-03"},
    )
    assert bad.status_code == 422 and "Choisissez au moins un enfant." in bad.get_data(as_text=True)
    client.post(
        f"/gestion/familles/{family.id}/inscriptions",
        data={
            "children": ids,
            "activity": activity.id,
            "start_date": "2026-09-01",
            "end_date": "2027-07-03",
            "weekdays": ["1", "4"],
        },
    )
    rows = db.session.scalars(sa.select(Enrolment)).all()
    assert len(rows) == 2 and {r.weekdays for r in rows} == {"14"}
    other = make_family(name="Famille AUTRE")
    db.session.commit()
    assert client.post(f"/gestion/familles/{other.id}/inscriptions/{rows[0].id}/supprimer").status_code == 404
