"""SEPA direct debit (issue 18): a family's mandate, the collection date announced for an invoice,
the month's pain.008 file for the treasury, and the rejects (R-transactions) that put an invoice back
to pay.

- A family pays by direct debit while it has a mandate in force (not revoked): one per family, for
  one responsable's account, with its unique reference (RUM) and signature date.
- An invoice is announced for collection on the later of its due date and DEBIT_NOTICE_DAYS after
  its issue (or after the mandate's signature, for an invoice issued before it): the pre-notification.
- The month's file takes the invoices in force of that month, of families with a mandate in force,
  not fully paid and never debited (an invoice whose debit was rejected is paid otherwise: debiting
  it again would risk a double payment); each becomes a `DirectDebit` (FRST for its
  mandate's first debit in force, RCUR after) and a payment dated the collection day. The XML is
  made with sepaxml and validated against the pain.008.001.02 XSD before anything is saved. The
  partial unique index "one debit in force per invoice" keeps an invoice in one file, whatever the
  concurrency (the loser's view runs again and finds nothing left).
- A reject (a pain.002 status report, or an agent's entry) marks the debit rejected, deletes its
  payment (the invoice is back to À payer or En retard), mails the parents, and ends the mandate
  when the account or the mandate is gone (closed account, no mandate, deceased).
- A validated change of a responsable's IBAN ends the mandate signed for the old account: the
  family is told to choose direct debit again (a mandate authorises one account).
"""

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import defusedxml.ElementTree as SafeET
import holidays
import sqlalchemy as sa
from defusedxml import DefusedXmlException
from flask import current_app
from schwifty import BIC, IBAN
from schwifty.exceptions import SchwiftyException
from sepaxml import SepaDD
from sepaxml.validation import ValidationError as XsdError
from sepaxml.validation import try_valid_xml

from portail.extensions import db
from portail.formatting import euros, month_label, today_in_paris
from portail.models import (
    DebitBatch,
    DirectDebit,
    Family,
    Guardian,
    Invoice,
    InvoiceKind,
    OnlinePayment,
    OnlinePaymentItem,
    OnlineState,
    Payment,
    PaymentMethod,
    SepaMandate,
    Subscription,
    User,
    utcnow,
)
from portail.services.audit import record
from portail.services.billing.money import BillingError, month_bounds
from portail.services.billing.payments import PENDING_FOR
from portail.services.dossier import mask_iban
from portail.services.outbox import queue_mail
from portail.services.transactions import claim
from portail.urls import public_url

SCHEMA = "pain.008.001.02"
# Reasons of a reject (ISO 20022 / EPC codes), as the agent picks them and the parents read them.
REJECT_REASONS = {
    "AM04": "Provision insuffisante",
    "MS02": "Refus du débiteur",
    "MD06": "Remboursement demandé par le débiteur",
    "AC04": "Compte clôturé",
    "AC06": "Compte bloqué",
    "AC01": "IBAN incorrect",
    "MD01": "Absence de mandat",
    "MD02": "Données du mandat manquantes ou inexactes",
    "MD07": "Titulaire du compte décédé",
    "AG01": "Prélèvement interdit sur ce compte",
    "AM05": "Prélèvement en double",
    "RC01": "BIC incorrect",
    "SL01": "Service spécifique de la banque du débiteur",
    "MS03": "Motif non communiqué par la banque",
}
# The account or the mandate is gone: the next file would be rejected again (and cost bank fees).
MANDATE_ENDING = frozenset({"AC01", "AC04", "MD01", "MD07"})
# Days between the file's making and its collection (the creditor's bank needs it a working day
# before, plus its own cut-off).
LEAD_DAYS = 2
# What a status report may weigh (a month's report for a large town is well under this).
MAX_REPORT_BYTES = 5 * 1024 * 1024
_CODE = re.compile(r"[A-Z0-9]{4}")


def reason_label(code: str | None) -> str:
    """The French label of a reject code ("Rejet bancaire (XX99)" for a code not in the list)."""
    return REJECT_REASONS.get(code or "", f"Rejet bancaire ({code})")


def debits_count(count: int) -> str:
    """How many debits, in French: "1 prélèvement", "3 prélèvements"."""
    return f"{count} prélèvement{'s' if count > 1 else ''}"


# --- mandates ------------------------------------------------------------------------------------


def mandates_in_force(family_ids: list[int]) -> dict[int, SepaMandate]:
    """Each family's mandate in force, if any (one query)."""
    if not family_ids:
        return {}
    return {
        mandate.family_id: mandate
        for mandate in db.session.scalars(
            sa.select(SepaMandate).where(
                SepaMandate.family_id.in_(family_ids), SepaMandate.revoked_at.is_(None)
            )
        )
    }


def mandates_of(family_ids: list[int]) -> tuple[dict[int, SepaMandate], dict[int, SepaMandate]]:
    """Each family's mandate in force and its latest revoked one (what the page says ended, and
    why), in one query."""
    in_force: dict[int, SepaMandate] = {}
    ended: dict[int, SepaMandate] = {}
    if family_ids:
        for mandate in db.session.scalars(
            sa.select(SepaMandate)
            .where(SepaMandate.family_id.in_(family_ids))
            .order_by(SepaMandate.revoked_at.is_(None), SepaMandate.revoked_at)
        ):
            (in_force if mandate.revoked_at is None else ended)[mandate.family_id] = mandate
    return in_force, ended


def with_bank_data(family: Family) -> list[Guardian]:
    """The family's responsables whose IBAN is on file (those a mandate may be signed for)."""
    return [guardian for guardian in family.guardians if guardian.iban]


def ended_by_bank_change(mandate: SepaMandate) -> bool:
    """Whether a revoked mandate ended because its responsable's IBAN changed since."""
    guardian = mandate.guardian
    return guardian is not None and _compact(guardian.iban) != mandate.iban


def _compact(iban: str | None) -> str:
    return (iban or "").replace(" ", "").upper()


def _account(guardian: Guardian) -> tuple[str, str]:
    """The responsable's IBAN and BIC, checked again (the BIC deduced from a French IBAN if absent)."""
    try:
        iban = IBAN(guardian.iban or "")
    except SchwiftyException:
        raise BillingError(
            f"L'IBAN de {guardian.full_name} n'est pas valide : corrigez-le dans le Dossier Famille."
        ) from None
    try:
        bic = BIC(guardian.bic) if guardian.bic else iban.bic
    except SchwiftyException:
        bic = None
    if bic is None:
        raise BillingError(
            f"Le BIC de la banque de {guardian.full_name} manque : ajoutez-le dans le Dossier Famille."
        )
    return iban.compact, str(bic)


def _next_reference(family_id: int) -> str:
    """The next RUM of a family: PF-000042-01, -02… (unique: a copy that takes the same one loses
    on the unique index and runs again)."""
    count = db.session.scalar(
        sa.select(sa.func.count(SepaMandate.id)).where(SepaMandate.family_id == family_id)
    )
    return f"PF-{family_id:06d}-{count + 1:02d}"


def sign_mandate(
    family: Family, guardian_id: int | None, user: User, now: datetime
) -> tuple[SepaMandate, bool]:
    """The family chooses direct debit from a responsable's account: a mandate signed today (Paris),
    audited; True if new, False if one was already in force (a double click, two tabs: the same).
    BillingError (in French) for a responsable of another family or without bank data."""
    guardian = next((g for g in family.guardians if g.id == guardian_id), None)
    if guardian is None:
        raise BillingError("Choisissez le responsable dont le compte sera prélevé.")
    if not guardian.iban:
        raise BillingError(
            f"Aucune coordonnée bancaire n'est enregistrée pour {guardian.full_name} : ajoutez-les "
            "d'abord dans le Dossier Famille."
        )
    iban, bic = _account(guardian)
    claim(family)  # (a family's choices take turns: the second copy finds the first's mandate)
    current = mandates_in_force([family.id]).get(family.id)
    if current is not None:
        return current, False
    mandate = SepaMandate(
        family_id=family.id,
        guardian_id=guardian.id,
        reference=_next_reference(family.id),
        holder=(guardian.bank_holder or guardian.full_name)[:70],
        iban=iban,
        bic=bic,
        signed_on=today_in_paris(now),
        signed_by_id=user.id,
    )
    db.session.add(mandate)
    guardian.sepa_mandate_ref = mandate.reference
    db.session.flush()
    record(user, "sepa.mandate_signed", "family", family.id, f"{mandate.reference} ({mask_iban(iban)})")
    return mandate, True


def revoke(family: Family, user: User, now: datetime) -> SepaMandate | None:
    """The family stops paying by direct debit: its mandate in force ends now (audited). None if
    there was none (already stopped: a double click). Debits already sent to the bank stay."""
    claim(family)
    mandate = mandates_in_force([family.id]).get(family.id)
    if mandate is None:
        return None
    _end(mandate, now)
    record(user, "sepa.mandate_revoked", "family", family.id, mandate.reference)
    return mandate


def _end(mandate: SepaMandate, now: datetime) -> None:
    mandate.revoked_at = now
    if mandate.guardian is not None and mandate.guardian.sepa_mandate_ref == mandate.reference:
        mandate.guardian.sepa_mandate_ref = None
    db.session.flush()


def bank_changed(guardian: Guardian, agent: User | None, now: datetime) -> SepaMandate | None:
    """After a validated change of a responsable's bank data: a new IBAN ends the mandate signed for
    the old account (the parents are mailed to choose direct debit again); the same IBAN with a new
    BIC or holder carries them. The mandate ended, if it did."""
    mandate = db.session.scalar(
        sa.select(SepaMandate).where(SepaMandate.guardian_id == guardian.id, SepaMandate.revoked_at.is_(None))
    )
    if mandate is None:
        return None
    if _compact(guardian.iban) == mandate.iban:
        if guardian.bic:
            mandate.bic = guardian.bic
        mandate.holder = (guardian.bank_holder or guardian.full_name)[:70]
        return None
    _end(mandate, now)
    record(agent, "sepa.mandate_revoked", "family", mandate.family_id, f"{mandate.reference} (IBAN modifié)")
    for email, first_name in _parents(mandate.family_id):
        queue_mail(
            "debit_mandate_ended",
            email,
            first_name=first_name,
            reference=mandate.reference,
            iban=mask_iban(mandate.iban),
            link=public_url("billing.home"),
        )
    return mandate


def _parents(family_id: int) -> list[tuple[str, str]]:
    """E-mail and first name of the family's parent accounts (active subscription, activated)."""
    return db.session.execute(
        sa.select(User.email, User.first_name)
        .join(Subscription, Subscription.user_id == User.id)
        .where(
            Subscription.family_id == family_id,
            Subscription.ended_at.is_(None),
            User.activated_at.is_not(None),
        )
        .order_by(User.id)
    ).all()


# --- the collection date --------------------------------------------------------------------------


def notice_days() -> int:
    return current_app.config["DEBIT_NOTICE_DAYS"]


def announced_on(issued: date, due: date, mandate: SepaMandate, notice: int) -> date:
    """The collection date told to the family: the later of the due date and `notice` days after
    the invoice's issue (or after the mandate's signature, when the invoice came before it)."""
    return max(due, max(issued, mandate.signed_on) + timedelta(days=notice))


def business_day(day: date) -> date:
    """The day, or the next TARGET2 business day (no collection on a weekend or a TARGET holiday)."""
    closed = holidays.financial_holidays("XECB", years=[day.year, day.year + 1])
    while day.weekday() >= 5 or day in closed:
        day += timedelta(days=1)
    return day


@dataclass(frozen=True)
class Planned:
    """What the invoice pages say of its direct debit: the date and mandate of the debit in a file
    (`debit`) or announced (no debit yet), or the debit the bank rejected (`rejected`)."""

    on: date
    mandate: SepaMandate
    amount_cents: int
    debit: DirectDebit | None = None
    rejected: DirectDebit | None = None
    collected: bool = False  # its collection date is past

    @property
    def masked_iban(self) -> str:
        return mask_iban(self.mandate.iban)

    @property
    def reject_label(self) -> str:
        """The reject's standard reason, as the family reads it (never the agent's note)."""
        return reason_label(self.rejected.reject_code) if self.rejected else ""


def planned(invoice: Invoice, paid: int, today: date) -> Planned | None:
    """The invoice's direct debit: in a file, rejected, or announced (the family pays by direct
    debit and the invoice is not paid yet); None otherwise. Two queries at most."""
    debits = debits_of(invoice)
    if debits:
        current = next((debit for debit in debits if debit.rejected_at is None), None)
        if current is not None:
            on = current.batch.collection_date
            return Planned(on, current.mandate, current.amount_cents, current, collected=on < today)
        last = debits[-1]
        return Planned(last.batch.collection_date, last.mandate, last.amount_cents, rejected=last)
    if invoice.kind is not InvoiceKind.INVOICE or invoice.credited_by_id is not None:
        return None
    if paid >= invoice.total_cents:
        return None
    mandate = mandates_in_force([invoice.family_id]).get(invoice.family_id)
    if mandate is None:
        return None
    on = announced_on(today_in_paris(invoice.issued_at), invoice.due_date, mandate, notice_days())
    return Planned(on, mandate, invoice.total_cents - paid)


def debits_of(invoice: Invoice) -> list[DirectDebit]:
    """Every debit of an invoice, the rejected ones included, oldest first (the back office's page)."""
    return list(
        db.session.scalars(
            sa.select(DirectDebit)
            .where(DirectDebit.invoice_id == invoice.id)
            .options(sa.orm.joinedload(DirectDebit.batch), sa.orm.joinedload(DirectDebit.mandate))
            .order_by(DirectDebit.id)
        )
    )


# --- the month's file -----------------------------------------------------------------------------


@dataclass
class Due:
    """An invoice to debit: how much, on which mandate, with which sequence."""

    invoice_id: int
    number: str
    amount_cents: int
    mandate: SepaMandate
    sequence: str
    end_to_end_id: str
    announced: date


@dataclass
class Preview:
    month: date
    collection_date: date | None
    debits: list[Due] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.debits)

    @property
    def total_cents(self) -> int:
        return sum(due.amount_cents for due in self.debits)


def preview(month: date, today: date) -> Preview:
    """What the month's file would take now: the invoices to debit, and its collection date (the
    latest date announced to them, and never before LEAD_DAYS from today, on a business day). One query."""
    first, _last = month_bounds(month)
    paid = (
        sa.select(Payment.invoice_id, sa.func.sum(Payment.amount_cents).label("paid"))
        .group_by(Payment.invoice_id)
        .subquery()
    )
    used = (
        sa.exists()
        .where(DirectDebit.mandate_id == SepaMandate.id, DirectDebit.rejected_at.is_(None))
        .label("used")
    )
    rows = db.session.execute(
        sa.select(
            Invoice.id,
            Invoice.number,
            Invoice.total_cents,
            Invoice.issued_at,
            Invoice.due_date,
            sa.func.coalesce(paid.c.paid, 0),
            SepaMandate,
            used,
        )
        .join(
            SepaMandate,
            sa.and_(SepaMandate.family_id == Invoice.family_id, SepaMandate.revoked_at.is_(None)),
        )
        .outerjoin(paid, paid.c.invoice_id == Invoice.id)
        .where(
            Invoice.month == first,
            Invoice.kind == InvoiceKind.INVOICE,
            Invoice.credited_by_id.is_(None),
            Invoice.total_cents > sa.func.coalesce(paid.c.paid, 0),
            # (an invoice whose debit was rejected is paid otherwise: never debited again by itself)
            ~sa.exists().where(DirectDebit.invoice_id == Invoice.id),
            # (a parent paying it online this very moment: the next file takes it if still due)
            ~sa.exists().where(
                OnlinePaymentItem.invoice_id == Invoice.id,
                OnlinePaymentItem.online_payment_id == OnlinePayment.id,
                OnlinePayment.state == OnlineState.PENDING,
                OnlinePayment.created_at > utcnow() - PENDING_FOR,
            ),
        )
        .order_by(Invoice.id)
    ).all()
    notice = notice_days()
    debits = []
    for invoice_id, number, total, issued_at, due_date, paid_so_far, mandate, mandate_used in rows:
        debits.append(
            Due(
                invoice_id=invoice_id,
                number=number,
                amount_cents=total - paid_so_far,
                mandate=mandate,
                sequence="RCUR" if mandate_used else "FRST",
                end_to_end_id=number,
                announced=announced_on(today_in_paris(issued_at), due_date, mandate, notice),
            )
        )
    if not debits:
        return Preview(first, None)
    latest = max(due.announced for due in debits)
    return Preview(first, business_day(max(latest, today + timedelta(days=LEAD_DAYS))), debits)


def make_file(month: date, agent: User, now: datetime) -> tuple[DebitBatch | None, bool]:
    """Make the month's direct-debit file (audited): the batch, its debits and their payments, in the
    current transaction. (None, False) when nothing is left to debit — e.g. a second click finds the
    first's file made. BillingError when the creditor is not configured or the XML is not valid."""
    claim(agent)  # (an agent's clicks take turns; two agents: the unique index stops the second)
    plan = preview(month, today_in_paris(now))
    if not plan.debits:
        return None, False
    config = current_app.config
    if not all(
        config[name]
        for name in ("SEPA_CREDITOR_NAME", "SEPA_CREDITOR_ID", "SEPA_CREDITOR_IBAN", "SEPA_CREDITOR_BIC")
    ):
        raise BillingError(
            "Le créancier SEPA de la commune n'est pas configuré (SEPA_CREDITOR_NAME, _ID, _IBAN, _BIC)."
        )
    message_id, xml = _xml(plan, config)
    batch = DebitBatch(
        month=plan.month,
        collection_date=plan.collection_date,
        message_id=message_id,
        count=plan.count,
        total_cents=plan.total_cents,
        xml=xml,
        created_by_id=agent.id,
        created_at=now,
    )
    db.session.add(batch)
    db.session.flush()
    db.session.execute(
        sa.insert(DirectDebit),
        [
            {
                "batch_id": batch.id,
                "invoice_id": due.invoice_id,
                "mandate_id": due.mandate.id,
                "amount_cents": due.amount_cents,
                "sequence": due.sequence,
                "end_to_end_id": due.end_to_end_id,
            }
            for due in plan.debits
        ],
    )
    debit_ids = dict(
        db.session.execute(
            sa.select(DirectDebit.invoice_id, DirectDebit.id).where(DirectDebit.batch_id == batch.id)
        ).all()
    )
    db.session.execute(
        sa.insert(Payment),
        [
            {
                "invoice_id": due.invoice_id,
                "paid_on": plan.collection_date,
                "amount_cents": due.amount_cents,
                "method": PaymentMethod.DIRECT_DEBIT,
                "recorded_by_id": agent.id,
                "direct_debit_id": debit_ids[due.invoice_id],
                "created_at": now,
            }
            for due in plan.debits
        ],
    )
    record(
        agent,
        "sepa.file_made",
        "debit_batch",
        batch.id,
        f"{month_label(plan.month)} : {debits_count(plan.count)}, {euros(plan.total_cents)}",
    )
    return batch, True


def _xml(plan: Preview, config) -> tuple[str, bytes]:
    """The pain.008 of the plan (its message id and bytes), validated against the XSD by sepaxml."""
    town = config["TOWN_NAME"]
    document = SepaDD(
        {
            "name": config["SEPA_CREDITOR_NAME"],
            "IBAN": config["SEPA_CREDITOR_IBAN"],
            "BIC": config["SEPA_CREDITOR_BIC"],
            "batch": True,
            "creditor_id": config["SEPA_CREDITOR_ID"],
            "currency": "EUR",
        },
        schema=SCHEMA,
    )
    for due in plan.debits:
        document.add_payment(
            {
                "name": due.mandate.holder,
                "IBAN": due.mandate.iban,
                "BIC": due.mandate.bic,
                "amount": due.amount_cents,
                "type": due.sequence,
                "collection_date": plan.collection_date,
                "mandate_id": due.mandate.reference,
                "mandate_date": due.mandate.signed_on,
                "description": f"{town} facture {due.number} {month_label(plan.month)}",
                "endtoend_id": due.end_to_end_id,
            }
        )
    try:
        return document.msg_id, document.export(validate=True)
    except XsdError as error:
        raise BillingError(
            f"Le fichier de prélèvement n'est pas conforme au schéma {SCHEMA} : rien n'a été enregistré. "
            f"Détail : {error.__cause__ or error}"
        ) from error


def validate(xml: bytes) -> None:
    """Check a pain.008 against the XSD sepaxml ships (its ValidationError if it is not valid)."""
    try_valid_xml(xml, SCHEMA)


def batches(limit: int = 24) -> list[DebitBatch]:
    """The latest direct-debit files, newest first."""
    return list(
        db.session.scalars(
            sa.select(DebitBatch).order_by(DebitBatch.created_at.desc(), DebitBatch.id.desc()).limit(limit)
        )
    )


def mandates_list() -> list[SepaMandate]:
    """Every mandate in force, by family name (the back office's list)."""
    return list(
        db.session.scalars(
            sa.select(SepaMandate)
            .join(Family)
            .where(SepaMandate.revoked_at.is_(None))
            .options(sa.orm.contains_eager(SepaMandate.family))
            .order_by(Family.name, SepaMandate.id)
        )
    )


def batch_debits(batch: DebitBatch) -> list[tuple[DirectDebit, Invoice, SepaMandate]]:
    """A file's debits with their invoice and mandate (one query)."""
    return db.session.execute(
        sa.select(DirectDebit, Invoice, SepaMandate)
        .join(Invoice, Invoice.id == DirectDebit.invoice_id)
        .join(SepaMandate, SepaMandate.id == DirectDebit.mandate_id)
        .where(DirectDebit.batch_id == batch.id)
        .order_by(Invoice.family_name, DirectDebit.id)
    ).all()


# --- rejects --------------------------------------------------------------------------------------


def reject(debit: DirectDebit, code: str, agent: User | None, now: datetime, detail: str = "") -> bool:
    """A debit rejected by the debtor's bank: its payment deleted (the invoice is to pay again), the
    parents mailed the reason's standard label, audited, and the mandate ended for a code that says
    it is unusable. `detail` is the agent's internal note (kept as `reject_reason`, shown to agents
    only: it may say what the family must not read). False when it was already rejected (the same
    report twice, a double click): nothing changes."""
    if code not in REJECT_REASONS and not _CODE.fullmatch(code or ""):
        raise BillingError("Choisissez le motif du rejet.")
    note = detail.strip()[:200] or None
    done = db.session.execute(
        sa.update(DirectDebit)
        .where(DirectDebit.id == debit.id, DirectDebit.rejected_at.is_(None))
        .values(
            rejected_at=now,
            reject_code=code,
            reject_reason=note,
            rejected_by_id=agent.id if agent else None,
        )
        .execution_options(synchronize_session=False)
    ).rowcount
    if done != 1:
        return False
    db.session.execute(sa.delete(Payment).where(Payment.direct_debit_id == debit.id))
    db.session.expire_all()
    debit = db.session.get(DirectDebit, debit.id)
    invoice, mandate = debit.invoice, debit.mandate
    ended = code in MANDATE_ENDING and mandate.revoked_at is None
    if ended:
        _end(mandate, now)
    record(
        agent,
        "sepa.debit_rejected",
        "invoice",
        invoice.id,
        f"{invoice.number} : {code} {reason_label(code)}"
        + (f" ({note})" if note else "")
        + (" — mandat arrêté" if ended else ""),
    )
    link = public_url("billing.invoice_show", family_id=invoice.family_id, invoice_id=invoice.id)
    for email, first_name in _parents(invoice.family_id):
        queue_mail(
            "debit_rejected",
            email,
            first_name=first_name,
            number=invoice.number,
            amount=euros(debit.amount_cents),
            collection_date=debit.batch.collection_date.isoformat(),
            reason=reason_label(code),
            mandate_ended=ended,
            link=link,
        )
    return True


@dataclass
class ReportResult:
    """What an imported status report did: debits rejected now, already rejected before, ids not found."""

    rejected: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    accepted: int = 0


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _child(element: ET.Element, *path: str) -> ET.Element | None:
    """The first descendant along these local names (namespaces ignored)."""
    for name in path:
        element = next((child for child in element if _local(child.tag) == name), None)
        if element is None:
            return None
    return element


def _text(element: ET.Element | None) -> str:
    return (element.text or "").strip() if element is not None else ""


def read_report(data: bytes) -> tuple[list[tuple[str, str]], list[tuple[str, str]], int]:
    """A pain.002 status report's rejects: (end-to-end id, reason code) of each rejected transaction,
    (original message id, reason code) of each rejected file, and the count of transactions not
    rejected. BillingError for a file that is not one."""
    if len(data) > MAX_REPORT_BYTES:
        raise BillingError("Le fichier est trop volumineux pour un rapport de rejets.")
    try:
        # (a bank's report never declares a DTD or an entity: any, wherever it is, is refused)
        root = SafeET.fromstring(data, forbid_dtd=True)
    except DefusedXmlException:
        raise BillingError("Ce fichier n'est pas un rapport de rejets pain.002.") from None
    except ET.ParseError:
        raise BillingError("Ce fichier n'est pas un fichier XML lisible.") from None
    report = _child(root, "CstmrPmtStsRpt")
    if report is None:
        raise BillingError("Ce fichier n'est pas un rapport de rejets pain.002 (CstmrPmtStsRpt).")
    transactions, files, others = [], [], 0
    group = _child(report, "OrgnlGrpInfAndSts")
    if group is not None and _text(_child(group, "GrpSts")) == "RJCT":
        files.append((_text(_child(group, "OrgnlMsgId")), _reason(group)))
    for element in report.iter():
        if _local(element.tag) != "TxInfAndSts":
            continue
        if _text(_child(element, "TxSts")) == "RJCT":
            transactions.append((_text(_child(element, "OrgnlEndToEndId")), _reason(element)))
        else:
            others += 1
    return transactions, files, others


def _reason(element: ET.Element) -> str:
    code = _text(_child(element, "StsRsnInf", "Rsn", "Cd")).upper()
    return code if _CODE.fullmatch(code) else "MS03"


def import_report(data: bytes, agent: User, now: datetime) -> ReportResult:
    """Apply a pain.002 status report (audited): each rejected transaction's debit is rejected with
    its reason; the same report again changes nothing."""
    transactions, files, others = read_report(data)
    result = ReportResult(accepted=others)
    found = {
        debit.end_to_end_id: debit
        for debit in db.session.scalars(
            sa.select(DirectDebit).where(
                DirectDebit.end_to_end_id.in_([e2e for e2e, _ in transactions] or [""])
            )
        )
    }
    for message_id, code in files:  # a whole file rejected: each of its debits
        debits = db.session.scalars(
            sa.select(DirectDebit).join(DebitBatch).where(DebitBatch.message_id == message_id)
        ).all()
        if not debits:
            result.unknown.append(message_id)
        for debit in debits:
            found[debit.end_to_end_id] = debit
            transactions.append((debit.end_to_end_id, code))
    seen = set()
    for end_to_end_id, code in transactions:
        if end_to_end_id in seen:
            continue
        seen.add(end_to_end_id)
        debit = found.get(end_to_end_id)
        if debit is None:
            result.unknown.append(end_to_end_id)
        elif reject(debit, code, agent, now):
            result.rejected.append(end_to_end_id)
        else:
            result.already.append(end_to_end_id)
    record(
        agent,
        "sepa.report_imported",
        "debit_batch",
        None,
        f"{len(result.rejected)} rejet(s) enregistré(s), {len(result.already)} déjà connu(s), "
        f"{len(result.unknown)} inconnu(s)",
    )
    return result
