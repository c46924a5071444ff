"""What a booking transition answers when it cannot be made: French messages for the family or the agent."""

# A day no longer as the parent saw it when choosing the action (a full day freed meanwhile, a request
# decided in another tab): nothing done, its current state shown.
DAY_CHANGED = "Ce jour a changé entre-temps : voici son état actuel."


class BookingError(ValueError):
    """Nothing can be requested; the message is French."""


class AlreadyRequested(BookingError):
    """Nothing left to request: the days are already asked (or granted) as this request asks, e.g. by
    the same request sent twice at once; the answer is the current state, calmly."""


class DecisionError(ValueError):
    """A decision that cannot be made (its French message is shown to the agent)."""
