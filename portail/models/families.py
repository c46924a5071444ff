"""Families, their responsables and children, and parents' subscriptions to them."""

from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portail.extensions import db
from portail.models.accounts import Civility, User
from portail.models.types import UTCDateTime, utcnow


class Family(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_code: Mapped[str] = mapped_column(sa.String(16), unique=True)
    name: Mapped[str] = mapped_column(sa.String(150))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    guardians: Mapped[list["Guardian"]] = relationship(
        back_populates="family", cascade="all, delete-orphan", order_by="Guardian.position"
    )
    children: Mapped[list["Child"]] = relationship(
        back_populates="family", cascade="all, delete-orphan", order_by="Child.birth_date"
    )
    subscriptions: Mapped[list["Subscription"]] = relationship(back_populates="family")


class Guardian(db.Model):
    """A responsable légal (one or two per family)."""

    id: Mapped[int] = mapped_column(primary_key=True)
    family_id: Mapped[int] = mapped_column(
        sa.ForeignKey("family.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(sa.SmallInteger)
    civility: Mapped[Civility | None] = mapped_column(sa.Enum(Civility, native_enum=False, length=10))
    last_name: Mapped[str] = mapped_column(sa.String(100))
    first_name: Mapped[str] = mapped_column(sa.String(100))
    email: Mapped[str | None] = mapped_column(sa.String(254))
    phone: Mapped[str | None] = mapped_column(sa.String(30))

    family: Mapped[Family] = relationship(back_populates="guardians")

    __table_args__ = (
        sa.CheckConstraint("position IN (1, 2)", name="position_1_or_2"),
        sa.UniqueConstraint("family_id", "position", name="uq_guardian_family_position"),
    )

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}"


class Child(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    family_id: Mapped[int] = mapped_column(
        sa.ForeignKey("family.id", ondelete="CASCADE"), index=True
    )
    last_name: Mapped[str] = mapped_column(sa.String(100))
    first_name: Mapped[str] = mapped_column(sa.String(100))
    birth_date: Mapped[date] = mapped_column(sa.Date)

    family: Mapped[Family] = relationship(back_populates="children")

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}"


class Subscription(db.Model):
    """A parent account's link to a family (Abonnement); ended, never deleted."""

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(
        sa.ForeignKey("user_account.id", ondelete="CASCADE"), index=True
    )
    family_id: Mapped[int] = mapped_column(
        sa.ForeignKey("family.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship(back_populates="subscriptions")
    family: Mapped[Family] = relationship(back_populates="subscriptions")

    __table_args__ = (
        sa.Index(
            "uq_subscription_active",
            "user_id",
            "family_id",
            unique=True,
            sqlite_where=sa.text("ended_at IS NULL"),
            postgresql_where=sa.text("ended_at IS NULL"),
        ),
    )


class SubscriptionAttempt(db.Model):
    """One try at the code abonné form, counted for the hourly limit."""

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(
        sa.ForeignKey("user_account.id", ondelete="CASCADE"), index=True
    )
    succeeded: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
