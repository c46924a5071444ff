"""Moved to `portail.bookings.rules` (issue 14): this name is the same module, until the last
imports of the old path (the billing package and test modules being reworked alongside) move."""

import sys

from portail.bookings import rules

sys.modules[__name__] = rules
