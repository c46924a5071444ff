"""Paying the town (issue 18): online payments, SEPA mandates and direct debits, reminders.

An online payment is paid only by the provider's server-to-server notification; a direct debit is
a payment from the day its file is made, until a reject takes it back; a reminder is sent once per
invoice and step.
"""

from datetime import date

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portail.extensions import db
from portail.models.billing import Invoice
from portail.models.families import Family, Guardian
from portail.models.types import Labelled, by_account, intpk, partial_unique_index, timestamp, utc


class OnlineState(Labelled):
    PENDING = "pending", "Paiement en cours"
    PAID = "paid", "Payé"
    REFUSED = "refused", "Refusé par la banque"
    ABANDONED = "abandoned", "Abandonné"
    # A notification whose amount is not the one asked: nothing is paid, the agents look into it.
    MISMATCH = "mismatch", "Montant différent : à vérifier"
    # A mismatch an agent has looked into (what was received is then entered as a payment).
    CHECKED = "checked", "Vérifié par le service"


class OnlinePayment(db.Model):
    """A parent's online payment of one or several invoices of a family, from the redirection to the
    provider until its notification."""

    id: Mapped[intpk]
    # Our reference at the provider (PayFiP's refdet): random, 6 to 30 letters and digits.
    reference: Mapped[str] = mapped_column(sa.String(30), unique=True)
    provider: Mapped[str] = mapped_column(sa.String(10))  # payfip, test
    family_id: Mapped[int] = mapped_column(sa.ForeignKey("family.id", ondelete="RESTRICT"), index=True)
    user_id: Mapped[by_account]
    email: Mapped[str] = mapped_column(sa.String(254))
    amount_cents: Mapped[int]
    state: Mapped[OnlineState] = mapped_column(
        sa.Enum(OnlineState, native_enum=False, length=10), default=OnlineState.PENDING, index=True
    )
    # The provider's operation id (PayFiP's idOp), given when the payment is created there.
    provider_token: Mapped[str | None] = mapped_column(sa.String(64), unique=True)
    # What its notification said: the bank's authorisation number and the result code.
    provider_ref: Mapped[str | None] = mapped_column(sa.String(64))
    result_code: Mapped[str | None] = mapped_column(sa.String(10))
    # The amount the notification said was paid (differs from `amount_cents`: MISMATCH).
    notified_cents: Mapped[int | None]
    created_at: Mapped[timestamp]
    notified_at: Mapped[utc | None]

    family: Mapped[Family] = relationship()
    items: Mapped[list["OnlinePaymentItem"]] = relationship(
        back_populates="online_payment", cascade="all, delete-orphan", order_by="OnlinePaymentItem.id"
    )

    __table_args__ = (sa.CheckConstraint("amount_cents > 0", name="online_amount_positive"),)


class OnlinePaymentItem(db.Model):
    """An invoice paid by an online payment, and the amount for it."""

    id: Mapped[intpk]
    online_payment_id: Mapped[int] = mapped_column(
        sa.ForeignKey("online_payment.id", ondelete="CASCADE"), index=True
    )
    invoice_id: Mapped[int] = mapped_column(sa.ForeignKey("invoice.id", ondelete="RESTRICT"), index=True)
    amount_cents: Mapped[int]

    online_payment: Mapped[OnlinePayment] = relationship(back_populates="items")
    invoice: Mapped[Invoice] = relationship()


class SepaMandate(db.Model):
    """A responsable's SEPA direct-debit mandate; the family's one in force (not revoked) is its
    choice of paying by direct debit."""

    id: Mapped[intpk]
    family_id: Mapped[int] = mapped_column(sa.ForeignKey("family.id", ondelete="RESTRICT"), index=True)
    guardian_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("guardian.id", ondelete="SET NULL"), index=True
    )
    reference: Mapped[str] = mapped_column(sa.String(35), unique=True)  # the RUM
    holder: Mapped[str] = mapped_column(sa.String(70))
    iban: Mapped[str] = mapped_column(sa.String(34))
    bic: Mapped[str] = mapped_column(sa.String(11))
    signed_on: Mapped[date]
    signed_by_id: Mapped[by_account]
    revoked_at: Mapped[utc | None]
    created_at: Mapped[timestamp]

    family: Mapped[Family] = relationship()
    guardian: Mapped[Guardian | None] = relationship()

    __table_args__ = (partial_unique_index("uq_mandate_in_force", "family_id", where="revoked_at IS NULL"),)


class DebitBatch(db.Model):
    """A direct-debit file (pain.008) for the treasury: the invoices of a month debited on one day."""

    id: Mapped[intpk]
    month: Mapped[date]  # first day of the month billed
    collection_date: Mapped[date]
    message_id: Mapped[str] = mapped_column(sa.String(35), unique=True)
    count: Mapped[int] = mapped_column(default=0)
    total_cents: Mapped[int] = mapped_column(default=0)
    xml: Mapped[bytes] = mapped_column(sa.LargeBinary, deferred=True)
    created_by_id: Mapped[by_account]
    created_at: Mapped[timestamp]

    debits: Mapped[list["DirectDebit"]] = relationship(back_populates="batch", order_by="DirectDebit.id")


class DirectDebit(db.Model):
    """One invoice in a direct-debit file; a reject (R-transaction) puts the invoice back to pay."""

    id: Mapped[intpk]
    batch_id: Mapped[int] = mapped_column(sa.ForeignKey("debit_batch.id", ondelete="CASCADE"), index=True)
    invoice_id: Mapped[int] = mapped_column(sa.ForeignKey("invoice.id", ondelete="RESTRICT"), index=True)
    mandate_id: Mapped[int] = mapped_column(sa.ForeignKey("sepa_mandate.id", ondelete="RESTRICT"), index=True)
    amount_cents: Mapped[int]
    sequence: Mapped[str] = mapped_column(sa.String(4))  # FRST, RCUR
    end_to_end_id: Mapped[str] = mapped_column(sa.String(35), unique=True)
    rejected_at: Mapped[utc | None]
    reject_code: Mapped[str | None] = mapped_column(sa.String(4))  # ISO 20022 reason: AC04, AM04, MD01…
    reject_reason: Mapped[str | None] = mapped_column(sa.String(200))
    rejected_by_id: Mapped[by_account]

    batch: Mapped[DebitBatch] = relationship(back_populates="debits")
    invoice: Mapped[Invoice] = relationship()
    mandate: Mapped[SepaMandate] = relationship()

    __table_args__ = (
        sa.CheckConstraint("amount_cents > 0", name="debit_positive"),
        # An invoice is in one file at a time (again after a reject).
        partial_unique_index("uq_debit_in_force", "invoice_id", where="rejected_at IS NULL"),
    )


class Reminder(db.Model):
    """A reminder (relance) of a late invoice at one step (days after its due date): sent once."""

    id: Mapped[intpk]
    invoice_id: Mapped[int] = mapped_column(sa.ForeignKey("invoice.id", ondelete="CASCADE"), index=True)
    step: Mapped[int]  # days after the due date
    sent_at: Mapped[timestamp]
    email: Mapped[str] = mapped_column(sa.Text, default="")  # to whom (several: comma-separated)

    __table_args__ = (sa.UniqueConstraint("invoice_id", "step", name="uq_reminder_invoice_step"),)
