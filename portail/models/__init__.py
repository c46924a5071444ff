"""All models, imported here so Alembic and the app see every table."""

from portail.models.accounts import AccountToken, Civility, Role, TokenPurpose, User
from portail.models.activities import (
    Activity,
    ActivityDay,
    Booking,
    BookingState,
    ClosingDay,
    DeadlineKind,
    Enrolment,
    LineState,
    OpenPeriod,
    Request,
    RequestKind,
    RequestLine,
    ValidationMode,
)
from portail.models.audit import AuditEvent
from portail.models.dossier import ChangeAction, ChangeRequest, ChangeStatus
from portail.models.families import (
    Authorization,
    AuthorizedContact,
    Child,
    ChildAuthorization,
    Family,
    Guardian,
    Sex,
    Subscription,
    SubscriptionAttempt,
    TaxRegime,
)
from portail.models.outbox import OutboxMessage, OutboxStatus
from portail.models.requests import Digest, DigestRun, DigestWindow, EventKind, RequestEvent, RequestRead
from portail.models.types import utcnow

__all__ = [
    "Digest",
    "DigestRun",
    "DigestWindow",
    "EventKind",
    "RequestEvent",
    "RequestRead",
    "AccountToken",
    "Activity",
    "ActivityDay",
    "Booking",
    "BookingState",
    "ClosingDay",
    "DeadlineKind",
    "Enrolment",
    "LineState",
    "OpenPeriod",
    "Request",
    "RequestKind",
    "RequestLine",
    "ValidationMode",
    "Authorization",
    "AuthorizedContact",
    "ChangeAction",
    "ChangeRequest",
    "ChangeStatus",
    "ChildAuthorization",
    "Sex",
    "TaxRegime",
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
