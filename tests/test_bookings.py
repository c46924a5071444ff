"""Reservation and absence requests in the database: states, automatic decisions, capacity."""

import threading
from datetime import date

import pytest
import sqlalchemy as sa

from portail import bookings
from portail.extensions import db
from portail.models import (
    ActivityDay,
    Booking,
    BookingState,
    LineState,
    RequestKind,
    RequestLine,
    ValidationMode,
)
from tests.factories import NOW, THURSDAY, canteen, enrolled_child, make_user, submit_request

pytestmark = pytest.mark.both_dbs


def booking_state(child, activity, day=THURSDAY):
    return db.session.scalar(
        sa.select(Booking.state).where(
            Booking.child_id == child.id, Booking.activity_id == activity.id, Booking.day == day
        )
    )


def test_manual_reservation_is_requested_then_absence_only_after_reservation(app):
    activity = canteen()
    db.session.add(activity)
    family, child = enrolled_child(activity)
    user = make_user()
    request = submit_request(family, user, child, activity, RequestKind.RESERVATION, [THURSDAY])
    db.session.commit()
    assert [line.state for line in request.lines] == [LineState.PENDING]
    assert booking_state(child, activity) is BookingState.RESERVATION_REQUESTED
    with pytest.raises(bookings.BookingError):
        bookings.submit(family.id, user, child, activity, RequestKind.ABSENCE, [THURSDAY], NOW, "C")


def test_automatic_reservation_decides_at_once_and_absence_gives_the_place_back(app):
    activity = canteen(validation_mode=ValidationMode.AUTOMATIC, capacity=1)
    db.session.add(activity)
    family, child = enrolled_child(activity)
    other_family, other = enrolled_child(activity, "Tom")
    user = make_user()
    bookings.submit(family.id, user, child, activity, RequestKind.RESERVATION, [THURSDAY], NOW, "C")
    db.session.commit()
    assert booking_state(child, activity) is BookingState.RESERVED
    with pytest.raises(bookings.BookingError, match="Complet"):
        bookings.submit(other_family.id, user, other, activity, RequestKind.RESERVATION, [THURSDAY], NOW, "C")
    db.session.rollback()
    assert booking_state(other, activity) is None
    bookings.submit(family.id, user, child, activity, RequestKind.ABSENCE, [THURSDAY], NOW, "C")
    db.session.commit()
    assert booking_state(child, activity) is BookingState.ABSENT
    assert db.session.scalar(sa.select(ActivityDay.booked)) == 0
    again = submit_request(other_family, user, other, activity, RequestKind.RESERVATION, [THURSDAY])
    db.session.commit()
    assert again.lines[0].state is LineState.ACCEPTED


def test_a_period_request_keeps_only_the_actionable_days(app):
    activity = canteen()
    db.session.add(activity)
    family, child = enrolled_child(activity)
    days = [date(2026, 12, day) for day in range(14, 26)]  # two weeks, the second in the Christmas holidays
    verdicts = dict(bookings.preview(child, activity, RequestKind.RESERVATION, days, NOW, "C"))
    assert verdicts[date(2026, 12, 16)].reason == "Fermé le mercredi"
    assert verdicts[date(2026, 12, 21)].reason == "Fermé — Vacances de Noël"
    request = submit_request(
        family,
        make_user(),
        child,
        activity,
        RequestKind.RESERVATION,
        days,
        period=(days[0], days[-1], "1245"),
    )
    db.session.commit()
    assert [line.day for line in request.lines] == [date(2026, 12, d) for d in (14, 15, 17, 18)]


def test_one_booking_per_child_activity_and_day_is_enforced_by_the_database(app):
    activity = canteen()
    db.session.add(activity)
    _family, child = enrolled_child(activity)
    db.session.add(
        Booking(child_id=child.id, activity_id=activity.id, day=THURSDAY, state=BookingState.RESERVED)
    )
    db.session.commit()
    db.session.add(
        Booking(child_id=child.id, activity_id=activity.id, day=THURSDAY, state=BookingState.RESERVED)
    )
    with pytest.raises(sa.exc.IntegrityError):
        db.session.commit()
    db.session.rollback()


@pytest.mark.parametrize("blind", [False, True], ids=["normal", "rules-blind-to-capacity"])
def test_capacity_is_never_exceeded_under_concurrency(app, monkeypatch, blind):
    """4·N simultaneous requests for N places. With `blind`, the rules never see the day full,
    so only the database's conditional update stands between the requests and an overbooking."""
    if blind:
        from portail.bookings import rules as booking_rules

        original = booking_rules.evaluate
        monkeypatch.setattr(booking_rules, "evaluate", lambda *a, **k: original(*a, **{**k, "booked": 0}))
    from portail.services import outbox

    # The receipts stay in the outbox: run inline (RQ_SYNC), their delivery would need a second
    # connection per thread, which the worker process has in real life.
    monkeypatch.setattr(outbox, "enqueue_many", lambda *args, **kwargs: None)
    capacity = 5
    activity = canteen(validation_mode=ValidationMode.AUTOMATIC, capacity=capacity)
    db.session.add(activity)
    children = [enrolled_child(activity, f"Enfant{i}") for i in range(4 * capacity)]
    user = make_user()
    db.session.commit()
    activity_id, user_id = activity.id, user.id
    pairs = [(family.id, child.id) for family, child in children]
    barrier = threading.Barrier(len(pairs))
    errors = []

    def book(family_id, child_id):
        from portail.models import Activity, Child, User

        with app.app_context():
            try:
                barrier.wait()
                bookings.with_retries(
                    lambda: bookings.submit(
                        family_id,
                        db.session.get(User, user_id),
                        db.session.get(Child, child_id),
                        db.session.get(Activity, activity_id),
                        RequestKind.RESERVATION,
                        [THURSDAY],
                        NOW,
                        "C",
                    )
                )
            except Exception as error:  # noqa: BLE001 - reported below
                errors.append(repr(error))
            finally:
                db.session.remove()

    threads = [threading.Thread(target=book, args=pair) for pair in pairs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    # Losers either saw the day full ("Complet", nothing saved) or lost the race (a refused line).
    assert all("Complet" in error for error in errors), errors
    db.session.expire_all()
    states = db.session.scalars(sa.select(Booking.state).where(Booking.activity_id == activity_id)).all()
    assert states.count(BookingState.RESERVED) == capacity
    assert states.count(BookingState.REFUSED) + len(errors) == 3 * capacity
    if blind:
        assert errors == [] and states.count(BookingState.REFUSED) == 3 * capacity
    assert db.session.scalar(sa.select(ActivityDay.booked)) == capacity
    assert (
        db.session.scalar(
            sa.select(sa.func.count(RequestLine.id)).where(RequestLine.state == LineState.ACCEPTED)
        )
        == capacity
    )
