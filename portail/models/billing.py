"""Billing: tariffs by quotient familial, monthly invoices and credit notes, payments, billing runs.

Money is always an integer number of cents.
"""

import enum
from datetime import date

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portail.extensions import db
from portail.models.accounts import User
from portail.models.activities import Activity
from portail.models.families import Family
from portail.models.types import by_account, intpk, partial_unique_index, timestamp, utc


class InvoiceKind(enum.Enum):
    INVOICE = "facture"
    CREDIT_NOTE = "avoir"


class PaymentMethod(enum.Enum):
    CARD = "carte"
    CHEQUE = "chèque"
    CASH = "espèces"
    DIRECT_DEBIT = "prélèvement"
    ONLINE = "en ligne"  # paid online (PayFiP or the test provider), by its notification


class RunState(enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class Tariff(db.Model):
    """The prices of an activity over a validity period, by quotient-familial bracket."""

    id: Mapped[intpk]
    activity_id: Mapped[int] = mapped_column(sa.ForeignKey("activity.id", ondelete="CASCADE"), index=True)
    valid_from: Mapped[date]
    valid_until: Mapped[date | None]
    # per day reserved after the booking deadline
    late_surcharge_cents: Mapped[int] = mapped_column(default=0)
    # an absence asked after the absence deadline is billed
    bill_late_absences: Mapped[bool] = mapped_column(default=True)
    # From the registers (a closed register is what happened that day):
    # booked, not present, no absence declared → billed at the day's price
    bill_unexcused_absences: Mapped[bool] = mapped_column(default=True, server_default=sa.true())
    # present without a booking → this price (None: the day's) plus the surcharge
    unbooked_price_cents: Mapped[int | None]
    unbooked_surcharge_cents: Mapped[int] = mapped_column(default=0, server_default="0")
    # A sickness declared by the family: its first N days are billed (carence); the days after are
    # free when a medical certificate is sent within N days of its first day, billed otherwise.
    sick_days_billed: Mapped[int] = mapped_column(default=1, server_default="1")
    sick_certificate_days: Mapped[int] = mapped_column(default=3, server_default="3")
    # Childcare ("frais de garde"): its lines count in the attestation fiscale of children under 6.
    childcare: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    created_at: Mapped[timestamp]

    activity: Mapped[Activity] = relationship()
    brackets: Mapped[list["TariffBracket"]] = relationship(
        back_populates="tariff", cascade="all, delete-orphan", order_by="TariffBracket.quotient_min"
    )

    __table_args__ = (
        sa.CheckConstraint("late_surcharge_cents >= 0", name="surcharge_not_negative"),
        sa.CheckConstraint("unbooked_surcharge_cents >= 0", name="unbooked_surcharge_not_negative"),
        sa.CheckConstraint(
            "sick_days_billed >= 0 AND sick_certificate_days >= 0", name="sick_rule_not_negative"
        ),
    )


class TariffBracket(db.Model):
    id: Mapped[intpk]
    tariff_id: Mapped[int] = mapped_column(sa.ForeignKey("tariff.id", ondelete="CASCADE"), index=True)
    quotient_min: Mapped[int]
    quotient_max: Mapped[int | None]  # None: no upper bound (the highest bracket)
    price_cents: Mapped[int]

    tariff: Mapped[Tariff] = relationship(back_populates="brackets")

    __table_args__ = (sa.CheckConstraint("price_cents >= 0", name="price_not_negative"),)


class Invoice(db.Model):
    """An invoice (or a credit note cancelling one) of a family for a month; never edited once issued."""

    id: Mapped[intpk]
    number: Mapped[str] = mapped_column(sa.String(20), unique=True)
    kind: Mapped[InvoiceKind] = mapped_column(sa.Enum(InvoiceKind, native_enum=False, length=12))
    family_id: Mapped[int] = mapped_column(sa.ForeignKey("family.id", ondelete="RESTRICT"), index=True)
    month: Mapped[date] = mapped_column(index=True)  # first day of the billed month
    issued_at: Mapped[timestamp]
    due_date: Mapped[date]
    total_cents: Mapped[int]
    # What the invoice says of the family, as it was when issued
    family_name: Mapped[str] = mapped_column(sa.String(150))
    payer: Mapped[str] = mapped_column(sa.String(200), default="")
    address: Mapped[str] = mapped_column(sa.Text, default="")
    quotient: Mapped[int | None]  # the quotient applied (None: none valid, highest bracket)
    # A credit note names the invoice it cancels; a cancelled invoice names its credit note.
    corrects_id: Mapped[int | None] = mapped_column(sa.ForeignKey("invoice.id"))
    credited_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("invoice.id"))

    family: Mapped[Family] = relationship()
    lines: Mapped[list["InvoiceLine"]] = relationship(
        back_populates="invoice", cascade="all, delete-orphan", order_by="InvoiceLine.position"
    )
    payments: Mapped[list["Payment"]] = relationship(back_populates="invoice", order_by="Payment.paid_on")
    corrects: Mapped["Invoice | None"] = relationship(foreign_keys=[corrects_id], remote_side="Invoice.id")
    credited_by: Mapped["Invoice | None"] = relationship(
        foreign_keys=[credited_by_id], remote_side="Invoice.id", post_update=True
    )

    __table_args__ = (
        # At most one invoice in force per family and month, whatever the concurrency of runs.
        partial_unique_index(
            "uq_invoice_in_force", "family_id", "month", where="kind = 'INVOICE' AND credited_by_id IS NULL"
        ),
    )


class InvoiceLine(db.Model):
    id: Mapped[intpk]
    invoice_id: Mapped[int] = mapped_column(sa.ForeignKey("invoice.id", ondelete="CASCADE"), index=True)
    position: Mapped[int]
    child_name: Mapped[str] = mapped_column(sa.String(210))
    # The child and whether its tariff was childcare when issued (the attestation fiscale's lines).
    child_id: Mapped[int | None] = mapped_column(sa.ForeignKey("child.id", ondelete="SET NULL"), index=True)
    childcare: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    activity_name: Mapped[str] = mapped_column(sa.String(100))
    label: Mapped[str] = mapped_column(sa.String(60))  # Jours réservés, Absences hors délai, Majoration…
    days: Mapped[int]
    unit_price_cents: Mapped[int]
    amount_cents: Mapped[int]

    invoice: Mapped[Invoice] = relationship(back_populates="lines")


class Payment(db.Model):
    id: Mapped[intpk]
    invoice_id: Mapped[int] = mapped_column(sa.ForeignKey("invoice.id", ondelete="RESTRICT"), index=True)
    paid_on: Mapped[date]
    amount_cents: Mapped[int]
    method: Mapped[PaymentMethod] = mapped_column(sa.Enum(PaymentMethod, native_enum=False, length=12))
    recorded_by_id: Mapped[by_account]
    # The random key of the form that recorded it: a copy of that submission (a double click, a
    # resent page) is this payment, while two identical cheques entered one after the other are two.
    # None for payments not entered through the form (demo data).
    idempotency_key: Mapped[str | None] = mapped_column(sa.String(64), unique=True)
    # The online payment whose notification recorded it (once per invoice, whatever the repeats),
    # or the direct debit of a file (deleted by its reject).
    online_payment_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("online_payment.id", ondelete="RESTRICT"), index=True
    )
    direct_debit_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("direct_debit.id", ondelete="CASCADE"), unique=True
    )
    created_at: Mapped[timestamp]

    invoice: Mapped[Invoice] = relationship(back_populates="payments")
    recorded_by: Mapped[User | None] = relationship()
    online_payment: Mapped["OnlinePayment | None"] = relationship()  # noqa: F821 (portail.models.payments)

    __table_args__ = (
        sa.CheckConstraint("amount_cents > 0", name="payment_positive"),
        sa.UniqueConstraint("online_payment_id", "invoice_id", name="uq_payment_online_invoice"),
    )


class InvoiceCounter(db.Model):
    """The last number of each series (e.g. FA2026): taken in the transaction that issues, so no gaps."""

    series: Mapped[str] = mapped_column(sa.String(8), primary_key=True)
    last: Mapped[int]


class BillingRun(db.Model):
    """One billing of a month, run by the worker; its progress is shown to the agent."""

    id: Mapped[intpk]
    month: Mapped[date]
    state: Mapped[RunState] = mapped_column(
        sa.Enum(RunState, native_enum=False, length=10), default=RunState.QUEUED
    )
    families_total: Mapped[int] = mapped_column(default=0)
    families_done: Mapped[int] = mapped_column(default=0)
    invoices: Mapped[int] = mapped_column(default=0)
    credit_notes: Mapped[int] = mapped_column(default=0)
    unpriced_days: Mapped[int] = mapped_column(default=0)  # booked days of an activity without a tariff
    started_by_id: Mapped[by_account]
    created_at: Mapped[timestamp]
    finished_at: Mapped[utc | None]
    error: Mapped[str | None] = mapped_column(sa.Text)

    started_by: Mapped[User | None] = relationship()
