"""RQ jobs. They take ids, never ORM objects, and run inside the worker's app context."""

from flask import current_app

from portail import bookings
from portail.models import utcnow
from portail.services import accounts, billing, digests, documents, headcounts, outbox
from portail.services.billing import attestation_bulk, reminders
from portail.services.outbox import commit


def send_mail(message_id: int) -> bool:
    """Send one outbox mail (idempotent)."""
    return outbox.deliver(message_id)


def password_reset_mail(email: str) -> None:
    """Queue the reset link asked for `email`, if it has an account (see accounts._in_background)."""
    with _links():
        accounts.send_password_reset(email)
        commit()


def activation_mail(email: str) -> None:
    """Queue a new activation link asked for `email`, if it has an unactivated account."""
    with _links():
        accounts.send_activation_again(email)
        commit()


def login_alert_mail(email: str) -> None:
    """Queue the warning that wrong passwords are being tried on the account of `email`, if any."""
    with _links():
        accounts.send_login_alert(email)
        commit()


def _links():
    """A request context on PUBLIC_URL, so url_for builds the mail's links (never from a Host header)."""
    return current_app.test_request_context(base_url=current_app.config["PUBLIC_URL"])


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


def waiting_lists() -> dict[str, int]:
    """The waiting lists' minute: offers not confirmed in time passed to the next in line, lines past
    their booking deadline closed, free places offered (each change once, whatever the workers)."""
    return bookings.tend_lines(utcnow())


def billing_run(run_id: int) -> int:
    """Bill a month (started by an agent); the run's row shows its progress. Returns the invoices issued."""
    return billing.run(run_id).invoices


def kitchen_headcounts_mail() -> bool:
    """Queue the kitchen's headcounts mail once a day, at or after its time (run every minute)."""
    return headcounts.send_kitchen_mail(utcnow())


def invoice_reminders() -> int | None:
    """Send the day's reminders of late invoices at REMINDER_MAIL_AT (run every minute; a missed time
    is caught up, a second run sends nothing twice); the mails queued, None when not due."""
    return reminders.run_daily(utcnow())


def test_bank_notification(path: str, fields: dict, delay: float, times: int) -> list[int]:
    """The test bank's notification (development and tests): posted to the portal's notification
    URL `times` times after `delay` seconds, as a provider's server would; the answers' statuses."""
    import time

    time.sleep(delay)
    client = current_app.test_client()
    return [client.post(path, data=fields).status_code for _ in range(times)]


def attestations(year: int) -> int:
    """Make the year's attestations de frais de garde in one PDF (asked by an agent); the pages made."""
    return attestation_bulk.run(year, utcnow())["total"]
