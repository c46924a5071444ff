"""The bookings' transitions ask the rules (`rules.evaluate`) once for each state they check or show."""

from datetime import UTC, date, datetime

import pytest

from portail import bookings
from portail.bookings import rules
from portail.extensions import db
from portail.models import BookingState, RequestKind, ValidationMode
from tests.factories import enrol, make_activity, make_family, make_user, next_weekday, subscribe

pytestmark = pytest.mark.both_dbs


@pytest.fixture
def asked(monkeypatch):
    """The states the rules are asked about, in order."""
    states = []
    original = rules.evaluate

    def spy(*args, **kwargs):
        states.append((kwargs["state"], kwargs.get("by_town", False)))
        return original(*args, **kwargs)

    monkeypatch.setattr(rules, "evaluate", spy)
    return states


@pytest.fixture
def setup(app):
    family = make_family(children=(("Léa", date(2016, 3, 14)),))
    subscribe(make_user(), family)
    activity = make_activity(validation_mode=ValidationMode.MANUAL, capacity=10)
    child = family.children[0]
    enrol(child, activity)
    db.session.commit()
    return family, child, activity


def click(client, family, child, activity, day, action):
    data = {"enfant": child.id, "activite": activity.id, "jour": day.isoformat(), "action": action}
    return client.post(f"/famille/{family.id}/planning/cellule", data=data, headers={"HX-Request": "true"})


def test_a_click_asks_the_rules_once_about_the_day_and_once_about_its_new_cell(client, auth, setup, asked):
    family, child, activity = setup
    auth.login("parent@example.fr")
    day = next_weekday(2)
    assert "Réservation demandée" in click(client, family, child, activity, day, "reserve").get_data(
        as_text=True
    )
    assert asked == [(None, False), (BookingState.RESERVATION_REQUESTED, False)]
    asked.clear()
    assert "Réservation demandée" not in click(client, family, child, activity, day, "withdraw").get_data(
        as_text=True
    )
    # the withdrawal's check, then the day read again as it is back to (no booking)
    assert asked == [(BookingState.RESERVATION_REQUESTED, False), (None, False)]


def test_a_day_entered_by_the_service_is_checked_by_the_rules_without_a_deadline(app, setup, asked):
    family, child, activity = setup
    agent = make_user(email="agent@example.fr")
    now = datetime.now(UTC)
    day = next_weekday(2)
    bookings.submit(family.id, None, child, activity, RequestKind.RESERVATION, [day], now, "C")
    with pytest.raises(bookings.BookingError, match="Une demande de la famille est en attente"):
        bookings.record_by_town(family.id, agent, child, activity, RequestKind.RESERVATION, day, now, "C")
    other = next_weekday(3)
    late = datetime.combine(other, datetime.min.time(), UTC)  # past the deadline: the service may still
    bookings.record_by_town(family.id, agent, child, activity, RequestKind.RESERVATION, other, late, "C")
    with pytest.raises(bookings.AlreadyRequested, match="déjà réservé"):
        bookings.record_by_town(family.id, agent, child, activity, RequestKind.RESERVATION, other, late, "C")
    assert asked == [
        (None, False),
        (BookingState.RESERVATION_REQUESTED, True),
        (None, True),
        (BookingState.RESERVED, True),
    ]
