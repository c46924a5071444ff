"""Column types shared by the models, and the declarations they repeat (as typed annotations:
`id: Mapped[intpk]`, `created_at: Mapped[timestamp]`, with `= mapped_column(index=True)` to add
to one)."""

import enum
from datetime import UTC, datetime
from typing import Annotated

import sqlalchemy as sa
from sqlalchemy.orm import mapped_column


class UTCDateTime(sa.types.TypeDecorator):
    """Aware UTC datetimes in Python, naive UTC in the database (same on SQLite and PostgreSQL)."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def utcnow() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


intpk = Annotated[int, mapped_column(primary_key=True)]
MAX_ID = 2**63 - 1  # the largest id either database holds (an id past it is no row's)
# An aware UTC datetime (`Mapped[utc | None]` for an optional one).
utc = Annotated[datetime, mapped_column(UTCDateTime)]
# When the row was written: now, in UTC, unless given.
timestamp = Annotated[datetime, mapped_column(UTCDateTime, default=utcnow)]
# The account that did it; the row stays, without it, when the account is deleted.
by_account = Annotated[int | None, mapped_column(sa.ForeignKey("user_account.id", ondelete="SET NULL"))]


def partial_unique_index(name: str, *columns: str, where: str) -> sa.Index:
    """A unique index over the rows where `where` (SQL) holds, on SQLite and PostgreSQL alike."""
    return sa.Index(name, *columns, unique=True, sqlite_where=sa.text(where), postgresql_where=sa.text(where))


class Labelled(enum.Enum):
    """An enum whose members are declared `NAME = value, "label"`: `.value` is the value, `.label`
    what the pages say of it (in French)."""

    def __new__(cls, value: str, label: str):
        member = object.__new__(cls)
        member._value_ = value
        member.label = label
        return member

    # Members are singletons, equal only to themselves: hashed by identity (in C) rather than by Enum's
    # `hash(self._name_)` (Python code, run at each lookup of a dict or cache keyed by a state: the
    # planning does a few hundred per page).
    __hash__ = object.__hash__


class FullName:
    """A person's row (first_name, last_name): `full_name`, as the pages and mails write it."""

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}"
