"""Moved (issue 14): transitions to `portail.bookings`, history and messages to
`portail.bookings.history`, listings and unread flags to `portail.services.request_desk`. The old
names, until the test modules being reworked alongside import the new places."""

from portail.bookings import REFUSAL_REASONS, DecisionError, decide  # noqa: F401
from portail.bookings.history import add_message, created, record, short_days  # noqa: F401
from portail.bookings.history import events as history  # noqa: F401
from portail.services.request_desk import *  # noqa: F403
from portail.models import RequestLine  # noqa: F401 (a test reads it from here)
