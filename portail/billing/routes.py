"""Espace Facturation: the invoices of the families the parent is subscribed to, their detail and PDF."""

from flask import Blueprint, current_app, g, render_template
from flask_login import current_user

from portail.family.loaders import family_of_current_user, member_or_404
from portail.files import attachment
from portail.models import Invoice, utcnow
from portail.services import billing
from portail.services.billing import online
from portail.services.billing import pdf as invoice_pdf
from portail.services.subscriptions import active_families

bp = Blueprint("billing", __name__, url_prefix="/facturation")


@bp.get("/")
def home():
    """Espace Facturation: for each family, what is left to pay and its invoices, newest first."""
    families = g.nav_families = active_families(current_user)  # (the menus' families: not read twice)
    by_family = billing.invoices_by_family([family.id for family in families], utcnow())
    return render_template(
        "billing/home.html",
        families=families,
        by_family=by_family,
        balances={family_id: billing.balance_of(rows) for family_id, rows in by_family.items()},
        pay_online=online.provider() is not None,
    )


def _invoice_of(family_id: int, invoice_id: int) -> Invoice:
    """An invoice of a family the parent is subscribed to, else 404."""
    return member_or_404(family_of_current_user(family_id), Invoice, invoice_id)


@bp.get("/<int:family_id>/factures/<int:invoice_id>")
def invoice_show(family_id: int, invoice_id: int):
    """An invoice or credit note: its lines, what is paid and its state."""
    invoice = _invoice_of(family_id, invoice_id)
    return invoice_page(
        "billing/invoice.html",
        invoice,
        staff=False,
        pay_online=online.provider() is not None,
        holding=online.holding(invoice, utcnow()),
    )


@bp.get("/<int:family_id>/factures/<int:invoice_id>/pdf")
def invoice_pdf_download(family_id: int, invoice_id: int):
    """The invoice's PDF."""
    return pdf_response(_invoice_of(family_id, invoice_id))


def invoice_page(template: str, invoice: Invoice, **context) -> str:
    """An invoice's page with what is paid and its state now (also the back office's)."""
    paid, state = billing.state_now(invoice, utcnow())
    return render_template(template, invoice=invoice, paid=paid, state=state, **context)


def pdf_response(invoice: Invoice):
    """The invoice's PDF as a download, never cached (also the back office's)."""
    paid, state = billing.state_now(invoice, utcnow())
    return attachment(
        invoice_pdf.render(invoice, current_app.config["TOWN_NAME"], state, paid),
        "application/pdf",
        f"{invoice.number}.pdf",
    )
