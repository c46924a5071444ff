"""Accounts: parents and staff, and their single-use e-mail tokens."""

import enum
import secrets

import sqlalchemy as sa
from flask_login import UserMixin
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portail.extensions import db
from portail.models.types import FullName, Labelled, intpk, timestamp, utc


class Role(Labelled):
    PARENT = "parent", "Usager"
    AGENT = "agent", "Gestionnaire"
    ANIMATOR = "animator", "Animateur"  # the registers (Pointage) only
    ADMIN = "admin", "Administrateur"

    @property
    def is_staff(self) -> bool:
        return self is not Role.PARENT


class Civility(enum.Enum):
    MADAME = "Mme"
    MONSIEUR = "M."


class TokenPurpose(enum.Enum):
    ACTIVATION = "activation"
    RESET = "reset"
    EMAIL_CHANGE = "email_change"


class ReceiptsChoice(Labelled):
    IMMEDIATE = "immediate", "À chaque demande (accusé de réception immédiat)"
    NONE = "none", "Aucun accusé de réception"


class DecisionsChoice(Labelled):
    IMMEDIATE = "immediate", "Un e-mail à chaque décision"
    TWICE_DAILY = "twice_daily", "Un récapitulatif à 13 h et à 18 h"
    DAILY = "daily", "Un récapitulatif par jour, à 18 h"


def new_session_token() -> str:
    """A random value that, once changed, ends every session of the account."""
    return secrets.token_urlsafe(24)


class User(FullName, UserMixin, db.Model):
    __tablename__ = "user_account"

    id: Mapped[intpk]
    email: Mapped[str] = mapped_column(sa.String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    civility: Mapped[Civility | None] = mapped_column(sa.Enum(Civility, native_enum=False, length=10))
    last_name: Mapped[str] = mapped_column(sa.String(100))
    first_name: Mapped[str] = mapped_column(sa.String(100))
    phone: Mapped[str | None] = mapped_column(sa.String(30))
    role: Mapped[Role] = mapped_column(sa.Enum(Role, native_enum=False, length=10), default=Role.PARENT)
    session_token: Mapped[str] = mapped_column(sa.String(64), default=new_session_token)
    created_at: Mapped[timestamp]
    activated_at: Mapped[utc | None]
    last_login_at: Mapped[utc | None]
    disabled_at: Mapped[utc | None]
    # The planning as the parent left it, for the next visit: the view per kind of screen ("etroit",
    # "large") and what was switched off per family ("masques": {family id: {"enfants": [ids],
    # "activites": [ids]}}).
    planning_choice: Mapped[dict | None] = mapped_column(sa.JSON)
    # Mon compte → Notifications: booking receipts at once or none (read when a request is sent).
    receipts: Mapped[ReceiptsChoice] = mapped_column(
        sa.Enum(ReceiptsChoice, native_enum=False, length=12),
        default=ReceiptsChoice.IMMEDIATE,
        server_default=ReceiptsChoice.IMMEDIATE.name,
    )

    subscriptions: Mapped[list["Subscription"]] = relationship(  # noqa: F821
        back_populates="user", cascade="all, delete-orphan"
    )

    __table_args__ = (sa.CheckConstraint("email = lower(email)", name="email_lowercase"),)

    def get_id(self) -> str:
        """Session identity: the id bound to the current session token (see load_user)."""
        return f"{self.id}:{self.session_token}"

    @property
    def is_authenticated(self) -> bool:
        """A loaded account is authenticated: `load_user` only returns active accounts with the
        session's current token. (Flask-Login's default re-reads `is_active`, i.e. the row, after
        each commit.)"""
        return True

    @property
    def is_active(self) -> bool:
        return self.activated_at is not None and self.disabled_at is None

    @property
    def is_staff(self) -> bool:
        return self.role.is_staff

    @property
    def home_endpoint(self) -> str:
        """Where the account lands after logging in: the parent's space, the registers for an
        animator, the dashboard for the other staff."""
        if self.role is Role.ANIMATOR:
            return "gestion.registers"
        return "gestion.dashboard" if self.is_staff else "account.home"

    def end_all_sessions(self) -> None:
        """Invalidate every session cookie issued so far for this account."""
        self.session_token = new_session_token()


class AccountToken(db.Model):
    """A single-use link token; only its SHA-256 is stored."""

    id: Mapped[intpk]
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user_account.id", ondelete="CASCADE"), index=True)
    purpose: Mapped[TokenPurpose] = mapped_column(sa.Enum(TokenPurpose, native_enum=False, length=20))
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[timestamp]
    expires_at: Mapped[utc]
    used_at: Mapped[utc | None]
    # The new address, for an e-mail change.
    new_email: Mapped[str | None] = mapped_column(sa.String(254))

    user: Mapped[User] = relationship()


class NotificationChoice(db.Model):
    """How a parent chose to receive the decisions on its requests, from `from_at` on (the latest row
    is in force; none: the 13:00/18:00 digests). Kept as a history: a decision is mailed as the
    choice in force when it was made says, so a change of choice never sends a decision twice nor
    loses one. (The receipts' choice is the account's `receipts`: it applies when a request is sent.)"""

    id: Mapped[intpk]
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user_account.id", ondelete="CASCADE"))
    decisions: Mapped[DecisionsChoice] = mapped_column(sa.Enum(DecisionsChoice, native_enum=False, length=12))
    from_at: Mapped[timestamp]

    __table_args__ = (sa.Index("ix_notification_choice_user_from", "user_id", "from_at"),)
