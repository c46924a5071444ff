"""Change requests: a parent's proposed edit of one section of the family file."""

import enum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portail.extensions import db
from portail.models.accounts import User
from portail.models.families import Family
from portail.models.types import Labelled, by_account, intpk, partial_unique_index, timestamp, utc


class ChangeStatus(Labelled):
    PENDING = "pending", "En attente de validation"
    ACCEPTED = "accepted", "Acceptée"
    REFUSED = "refused", "Refusée"
    WITHDRAWN = "withdrawn", "Retirée"
    SUPERSEDED = "superseded", "Remplacée par une demande plus récente"
    DIRECT = "direct", "Modifiée par la mairie"  # an agent edited the file directly


class ChangeAction(enum.Enum):
    UPDATE = "update"
    CREATE = "create"
    DELETE = "delete"


class ChangeRequest(db.Model):
    """Old and new values of one section; the validated values change only when accepted.

    `key` names what is changed (e.g. "guardian:3:address", "child:5:health", "contact:9",
    "child:5:contact:new:<random>"); at most one pending change per key, guarded by the database.
    """

    id: Mapped[intpk]
    family_id: Mapped[int] = mapped_column(sa.ForeignKey("family.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(sa.String(80))
    section: Mapped[str] = mapped_column(sa.String(30))
    action: Mapped[ChangeAction] = mapped_column(sa.Enum(ChangeAction, native_enum=False, length=10))
    target_id: Mapped[int | None]
    child_id: Mapped[int | None] = mapped_column(sa.ForeignKey("child.id", ondelete="CASCADE"))
    old_values: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    new_values: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    status: Mapped[ChangeStatus] = mapped_column(
        sa.Enum(ChangeStatus, native_enum=False, length=12), default=ChangeStatus.PENDING, index=True
    )
    reason: Mapped[str | None] = mapped_column(sa.Text)
    requested_by_id: Mapped[by_account]
    decided_by_id: Mapped[by_account]
    created_at: Mapped[timestamp] = mapped_column(index=True)
    decided_at: Mapped[utc | None]

    family: Mapped[Family] = relationship()
    requested_by: Mapped[User | None] = relationship(foreign_keys="ChangeRequest.requested_by_id")
    decided_by: Mapped[User | None] = relationship(foreign_keys="ChangeRequest.decided_by_id")

    __table_args__ = (
        partial_unique_index("uq_change_request_pending_key", "key", where="status = 'PENDING'"),
    )
