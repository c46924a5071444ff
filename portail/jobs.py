"""RQ jobs. They take ids, never ORM objects, and run inside the worker's app context."""

from portail.models import utcnow
from portail.services import accounts, billing, digests, documents, outbox
from portail.services.outbox import commit


def send_mail(message_id: int) -> bool:
    """Send one outbox mail (idempotent)."""
    return outbox.deliver(message_id)


def relay_outbox() -> int:
    """Re-enqueue outbox mails that were never handed to a worker."""
    return outbox.relay()


def purge_unactivated_accounts() -> int:
    """Delete accounts never activated within the allowed delay."""
    return accounts.purge_unactivated()


def dispatch_digests() -> int:
    """Send the 13:00 / 18:00 digest windows that are due (run every minute; catches up missed windows)."""
    return digests.dispatch_due(utcnow())


def documents_expiry() -> dict[str, int]:
    """Expire the documents past their date and warn parents 30 days before (idempotent, hourly)."""
    result = documents.expiry(utcnow())
    commit()
    return result


def billing_run(run_id: int) -> int:
    """Bill a month (started by an agent); the run's row shows its progress. Returns the invoices issued."""
    return billing.run(run_id).invoices
