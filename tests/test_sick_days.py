"""Enfant malade (issue 17, part 5): offered today and tomorrow once the absence deadline has passed,
declared once with what will be billed and an optional certificate, the certificate sent afterwards
while it counts, the declarations in the staff's queue."""

import html
import io
from datetime import UTC, date, datetime, time, timedelta
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from portail import bookings
from portail.extensions import db
from portail.formatting import PARIS
from portail.models import (
    Booking,
    BookingState,
    DocumentScope,
    DocumentType,
    Role,
    SickDeclaration,
    utcnow,
)
from portail.services import sickness
from tests.factories import PDF, add_tariff, book, enrol, make_activity, make_family, make_user, subscribe
from tests.support import fire, tabs

pytestmark = pytest.mark.both_dbs

DAY = utcnow().astimezone(PARIS).date() + timedelta(days=20)


def paris(day: date, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute, second), tzinfo=PARIS).astimezone(UTC)


NOW = paris(DAY, 7, 30)  # the morning of DAY: its absence deadline (two working days before) has passed


@pytest.fixture
def martins(app):
    """Léa reserved in two priced activities the day before DAY, DAY and the day after; her mother
    subscribed. A priced activity: no quotient known, the highest bracket (5,10 €)."""
    family = make_family(
        name="Famille MARTIN", children=(("Léa", date(2016, 3, 14)), ("Tom", date(2019, 9, 2)))
    )
    parent = make_user()
    subscribe(parent, family)
    lea = family.children[0]
    canteen = make_activity(name="Restauration scolaire", weekdays="1234567", capacity=10)
    evening = make_activity(name="Accueil du soir", weekdays="1234567")
    for activity in (canteen, evening):
        enrol(lea, activity)
        add_tariff(activity, valid_from=DAY - timedelta(days=60))
        book(lea, activity, [DAY - timedelta(days=1), DAY, DAY + timedelta(days=1)])
    db.session.commit()
    return SimpleNamespace(family=family, parent=parent, lea=lea, canteen=canteen, evening=evening)


@pytest.fixture
def at(monkeypatch):
    """Set the pages' clock: `at(instant)` (NOW to begin with)."""

    def set_clock(instant: datetime) -> None:
        for module in ("portail.family.planning_routes", "portail.gestion.request_routes"):
            monkeypatch.setattr(f"{module}.utcnow", lambda: instant)

    set_clock(NOW)
    return set_clock


def sick_form(setup, day=DAY, activity=None, **extra) -> dict:
    form = {"enfant": setup.lea.id, "jour": day.isoformat(), **extra}
    if activity is not None:
        form["activite"] = activity.id
    return form


def states(setup, day=DAY) -> dict:
    db.session.expire_all()
    return {
        booking.activity_id: (booking.state, booking.previous_state)
        for booking in db.session.scalars(
            sa.select(Booking).where(Booking.child_id == setup.lea.id, Booking.day == day)
        )
    }


def declarations() -> list[SickDeclaration]:
    db.session.expire_all()
    return list(db.session.scalars(sa.select(SickDeclaration).order_by(SickDeclaration.day)))


def test_sick_day_is_offered_today_and_tomorrow_only_after_the_absence_deadline(app):
    family = make_family()
    child = family.children[0]
    # Absence until two calendar days before at 10:00; and one until the day itself at 08:00.
    two_days = make_activity(weekdays="1234567", absence_deadline_working_days=False)
    same_day = make_activity(
        name="Accueil du matin", weekdays="1234567", absence_deadline_days=0, absence_deadline_time=time(8)
    )
    for activity in (two_days, same_day):
        enrol(child, activity)
        book(child, activity, [DAY])
    db.session.commit()

    def covered(instant):
        return [activity.id for activity in bookings.sick_day(child, DAY, instant, "C").covered]

    assert covered(paris(DAY - timedelta(days=2), 9, 59, 59)) == []  # before the deadline: an absence
    assert covered(paris(DAY - timedelta(days=2), 23, 59, 59)) == []  # after it, but the day after tomorrow
    assert covered(paris(DAY - timedelta(days=1), 0, 0, 0)) == [two_days.id]  # tomorrow, to the second
    assert covered(paris(DAY, 7, 59, 59)) == [two_days.id]  # the morning one: absence until 08:00
    reasons = dict(bookings.sick_day(child, DAY, paris(DAY, 7, 59, 59), "C").others)
    assert reasons[same_day].startswith("absence possible jusqu'au")
    assert covered(paris(DAY, 8, 0, 0)) == [same_day.id, two_days.id]  # its deadline, to the second
    assert covered(paris(DAY, 23, 59, 59)) == [same_day.id, two_days.id]  # today until midnight in Paris
    assert covered(paris(DAY + timedelta(days=1), 0, 0, 0)) == []  # yesterday: too late


def test_the_planning_offers_enfant_malade_then_the_declaration(client, auth, martins, at):
    auth.login("parent@example.fr")
    url = f"/famille/{martins.family.id}/planning?vue=agenda&date={(DAY - timedelta(days=1)).isoformat()}"
    page = client.get(url).get_data(as_text=True)
    # today and tomorrow, not yesterday: two days × two activities
    assert page.count(">Enfant malade<span") == 4
    assert (
        f"/planning/malade?enfant={martins.lea.id}&amp;activite={martins.canteen.id}&amp;jour={DAY}" in page
    )
    client.post(f"/famille/{martins.family.id}/planning/malade", data=sick_form(martins))
    page = client.get(url).get_data(as_text=True)
    assert page.count(">Enfant malade<span") == 2 and page.count(">Déclaration et certificat<span") == 2
    assert "✚</span> Enfant malade" in page  # the state, with its legend icon, in words


def test_the_confirmation_shows_the_activities_and_what_will_be_billed(client, auth, martins, at):
    auth.login("parent@example.fr")
    base = f"/famille/{martins.family.id}/planning/malade"
    fragment = client.get(
        base, query_string=sick_form(martins, activity=martins.canteen), headers={"HX-Request": "true"}
    )
    text = fragment.get_data(as_text=True)
    assert fragment.status_code == 200 and "<html" not in text
    assert f'id="cell-{martins.lea.id}-{martins.canteen.id}-{DAY}"' in text  # in place of the cell
    assert "Déclarer Léa malade le" in text
    assert "<strong>Accueil du soir</strong> : facturé 5,10\u00a0€ (carence)" in text
    assert "<strong>Restauration scolaire</strong> : facturé 5,10\u00a0€ (carence)" in text
    assert 'type="file"' in text and "autofocus" in text
    # declared today, tomorrow is the same sickness: free with a certificate sent in time
    client.post(base, data=sick_form(martins))
    tomorrow = client.get(base, query_string=sick_form(martins, day=DAY + timedelta(days=1))).get_data(
        as_text=True
    )
    assert "<h1>Enfant malade — Léa" in tomorrow  # without JavaScript, a page
    assert "non facturé si vous envoyez un certificat médical au plus tard le" in tomorrow
    assert "(sinon facturé 5,10\u00a0€)" in tomorrow


def test_declaring_marks_each_reserved_activity_sick_once(client, auth, martins, at):
    auth.login("parent@example.fr")
    path = f"/famille/{martins.family.id}/planning/malade"
    answer = client.post(
        path, data=sick_form(martins, activity=martins.canteen), headers={"HX-Request": "true"}
    )
    text = answer.get_data(as_text=True)
    assert answer.status_code == 200
    assert f'id="cell-{martins.lea.id}-{martins.canteen.id}-{DAY}"' in text and "autofocus" in text
    assert (
        f'hx-swap-oob="true" class="cell state-sick" id="cell-{martins.lea.id}-{martins.evening.id}-{DAY}"'
        in text
    )
    assert "« Enfant malade » est enregistré pour Léa" in text
    [declaration] = declarations()
    assert (declaration.child_id, declaration.day, declaration.declared_by_id) == (
        martins.lea.id,
        DAY,
        martins.parent.id,
    )
    assert declaration.document_id is None
    sick = (BookingState.SICK, BookingState.RESERVED)
    assert states(martins) == {martins.canteen.id: sick, martins.evening.id: sick}
    assert set(states(martins, DAY + timedelta(days=1)).values()) == {(BookingState.RESERVED, None)}
    # the same click again: told calmly, nothing more
    again = client.post(
        path, data=sick_form(martins, activity=martins.canteen), headers={"HX-Request": "true"}
    )
    assert again.status_code == 200 and "est déjà déclaré pour ce jour" in again.get_data(as_text=True)
    assert len(declarations()) == 1


def test_the_same_declaration_from_two_tabs_at_once_is_one(app, client, auth, martins, at):
    auth.login("parent@example.fr")
    answers = fire(tabs(app, client), f"/famille/{martins.family.id}/planning/malade", sick_form(martins))
    assert [status for status, _text, _location in answers] == [302, 302]
    assert len(declarations()) == 1
    assert {state for state, _previous in states(martins).values()} == {BookingState.SICK}


def test_a_day_not_open_to_it_is_refused_with_the_reason(client, auth, martins, at):
    auth.login("parent@example.fr")
    path = f"/famille/{martins.family.id}/planning/malade"
    later = DAY + timedelta(days=5)  # reserved? no; and not today or tomorrow
    book(martins.lea, martins.canteen, [later])
    db.session.commit()
    assert client.get(path, query_string=sick_form(martins, day=later)).status_code == 302
    answer = client.post(path, data=sick_form(martins, day=later), follow_redirects=True)
    assert "se déclare pour aujourd'hui ou demain" in html.unescape(answer.get_data(as_text=True))
    assert declarations() == []


def test_another_familys_child_is_not_found(client, auth, martins, at):
    other = make_family(name="Famille VOISIN", children=(("Zoé", date(2017, 1, 1)),))
    zoe = other.children[0]
    enrol(zoe, martins.canteen)
    book(zoe, martins.canteen, [DAY])
    db.session.commit()
    auth.login("parent@example.fr")
    form = {"enfant": zoe.id, "jour": DAY.isoformat(), "activite": martins.canteen.id}
    base = f"/famille/{martins.family.id}/planning/malade"
    assert client.get(base, query_string=form).status_code == 404
    assert client.post(base, data=form).status_code == 404
    assert client.post(base + "/certificat", data=form).status_code == 404
    assert client.get(f"/famille/{other.id}/maladies").status_code == 404
    assert declarations() == []


def test_a_certificate_sent_with_the_declaration_is_a_piece_justificative(client, auth, martins, at):
    auth.login("parent@example.fr")
    answer = client.post(
        f"/famille/{martins.family.id}/planning/malade",
        data=sick_form(martins, certificat=(io.BytesIO(PDF), "certificat.pdf")),
        content_type="multipart/form-data",
    )
    assert answer.status_code == 302
    [declaration] = declarations()
    document = declaration.document
    assert (document.type.name, document.type.scope, document.child_id) == (
        "Certificat médical",
        DocumentScope.CHILD,
        martins.lea.id,
    )
    assert document.family_id == martins.family.id and document.mimetype == "application/pdf"
    page = client.get(f"/famille/{martins.family.id}/maladies").get_data(as_text=True)
    assert "Envoyé le" in page
    # sent once more: told calmly
    again = client.post(
        f"/famille/{martins.family.id}/planning/malade/certificat",
        data=sick_form(martins, certificat=(io.BytesIO(PDF), "autre.pdf")),
        content_type="multipart/form-data",
        follow_redirects=True,
    )
    assert again.status_code == 200 and "déjà envoyé" in html.unescape(again.get_data(as_text=True))
    assert declarations()[0].document_id == document.id


def test_a_refused_file_saves_nothing(client, auth, martins, at):
    auth.login("parent@example.fr")
    answer = client.post(
        f"/famille/{martins.family.id}/planning/malade",
        data=sick_form(
            martins, activity=martins.canteen, certificat=(io.BytesIO(b"MZ not a pdf"), "virus.pdf")
        ),
        content_type="multipart/form-data",
        headers={"HX-Request": "true"},
    )
    text = answer.get_data(as_text=True)
    assert answer.status_code == 422 and "error-summary" in text and 'aria-invalid="true"' in text
    assert "formats acceptés" in text
    assert declarations() == []
    assert {state for state, _previous in states(martins).values()} == {BookingState.RESERVED}


def test_the_certificate_sent_afterwards_counts_until_its_last_day(client, auth, martins, at):
    auth.login("parent@example.fr")
    base = f"/famille/{martins.family.id}/planning/malade"
    client.post(base, data=sick_form(martins))
    at(paris(DAY + timedelta(days=1), 7))
    client.post(base, data=sick_form(martins, day=DAY + timedelta(days=1)))
    tomorrow = sick_form(martins, day=DAY + timedelta(days=1))
    page = client.get(base, query_string=tomorrow).get_data(as_text=True)
    assert "Envoyer le certificat" in page and "au plus tard le" in page
    # three days after the sickness's first day: still in time
    at(paris(DAY + timedelta(days=3), 23, 59, 59))
    sent = client.post(
        base + "/certificat",
        data={**tomorrow, "certificat": (io.BytesIO(PDF), "certificat.pdf")},
        content_type="multipart/form-data",
    )
    assert sent.status_code == 302
    page = client.get(base, query_string=tomorrow).get_data(as_text=True)
    assert "non facturé : certificat médical envoyé" in page and "Certificat médical envoyé le" in page
    # the first day stays the carence
    assert "facturé 5,10\u00a0€ (carence)" in client.get(base, query_string=sick_form(martins)).get_data(
        as_text=True
    )


def test_a_certificate_too_late_is_refused_and_the_day_billed(client, auth, martins, at):
    auth.login("parent@example.fr")
    base = f"/famille/{martins.family.id}/planning/malade"
    client.post(base, data=sick_form(martins))
    at(paris(DAY + timedelta(days=1), 7))
    tomorrow = sick_form(martins, day=DAY + timedelta(days=1))
    client.post(base, data=tomorrow)
    at(paris(DAY + timedelta(days=4), 0, 0, 0))
    page = client.get(base, query_string=tomorrow).get_data(as_text=True)
    assert "facturé 5,10\u00a0€ : pas de certificat" in page and "Envoyer le certificat" not in page
    late = client.post(
        base + "/certificat",
        data={**tomorrow, "certificat": (io.BytesIO(PDF), "certificat.pdf")},
        content_type="multipart/form-data",
    )
    assert late.status_code == 422 and "Trop tard" in late.get_data(as_text=True)
    assert all(declaration.document_id is None for declaration in declarations())


def test_billed_texts():
    today = date(2027, 3, 4)
    until = date(2027, 3, 6)
    assert (
        sickness.Billed("Cantine", sickness.CARENCE, 420, until, today).text
        == "facturé 4,20\u00a0€ (carence)"
    )
    assert sickness.Billed("Cantine", sickness.CERTIFIED, 0, until, today).text.startswith("non facturé")
    open_text = sickness.Billed("Cantine", sickness.UNCERTIFIED, 420, until, today).text
    assert open_text.startswith(
        "non facturé si vous envoyez un certificat médical au plus tard le samedi 6 mars"
    )
    late = sickness.Billed("Cantine", sickness.UNCERTIFIED, 420, until, until + timedelta(days=1)).text
    assert late == "facturé 4,20\u00a0€ : pas de certificat"
    assert sickness.Billed("Cantine", None, None, until, today).text.startswith("non facturé : pas de tarif")


def test_the_staff_see_the_declarations_in_the_requests_queue(client, auth, martins, at):
    auth.login("parent@example.fr")
    client.post(
        f"/famille/{martins.family.id}/planning/malade",
        data=sick_form(martins, certificat=(io.BytesIO(PDF), "certificat.pdf")),
        content_type="multipart/form-data",
    )
    auth.logout()
    make_user(email="agent@example.fr", role=Role.AGENT)
    db.session.commit()
    auth.login("agent@example.fr")
    page = client.get("/gestion/demandes").get_data(as_text=True)
    assert "Déclarations « Enfant malade »" in page
    assert "Léa MARTIN" in page and "Accueil du soir, Restauration scolaire" in page
    [declaration] = declarations()
    assert f'href="/gestion/pieces/{declaration.document_id}"' in page
    # a day chosen: that day's declarations only
    other_day = client.get("/gestion/demandes", query_string={"jour": (DAY + timedelta(days=1)).isoformat()})
    assert "Aucune déclaration." in other_day.get_data(as_text=True)
    assert (
        client.get("/gestion/demandes", query_string={"jour": DAY.isoformat()})
        .get_data(as_text=True)
        .count("Léa MARTIN")
        == 1
    )


def test_the_certificate_type_is_the_one_staff_defined(app):
    defined = DocumentType(name="Certificat médical", scope=DocumentScope.CHILD, required=False)
    db.session.add(defined)
    db.session.commit()
    assert sickness.certificate_type().id == defined.id
