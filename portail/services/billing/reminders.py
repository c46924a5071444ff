"""Reminders (relances) of late invoices: at each step of REMINDER_STEPS (days after the due date,
Paris dates), one mail per parent account listing its families' late invoices, with a link to pay
each one; what each invoice was reminded is shown to the agents.

An invoice is reminded when it is in force (an invoice, not a credit note, not cancelled), not fully
paid, at least a step past its due date, and not reminded at that step or a later one. It is never
reminded while it is in a direct-debit file in force (the bank takes it), nor for an hour after a
parent started paying it online (the bank's answer is awaited). A family whose credits (credit notes,
payments beyond an invoice) cover its late invoices is not reminded: the mail would ask for money it
does not owe; a credit that covers part of them is deducted from the total asked.

Several steps due at once (the job did not run for weeks, or a step added to the settings): only the
highest is sent, worded as that step; the lower ones are passed, without a row (a step is due only
while it is the highest reached, so a passed one never comes back). A family without an activated
parent account gets its rows with no address: the agents see that nobody was told by mail.

Exactly once: each batch of families is one transaction that inserts the Reminder rows with
ON CONFLICT DO NOTHING (unique invoice and step) and queues the mails of the rows it won; a second job
running at the same time wins nothing and sends nothing. The job runs every minute and does the day's
work at REMINDER_MAIL_AT or the first run after it (a scheduler down at that time catches up); the
day is then marked done by a DailyMail row, so that the later runs cost one query.
"""

from collections import defaultdict
from datetime import date, datetime, timedelta
from itertools import islice

import sqlalchemy as sa
from flask import current_app

from portail.extensions import db
from portail.formatting import PARIS, euros, month_label, today_in_paris
from portail.models import (
    DailyMail,
    DirectDebit,
    Invoice,
    InvoiceKind,
    OnlinePayment,
    OnlinePaymentItem,
    OnlineState,
    Payment,
    Reminder,
    Subscription,
    User,
)
from portail.services import transactions
from portail.services.outbox import commit, queue_mails
from portail.services.transactions import upsert
from portail.urls import public_url

BATCH = 500  # families per transaction
MAIL = "invoice_reminders"  # the DailyMail's name: the day's reminders are done
# A parent who started paying online less than this ago is still at the bank's page, or its
# notification is on its way: no reminder now (the next day's run decides).
PAYING_FOR = timedelta(hours=1)


def steps() -> list[int]:
    """The configured steps, in days after the due date, ascending."""
    return sorted({step for step in current_app.config["REMINDER_STEPS"] if step > 0})


def run_daily(now: datetime) -> int | None:
    """The job's call, every minute: the day's reminders once it is REMINDER_MAIL_AT in Paris (the
    mails queued), None before that time or once the day is done (no query before the time, one after)."""
    local = now.astimezone(PARIS)
    if local.time() < current_app.config["REMINDER_MAIL_AT"]:
        return None
    day = local.date()
    if db.session.scalar(sa.select(sa.exists().where(DailyMail.name == MAIL, DailyMail.day == day))):
        db.session.rollback()  # (no transaction left open between two runs)
        return None
    queued = send_due(now)
    db.session.execute(upsert(DailyMail).values(name=MAIL, day=day, sent_at=now).on_conflict_do_nothing())
    commit()
    return queued


def send_due(now: datetime) -> int:
    """Send the reminders due at `now`, one transaction per batch of families (idempotent); return
    the mails queued."""
    configured = steps()
    if not configured:
        return 0
    today = today_in_paris(now)
    families = _due_families(today, now, configured)
    db.session.rollback()  # (each batch reads afresh in its own transaction)
    queued = 0
    ids = iter(families)
    while batch := list(islice(ids, BATCH)):
        queued += transactions.run(lambda batch=batch: _send_batch(batch, today, now, configured))
    return queued


def queue_due(now: datetime) -> int:
    """The reminders due at `now` queued in the current transaction, not committed (the demo's past
    days, in the transaction that loads it); the mails queued."""
    configured, today = steps(), today_in_paris(now)
    families = _due_families(today, now, configured) if configured else []
    return sum(
        _send_batch(families[start : start + BATCH], today, now, configured)
        for start in range(0, len(families), BATCH)
    )


def _due_families(today: date, now: datetime, configured: list[int]) -> list[int]:
    """The families with an invoice to remind at `now` (one query)."""
    step = _reached(today, configured)
    return db.session.scalars(
        sa.select(Invoice.family_id)
        .where(*_remindable(today, now), step.is_not(None), ~_reminded(step))
        .distinct()
        .order_by(Invoice.family_id)
    ).all()


def _reached(today: date, configured: list[int]) -> sa.ColumnElement:
    """The highest step an invoice has reached today (NULL: none yet)."""
    return sa.case(
        *((Invoice.due_date <= today - timedelta(days=step), step) for step in reversed(configured)),
        else_=sa.null(),
    )


def _paid() -> sa.ScalarSelect:
    """What is paid on the invoice of the row (correlated: read through the payments' index)."""
    return (
        sa.select(sa.func.coalesce(sa.func.sum(Payment.amount_cents), 0))
        .where(Payment.invoice_id == Invoice.id)
        .scalar_subquery()
    )


def _in_force() -> list[sa.ColumnElement]:
    return [Invoice.kind == InvoiceKind.INVOICE, Invoice.credited_by_id.is_(None)]


def _remindable(today: date, now: datetime) -> list[sa.ColumnElement]:
    """An invoice in force, past its due date, not fully paid, not in a direct-debit file in force,
    not being paid online right now nor paid online with another amount that the service checks."""
    debited = sa.exists().where(DirectDebit.invoice_id == Invoice.id, DirectDebit.rejected_at.is_(None))
    paying = sa.exists().where(
        OnlinePaymentItem.invoice_id == Invoice.id,
        OnlinePayment.id == OnlinePaymentItem.online_payment_id,
        sa.or_(
            sa.and_(OnlinePayment.state == OnlineState.PENDING, OnlinePayment.created_at > now - PAYING_FOR),
            OnlinePayment.state == OnlineState.MISMATCH,
        ),
    )
    return [
        *_in_force(),
        Invoice.due_date < today,
        Invoice.total_cents > _paid(),
        ~debited,
        ~paying,
    ]


def _reminded(step: sa.ColumnElement) -> sa.Exists:
    """The invoice was reminded at this step or a later one."""
    return sa.exists().where(Reminder.invoice_id == Invoice.id, Reminder.step >= step)


def _send_batch(family_ids: list[int], today: date, now: datetime, configured: list[int]) -> int:
    """A batch of families in six statements, whatever its size: their late invoices, their credits,
    the parents to tell, the Reminder rows this run wins, the mails of those (insert and ids)."""
    step = _reached(today, configured)
    late = db.session.execute(
        sa.select(
            Invoice.id,
            Invoice.family_id,
            Invoice.family_name,
            Invoice.number,
            Invoice.month,
            Invoice.due_date,
            (Invoice.total_cents - _paid()).label("left"),
            step.label("step"),
            _reminded(step).label("done"),
        )
        .where(Invoice.family_id.in_(family_ids), *_remindable(today, now))
        .order_by(Invoice.family_id, Invoice.due_date, Invoice.number)
    ).all()
    credits = _credits(family_ids)
    by_family: dict[int, list] = defaultdict(list)
    for row in late:
        by_family[row.family_id].append(row)
    due: dict[int, list] = {}  # the families to remind now: their invoices due at a step
    for family_id, rows in by_family.items():
        left = sum(row.left for row in rows)
        if any(row.step is not None and not row.done for row in rows) and left > credits.get(family_id, 0):
            due[family_id] = [row for row in rows if row.step is not None and not row.done]
    if not due:
        return 0
    parents: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for family_id, email, first_name in db.session.execute(
        sa.select(Subscription.family_id, User.email, User.first_name)
        .join(User, User.id == Subscription.user_id)
        .where(
            Subscription.family_id.in_(due),
            Subscription.ended_at.is_(None),
            User.activated_at.is_not(None),
            User.disabled_at.is_(None),
        )
        .order_by(User.email)
    ):
        parents[family_id].append((email, first_name))
    won = set(
        db.session.execute(
            upsert(Reminder)
            .values(
                [
                    {
                        "invoice_id": row.id,
                        "step": row.step,
                        "sent_at": now,
                        "email": ", ".join(email for email, _name in parents[family_id]),
                    }
                    for family_id, rows in due.items()
                    for row in rows
                ]
            )
            .on_conflict_do_nothing(index_elements=["invoice_id", "step"])
            .returning(Reminder.invoice_id)
        ).scalars()
    )
    won_by_family = {row.family_id for row in late if row.id in won}
    mails: dict[str, dict] = {}
    last = configured[-1]
    for family_id in sorted(won_by_family):
        rows = by_family[family_id]
        for email, first_name in parents[family_id]:
            context = mails.setdefault(
                email,
                {"first_name": first_name, "step": 0, "final": False, "families": []},
            )
            reminded = due[family_id]
            context["step"] = max(context["step"], *(row.step for row in reminded))
            context["final"] = context["final"] or (
                len(configured) > 1 and any(row.step == last for row in reminded)
            )
            context["families"].append(_family_entry(rows, credits.get(family_id, 0), today))
    for context in mails.values():
        context |= {
            "count": sum(len(family["invoices"]) for family in context["families"]),
            "online": bool(current_app.config.get("PAYMENT_PROVIDER")),
            "address": current_app.config.get("TOWN_ADDRESS", ""),
            "home": public_url("billing.home"),
        }
    return len(queue_mails("invoice_reminder", list(mails.items())))


def _credits(family_ids: list[int]) -> dict[int, int]:
    """What each family has in its favour beyond its invoices in force (credit notes left over after
    the invoices they cancelled, payments beyond an invoice): one query."""
    paid_by_invoice = (
        sa.select(Payment.invoice_id, sa.func.sum(Payment.amount_cents).label("paid"))
        .join(Invoice, Invoice.id == Payment.invoice_id)
        .where(Invoice.family_id.in_(family_ids))
        .group_by(Payment.invoice_id)
        .subquery()
    )
    paid = sa.func.coalesce(paid_by_invoice.c.paid, 0)
    owed = sa.case((sa.and_(*_in_force(), Invoice.total_cents > paid), Invoice.total_cents - paid), else_=0)
    rows = db.session.execute(
        sa.select(Invoice.family_id, sa.func.sum(owed) - sa.func.sum(Invoice.total_cents - paid))
        .outerjoin(paid_by_invoice, paid_by_invoice.c.invoice_id == Invoice.id)
        .where(Invoice.family_id.in_(family_ids))
        .group_by(Invoice.family_id)
    )
    return {family_id: max(int(credit or 0), 0) for family_id, credit in rows}


def _family_entry(rows: list, credit: int, today: date) -> dict:
    """A family's late invoices in a mail (plain JSON, kept in the outbox row)."""
    left = sum(row.left for row in rows)
    return {
        "name": rows[0].family_name,
        "invoices": [
            {
                "number": row.number,
                "period": month_label(row.month),
                "left": euros(row.left),
                "due": row.due_date.isoformat(),
                "days_late": (today - row.due_date).days,
                "link": public_url("billing.invoice_show", family_id=row.family_id, invoice_id=row.id),
            }
            for row in rows
        ],
        "credit": euros(min(credit, left)) if credit else None,
        "total": euros(left - min(credit, left)),
    }


def of_invoice(invoice_id: int) -> list[Reminder]:
    """An invoice's reminders, by step (the staff's invoice page)."""
    return db.session.scalars(
        sa.select(Reminder).where(Reminder.invoice_id == invoice_id).order_by(Reminder.step)
    ).all()


def last_of(invoice_ids: list[int]) -> dict[int, Reminder]:
    """The latest reminder of each invoice that has one (the staff's list of invoices): one query."""
    if not invoice_ids:
        return {}
    latest = (
        sa.select(Reminder.invoice_id, sa.func.max(Reminder.step).label("step"))
        .where(Reminder.invoice_id.in_(invoice_ids))
        .group_by(Reminder.invoice_id)
        .subquery()
    )
    rows = db.session.scalars(
        sa.select(Reminder).join(
            latest, sa.and_(latest.c.invoice_id == Reminder.invoice_id, latest.c.step == Reminder.step)
        )
    )
    return {reminder.invoice_id: reminder for reminder in rows}
