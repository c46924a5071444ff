"""Staff accounts (agents and admins), kept by an admin: creation with a welcome mail, disabling."""

import secrets

import sqlalchemy as sa

from portail.extensions import db
from portail.models import Civility, Role, TokenPurpose, User, utcnow
from portail.services import accounts, passwords
from portail.services.audit import record
from portail.services.transactions import TWIN_WITHIN, claim, twin


class EmailTaken(ValueError):
    """Another account already has this e-mail address."""


def members() -> list[User]:
    """Every staff account, by name."""
    return list(
        db.session.scalars(
            sa.select(User).where(User.role != Role.PARENT).order_by(User.last_name, User.first_name)
        )
    )


def create(
    admin: User, civility: Civility | None, last_name: str, first_name: str, email: str, role: Role
) -> tuple[User, bool]:
    """Create a staff account and mail its holder a link to set a password; audited.

    Returns the account and whether it is new: the same form sent twice (a double click) finds the
    first one's account. Raises EmailTaken."""
    email = email.strip().lower()
    claim(admin)  # (the same form sent twice: the second copy finds the account just made)
    if (done := twin(User, email=email, role=role, within=TWIN_WITHIN)) is not None:
        return done, False
    if db.session.scalar(sa.select(User.id).where(User.email == email)) is not None:
        raise EmailTaken(email)
    user = User(
        civility=civility,
        last_name=last_name,
        first_name=first_name,
        email=email,
        role=role,
        password_hash=passwords.hash_password(secrets.token_urlsafe(32)),
        activated_at=utcnow(),
    )
    db.session.add(user)
    db.session.flush()
    accounts.mail_link(
        user,
        TokenPurpose.RESET,
        "staff_welcome",
        "auth.reset_password",
        "ACTIVATION_TTL",
        role=user.role.label,
    )
    record(admin, "staff.created", "user", user.id, f"{user.email} ({user.role.label})")
    return user, True


def set_enabled(user: User, enable: bool, admin: User) -> None:
    """Disable a staff account (its sessions end) or enable it again; audited, nothing if already so."""
    if enable is not (user.disabled_at is not None):
        return
    claim(user, disabled_at=user.disabled_at)
    if enable:
        user.disabled_at = None
    else:
        user.disabled_at = utcnow()
        user.end_all_sessions()
    record(admin, "staff.enabled" if enable else "staff.disabled", "user", user.id, user.email)
