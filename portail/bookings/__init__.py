"""Bookings: where a day of an activity is requested, decided, withdrawn or entered by the service.

- `rules`: what may be done on one child, activity and day, and if nothing, why (pure, memoised);
- `facts`: every read of enrolments, bookings, day counters and closures the rules need;
- `transitions`: every change of a booking's state, checked with `rules.evaluate`, the waiting lists'
  included (a full day's line, the place freed offered to the first in line, confirmed or passed on);
- `history`: a request's events and messages, and the receipt mail.

The transitions and their errors are named here: `bookings.submit(...)`, `bookings.BookingError`.
"""

from portail.bookings.errors import DAY_CHANGED, AlreadyRequested, BookingError, DecisionError
from portail.bookings.transitions import (
    REFUSAL_REASONS,
    cancel_days,
    confirm_offer,
    decide,
    declare_sick,
    decline_offer,
    offer_open_places,
    open_to_withdrawal,
    preview,
    promote,
    record_by_town,
    remove_from_line,
    restore_days,
    sick_day,
    sick_open,
    submit,
    tend_lines,
    with_retries,
    withdraw,
    withdraw_request,
    withdrawal_of,
)

__all__ = [
    "DAY_CHANGED",
    "REFUSAL_REASONS",
    "AlreadyRequested",
    "BookingError",
    "DecisionError",
    "cancel_days",
    "confirm_offer",
    "decide",
    "decline_offer",
    "declare_sick",
    "offer_open_places",
    "open_to_withdrawal",
    "preview",
    "promote",
    "record_by_town",
    "remove_from_line",
    "restore_days",
    "sick_day",
    "sick_open",
    "submit",
    "tend_lines",
    "with_retries",
    "withdraw",
    "withdraw_request",
    "withdrawal_of",
]
