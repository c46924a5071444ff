"""The waiting lists in the back office: an activity's option in its form, the page of the lines in
order, an agent's "Passer en tête" and "Retirer" (with the reason the family reads), and a capacity
raised that offers the place freed at once."""

import re
from datetime import timedelta

import pytest
import sqlalchemy as sa

from portail import bookings
from portail.bookings import facts
from portail.extensions import db
from portail.models import (
    Activity,
    AuditEvent,
    Booking,
    BookingState,
    EventKind,
    LineState,
    OutboxMessage,
    RequestEvent,
    RequestKind,
    RequestLine,
    Role,
    ValidationMode,
    WaitingEntry,
    utcnow,
)
from portail.services.outbox import commit
from tests.factories import enrolled_child, make_activity, make_user, next_weekday, subscribe

pytestmark = pytest.mark.both_dbs

PAGE = "/gestion/listes-attente"
ACTIVITY = {
    "name": "Accueil du soir",
    "weekdays": ["1", "2", "4", "5"],
    "start_date": "2026-09-01",
    "end_date": "2027-07-03",
    "capacity": "30",
    "validation_mode": "automatique",
    "open_period": "school_days",
    "booking_deadline_kind": "days_before",
    "booking_deadline_days": "2",
    "booking_deadline_time": "10:00",
    "absence_deadline_kind": "days_before",
    "absence_deadline_days": "2",
    "absence_deadline_time": "10:00",
}
# A row of the page: its rank and its child.
ROW = re.compile(
    r'data-label="Rang">(\d+)(?:er|e)</td>\s*<th scope="row" data-label="Enfant"><a [^>]*>([^<]+)</a>'
)


class Line:
    """A full day of an automatic activity (capacity 1) with Paul's place taken, and Alice, Bruno and
    Chloe waiting in that order; each family's parent follows it."""

    def __init__(self, validation_mode=ValidationMode.AUTOMATIC):
        self.activity = make_activity(capacity=1, waiting_list=True, validation_mode=validation_mode)
        self.day = next_weekday(4)
        self.children, self.requests = {}, {}
        now = utcnow()
        for n, name in enumerate(("Paul", "Alice", "Bruno", "Chloe")):
            family, child = enrolled_child(self.activity, name)
            parent = make_user(email=f"{name.lower()}@example.fr", first_name=name)
            subscribe(parent, family)
            submitted = bookings.submit(
                family.id,
                parent,
                child,
                self.activity,
                RequestKind.RESERVATION,
                [self.day],
                now + timedelta(seconds=n),
                "C",
                waiting=n > 0,
            )
            if n == 0 and validation_mode is ValidationMode.MANUAL:  # (Paul's place: taken when accepted)
                line_id = db.session.scalar(
                    sa.select(RequestLine.id).where(RequestLine.request_id == submitted.request_id)
                )
                bookings.decide([line_id], True, make_user(email="chef@example.fr", role=Role.AGENT), now)
            self.children[name], self.requests[name] = child, submitted.request_id
        commit()

    def entry(self, name: str) -> WaitingEntry:
        return db.session.scalar(
            sa.select(WaitingEntry).where(WaitingEntry.child_id == self.children[name].id)
        )

    def state(self, name: str) -> Booking:
        return db.session.scalar(sa.select(Booking).where(Booking.child_id == self.children[name].id))

    def ranks(self) -> dict[str, int]:
        """Each waiting child's rank as the families' pages read it (bookings.facts.BOOKINGS)."""
        names = {child.id: name for name, child in self.children.items()}
        params = {"ids": list(names), "activities": [self.activity.id], "start": self.day, "end": self.day}
        return {
            names[child_id]: rank
            for child_id, _activity, _day, _state, _reason, rank, until in db.session.execute(
                facts.BOOKINGS, params
            )
            if rank is not None and until is None
        }


@pytest.fixture
def line(app):
    return Line()


def shown(client) -> dict[str, int]:
    """The ranks the page shows, by child's first name, in the page's order."""
    page = client.get(PAGE).get_data(as_text=True)
    return {name.split()[0]: int(rank) for rank, name in ROW.findall(page)}


# --- the activity's form ------------------------------------------------------------------------


def test_the_activity_form_saves_the_waiting_list_options(client, logged_in_agent):
    data = {**ACTIVITY, "waiting_list": "y", "waiting_list_max": "5", "offer_hold_hours": "1,5"}
    assert client.post("/gestion/activites/nouvelle", data=data).status_code == 302
    activity = db.session.scalar(sa.select(Activity))
    assert (activity.waiting_list, activity.waiting_list_max, activity.offer_hold_minutes) == (True, 5, 90)
    form = client.get(f"/gestion/activites/{activity.id}/modifier").get_data(as_text=True)
    assert 'value="1,5"' in form and 'value="5"' in form
    listed = client.get("/gestion/activites").get_data(as_text=True)
    assert "5 enfants au plus par jour" in listed and "à confirmer en 1 h 30" in listed


def test_the_options_default_to_no_list_and_two_hours(client, logged_in_agent):
    assert client.post("/gestion/activites/nouvelle", data=ACTIVITY).status_code == 302
    activity = db.session.scalar(sa.select(Activity))
    assert (activity.waiting_list, activity.waiting_list_max, activity.offer_hold_minutes) == (
        False,
        None,
        120,
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"waiting_list_max": "0"}, "Entre 1 et 1000."),
        ({"offer_hold_hours": "0,25"}, "Indiquez entre 0,5 et 72 heures"),
        ({"offer_hold_hours": "73"}, "Indiquez entre 0,5 et 72 heures"),
        ({"offer_hold_hours": "deux"}, "Indiquez un nombre d&#39;heures, par exemple 2 ou 1,5."),
        ({"offer_hold_hours": "NaN"}, "Indiquez un nombre d&#39;heures, par exemple 2 ou 1,5."),
        ({"capacity": ""}, "Une liste d&#39;attente suppose une capacité par jour : indiquez-la."),
    ],
)
def test_the_activity_form_refuses_bad_waiting_list_options(client, logged_in_agent, changes, message):
    data = {**ACTIVITY, "waiting_list": "y", **changes}
    response = client.post("/gestion/activites/nouvelle", data=data)
    page = response.get_data(as_text=True)
    summary = page[page.index('class="error-summary"') :]
    assert response.status_code == 422 and message in summary
    assert page.count(message) == 2  # (in the summary and beside its field, once each)
    assert db.session.scalar(sa.select(sa.func.count(Activity.id))) == 0


def _edit(client, activity, **changes):
    """The activity's form as it shows, sent with `changes`."""
    data = {
        **ACTIVITY,
        "name": activity.name,
        "weekdays": list(activity.weekdays),
        "start_date": activity.start_date.isoformat(),
        "end_date": activity.end_date.isoformat(),
        "open_period": activity.open_period.value,
        "validation_mode": activity.validation_mode.value,
        "capacity": str(activity.capacity),
        "waiting_list": "y",
        **changes,
    }
    return client.post(f"/gestion/activites/{activity.id}/modifier", data=data, follow_redirects=True)


def test_a_capacity_raised_offers_the_place_to_the_first_in_line_at_once(client, logged_in_agent, line):
    page = _edit(client, line.activity, capacity="2").get_data(as_text=True)
    assert "1 place libérée : proposée aux familles en tête de liste d&#39;attente." in page
    assert line.state("Alice").state is BookingState.OFFERED
    assert line.state("Bruno").state is BookingState.WAITING
    offers = db.session.execute(
        sa.select(OutboxMessage.recipient).where(OutboxMessage.template == "waiting_offer")
    ).all()
    assert offers == [("alice@example.fr",)]
    assert line.ranks() == {"Bruno": 1, "Chloe": 2}
    listed = client.get(PAGE).get_data(as_text=True)
    assert "Place proposée jusqu'au" in listed and shown(client) == {"Bruno": 1, "Chloe": 2}


def test_a_held_place_of_an_activity_validated_by_hand_waits_in_demandes(client, logged_in_agent):
    line = Line(ValidationMode.MANUAL)
    _edit(client, line.activity, capacity="2")
    assert line.state("Alice").state is BookingState.OFFERED
    assert "à valider dans Demandes" in client.get(PAGE).get_data(as_text=True)


def test_an_unchanged_capacity_offers_nothing(client, logged_in_agent, line):
    _edit(client, line.activity, name="Accueil du matin")
    assert line.state("Alice").state is BookingState.WAITING
    assert (
        db.session.scalar(
            sa.select(sa.func.count(OutboxMessage.id)).where(OutboxMessage.template == "waiting_offer")
        )
        == 0
    )


# --- the page and its actions -------------------------------------------------------------------


def test_the_page_lists_a_line_in_its_order_with_the_days_places(client, logged_in_agent, line):
    page = client.get(PAGE).get_data(as_text=True)
    assert shown(client) == line.ranks() == {"Alice": 1, "Bruno": 2, "Chloe": 3}
    assert list(shown(client)) == ["Alice", "Bruno", "Chloe"]
    assert "Places prises : 1 sur 1" in page and "3 en attente" in page
    assert page.count(">Passer en tête<") == 2  # (not the first in line)
    assert page.count('name="motif"') == 3
    other = make_activity(name="Mercredi loisirs", capacity=1, waiting_list=True)
    commit()
    assert "Aucun enfant n'attend une place" in client.get(f"{PAGE}?activite={other.id}").get_data(
        as_text=True
    )


def test_passer_en_tete_moves_the_child_first_for_the_families_too(client, logged_in_agent, line):
    chloe = line.entry("Chloe")
    response = client.post(f"{PAGE}/{chloe.id}/en-tete", follow_redirects=True)
    assert "Chloe CHLOE est en tête de la liste d&#39;attente" in response.get_data(as_text=True)
    assert list(shown(client).items()) == [("Chloe", 1), ("Alice", 2), ("Bruno", 3)]
    assert line.ranks() == {"Chloe": 1, "Alice": 2, "Bruno": 3}
    assert db.session.scalar(
        sa.select(RequestEvent.summary).where(
            RequestEvent.request_id == line.requests["Chloe"], RequestEvent.kind == EventKind.WAITING_LIST
        )
    ).startswith("Placée en tête de la liste d'attente par le service")
    assert db.session.scalar(
        sa.select(AuditEvent.action).where(AuditEvent.target_id == line.requests["Chloe"])
    ) == ("waiting.promoted")


def test_retirer_needs_a_reason_and_changes_nothing_without_one(client, logged_in_agent, line):
    bruno = line.entry("Bruno")
    response = client.post(f"{PAGE}/{bruno.id}/retirer", data={"motif": "  "}, follow_redirects=True)
    assert "Indiquez le motif du retrait : la famille le lira." in response.get_data(as_text=True)
    assert line.entry("Bruno").ended_at is None and line.state("Bruno").state is BookingState.WAITING
    assert line.ranks() == {"Alice": 1, "Bruno": 2, "Chloe": 3}


def test_retirer_refuses_the_day_with_the_reason_in_the_history_and_the_audit(client, logged_in_agent, line):
    bruno = line.entry("Bruno")
    reason = "Enfant inscrit par erreur"
    response = client.post(f"{PAGE}/{bruno.id}/retirer", data={"motif": reason}, follow_redirects=True)
    assert "Bruno BRUNO n&#39;est plus sur la liste d&#39;attente" in response.get_data(as_text=True)
    day = line.state("Bruno")
    assert (day.state, day.reason) == (BookingState.REFUSED, reason)
    request_line = db.session.scalar(
        sa.select(RequestLine).where(RequestLine.request_id == line.requests["Bruno"])
    )
    assert (request_line.state, request_line.reason, request_line.decided_by_id) == (
        LineState.REFUSED,
        reason,
        logged_in_agent.id,
    )
    assert db.session.execute(
        sa.select(RequestEvent.kind, RequestEvent.reason).where(
            RequestEvent.request_id == line.requests["Bruno"], RequestEvent.kind == EventKind.DECISION
        )
    ).all() == [(EventKind.DECISION, reason)]
    assert db.session.execute(
        sa.select(AuditEvent.action, AuditEvent.detail).where(AuditEvent.target_id == line.requests["Bruno"])
    ).all() == [("waiting.removed", reason)]
    assert shown(client) == line.ranks() == {"Alice": 1, "Chloe": 2}


def test_retirer_twice_answers_with_the_list_as_it_is(client, logged_in_agent, line):
    bruno = line.entry("Bruno")
    first = client.post(f"{PAGE}/{bruno.id}/retirer", data={"motif": "Doublon"})
    second = client.post(f"{PAGE}/{bruno.id}/retirer", data={"motif": "Doublon"}, follow_redirects=True)
    assert first.status_code == 302 and second.status_code == 200
    assert "Cette inscription n&#39;est plus sur la liste" in second.get_data(as_text=True)
    assert (
        db.session.scalar(
            sa.select(sa.func.count(AuditEvent.id)).where(AuditEvent.action == "waiting.removed")
        )
        == 1
    )


def test_passer_en_tete_of_a_child_no_longer_waiting_is_said(client, logged_in_agent, line):
    bruno = line.entry("Bruno")
    client.post(f"{PAGE}/{bruno.id}/retirer", data={"motif": "Doublon"})
    response = client.post(f"{PAGE}/{bruno.id}/en-tete", follow_redirects=True)
    assert "Cette inscription n&#39;est plus en attente" in response.get_data(as_text=True)


def test_an_unknown_entry_is_not_found(client, logged_in_agent, line):
    assert client.post(f"{PAGE}/999999/en-tete").status_code == 404
    assert client.post(f"{PAGE}/999999/retirer", data={"motif": "Doublon"}).status_code == 404


def test_back_goes_to_the_filtered_list_never_elsewhere(client, logged_in_agent, line):
    bruno = line.entry("Bruno")
    back = f"{PAGE}?activite={line.activity.id}"
    assert client.post(f"{PAGE}/{bruno.id}/en-tete", data={"retour": back}).location == back
    chloe = line.entry("Chloe")
    assert client.post(f"{PAGE}/{chloe.id}/en-tete", data={"retour": "https://example.com/"}).location == PAGE


def test_a_parent_cannot_reach_the_waiting_lists(client, auth, line):
    auth.login("alice@example.fr")
    alice = line.entry("Alice")
    assert client.get(PAGE).status_code == 403
    assert client.post(f"{PAGE}/{alice.id}/en-tete").status_code == 403
    assert client.post(f"{PAGE}/{alice.id}/retirer", data={"motif": "x"}).status_code == 403
    assert line.entry("Alice").ended_at is None
