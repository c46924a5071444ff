"""Paying invoices online: from the parent's click to the provider's notification.

`start` records what the parent is about to pay (an `OnlinePayment` and its invoices, each for what
is left to pay on it) and gives the address of the provider's page. The invoices are paid only by
`notify`, with a notification the provider verified (`providers`): never by the browser's return.
A notification repeated, replayed or sent twice at once pays once: the payment's row is claimed
while still pending, and a payment is recorded at most once per (online payment, invoice) by a
unique constraint. A notification whose amount is not the one asked pays nothing and is kept for
the agents (state "Montant différent"). A paid notification after a refusal or an abandonment is
still recorded: the money was taken.
"""

import csv
import io
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import selectinload

from portail.extensions import db
from portail.formatting import PARIS, clock, euros, short_date, today_in_paris
from portail.models import (
    DirectDebit,
    Family,
    Invoice,
    InvoiceKind,
    OnlinePayment,
    OnlinePaymentItem,
    OnlineState,
    Payment,
    PaymentMethod,
    Subscription,
    User,
    utcnow,
)
from portail.services import transactions
from portail.services.audit import record
from portail.services.billing import providers
from portail.services.billing.money import BillingError
from portail.services.billing.payments import PENDING_FOR, online_states, paid_cents
from portail.services.outbox import queue_mail
from portail.urls import public_url

log = logging.getLogger(__name__)


def provider():
    """The town's provider, or None when online payment is off."""
    return providers.configured(current_app.config)


@dataclass(frozen=True)
class Due:
    invoice: Invoice
    left_cents: int  # what is left to pay on it


def payable(
    family_id: int, invoice_ids: list[int] | None, now: datetime, under_way: bool = False
) -> list[Due]:
    """The family's invoices that can be paid online now (all of them, or those of `invoice_ids`):
    in force, not fully paid, not in a direct debit in force, no online payment under way (three queries)."""
    query = sa.select(Invoice).where(
        Invoice.family_id == family_id,
        Invoice.kind == InvoiceKind.INVOICE,
        Invoice.credited_by_id.is_(None),
        ~sa.exists().where(DirectDebit.invoice_id == Invoice.id, DirectDebit.rejected_at.is_(None)),
    )
    if invoice_ids is not None:
        query = query.where(Invoice.id.in_(invoice_ids))
    invoices = db.session.scalars(query.order_by(Invoice.month, Invoice.id)).all()
    paid, busy = paid_cents(invoices), online_states(invoices, now)
    return [
        Due(invoice, invoice.total_cents - paid[invoice.id])
        for invoice in invoices
        if invoice.total_cents > paid[invoice.id] and invoice.id not in busy
    ]


def start(
    user: User,
    family: Family,
    invoice_ids: list[int] | None,
    now: datetime,
    expected_cents: int | None = None,
) -> OnlinePayment:
    """Record the online payment of the family's invoices (all that are due, or these); BillingError
    when there is nothing to pay, when everything due is no longer the `expected_cents` the parent
    saw, or the amount is outside the provider's bounds. Not committed.

    A copy of the same click (a double click, a second tab) is the payment the first one started:
    the family's clicks take turns, and the second finds the first's."""
    transactions.claim(family)
    same = _twin(user, family, invoice_ids, now)
    if same is not None:
        return same
    dues = payable(family.id, invoice_ids, now)
    if (
        invoice_ids is None
        and expected_cents is not None
        and sum(d.left_cents for d in dues) != expected_cents
    ):
        raise BillingError(
            "Le montant à payer a changé depuis l'affichage de la page (un paiement est peut-être en "
            "cours dans un autre onglet). Vérifiez les factures ci-dessous, puis cliquez à nouveau."
        )
    if invoice_ids is not None and len(dues) != len(set(invoice_ids)):
        raise BillingError(
            "Cette facture ne peut pas être payée en ligne : elle est déjà payée, prélevée, "
            "annulée ou un paiement est déjà en cours."
        )
    if not dues:
        raise BillingError(
            "Aucune facture n'est à payer en ligne pour cette famille : elles sont payées, prélevées, "
            "ou un paiement en ligne est déjà en cours."
        )
    amount = sum(due.left_cents for due in dues)
    if amount < providers.MIN_CENTS:
        raise BillingError(
            f"Le paiement en ligne n'est possible qu'à partir de {euros(providers.MIN_CENTS)}."
        )
    if amount > providers.MAX_CENTS:
        raise BillingError(
            f"Le paiement en ligne est limité à {euros(providers.MAX_CENTS)} : payez les factures une par une."
        )
    payment = OnlinePayment(
        reference="PF" + secrets.token_hex(10).upper(),
        provider=provider().name,
        family_id=family.id,
        user_id=user.id,
        email=user.email,
        amount_cents=amount,
        created_at=now,
        items=[OnlinePaymentItem(invoice_id=due.invoice.id, amount_cents=due.left_cents) for due in dues],
    )
    db.session.add(payment)
    db.session.flush()
    return payment


def _twin(user: User, family: Family, invoice_ids: list[int] | None, now: datetime) -> OnlinePayment | None:
    """The payment of the same invoices this parent started moments ago and that is still awaited."""
    recent = db.session.scalars(
        sa.select(OnlinePayment)
        .where(
            OnlinePayment.family_id == family.id,
            OnlinePayment.user_id == user.id,
            OnlinePayment.state == OnlineState.PENDING,
            OnlinePayment.created_at > now - transactions.TWIN_WITHIN,
        )
        .options(selectinload(OnlinePayment.items))
        .order_by(OnlinePayment.id.desc())
    ).all()
    if not recent:
        return None
    if invoice_ids is None:  # everything due: what a first click took leaves nothing more to pay
        return None if payable(family.id, None, now) else recent[0]
    return next((p for p in recent if {item.invoice_id for item in p.items} == set(invoice_ids)), None)


def subject(payment: OnlinePayment) -> str:
    """What the payment is for, as the bank shows it (PayFiP's objet)."""
    numbers = db.session.scalars(
        sa.select(Invoice.number)
        .join(OnlinePaymentItem)
        .where(OnlinePaymentItem.online_payment_id == payment.id)
    ).all()
    label = "Facture" if len(numbers) == 1 else "Factures"
    return f"{current_app.config['TOWN_NAME']} {label} {' '.join(numbers)}"


def begin(payment: OnlinePayment) -> str:
    """Create the payment at the provider; the address the parent's browser goes to. ProviderError.
    The provider's notification and the parent's return come to PUBLIC_URL (never a Host header)."""
    notify_url = public_url("payment_notify.notify", provider=payment.provider)
    return_url = public_url(
        "billing.payment_return", family_id=payment.family_id, reference=payment.reference
    )
    if payment.provider_token:  # (a second click: the provider's operation already created)
        return provider().page(payment)
    return provider().begin(payment, notify_url, return_url, subject(payment))


def notify(provider_name: str, form: Mapping[str, str], now: datetime | None = None) -> OnlinePayment:
    """Verify a provider's notification and record what it says; InvalidNotification if it is not
    one. Committed; safe to receive any number of times, at once or later."""
    configured = provider()
    if configured is None or configured.name != provider_name:
        raise providers.InvalidNotification(f"fournisseur {provider_name!r} non configuré")
    notification = configured.verify(form)
    return transactions.run(lambda: _record(notification, now or utcnow()))


def _record(notification: providers.Notification, now: datetime) -> OnlinePayment:
    payment = db.session.scalar(
        sa.select(OnlinePayment)
        .where(OnlinePayment.reference == notification.reference)
        .options(selectinload(OnlinePayment.items))
    )
    if payment is None:
        raise providers.InvalidNotification(f"référence {notification.reference!r} inconnue")
    if payment.state in (OnlineState.PAID, OnlineState.MISMATCH, OnlineState.CHECKED):
        log.info("online payment %s: notification repeated (%s)", payment.reference, notification.result_code)
        return payment
    if payment.state is not OnlineState.PENDING and notification.result is not OnlineState.PAID:
        return payment  # refused or abandoned already: a repeat
    # Concurrent copies of the notification take turns here; the second finds the state changed.
    transactions.claim(payment, state=payment.state)
    payment.notified_at = now
    payment.result_code = notification.result_code
    payment.provider_ref = notification.provider_ref or None
    payment.notified_cents = notification.amount_cents
    if notification.result is OnlineState.REFUSED:
        payment.state = OnlineState.REFUSED
        record(None, "online_payment.refused", "family", payment.family_id, payment.reference)
        return payment
    if notification.result is OnlineState.ABANDONED:
        payment.state = OnlineState.ABANDONED
        record(None, "online_payment.abandoned", "family", payment.family_id, payment.reference)
        return payment
    if notification.amount_cents != payment.amount_cents:
        payment.state = OnlineState.MISMATCH
        log.warning(
            "online payment %s: notified %s cents, %s asked: nothing paid",
            payment.reference,
            notification.amount_cents,
            payment.amount_cents,
        )
        record(
            None,
            "online_payment.mismatch",
            "family",
            payment.family_id,
            f"{payment.reference} : {euros(notification.amount_cents)} notifiés pour {euros(payment.amount_cents)}",
        )
        return payment
    payment.state = OnlineState.PAID
    paid_on = today_in_paris(notification.paid_at or now)
    for item in payment.items:
        db.session.add(
            Payment(
                invoice_id=item.invoice_id,
                paid_on=paid_on,
                amount_cents=item.amount_cents,
                method=PaymentMethod.ONLINE,
                online_payment_id=payment.id,
            )
        )
        record(
            None,
            "payment.online",
            "invoice",
            item.invoice_id,
            f"{euros(item.amount_cents)} ({payment.reference}, autorisation {payment.provider_ref or '—'})",
        )
    db.session.flush()
    _receipt(payment, paid_on)
    return payment


def _receipt(payment: OnlinePayment, paid_on: date) -> None:
    """The receipt, through the outbox, to the parent who paid and the family's other parents."""
    numbers = db.session.execute(
        sa.select(Invoice.number, OnlinePaymentItem.amount_cents)
        .join(OnlinePaymentItem)
        .where(OnlinePaymentItem.online_payment_id == payment.id)
        .order_by(Invoice.number)
    ).all()
    parents = db.session.execute(
        sa.select(User.email, User.first_name)
        .join(Subscription, Subscription.user_id == User.id)
        .where(
            Subscription.family_id == payment.family_id,
            Subscription.ended_at.is_(None),
            User.activated_at.is_not(None),
        )
    ).all()
    recipients = dict(parents) | ({payment.email: ""} if payment.email not in dict(parents) else {})
    for email, first_name in recipients.items():
        queue_mail(
            "payment_receipt",
            email,
            first_name=first_name,
            amount=euros(payment.amount_cents),
            paid_on=paid_on.isoformat(),
            reference=payment.reference,
            authorisation=payment.provider_ref or "",
            invoices=[{"number": number, "amount": euros(amount)} for number, amount in numbers],
            link=public_url("billing.home"),
        )


def give_up(payment: OnlinePayment, user: User) -> bool:
    """The parent gives up a payment still awaited (the bank's page closed): its invoices can be paid
    again at once. A payment notified later as paid is still recorded (`_record`). Not committed."""
    if payment.state is not OnlineState.PENDING:
        return False
    transactions.claim(payment, state=OnlineState.PENDING)
    payment.state = OnlineState.ABANDONED
    record(user, "online_payment.given_up", "family", payment.family_id, payment.reference)
    return True


def mark_checked(payment: OnlinePayment, agent: User) -> bool:
    """An agent has looked into a payment notified with another amount (what was received is
    entered as a payment of the invoice): its invoices are to pay again. Not committed."""
    if payment.state is not OnlineState.MISMATCH:
        return False
    transactions.claim(payment, state=OnlineState.MISMATCH)
    payment.state = OnlineState.CHECKED
    record(
        agent,
        "online_payment.checked",
        "family",
        payment.family_id,
        f"{payment.reference} : {euros(payment.notified_cents or 0)} notifiés pour {euros(payment.amount_cents)}",
    )
    return True


def holding(invoice: Invoice, now: datetime) -> OnlinePayment | None:
    """The online payment that holds the invoice (awaited from the bank, or to check), if any (one query)."""
    return db.session.scalar(
        sa.select(OnlinePayment)
        .join(OnlinePaymentItem)
        .where(
            OnlinePaymentItem.invoice_id == invoice.id,
            sa.or_(
                sa.and_(
                    OnlinePayment.state == OnlineState.PENDING,
                    OnlinePayment.created_at > now - PENDING_FOR,
                ),
                OnlinePayment.state == OnlineState.MISMATCH,
            ),
        )
        .order_by(OnlinePayment.id.desc())
        .limit(1)
    )


def awaited_until(payment: OnlinePayment) -> datetime:
    """Until when a payment awaited holds its invoices (then they can be paid again)."""
    return payment.created_at + PENDING_FOR


def of_family(family_id: int, reference: str) -> OnlinePayment | None:
    """A family's online payment by its reference."""
    return db.session.scalar(
        sa.select(OnlinePayment).where(
            OnlinePayment.family_id == family_id, OnlinePayment.reference == reference
        )
    )


def for_day(day: date, state: OnlineState | None = None) -> list[OnlinePayment]:
    """The online payments notified on a day (Paris time), or started that day and never answered,
    with their family and invoices (two queries): the agents' list and the daily reconciliation."""
    start_at = datetime.combine(day, time(0), PARIS).astimezone(UTC)
    end_at = datetime.combine(day + timedelta(days=1), time(0), PARIS).astimezone(UTC)
    notified_that_day = sa.and_(OnlinePayment.notified_at >= start_at, OnlinePayment.notified_at < end_at)
    started_that_day = sa.and_(
        OnlinePayment.notified_at.is_(None),
        OnlinePayment.created_at >= start_at,
        OnlinePayment.created_at < end_at,
    )
    query = (
        sa.select(OnlinePayment)
        .where(sa.or_(notified_that_day, started_that_day))
        .options(
            selectinload(OnlinePayment.items).joinedload(OnlinePaymentItem.invoice),
            sa.orm.joinedload(OnlinePayment.family),
        )
        .order_by(OnlinePayment.notified_at.is_(None), OnlinePayment.notified_at, OnlinePayment.created_at)
    )
    if state is not None:
        query = query.where(OnlinePayment.state == state)
    return db.session.scalars(query).unique().all()


RECONCILIATION_HEADER = [
    "Date",
    "Heure",
    "Référence",
    "Fournisseur",
    "N° d'autorisation",
    "Code famille",
    "Famille",
    "Facture",
    "Montant",
    "Montant notifié",
    "État",
]


def reconciliation_csv(day: date) -> bytes:
    """The day's paid online payments, one line per invoice, for the treasury (CSV, ';', UTF-8 with BOM)."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";")
    writer.writerow(RECONCILIATION_HEADER)
    total = 0
    for payment in for_day(day):
        when = payment.notified_at.astimezone(PARIS) if payment.notified_at else None
        for item in payment.items:
            if payment.state is OnlineState.PAID:
                total += item.amount_cents
            writer.writerow(
                [
                    short_date(when) if when else "",
                    clock(when) if when else "",
                    payment.reference,
                    payment.provider,
                    payment.provider_ref or "",
                    payment.family.subscriber_code,
                    payment.family.name,
                    item.invoice.number,
                    f"{item.amount_cents / 100:.2f}".replace(".", ","),
                    ""
                    if payment.notified_cents is None
                    else f"{payment.notified_cents / 100:.2f}".replace(".", ","),
                    payment.state.label,
                ]
            )
    writer.writerow(
        ["Total encaissé", "", "", "", "", "", "", "", f"{total / 100:.2f}".replace(".", ","), "", ""]
    )
    return ("\ufeff" + out.getvalue()).encode()
