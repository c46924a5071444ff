"""RQ jobs. They take ids, never ORM objects, and run inside the worker's app context."""

from portail.services import accounts, outbox


def send_mail(message_id: int) -> bool:
    """Send one outbox mail (idempotent)."""
    return outbox.deliver(message_id)


def relay_outbox() -> int:
    """Re-enqueue outbox mails that were never handed to a worker."""
    return outbox.relay()


def purge_unactivated_accounts() -> int:
    """Delete accounts never activated within the allowed delay."""
    return accounts.purge_unactivated()
