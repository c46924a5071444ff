"""Payments and what an invoice's state is: paid amounts, balances, overdue invoices."""

from datetime import date, datetime, timedelta

import sqlalchemy as sa

from portail.extensions import db
from portail.formatting import euros, today_in_paris
from portail.models import (
    Invoice,
    InvoiceKind,
    OnlinePayment,
    OnlinePaymentItem,
    OnlineState,
    Payment,
    PaymentMethod,
    User,
)
from portail.services.audit import record
from portail.services.billing.money import BillingError

METHOD_LABELS = {
    PaymentMethod.CARD: "Carte",
    PaymentMethod.CHEQUE: "Chèque",
    PaymentMethod.CASH: "Espèces",
    PaymentMethod.DIRECT_DEBIT: "Prélèvement",
    PaymentMethod.ONLINE: "Paiement en ligne",
}
# What an agent enters by hand (an online payment is recorded by its notification only).
ENTERED_METHODS = [method for method in PaymentMethod if method is not PaymentMethod.ONLINE]
STATES = [
    "À payer",
    "En retard",
    "Paiement en cours",
    "Paiement à vérifier",
    "Payée",
    "Prélèvement prévu",
    "Prélevée",
    "Annulée",
    "Avoir",
]
# An online payment started this recently, and not answered yet, shows its invoices "Paiement en
# cours" (a bank's page left open longer has expired: the parent may then start another).
PENDING_FOR = timedelta(minutes=20)
# What an online payment under way, or notified with another amount, makes of an invoice to pay.
ONLINE_STATES = {OnlineState.PENDING: "Paiement en cours", OnlineState.MISMATCH: "Paiement à vérifier"}


def paid_cents(invoices: list[Invoice]) -> dict[int, int]:
    """Amount paid on each invoice (one query)."""
    if not invoices:
        return {}
    rows = db.session.execute(
        sa.select(Payment.invoice_id, sa.func.sum(Payment.amount_cents))
        .where(Payment.invoice_id.in_([i.id for i in invoices]))
        .group_by(Payment.invoice_id)
    )
    return {invoice.id: 0 for invoice in invoices} | dict(rows.all())


def state_of(
    invoice: Invoice, paid: int, today: date, direct_debit: bool = False, debit_on: date | None = None
) -> str:
    """À payer, Payée, Prélevée (Prélèvement prévu until `debit_on`, its collection date), En
    retard; Avoir for a credit note, Annulée for a cancelled invoice."""
    if invoice.kind is InvoiceKind.CREDIT_NOTE:
        return "Avoir"
    if invoice.credited_by_id is not None:
        return "Annulée"
    if paid >= invoice.total_cents:
        if not direct_debit:
            return "Payée"
        return "Prélèvement prévu" if debit_on is not None and debit_on > today else "Prélevée"
    if today > invoice.due_date:
        return "En retard"
    return "À payer"


def with_states(invoices: list[Invoice], now: datetime) -> list[tuple[Invoice, int, str]]:
    """Each invoice with the amount paid on it and its state (two queries for them all): an
    invoice to pay with an online payment under way is "Paiement en cours", "Paiement à vérifier"
    when the bank notified another amount."""
    paid, debited = _paid_and_debited(invoices)
    online, today = online_states(invoices, now), today_in_paris(now)
    rows = []
    for invoice in invoices:
        state = state_of(invoice, paid[invoice.id], today, invoice.id in debited, debited.get(invoice.id))
        if invoice.id in online and state in ("À payer", "En retard"):
            state = online[invoice.id]
        rows.append((invoice, paid[invoice.id], state))
    return rows


def online_states(invoices: list[Invoice], now: datetime) -> dict[int, str]:
    """The invoices with an online payment started less than PENDING_FOR ago and not answered
    ("Paiement en cours"), or notified with another amount and not checked yet ("Paiement à
    vérifier"): they cannot be paid online again meanwhile (one query)."""
    if not invoices:
        return {}
    rows = db.session.execute(
        sa.select(OnlinePaymentItem.invoice_id, OnlinePayment.state)
        .join(OnlinePayment)
        .where(
            OnlinePaymentItem.invoice_id.in_([i.id for i in invoices]),
            sa.or_(
                sa.and_(
                    OnlinePayment.state == OnlineState.PENDING,
                    OnlinePayment.created_at > now - PENDING_FOR,
                ),
                OnlinePayment.state == OnlineState.MISMATCH,
            ),
        )
    ).all()
    found: dict[int, str] = {}
    for invoice_id, state in sorted(rows, key=lambda row: row[1] is OnlineState.PENDING):
        found.setdefault(invoice_id, ONLINE_STATES[state])  # (to check first)
    return found


def invoices_by_family(family_ids: list[int], now: datetime) -> dict[int, list[tuple[Invoice, int, str]]]:
    """Each family's invoices and credit notes, newest first, with the amount paid and the state (three queries)."""
    invoices = db.session.scalars(
        sa.select(Invoice)
        .where(Invoice.family_id.in_(family_ids))
        .order_by(Invoice.month.desc(), Invoice.id.desc())
    ).all()
    by_family = {family_id: [] for family_id in family_ids}
    for row in with_states(invoices, now):
        by_family[row[0].family_id].append(row)
    return by_family


def state_now(invoice: Invoice, now: datetime) -> tuple[int, str]:
    """The amount paid on one invoice and its state at `now`."""
    ((_invoice, paid, state),) = with_states([invoice], now)
    return paid, state


def _paid_and_debited(invoices: list[Invoice]) -> tuple[dict[int, int], dict[int, date]]:
    """`paid_cents`, and the invoices settled by direct debit with their collection date, in one query."""
    if not invoices:
        return {}, {}
    method = sa.type_coerce(Payment.method, sa.String)  # (the names stored, not the enum)
    rows = db.session.execute(
        sa.select(
            Payment.invoice_id,
            sa.func.sum(Payment.amount_cents),
            sa.func.min(method) == sa.func.max(method),
            sa.func.min(method),
            sa.func.max(Payment.paid_on),
        )
        .where(Payment.invoice_id.in_([i.id for i in invoices]))
        .group_by(Payment.invoice_id)
    ).all()
    paid = {invoice.id: 0 for invoice in invoices} | {row[0]: row[1] for row in rows}
    debited = {
        invoice_id: last_on
        for invoice_id, _t, single, first, last_on in rows
        if single and first == PaymentMethod.DIRECT_DEBIT.name
    }
    return paid, debited


def balance_of(rows: list[tuple[Invoice, int, str]]) -> int:
    """What a family owes from its invoices and credit notes as `with_states` gives them (no query)."""
    return sum(invoice.total_cents - paid for invoice, paid, _state in rows)


def direct_debited(invoices: list[Invoice]) -> set[int]:
    """Invoices settled by direct debit (their payments are all prélèvements)."""
    if not invoices:
        return set()
    rows = db.session.execute(
        sa.select(Payment.invoice_id)
        .where(Payment.invoice_id.in_([i.id for i in invoices]))
        .group_by(Payment.invoice_id)
        .having(
            sa.func.min(Payment.method) == sa.func.max(Payment.method),
            sa.func.min(Payment.method) == PaymentMethod.DIRECT_DEBIT.name,
        )
    )
    return set(rows.scalars())


def balances(family_ids: list[int]) -> dict[int, int]:
    """What each family owes: its invoices and credit notes, minus its payments (negative: in its favour). Two queries."""
    if not family_ids:
        return {}
    billed = dict(
        db.session.execute(
            sa.select(Invoice.family_id, sa.func.sum(Invoice.total_cents))
            .where(Invoice.family_id.in_(family_ids))
            .group_by(Invoice.family_id)
        ).all()
    )
    paid = dict(
        db.session.execute(
            sa.select(Invoice.family_id, sa.func.sum(Payment.amount_cents))
            .join(Invoice)
            .where(Invoice.family_id.in_(family_ids))
            .group_by(Invoice.family_id)
        ).all()
    )
    return {family_id: (billed.get(family_id) or 0) - (paid.get(family_id) or 0) for family_id in family_ids}


def overdue_count(today: date) -> int:
    """Invoices in force past their due date and not fully paid (one query)."""
    paid = (
        sa.select(Payment.invoice_id, sa.func.sum(Payment.amount_cents).label("paid"))
        .group_by(Payment.invoice_id)
        .subquery()
    )
    return db.session.scalar(
        sa.select(sa.func.count(Invoice.id))
        .outerjoin(paid, paid.c.invoice_id == Invoice.id)
        .where(
            Invoice.kind == InvoiceKind.INVOICE,
            Invoice.credited_by_id.is_(None),
            Invoice.due_date < today,
            Invoice.total_cents > sa.func.coalesce(paid.c.paid, 0),
        )
    )


def balance_cents(family_id: int) -> int:
    """What one family owes (negative: in its favour)."""
    return balances([family_id])[family_id]


def record_payment(
    invoice: Invoice,
    paid_on: date,
    amount_cents: int,
    method: PaymentMethod,
    agent: User,
    key: str | None = None,
) -> Payment:
    """Record a payment of an invoice, once per form `key` (not flushed: a new payment has no id yet)."""
    if invoice.kind is not InvoiceKind.INVOICE or invoice.credited_by_id is not None:
        raise BillingError(
            "Un paiement s'enregistre sur une facture en vigueur, pas sur un avoir ni une facture annulée."
        )
    if amount_cents <= 0:
        raise BillingError("Le montant doit être supérieur à zéro.")
    # A copy of the same submission (a double click, a resent page) carries the same key: it is the
    # payment already recorded. Copies sent at the same moment both find nothing here; the key's
    # unique constraint then stops the second, and its view runs again and finds the first's.
    if key is not None:
        same = db.session.scalar(sa.select(Payment).where(Payment.idempotency_key == key))
        if same is not None:
            if (same.invoice_id, same.paid_on, same.amount_cents, same.method) != (
                invoice.id,
                paid_on,
                amount_cents,
                method,
            ):
                raise BillingError(
                    f"Le paiement n'a pas été enregistré : ce formulaire a déjà servi pour un paiement de "
                    f"{euros(same.amount_cents)}. Vérifiez les paiements ci-dessus, puis cliquez à nouveau "
                    "sur « Enregistrer le paiement » pour en enregistrer un autre."
                )
            return same
    payment = Payment(
        invoice_id=invoice.id,
        paid_on=paid_on,
        amount_cents=amount_cents,
        method=method,
        recorded_by_id=agent.id,
        idempotency_key=key,
    )
    db.session.add(payment)
    return payment


def enter_payment(
    invoice: Invoice, paid_on: date, amount_cents: int, method: PaymentMethod, agent: User, key: str
) -> tuple[Payment, bool]:
    """An agent's payment from the back office, audited; True if new, False if this form's key
    already recorded it. BillingError as `record_payment`."""
    payment = record_payment(invoice, paid_on, amount_cents, method, agent, key=key)
    if payment.id is not None:  # the same form sent again: the payment it recorded
        return payment, False
    db.session.flush()  # (a copy sent at the same moment stops here, then finds this payment)
    record(
        agent,
        "payment.recorded",
        "invoice",
        invoice.id,
        f"{euros(payment.amount_cents)} ({payment.method.value})",
    )
    return payment, True
