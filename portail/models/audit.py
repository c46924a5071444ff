"""Who did what in the back-office, and when."""

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portail.extensions import db
from portail.models.accounts import User
from portail.models.types import by_account, intpk, timestamp


class AuditEvent(db.Model):
    id: Mapped[intpk]
    actor_id: Mapped[by_account] = mapped_column(index=True)
    action: Mapped[str] = mapped_column(sa.String(50))
    target_type: Mapped[str] = mapped_column(sa.String(50))
    target_id: Mapped[int | None]
    detail: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[timestamp] = mapped_column(index=True)

    actor: Mapped[User | None] = relationship()
