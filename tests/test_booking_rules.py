"""The booking rules, to the second, in Europe/Paris time (no database needed)."""

from datetime import UTC, date, time, timedelta

import pytest

from portail.bookings.rules import ABSENCE, RESERVE, WITHDRAW, deadline, enrolled, evaluate
from portail.models import BookingState, DeadlineKind, Enrolment, OpenPeriod
from tests.factories import at_utc, canteen

ALWAYS_OPEN = {
    "open_period": OpenPeriod.ALL,
    "weekdays": "1234567",
    "end_date": date(2028, 7, 1),
    "closed_on_public_holidays": False,
}


def verdict(activity, day, now, state=None, enrolled_=True, **kwargs):
    return evaluate(activity, day, now, is_enrolled=enrolled_, state=state, zone="C", **kwargs)


@pytest.mark.parametrize(
    ("day", "deadline_utc", "season"),
    [
        (date(2027, 1, 11), at_utc(2027, 1, 7, 9), "winter: Monday → Thursday 10:00 CET"),
        (date(2027, 6, 14), at_utc(2027, 6, 10, 8), "summer: Monday → Thursday 10:00 CEST"),
    ],
)
def test_reservation_deadline_to_the_second_in_winter_and_summer(day, deadline_utc, season):
    activity = canteen()
    one = timedelta(seconds=1)
    assert verdict(activity, day, deadline_utc - one).actions == {RESERVE}, season
    late = verdict(activity, day, deadline_utc)
    assert late.actions == set() and late.reason.startswith("Délai dépassé depuis le jeudi"), season
    assert "à 10:00" in late.reason
    assert verdict(activity, day, deadline_utc + one).actions == set(), season


@pytest.mark.parametrize(
    ("day", "limit"),
    [
        # Sunday 28 March 2027 clocks go from 02:00 to 03:00; the deadline is that Sunday 10:00 CEST.
        (date(2027, 3, 30), at_utc(2027, 3, 28, 8)),
        # Sunday 31 October 2027 clocks go back from 03:00 to 02:00; 10:00 that day is CET (UTC+1).
        (date(2027, 11, 2), at_utc(2027, 10, 31, 9)),
    ],
    ids=["spring", "autumn"],
)
def test_deadline_on_a_daylight_saving_day(day, limit):
    activity = canteen(booking_deadline_days=2, booking_deadline_working_days=False, **ALWAYS_OPEN)
    assert deadline(day, DeadlineKind.DAYS_BEFORE, 2, time(10), False, None) == limit
    assert verdict(activity, day, limit - timedelta(seconds=1)).actions == {RESERVE}
    assert verdict(activity, day, limit + timedelta(seconds=1)).actions == set()


def test_a_deadline_at_a_time_that_does_not_exist_on_the_spring_day_is_still_one_instant():
    limit = deadline(date(2027, 3, 29), DeadlineKind.DAYS_BEFORE, 1, time(2, 30), False, None)
    assert limit.astimezone(UTC) in (at_utc(2027, 3, 28, 0, 30), at_utc(2027, 3, 28, 1, 30))


def test_working_days_skip_the_weekend():
    # Tuesday 17 Nov 2026, J-2 working days: Monday 16 (1), Friday 13 (2).
    assert deadline(date(2026, 11, 17), DeadlineKind.DAYS_BEFORE, 2, time(10), True, None) == at_utc(
        2026, 11, 13, 9
    )


def test_working_days_skip_a_public_holiday():
    # Thursday 12 Nov 2026, J-2 working days: Wednesday 11 is Armistice, so Tuesday 10 (1), Monday 9 (2).
    assert deadline(date(2026, 11, 12), DeadlineKind.DAYS_BEFORE, 2, time(10), True, None) == at_utc(
        2026, 11, 9, 9
    )


def test_calendar_days_do_not_skip_anything():
    assert deadline(date(2026, 11, 12), DeadlineKind.DAYS_BEFORE, 2, time(10), False, None) == at_utc(
        2026, 11, 10, 9
    )


def test_thursday_noon_of_the_previous_week():
    # Wednesday 9 Dec 2026 → Thursday 3 Dec 2026 12:00 CET.
    assert deadline(date(2026, 12, 9), DeadlineKind.PREVIOUS_WEEK, 0, time(12), False, 4) == at_utc(
        2026, 12, 3, 11
    )


@pytest.mark.parametrize(
    ("day", "reason"),
    [
        (date(2026, 12, 2), "Fermé le mercredi"),
        (date(2027, 3, 29), "Fermé — jour férié (Lundi de Pâques)"),
        (date(2026, 12, 22), "Fermé — Vacances de Noël"),
        (date(2027, 7, 5), "Fermé — en dehors de la période de l'activité"),
    ],
)
def test_each_reason_a_day_is_closed(day, reason):
    result = verdict(canteen(), day, at_utc(2026, 10, 1, 8))
    assert result.actions == set() and result.reason.startswith(reason)


def test_a_day_closed_by_staff_says_why():
    result = verdict(
        canteen(), date(2026, 12, 3), at_utc(2026, 10, 1, 8), closing_days={date(2026, 12, 3): "grève"}
    )
    assert result.reason == "Fermé — grève"


def test_holiday_centre_opens_only_during_school_holidays():
    centre = canteen(
        name="Centre de loisirs vacances", weekdays="12345", open_period=OpenPeriod.HOLIDAYS, capacity=40
    )
    assert verdict(centre, date(2026, 12, 22), at_utc(2026, 10, 1, 8)).actions == {RESERVE}
    assert (
        verdict(centre, date(2026, 12, 3), at_utc(2026, 10, 1, 8)).reason
        == "Fermé — ouvert seulement pendant les vacances scolaires"
    )


def test_not_enrolled_and_full():
    assert verdict(canteen(), date(2026, 12, 3), at_utc(2026, 10, 1, 8), enrolled_=False).reason.startswith(
        "Non inscrit"
    )
    full = verdict(canteen(capacity=2), date(2026, 12, 3), at_utc(2026, 10, 1, 8), booked=2)
    assert full.actions == set() and full.reason == "Complet"


def test_absence_only_on_a_reserved_day_and_reservation_only_when_not_booked():
    now, day = at_utc(2026, 10, 1, 8), date(2026, 12, 3)
    assert verdict(canteen(), day, now).actions == {RESERVE}
    assert verdict(canteen(), day, now, state=BookingState.RESERVED).actions == {ABSENCE}
    assert verdict(canteen(), day, now, state=BookingState.REFUSED).actions == {RESERVE}
    assert verdict(canteen(), day, now, state=BookingState.ABSENT).actions == set()
    for pending in (BookingState.RESERVATION_REQUESTED, BookingState.ABSENCE_REQUESTED):
        assert verdict(canteen(), day, now, state=pending).actions == {WITHDRAW}


def test_a_passed_deadline_says_since_when_never_until_when():
    """On 2 December a day whose deadline was 30 November must not read "Réservable jusqu'au…"."""
    day, late_now = date(2027, 1, 11), at_utc(2027, 1, 7, 9, 0, 1)
    late = verdict(canteen(), day, late_now, state=BookingState.RESERVED)
    assert late.actions == set() and late.reason == "Délai dépassé depuis le jeudi 7 janvier à 10:00"
    pending = verdict(canteen(), day, late_now, state=BookingState.RESERVATION_REQUESTED)
    assert pending.reason == (
        "Demande en cours de traitement (délai dépassé depuis le jeudi 7 janvier à 10:00)"
    )
    assert verdict(canteen(), day, late_now).reason == "Délai dépassé depuis le jeudi 7 janvier à 10:00"


def test_enrolment_limited_to_weekdays():
    enrolments = [Enrolment(start_date=date(2026, 9, 1), end_date=date(2027, 7, 3), weekdays="14")]
    assert enrolled(enrolments, date(2026, 12, 3))  # Thursday
    assert not enrolled(enrolments, date(2026, 12, 1))  # Tuesday
    assert not enrolled(enrolments, date(2027, 7, 5))


def test_memoised_day_rules_follow_every_change_of_the_activity():
    """The rules of a day are memoised on a snapshot of the activity: changing any field the rules
    read (deadline, time, opening days, period, holidays) gives the new answer, never a stale one."""
    day, now = date(2027, 1, 11), at_utc(2027, 1, 7, 8, 30)  # Thursday 09:30, deadline Thursday 10:00
    activity = canteen()
    assert verdict(activity, day, now).actions == {RESERVE}
    activity.booking_deadline_time = time(9, 0)
    assert verdict(activity, day, now).reason == "Délai dépassé depuis le jeudi 7 janvier à 09:00"
    activity.booking_deadline_days = 1
    assert verdict(activity, day, now).actions == {RESERVE}
    activity.weekdays = "245"
    assert verdict(activity, day, now).reason == "Fermé le lundi"
    activity.weekdays, activity.end_date = "1245", date(2027, 1, 8)
    assert verdict(activity, day, now).reason == "Fermé — en dehors de la période de l'activité"
    holiday = date(2026, 12, 25)
    activity.end_date, activity.open_period = date(2027, 7, 3), OpenPeriod.ALL
    assert verdict(activity, holiday, at_utc(2026, 12, 1, 8)).reason == "Fermé — jour férié (Noël)"
    activity.closed_on_public_holidays = False
    assert verdict(activity, holiday, at_utc(2026, 12, 1, 8)).actions == {RESERVE}
    assert (
        verdict(
            activity, holiday, at_utc(2026, 12, 1, 8), closing_days={holiday: "Fermeture exceptionnelle"}
        ).reason
        == "Fermé — Fermeture exceptionnelle"
    )
