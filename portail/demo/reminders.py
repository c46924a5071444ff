"""Demo reminders: the demo's late invoices (see demo.billing) reminded at each step they have reached
by `now`, as the daily job sent them at REMINDER_MAIL_AT on those days, so that the staff's invoice
page shows its "Relances". An invoice late by fewer days than the first step has none yet."""

from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import current_app

from portail.demo import activities as demo_activities
from portail.extensions import db
from portail.formatting import PARIS, today_in_paris
from portail.models import Invoice, InvoiceKind, utcnow
from portail.services.billing import reminders


def load(now: datetime | None = None) -> int:
    """Run the reminders of every past day a step was reached on, at its time (the caller commits;
    call it after demo.billing's load); the mails, marked sent then."""
    now = now or utcnow()
    today = today_in_paris(now)
    dues = db.session.scalars(
        sa.select(Invoice.due_date)
        .where(
            Invoice.kind == InvoiceKind.INVOICE, Invoice.credited_by_id.is_(None), Invoice.due_date < today
        )
        .distinct()
    ).all()
    days = sorted({due + timedelta(days=step) for due in dues for step in reminders.steps()})
    queued = 0
    for day in days:
        at = datetime.combine(day, current_app.config["REMINDER_MAIL_AT"], PARIS)
        if at > now:
            break
        queued += reminders.queue_due(at)
        demo_activities.sent_then("invoice_reminder", at)
    return queued
