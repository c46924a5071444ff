"""Concurrent writes: which database errors mean "another request just did the same", and a retry.

Two identical requests at the same moment (a double click, two tabs) both read the state before
either writes. The database lets one of them through and stops the other: a unique constraint
(the same booking, subscription or pending change), a SQLite lock, a PostgreSQL serialization
failure or deadlock, or a guarded update that found the row already changed (`Conflict`). The
loser rolls back and starts again: it then reads what the winner wrote, and its answer is the
one a second click gets (the current state), never an error page.
"""

import random
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import IntegrityError, OperationalError

T = TypeVar("T")

ATTEMPTS = 8
# PostgreSQL: serialization_failure, deadlock_detected, lock_not_available
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01", "55P03"})


class Conflict(Exception):
    """A guarded write found its row changed by a concurrent request: start again from a fresh read."""


def retryable(error: BaseException) -> bool:
    """Whether the error comes from a concurrent write, so that the same work, read again, may pass."""
    if isinstance(error, Conflict | IntegrityError):
        return True
    if isinstance(error, OperationalError):
        original = error.orig
        if getattr(original, "sqlstate", None) in RETRYABLE_SQLSTATES:
            return True
        message = str(original).lower()
        return "locked" in message or "busy" in message
    return False


def pause(attempt: int) -> None:
    """Wait a little longer after each failed attempt, with jitter, so that the losers spread out."""
    time.sleep(0.01 * (attempt + 1) + random.random() * 0.02)


def run(work: Callable[[], T], attempts: int = ATTEMPTS) -> T:
    """Run `work()` and commit; on a concurrent write, roll back and run it again (it reads afresh)."""
    from portail.services.outbox import commit, rollback

    for attempt in range(attempts):
        try:
            result = work()
            commit()
            return result
        except (Conflict, IntegrityError, OperationalError) as error:
            rollback()
            if not retryable(error) or attempt == attempts - 1:
                raise
            pause(attempt)
    raise AssertionError("unreachable")
