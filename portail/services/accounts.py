"""Account life cycle: sign-up, activation, login, password reset and change, purge."""

import enum
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app

from portail.extensions import db
from portail.models import Civility, Family, Role, TokenPurpose, User, utcnow
from portail.queue import enqueue
from portail.services import passwords, subscriptions, tokens
from portail.services.outbox import queue_mail
from portail.services.transactions import claim
from portail.urls import public_url

# A link asked again within this time is the same request sent twice: its first mail is on its way.
JUST_SENT = timedelta(minutes=1)


@dataclass
class SignUp:
    civility: Civility | None
    last_name: str
    first_name: str
    email: str
    phone: str | None
    password: str


def normalize_email(email: str) -> str:
    """E-mail addresses are compared case-insensitively."""
    return email.strip().lower()


def find_by_email(email: str) -> User | None:
    """The account with this e-mail, if any."""
    return db.session.scalar(sa.select(User).where(User.email == normalize_email(email)))


def mail_link(
    user: User,
    purpose: TokenPurpose,
    template: str,
    endpoint: str,
    ttl_setting: str,
    recipient: str | None = None,
    **context,
) -> None:
    """Issue a single-use token and queue the mail carrying its link (valid `ttl_setting`)."""
    ttl = current_app.config[ttl_setting]
    raw = tokens.issue(user, purpose, ttl, new_email=recipient)
    queue_mail(
        template,
        recipient or user.email,
        first_name=user.first_name,
        link=public_url(endpoint, token=raw),
        hours=int(ttl.total_seconds() // 3600),
        **context,
    )


def _send_activation(user: User) -> None:
    if not _just_sent(user, TokenPurpose.ACTIVATION):
        mail_link(user, TokenPurpose.ACTIVATION, "activation", "auth.activate", "ACTIVATION_TTL")


def _just_sent(user: User, purpose: TokenPurpose) -> bool:
    """Whether a link of this purpose left moments ago and still works: the same form sent twice
    (a double click, two tabs, a sign-up whose copy lost the race for the address) sends one
    link, instead of several mails of which only the newest works. Copies take turns on the
    account, so the second sees the first's link."""
    claim(user)
    return tokens.recently_issued(user, purpose, within=JUST_SENT)


def register(data: SignUp, family: Family | None = None) -> User | None:
    """Create an unactivated account and queue its activation mail.

    When the e-mail is already taken nothing is created; its owner is told by mail instead,
    so the page shown is the same either way (no account enumeration). Returns the new user.
    """
    # Hashed whether or not the account exists: the hash is most of the request's time.
    password_hash = passwords.hash_password(data.password)
    existing = find_by_email(data.email)
    if existing is not None:
        if existing.activated_at is None:
            _send_activation(existing)
        else:
            queue_mail(
                "activation_existing",
                existing.email,
                first_name=existing.first_name,
                login_link=public_url("auth.login"),
                reset_link=public_url("auth.forgot_password"),
            )
        return None
    user = User(
        civility=data.civility,
        last_name=data.last_name.strip(),
        first_name=data.first_name.strip(),
        email=normalize_email(data.email),
        phone=(data.phone or "").strip() or None,
        password_hash=password_hash,
        role=Role.PARENT,
    )
    db.session.add(user)
    db.session.flush()
    if family is not None:
        subscriptions.subscribe(user, family)
    _send_activation(user)
    return user


def activate(raw_token: str) -> User | None:
    """Activate the account of a valid activation token; None when the link is invalid."""
    user = tokens.consume(raw_token, TokenPurpose.ACTIVATION)
    if user is None:
        return None
    if user.activated_at is None:
        user.activated_at = utcnow()
    return user


def resend_activation(email: str) -> None:
    """Have a new activation link sent if the account exists and is not activated (silent otherwise)."""
    _in_background("portail.jobs.activation_mail", send_activation_again, normalize_email(email))


def send_activation_again(email: str) -> None:
    """Queue a new activation link for an unactivated account (nothing for another address)."""
    user = find_by_email(email)
    if user is not None and user.activated_at is None:
        _send_activation(user)


def _in_background(job: str, service, email: str) -> None:
    """Hand an account look-up and its mail to the worker.

    The request then does the same work, one enqueue, whether or not the account exists: its
    duration cannot tell (a token and a mail cost a few milliseconds more than nothing). Without
    Redis the service runs now: mail matters more than timing during an outage.
    """
    if not enqueue(job, email):
        service(email)


class LoginOutcome(enum.Enum):
    OK = "ok"
    INVALID = "invalid"
    NOT_ACTIVATED = "not_activated"


def authenticate(user: User | None, password: str) -> LoginOutcome:
    """Check the password of the account found for an e-mail (None: no account, same time and answer)."""
    if not passwords.verify_password(user.password_hash if user else None, password):
        return LoginOutcome.INVALID
    if user.disabled_at is not None:
        return LoginOutcome.INVALID
    if user.activated_at is None:
        return LoginOutcome.NOT_ACTIVATED
    if passwords.needs_rehash(user.password_hash):
        user.password_hash = passwords.hash_password(password)
    user.last_login_at = utcnow()
    return LoginOutcome.OK


def warn_of_attack(email: str) -> None:
    """Have the owner of `email`, if any, told that many wrong passwords were tried on their account."""
    _in_background("portail.jobs.login_alert_mail", send_login_alert, normalize_email(email))


def send_login_alert(email: str) -> None:
    """Queue the mail telling an account's owner that wrong passwords are being tried on it."""
    user = find_by_email(email)
    if user is None or user.disabled_at is not None or user.activated_at is None:
        return
    queue_mail(
        "login_attack",
        user.email,
        first_name=user.first_name,
        reset_link=public_url("auth.forgot_password"),
    )


def request_password_reset(email: str) -> None:
    """Have a reset link mailed to an activated account (silent for an unknown one)."""
    _in_background("portail.jobs.password_reset_mail", send_password_reset, normalize_email(email))


def send_password_reset(email: str) -> None:
    """Queue a reset link for an activated account, an activation link for an unactivated one."""
    user = find_by_email(email)
    if user is None or user.disabled_at is not None:
        return
    if user.activated_at is None:
        _send_activation(user)
        return
    if not _just_sent(user, TokenPurpose.RESET):
        mail_link(user, TokenPurpose.RESET, "password_reset", "auth.reset_password", "RESET_TTL")


def set_password(user: User, new_password: str) -> None:
    """Store a new password, end every session and tell the owner by mail."""
    user.password_hash = passwords.hash_password(new_password)
    user.end_all_sessions()
    queue_mail(
        "password_changed",
        user.email,
        first_name=user.first_name,
        reset_link=public_url("auth.forgot_password"),
    )


def reset_password(raw_token: str, new_password: str) -> User | None:
    """Use a reset token to set a new password; None when the link is invalid."""
    user = tokens.consume(raw_token, TokenPurpose.RESET)
    if user is None:
        return None
    set_password(user, new_password)
    return user


def purge_unactivated(now=None) -> int:
    """Delete parent accounts left unactivated past the allowed delay; return how many."""
    now = now or utcnow()
    limit = now - current_app.config["UNACTIVATED_PURGE_AFTER"]
    result = db.session.execute(
        sa.delete(User).where(User.activated_at.is_(None), User.role == Role.PARENT, User.created_at < limit)
    )
    db.session.commit()
    return result.rowcount


def request_email_change(user: User, new_email: str) -> None:
    """Mail a confirmation link to the new address; the login changes only once it is followed.

    When the address belongs to another account nothing is sent to it, and the page says the
    same thing (no enumeration); the change would be refused at confirmation anyway.
    """
    new_email = normalize_email(new_email)
    if find_by_email(new_email) is not None:
        return
    mail_link(
        user,
        TokenPurpose.EMAIL_CHANGE,
        "email_change",
        "account.confirm_email",
        "ACTIVATION_TTL",
        recipient=new_email,
    )


def confirm_email_change(raw_token: str) -> User | None:
    """Apply a confirmed e-mail change; None when the link is invalid or the address got taken."""
    token = tokens.consume_token(raw_token, TokenPurpose.EMAIL_CHANGE)
    if token is None or find_by_email(token.new_email) is not None:
        return None
    user = db.session.get(User, token.user_id)
    old_email = user.email
    user.email = token.new_email
    user.end_all_sessions()
    queue_mail("email_changed", old_email, first_name=user.first_name, new_email=user.email)
    return user


def export_data(user: User) -> dict:
    """Everything the portal holds about this account and the families it sees (RGPD)."""
    from portail.services.subscriptions import active_subscriptions

    def person(obj, *fields):
        return {field: _plain(getattr(obj, field)) for field in fields}

    return {
        "compte": person(
            user,
            "civility",
            "last_name",
            "first_name",
            "email",
            "phone",
            "created_at",
            "activated_at",
            "last_login_at",
        ),
        "abonnements": [
            {
                "famille": subscription.family.name,
                "depuis": _plain(subscription.created_at),
                "responsables": [
                    person(g, "civility", "last_name", "first_name", "email", "phone")
                    for g in subscription.family.guardians
                ],
                "enfants": [
                    person(c, "last_name", "first_name", "birth_date") for c in subscription.family.children
                ],
            }
            for subscription in active_subscriptions(user)
        ],
    }


def _plain(value):
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "value"):
        return value.value
    return value


def delete_account(user: User) -> None:
    """Delete a parent account and its links; the families' files stay with the town."""
    db.session.delete(user)
