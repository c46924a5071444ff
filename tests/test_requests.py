"""Request processing: staff decisions, history, unread flags, receipts and the 13:00/18:00 digests."""

from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa

from portail.extensions import db
from portail.models import (
    Booking,
    BookingState,
    Digest,
    DigestRun,
    DigestWindow,
    EventKind,
    LineState,
    OutboxMessage,
    RequestEvent,
    RequestKind,
    Role,
)
from portail.services import bookings, digests, requests
from portail.services.outbox import commit
from tests.factories import make_user, subscribe
from tests.test_booking_rules import at_utc, canteen
from tests.test_bookings import THURSDAY, enrolled_child

pytestmark = pytest.mark.both_dbs

NOW = datetime(2026, 10, 1, 8, tzinfo=UTC)
NOON, EVENING = DigestWindow.NOON, DigestWindow.EVENING


def paris(year, month, day, hour, minute=0, second=0):
    from portail.services.booking_rules import PARIS

    return datetime(year, month, day, hour, minute, second, tzinfo=PARIS).astimezone(UTC)


# --- windows, to the second, in Paris time ------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        ((2027, 1, 12, 12, 59, 59), ((2027, 1, 12), NOON)),
        ((2027, 1, 12, 13, 0, 0), ((2027, 1, 12), NOON)),
        ((2027, 1, 12, 13, 0, 1), ((2027, 1, 12), EVENING)),
        ((2027, 1, 12, 17, 59, 59), ((2027, 1, 12), EVENING)),
        ((2027, 1, 12, 18, 0, 0), ((2027, 1, 12), EVENING)),
        ((2027, 1, 12, 18, 0, 1), ((2027, 1, 13), NOON)),
        ((2027, 1, 12, 20, 0, 0), ((2027, 1, 13), NOON)),  # a decision at 20:00 goes into the next day's 13:00 mail
        ((2027, 1, 13, 0, 30, 0), ((2027, 1, 13), NOON)),
        ((2027, 7, 12, 13, 0, 0), ((2027, 7, 12), NOON)),  # summer time
        ((2027, 7, 12, 13, 0, 1), ((2027, 7, 12), EVENING)),
    ],
)
def test_a_decision_goes_into_the_window_of_its_paris_time(moment, expected):
    day, window = digests.window_of(paris(*moment))
    assert (day, window) == (date(*expected[0]), expected[1])


def test_window_bounds_on_both_daylight_saving_days():
    # 28 March 2027: 02:00 CET → 03:00 CEST. The 13:00 window runs from Saturday 18:00 CET (17:00 UTC)
    # to Sunday 13:00 CEST (11:00 UTC): 18 hours, not 19.
    assert digests.bounds(date(2027, 3, 28), NOON) == (at_utc(2027, 3, 27, 17), at_utc(2027, 3, 28, 11))
    assert digests.bounds(date(2027, 3, 28), EVENING) == (at_utc(2027, 3, 28, 11), at_utc(2027, 3, 28, 16))
    # 31 October 2027: 03:00 CEST → 02:00 CET. Saturday 18:00 CEST (16:00 UTC) to Sunday 13:00 CET (12:00 UTC): 20 hours.
    assert digests.bounds(date(2027, 10, 31), NOON) == (at_utc(2027, 10, 30, 16), at_utc(2027, 10, 31, 12))
    assert digests.bounds(date(2027, 10, 31), EVENING) == (at_utc(2027, 10, 31, 12), at_utc(2027, 10, 31, 17))
    # The night's decisions are in the 13:00 mail, whatever the clock change.
    assert digests.window_of(at_utc(2027, 3, 28, 0, 30)) == (date(2027, 3, 28), NOON)
    assert digests.window_of(at_utc(2027, 10, 31, 1, 30)) == (date(2027, 10, 31), NOON)


# --- decisions --------------------------------------------------------------------------------


def manual_request(activity, kind=RequestKind.RESERVATION, name="Léa", email="parent@example.fr", days=(THURSDAY,)):
    family, child = enrolled_child(activity, name)
    user = make_user(email=email, first_name=name)
    subscribe(user, family)
    if kind is RequestKind.ABSENCE:
        for day in days:
            db.session.add(Booking(child_id=child.id, activity_id=activity.id, day=day, state=BookingState.RESERVED))
        db.session.flush()
    request = bookings.submit(family.id, user, child, activity, kind, list(days), NOW, "C")
    commit()
    return request, child, user


@pytest.fixture
def agent(app):
    return make_user(email="agent@example.fr", role=Role.AGENT, first_name="Agnès")


def state_of(child, activity, day=THURSDAY):
    return db.session.scalar(sa.select(Booking.state).where(Booking.child_id == child.id, Booking.activity_id == activity.id, Booking.day == day))


def test_accepting_reservations_never_exceeds_the_capacity(app, agent):
    activity = canteen(capacity=1)
    db.session.add(activity)
    first, lea, _ = manual_request(activity)
    second, tom, _ = manual_request(activity, name="Tom", email="tom@example.fr")
    assert requests.decide([line.id for line in first.lines + second.lines], True, agent, NOW) == {"accepted": 1, "refused": 1}
    commit()
    assert {state_of(lea, activity), state_of(tom, activity)} == {BookingState.RESERVED, BookingState.REFUSED}
    refused = db.session.scalar(sa.select(Booking).where(Booking.state == BookingState.REFUSED))
    assert refused.reason == "Complet"


def test_refusing_an_absence_keeps_the_day_reserved_and_records_who_why_and_the_message(app, agent):
    activity = canteen()
    db.session.add(activity)
    request, child, _ = manual_request(activity, RequestKind.ABSENCE)
    assert state_of(child, activity) is BookingState.ABSENCE_REQUESTED
    requests.decide([request.lines[0].id], False, agent, NOW, reason="Hors délai", message="Le repas est déjà commandé.")
    commit()
    assert state_of(child, activity) is BookingState.RESERVED
    line = request.lines[0]
    assert (line.state, line.reason, line.decided_by_id, line.message) == (LineState.REFUSED, "Hors délai", agent.id, "Le repas est déjà commandé.")
    event = db.session.scalar(sa.select(RequestEvent).where(RequestEvent.kind == EventKind.DECISION))
    assert event.by_town and event.author_id == agent.id and event.reason == "Hors délai" and "Refusée" in event.summary


def test_a_refusal_needs_a_reason_and_autre_needs_a_message_and_nothing_changes(app, agent):
    activity = canteen()
    db.session.add(activity)
    request, child, _ = manual_request(activity)
    for reason, message, error in [(None, None, "motif"), ("Autre", "  ", "message")]:
        with pytest.raises(requests.DecisionError, match=error):
            requests.decide([request.lines[0].id], False, agent, NOW, reason=reason, message=message)
        db.session.rollback()
    assert state_of(child, activity) is BookingState.RESERVATION_REQUESTED
    assert request.lines[0].state is LineState.PENDING and request.lines[0].decided_at is None


def test_a_line_is_decided_once(app, agent):
    activity = canteen()
    db.session.add(activity)
    request, _child, _ = manual_request(activity)
    requests.decide([request.lines[0].id], True, agent, NOW)
    commit()
    with pytest.raises(requests.DecisionError, match="déjà été traitée"):
        requests.decide([request.lines[0].id], False, agent, NOW, reason="Complet")


def test_unread_flags_are_per_parent_and_cleared_by_opening(app, agent):
    activity = canteen()
    db.session.add(activity)
    request, child, claire = manual_request(activity)
    julien = make_user(email="julien@example.fr", first_name="Julien")
    subscribe(julien, child.family)
    commit()
    assert requests.unread_counts(claire, [request.id]) == {}  # the parent's own creation is not new
    requests.decide([request.lines[0].id], False, agent, NOW, reason="Complet")
    requests.add_message(request, agent, "Une place se libère peut-être lundi.", by_town=True, now=NOW + timedelta(minutes=1))
    commit()
    assert requests.unread_counts(claire, [request.id]) == {request.id: 2}
    requests.mark_read(request, claire, NOW + timedelta(minutes=2))
    commit()
    assert requests.unread_counts(claire, [request.id]) == {}
    assert requests.unread_counts(julien, [request.id]) == {request.id: 2}
    requests.add_message(request, claire, "Merci", by_town=False, now=NOW + timedelta(minutes=3))
    commit()
    assert requests.unread_counts(claire, [request.id]) == {}


# --- receipts -----------------------------------------------------------------------------------


def rendered(template):
    from portail.services.outbox import render

    message = db.session.scalar(sa.select(OutboxMessage).where(OutboxMessage.template == template).order_by(OutboxMessage.id.desc()))
    return render(message)


def test_receipt_for_a_single_slot(app):
    activity = canteen()
    db.session.add(activity)
    manual_request(activity)
    mail = rendered("booking_receipt")
    assert mail.recipients == ["parent@example.fr"] and "Accusé de réception" in mail.subject
    for text in (mail.body, mail.html):
        assert "Nous avons bien reçu votre demande de réservation" in text
        assert "Léa" in text and "Restauration scolaire" in text and "4 mars 2027" in text
        assert "Période" not in text


def test_receipt_for_a_period(app):
    activity = canteen()
    db.session.add(activity)
    family, child = enrolled_child(activity)
    user = make_user()
    days = [date(2027, 3, 1), date(2027, 3, 4), date(2027, 3, 8), date(2027, 3, 11)]
    bookings.submit(family.id, user, child, activity, RequestKind.RESERVATION, days, NOW, "C", period=(date(2027, 3, 1), date(2027, 3, 12), "14"))
    commit()
    mail = rendered("booking_receipt")
    for text in (mail.body, mail.html):
        assert "Période : du 1 mars 2027 au 12 mars 2027" in text
        assert "lundi, jeudi" in text and "Nombre de jours demandés : 4" in text


# --- digests ------------------------------------------------------------------------------------


def test_digest_lists_accepted_and_refused_lines_once_per_account_and_window(app, agent):
    activity = canteen()
    db.session.add(activity)
    first, _lea, claire = manual_request(activity, days=(THURSDAY, THURSDAY + timedelta(days=1)))
    other, _tom, sophie = manual_request(activity, name="Tom", email="sophie@example.fr")
    requests.decide([first.lines[0].id], True, agent, paris(2027, 1, 12, 9))
    requests.decide([first.lines[1].id], False, agent, paris(2027, 1, 12, 12, 59, 59), reason="Complet", message="Plus de place ce vendredi.")
    requests.decide([other.lines[0].id], True, agent, paris(2027, 1, 12, 13, 0, 1))  # the 18:00 window
    commit()
    assert digests.send_window(date(2027, 1, 12), NOON) == 1
    assert digests.send_window(date(2027, 1, 12), NOON) == 0  # again: nothing more
    mail = rendered("decision_digest")
    assert mail.recipients == [claire.email] and "Accusé de traitement" in mail.subject
    for text in (mail.body, mail.html):
        assert "Léa — Restauration scolaire" in text and "4 mars 2027" in text and "5 mars 2027" in text
        assert "Motif : Complet" in text and "Message : Plus de place ce vendredi." in text
    assert "ACCEPTÉE" in mail.body and "REFUSÉE" in mail.body
    assert "Tom" not in mail.body and sophie.email not in mail.recipients
    assert digests.send_window(date(2027, 1, 12), EVENING) == 1
    assert db.session.scalar(sa.select(sa.func.count(Digest.id))) == 2


def test_dispatch_sends_each_due_window_once_and_catches_up_a_missed_one(app, agent):
    activity = canteen()
    db.session.add(activity)
    request, _child, _claire = manual_request(activity)
    requests.decide([request.lines[0].id], True, agent, paris(2027, 1, 11, 20))  # → 12 January, 13:00 mail
    commit()
    assert digests.dispatch_due(paris(2027, 1, 12, 12, 59, 59)) == 0  # not yet due
    # The scheduler was down from 12:50 to 14:10: the 13:00 window is sent when it comes back.
    assert digests.dispatch_due(paris(2027, 1, 12, 14, 10)) == 1
    assert digests.dispatch_due(paris(2027, 1, 12, 14, 11)) == 0
    assert digests.dispatch_due(paris(2027, 1, 12, 18, 0, 0)) == 0  # the 18:00 window has no decision
    runs = db.session.execute(sa.select(DigestRun.day, DigestRun.window).where(DigestRun.day == date(2027, 1, 12))).all()
    assert set(runs) == {(date(2027, 1, 12), NOON), (date(2027, 1, 12), EVENING)}
    assert db.session.scalar(sa.select(sa.func.count(OutboxMessage.id)).where(OutboxMessage.template == "decision_digest")) == 1


def test_automatic_decisions_are_in_the_digest_but_not_new_messages(app):
    from portail.models import ValidationMode

    activity = canteen(validation_mode=ValidationMode.AUTOMATIC)
    db.session.add(activity)
    family, child = enrolled_child(activity)
    user = make_user()
    request = bookings.submit(family.id, user, child, activity, RequestKind.RESERVATION, [THURSDAY], paris(2027, 1, 12, 9), "C")
    commit()
    assert requests.unread_counts(user, [request.id]) == {}
    assert digests.send_window(date(2027, 1, 12), NOON) == 1
