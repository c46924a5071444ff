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
from datetime import timedelta
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm.exc import StaleDataError

T = TypeVar("T")

ATTEMPTS = 8
# A create form sent twice is recognised by its values within this time (a double click, two tabs).
TWIN_WITHIN = timedelta(minutes=2)
# PostgreSQL: serialization_failure, deadlock_detected, lock_not_available
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01", "55P03"})


class Conflict(Exception):
    """A guarded write found its row changed by a concurrent request: start again from a fresh read."""


# What a concurrent write may raise (whether it did is `retryable`'s question). StaleDataError: the
# ORM updated or deleted a row that another request had just deleted.
CONCURRENCY_ERRORS = (Conflict, IntegrityError, OperationalError, StaleDataError)


def claim(row, **expected) -> None:
    """Take `row` for this transaction if it still holds the `expected` values read, else Conflict.

    One UPDATE that changes nothing (a column set to itself) and matches only the row as it was
    read: it waits for a concurrent writer of the row to finish (PostgreSQL's row lock, SQLite's
    write lock), then matches nothing if that writer changed it; the caller's work is then run
    again and sees the change. Without `expected`, it only makes concurrent writers of the row
    take turns, so that what this transaction reads next includes what they wrote.
    """
    from portail.extensions import db

    model = row.__class__  # (not type(): `current_user` is a proxy whose __class__ is the model's)
    column = getattr(model, next(iter(expected), "id"))
    statement = (
        sa.update(model)
        .where(model.id == row.id, *(getattr(model, name) == value for name, value in expected.items()))
        .values({column: column})
        .execution_options(synchronize_session=False)
    )
    if db.session.execute(statement).rowcount != 1:
        raise Conflict(f"{model.__name__} {row.id} changed meanwhile")


def twin(model, *, within: timedelta | None = None, **values):
    """The row of `model` with exactly these values (created within `within`), if any: what a copy
    of the same form, sent at the same moment, has just created. Call it after `claim`ing a row
    that such copies share (e.g. the agent's), so that they take turns and the second sees the first."""
    from portail.extensions import db
    from portail.models import utcnow

    query = sa.select(model).where(*(getattr(model, name) == value for name, value in values.items()))
    if within is not None:
        query = query.where(model.created_at >= utcnow() - within)
    return db.session.scalars(query.limit(1)).first()


def save_form(agent, model, row, values: dict, *, same: tuple[str, ...], within=None) -> tuple[object, bool]:
    """A back-office form's row: `row` changed to `values` (its columns), or, `row` None, a new
    `model` with them, unless a copy of the same form sent at the same moment (a double click) has
    just created it (a row with the same `same` values, created `within`); and whether this call
    wrote it (False: that copy's row, as is, which its own call has audited).

    The copies take turns on the agent's row, so that the second sees the first's."""
    from portail.extensions import db

    claim(agent)
    if row is None:
        if (done := twin(model, within=within, **{name: values[name] for name in same})) is not None:
            return done, False
        row = model()
        db.session.add(row)
    for name, value in values.items():
        setattr(row, name, value)
    db.session.flush()
    return row, True


def upsert(model):
    """An INSERT into `model` that takes ON CONFLICT clauses: each database has its own construct."""
    from portail.extensions import db

    return (sqlite_insert if db.session.get_bind().dialect.name == "sqlite" else pg_insert)(model)


def retryable(error: BaseException, locks: bool = True) -> bool:
    """Whether the error comes from a concurrent write, so that the same work, read again, may pass.

    `locks=False`: not a SQLite lock, which comes after the busy timeout (5 s) already spent waiting."""
    if isinstance(error, Conflict | IntegrityError | StaleDataError):
        return True
    if isinstance(error, OperationalError):
        original = error.orig
        if getattr(original, "sqlstate", None) in RETRYABLE_SQLSTATES:
            return True
        message = str(original).lower()
        return locks and ("locked" in message or "busy" in message)
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
        except CONCURRENCY_ERRORS as error:
            rollback()
            if not retryable(error) or attempt == attempts - 1:
                raise
            pause(attempt)
    raise AssertionError("unreachable")
