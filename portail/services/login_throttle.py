"""Login throttling that stops password guessing without letting a stranger lock the owner out.

The policy (README, "Login throttling"), counting wrong passwords only:
- per client IP, whatever the account: 20 a minute, 100 an hour (a decorator on the login view);
- per account and client IP: 5 per 15 minutes, 20 a day;
- per account, over every client without a known-device cookie for it: 10 per 15 minutes, 30 an
  hour, 100 a day, so the waits grow from 15 minutes to a day (at most 100 guesses a day, against
  passwords of 10^10 guesses or more);
- a browser that logged in to the account before carries a signed known-device cookie (OWASP's
  device cookies): its attempts count against that cookie only (5 per 15 minutes, 20 a day), so
  the owner still gets in while strangers are held back;
- a new password (reset or change) starts every count of the account afresh;
- the first time in a day that the account limit is reached, the owner is told by mail.
"""

import hashlib
import logging
import secrets
from dataclasses import dataclass

from flask import current_app
from itsdangerous import BadSignature, URLSafeTimedSerializer
from limits import RateLimitItem, parse, parse_many

from portail.extensions import limiter
from portail.models import User

log = logging.getLogger(__name__)

PER_IP = "20 per minute;100 per hour"
PER_PAIR = parse_many("5 per 15 minutes;20 per day")
PER_ACCOUNT = parse_many("10 per 15 minutes;30 per hour;100 per day")
PER_DEVICE = parse_many("5 per 15 minutes;20 per day")
ALERT = parse("1 per day")

DEVICE_COOKIE = "portail_appareil"
DEVICE_MAX_AGE = 365 * 24 * 3600
DEVICES_KEPT = 5  # accounts remembered by one browser (a family computer)


@dataclass(frozen=True)
class Attempt:
    """One login attempt: the e-mail tried, its account (if any), the client and its device cookie."""

    email: str
    user: User | None
    ip: str
    device: str | None  # the known-device id for this account, when the browser has one

    @property
    def account_key(self) -> tuple[str, str]:
        # The account's counts are keyed by its current password, so a new one starts them afresh.
        epoch = hashlib.sha256(self.user.password_hash.encode()).hexdigest()[:16] if self.user else "-"
        return self.email, epoch

    def limits(self) -> list[tuple[RateLimitItem, tuple[str, ...]]]:
        """The limits this attempt counts against, each with its storage key."""
        if self.device:
            return [(item, ("login-device", self.device)) for item in PER_DEVICE]
        return [(item, ("login-pair", *self.account_key, self.ip)) for item in PER_PAIR] + [
            (item, ("login-account", *self.account_key)) for item in PER_ACCOUNT
        ]


def allowed(attempt: Attempt) -> bool:
    """Whether the attempt may check a password now."""
    try:
        return all(limiter.limiter.test(item, *keys) for item, keys in attempt.limits())
    except Exception as error:  # storage down: like Flask-Limiter's RATELIMIT_SWALLOW_ERRORS
        log.warning("login throttle unavailable: %s", error)
        return True


def failed(attempt: Attempt) -> bool:
    """Count a wrong password; True the first time in a day the account limit is reached (warn the owner)."""
    try:
        for item, keys in attempt.limits():
            limiter.limiter.hit(item, *keys)
        account = ("login-account", *attempt.account_key)
        if attempt.device or all(limiter.limiter.test(item, *account) for item in PER_ACCOUNT):
            return False
        return limiter.limiter.hit(ALERT, "login-alert", attempt.email)
    except Exception as error:
        log.warning("login throttle unavailable: %s", error)
        return False


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="known-device")


def _devices(cookie: str | None) -> list[list]:
    """The (account id, device id) pairs of a known-device cookie; none when it is forged or too old."""
    if not cookie:
        return []
    try:
        devices = _serializer().loads(cookie, max_age=DEVICE_MAX_AGE)
    except BadSignature:
        return []
    return [entry for entry in devices if isinstance(entry, list) and len(entry) == 2]


def device_of(cookie: str | None, user: User | None) -> str | None:
    """The device id this browser got when it last logged in to `user`'s account, if it did."""
    if user is None:
        return None
    return next((device for user_id, device in _devices(cookie) if user_id == user.id), None)


def remember_device(cookie: str | None, user: User) -> str:
    """The known-device cookie after a successful login to `user`'s account (a new device id each time)."""
    others = [entry for entry in _devices(cookie) if entry[0] != user.id]
    return _serializer().dumps([[user.id, secrets.token_urlsafe(16)], *others][:DEVICES_KEPT])
