"""Moved to `portail.bookings` (issue 14): the old names, until the last imports of this path (the
back office's day entry and test modules being reworked alongside) move."""

from portail.bookings import *  # noqa: F403
from portail.bookings.facts import Facts, Span  # noqa: F401
from portail.bookings.facts import read as read_facts  # noqa: F401
from portail.bookings.transitions import release_places, take_place, take_places  # noqa: F401
