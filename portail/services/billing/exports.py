"""The back office's view of the invoices: search by month, family or number, totals per month, and
the month's export for the treasury (CSV for Excel FR, or XLSX)."""

import csv
import io
from datetime import date, datetime
from decimal import Decimal

import sqlalchemy as sa

from portail.extensions import db
from portail.formatting import month_label, today_in_paris
from portail.models import Invoice, InvoiceKind, User
from portail.services.audit import record
from portail.services.billing.payments import with_states

FORMATS = ("csv", "xlsx")
HEADER = [
    "Numéro",
    "Type",
    "N° famille",
    "Famille",
    "Période",
    "Émise le",
    "Échéance",
    "Montant (€)",
    "Réglé (€)",
    "État",
    "Annule",
]
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def search(month: date | None, family_q: str, family_id: int | None = None) -> sa.Select:
    """Invoices and credit notes of a month, a family, or whose family name or number matches, by number."""
    query = sa.select(Invoice)
    if family_id:
        query = query.where(Invoice.family_id == family_id)
    if month:
        query = query.where(Invoice.month == month)
    if family_q:
        query = query.where(
            sa.or_(
                sa.func.lower(Invoice.family_name).like(f"%{family_q.lower()}%"),
                Invoice.number == family_q.upper(),
            )
        )
    return query.order_by(Invoice.number)


def found(
    query: sa.Select, state: str | None, page: int, now: datetime
) -> tuple[list[tuple[Invoice, int, str]], int, int, int]:
    """A page of the search's invoices with their paid amounts and states: (rows, total, pages, page)."""
    if state:  # the state depends on payments and dates: filter the month's rows in Python
        rows = [row for row in with_states(db.session.scalars(query).all(), now) if row[2] == state]
        return rows[:200], len(rows), 1, 1
    listed = db.paginate(query, page=max(page, 1), per_page=50, error_out=False)
    return with_states(listed.items, now), listed.total, listed.pages, listed.page


def monthly_totals(limit: int = 24) -> list[tuple[date, int, int]]:
    """(month, documents, total in cents) of the latest months billed, newest first."""
    return db.session.execute(
        sa.select(Invoice.month, sa.func.count(Invoice.id), sa.func.sum(Invoice.total_cents))
        .group_by(Invoice.month)
        .order_by(Invoice.month.desc())
        .limit(limit)
    ).all()


def rows(month: date, now: datetime) -> list[list]:
    """One row per invoice or credit note of the month; amounts in euros as exact decimals."""
    invoices = db.session.scalars(search(month, "").options(sa.orm.joinedload(Invoice.corrects))).all()
    return [
        [
            invoice.number,
            "Avoir" if invoice.kind is InvoiceKind.CREDIT_NOTE else "Facture",
            invoice.family_id,
            invoice.family_name,
            month_label(invoice.month),
            today_in_paris(invoice.issued_at).isoformat(),
            invoice.due_date.isoformat(),
            Decimal(invoice.total_cents) / 100,
            Decimal(paid) / 100,
            state,
            invoice.corrects.number if invoice.corrects else "",
        ]
        for invoice, paid, state in with_states(invoices, now)
    ]


def export(month: date, fmt: str, agent: User, now: datetime) -> tuple[str, bytes, str]:
    """The month's invoices for the treasury, audited: (file name, content, MIME type). CSV:
    semicolons, decimal comma, UTF-8 with BOM (Excel FR); XLSX: amounts as numbers in euros."""
    table = rows(month, now)
    name = f"factures-{month:%Y-%m}.{fmt}"
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, delimiter=";")
        writer.writerow(HEADER)
        for row in table:
            writer.writerow(
                [f"{value:.2f}".replace(".", ",") if isinstance(value, Decimal) else value for value in row]
            )
        body, mimetype = ("\ufeff" + buffer.getvalue()).encode("utf-8"), "text/csv; charset=utf-8"
    else:
        from openpyxl import Workbook  # (a fifth of a second to import: only when a sheet is asked for)

        book = Workbook()
        sheet = book.active
        sheet.title = f"Factures {month:%Y-%m}"
        sheet.append(HEADER)
        for row in table:
            sheet.append(row)
        for column in ("H", "I"):
            for cell in sheet[column][1:]:
                cell.number_format = "#,##0.00 €"
        output = io.BytesIO()
        book.save(output)
        body, mimetype = output.getvalue(), XLSX
    record(agent, "billing.exported", "invoice", None, name)
    return name, body, mimetype
