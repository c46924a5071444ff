"""Families, their responsables and children, and parents' subscriptions to them."""

import enum
from datetime import date

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portail.extensions import db
from portail.models.accounts import Civility, User
from portail.models.types import FullName, Labelled, intpk, partial_unique_index, timestamp, utc, utcnow


class Diet(Labelled):
    """What the kitchen counts (None: the standard meal); OTHER comes with a precision."""

    PORK_FREE = "sans_porc", "Sans porc"
    VEGETARIAN = "vegetarien", "Végétarien (sans viande)"
    MEAL_BASKET = "panier_repas", "Panier repas fourni (PAI)"
    OTHER = "autre", "Autre"


class TaxRegime(enum.Enum):
    CAF = "CAF"
    MSA = "MSA"
    OTHER = "Autre"


class Sex(enum.Enum):
    GIRL = "F"
    BOY = "M"


class Family(db.Model):
    id: Mapped[intpk]
    subscriber_code: Mapped[str] = mapped_column(sa.String(16), unique=True)
    name: Mapped[str] = mapped_column(sa.String(150))
    created_at: Mapped[timestamp]
    updated_at: Mapped[timestamp] = mapped_column(onupdate=utcnow)

    guardians: Mapped[list["Guardian"]] = relationship(
        back_populates="family", cascade="all, delete-orphan", order_by="Guardian.position"
    )
    children: Mapped[list["Child"]] = relationship(
        back_populates="family", cascade="all, delete-orphan", order_by="(Child.birth_date, Child.id)"
    )
    subscriptions: Mapped[list["Subscription"]] = relationship(back_populates="family")


class Guardian(FullName, db.Model):
    """A responsable légal (one or two per family)."""

    id: Mapped[intpk]
    family_id: Mapped[int] = mapped_column(sa.ForeignKey("family.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(sa.SmallInteger)
    civility: Mapped[Civility | None] = mapped_column(sa.Enum(Civility, native_enum=False, length=10))
    last_name: Mapped[str] = mapped_column(sa.String(100))
    first_name: Mapped[str] = mapped_column(sa.String(100))
    email: Mapped[str | None] = mapped_column(sa.String(254))
    phone: Mapped[str | None] = mapped_column(sa.String(30))
    birth_date: Mapped[date | None] = mapped_column(sa.Date)
    phone_home: Mapped[str | None] = mapped_column(sa.String(30))
    phone_work: Mapped[str | None] = mapped_column(sa.String(30))
    profession: Mapped[str | None] = mapped_column(sa.String(100))
    # Adresse
    address_line1: Mapped[str | None] = mapped_column(sa.String(150))
    address_line2: Mapped[str | None] = mapped_column(sa.String(150))
    postcode: Mapped[str | None] = mapped_column(sa.String(5))
    city: Mapped[str | None] = mapped_column(sa.String(100))
    # Informations fiscales
    tax_regime: Mapped[TaxRegime | None] = mapped_column(sa.Enum(TaxRegime, native_enum=False, length=10))
    allocataire_number: Mapped[str | None] = mapped_column(sa.String(20))
    quotient: Mapped[int | None]
    quotient_valid_until: Mapped[date | None] = mapped_column(sa.Date)
    # Données bancaires (IBAN shown masked everywhere)
    bank_holder: Mapped[str | None] = mapped_column(sa.String(100))
    iban: Mapped[str | None] = mapped_column(sa.String(34))
    bic: Mapped[str | None] = mapped_column(sa.String(11))
    sepa_mandate_ref: Mapped[str | None] = mapped_column(sa.String(35))

    family: Mapped[Family] = relationship(back_populates="guardians")

    __table_args__ = (
        sa.CheckConstraint("position IN (1, 2)", name="position_1_or_2"),
        sa.UniqueConstraint("family_id", "position", name="uq_guardian_family_position"),
    )


class Child(FullName, db.Model):
    id: Mapped[intpk]
    family_id: Mapped[int] = mapped_column(sa.ForeignKey("family.id", ondelete="CASCADE"), index=True)
    last_name: Mapped[str] = mapped_column(sa.String(100))
    first_name: Mapped[str] = mapped_column(sa.String(100))
    birth_date: Mapped[date] = mapped_column(sa.Date)
    sex: Mapped[Sex | None] = mapped_column(sa.Enum(Sex, native_enum=False, length=5))
    school: Mapped[str | None] = mapped_column(sa.String(100))
    school_class: Mapped[str | None] = mapped_column(sa.String(30))
    # Données sanitaires (sensitive: staff reads are audited)
    doctor_name: Mapped[str | None] = mapped_column(sa.String(100))
    doctor_phone: Mapped[str | None] = mapped_column(sa.String(30))
    allergies: Mapped[str | None] = mapped_column(sa.Text)
    diet: Mapped[Diet | None] = mapped_column(sa.Enum(Diet, native_enum=False, length=100))
    diet_other: Mapped[str | None] = mapped_column(sa.String(100))  # the precision of Diet.OTHER
    pai: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    vaccinations: Mapped[str | None] = mapped_column(sa.Text)
    health_notes: Mapped[str | None] = mapped_column(sa.Text)
    photo: Mapped[str | None] = mapped_column(sa.String(64))

    family: Mapped[Family] = relationship(back_populates="children")
    contacts: Mapped[list["AuthorizedContact"]] = relationship(
        back_populates="child", cascade="all, delete-orphan", order_by="AuthorizedContact.id"
    )
    authorizations: Mapped[list["ChildAuthorization"]] = relationship(
        back_populates="child", cascade="all, delete-orphan"
    )


class Subscription(db.Model):
    """A parent account's link to a family (Abonnement); ended, never deleted."""

    id: Mapped[intpk]
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user_account.id", ondelete="CASCADE"), index=True)
    family_id: Mapped[int] = mapped_column(sa.ForeignKey("family.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[timestamp]
    ended_at: Mapped[utc | None]

    user: Mapped[User] = relationship(back_populates="subscriptions")
    family: Mapped[Family] = relationship(back_populates="subscriptions")

    __table_args__ = (
        partial_unique_index("uq_subscription_active", "user_id", "family_id", where="ended_at IS NULL"),
    )


class SubscriptionAttempt(db.Model):
    """One try at the code abonné form, counted for the hourly limit."""

    id: Mapped[intpk]
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user_account.id", ondelete="CASCADE"), index=True)
    succeeded: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[timestamp] = mapped_column(index=True)


class Authorization(db.Model):
    """An authorisation the town asks about for every child (droit à l'image, sortie seul…)."""

    id: Mapped[intpk]
    label: Mapped[str] = mapped_column(sa.String(150))
    description: Mapped[str | None] = mapped_column(sa.Text)
    position: Mapped[int] = mapped_column(default=0)
    active: Mapped[bool] = mapped_column(default=True)


class ChildAuthorization(db.Model):
    """A validated answer (oui/non) of a child's family to one authorisation."""

    child_id: Mapped[int] = mapped_column(sa.ForeignKey("child.id", ondelete="CASCADE"), primary_key=True)
    authorization_id: Mapped[int] = mapped_column(
        sa.ForeignKey("authorization.id", ondelete="CASCADE"), primary_key=True
    )
    granted: Mapped[bool]

    child: Mapped[Child] = relationship(back_populates="authorizations")
    authorization: Mapped[Authorization] = relationship()


class AuthorizedContact(FullName, db.Model):
    """Contact habilité: an adult who may pick the child up and/or be called in an emergency."""

    id: Mapped[intpk]
    child_id: Mapped[int] = mapped_column(sa.ForeignKey("child.id", ondelete="CASCADE"), index=True)
    last_name: Mapped[str] = mapped_column(sa.String(100))
    first_name: Mapped[str] = mapped_column(sa.String(100))
    relationship_label: Mapped[str] = mapped_column(sa.String(50))
    phone: Mapped[str] = mapped_column(sa.String(30))
    can_pick_up: Mapped[bool] = mapped_column(default=True)
    emergency_call: Mapped[bool] = mapped_column(default=True)

    child: Mapped[Child] = relationship(back_populates="contacts")
