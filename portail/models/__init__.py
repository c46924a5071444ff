"""All models, imported here so Alembic and the app see every table."""

from portail.models.accounts import AccountToken, Civility, Role, TokenPurpose, User
from portail.models.audit import AuditEvent
from portail.models.families import Child, Family, Guardian, Subscription, SubscriptionAttempt
from portail.models.outbox import OutboxMessage, OutboxStatus
from portail.models.types import utcnow

__all__ = [
    "AccountToken",
    "AuditEvent",
    "Child",
    "Civility",
    "Family",
    "Guardian",
    "OutboxMessage",
    "OutboxStatus",
    "Role",
    "Subscription",
    "SubscriptionAttempt",
    "TokenPurpose",
    "User",
    "utcnow",
]
