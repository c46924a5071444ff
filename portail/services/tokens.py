"""Single-use e-mail link tokens (activation, password reset)."""

import hashlib
import secrets
from datetime import timedelta

import sqlalchemy as sa

from portail.extensions import db
from portail.models import AccountToken, TokenPurpose, User, utcnow


def _digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def issue(user: User, purpose: TokenPurpose, ttl: timedelta, new_email: str | None = None) -> str:
    """Create a token (256 random bits) for `user`, revoking that user's older ones of the purpose."""
    now = utcnow()
    db.session.execute(
        sa.update(AccountToken)
        .where(
            AccountToken.user_id == user.id,
            AccountToken.purpose == purpose,
            AccountToken.used_at.is_(None),
        )
        .values(used_at=now)
    )
    raw = secrets.token_urlsafe(32)
    db.session.add(
        AccountToken(
            user_id=user.id,
            purpose=purpose,
            token_hash=_digest(raw),
            created_at=now,
            expires_at=now + ttl,
            new_email=new_email,
        )
    )
    return raw


def consume_token(raw: str, purpose: TokenPurpose) -> AccountToken | None:
    """Mark the token used and return it, or None when unknown, used or expired.

    The update is conditional so two simultaneous uses cannot both succeed.
    """
    now = utcnow()
    token = db.session.scalar(
        sa.select(AccountToken).where(
            AccountToken.token_hash == _digest(raw), AccountToken.purpose == purpose
        )
    )
    if token is None or token.used_at is not None or token.expires_at <= now:
        return None
    claimed = db.session.execute(
        sa.update(AccountToken)
        .where(AccountToken.id == token.id, AccountToken.used_at.is_(None))
        .values(used_at=now)
    )
    return token if claimed.rowcount == 1 else None


def consume(raw: str, purpose: TokenPurpose) -> User | None:
    """Use the token and return its user, or None when unknown, used or expired."""
    token = consume_token(raw, purpose)
    return None if token is None else db.session.get(User, token.user_id)


def peek(raw: str, purpose: TokenPurpose) -> User | None:
    """Return the token's user when it is still valid, without using it."""
    token = db.session.scalar(
        sa.select(AccountToken).where(
            AccountToken.token_hash == _digest(raw), AccountToken.purpose == purpose
        )
    )
    if token is None or token.used_at is not None or token.expires_at <= utcnow():
        return None
    return token.user


def recently_issued(
    user: User, purpose: TokenPurpose, new_email: str | None = None, within=timedelta(minutes=2)
) -> bool:
    """Whether a link of this purpose (and address) was just issued to the user and is still
    valid: the same request sent twice (a double click, two tabs) sends one link."""
    return db.session.scalar(
        sa.select(
            sa.exists().where(
                AccountToken.user_id == user.id,
                AccountToken.purpose == purpose,
                AccountToken.new_email == new_email,  # (None: IS NULL)
                AccountToken.used_at.is_(None),
                AccountToken.created_at >= utcnow() - within,
            )
        )
    )


def applied_email_change(raw: str) -> bool:
    """Whether this e-mail change link was just used and its address is the account's login now
    (the confirmation sent twice: a double click, two tabs)."""
    token = db.session.scalar(
        sa.select(AccountToken).where(
            AccountToken.token_hash == _digest(raw), AccountToken.purpose == TokenPurpose.EMAIL_CHANGE
        )
    )
    if token is None or token.used_at is None or token.used_at < utcnow() - timedelta(minutes=2):
        return False
    return token.user.email == token.new_email
