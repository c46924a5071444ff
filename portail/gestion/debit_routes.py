"""Back-office direct debit: the mandates in force, the month's pain.008 file (its preview, then made
once), the files made and their debits, and the rejects — entered by hand or imported from the
bank's status report."""

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user

from portail.extensions import db
from portail.files import attachment
from portail.formatting import french_date, month_value
from portail.gestion.billing_routes import _month_arg
from portail.gestion.debit_forms import NOTE_HINT, RejectForm, ReportForm
from portail.gestion.routes import bp, saved
from portail.models import DebitBatch, DirectDebit, Invoice, utcnow
from portail.services import billing
from portail.services.audit import record
from portail.services.billing import BillingError, euros, month_label, sepa
from portail.services.outbox import commit, rollback

bp.add_app_template_global(sepa.REJECT_REASONS, "debit_reasons")
bp.add_app_template_global(sepa.reason_label, "debit_reason_label")
bp.add_app_template_global(NOTE_HINT, "reject_note_hint")


@bp.app_template_global()
def invoice_debits(invoice: Invoice) -> list[DirectDebit]:
    """An invoice's debits, rejected ones included (the staff invoice page)."""
    return sepa.debits_of(invoice)


@bp.get("/facturation/prelevements")
def debits():
    """Prélèvements: the month's file to make (what it would take), the files made, the mandates in force."""
    today = billing.today_in_paris(utcnow())
    month = _month_arg() or billing.previous_month(today)
    return render_template(
        "gestion/debits.html",
        month=month,
        plan=sepa.preview(month, today),
        batches=sepa.batches(),
        mandates=sepa.mandates_list(),
        report_form=ReportForm(),
    )


@bp.post("/facturation/prelevements/fichier")
def debit_file_make():
    """Make the month's direct-debit file, once (a second click finds nothing left to debit)."""
    month = _month_arg()
    if month is None:
        flash("Choisissez le mois à prélever.", "error")
        return redirect(url_for("gestion.debits"))
    try:
        batch, _new = sepa.make_file(month, current_user, utcnow())
    except BillingError as error:
        rollback()
        flash(str(error), "error")
        return redirect(url_for("gestion.debits", mois=month_value(month)))
    if batch is None:
        rollback()
        flash(
            f"Aucune facture de {month_label(month)} n'est à prélever : elles sont déjà dans un fichier, "
            "payées, ou leurs familles n'ont pas choisi le prélèvement.",
            "info",
        )
        return redirect(url_for("gestion.debits", mois=month_value(month)))
    return saved(
        f"Le fichier de prélèvement de {month_label(month)} est prêt : {sepa.debits_count(batch.count)}, "
        f"{euros(batch.total_cents)}, le {french_date(batch.collection_date)}.",
        url_for("gestion.debit_batch", batch_id=batch.id),
    )


@bp.get("/facturation/prelevements/<int:batch_id>")
def debit_batch(batch_id: int):
    """A direct-debit file: its debits, each with the form to enter a reject."""
    batch = db.get_or_404(DebitBatch, batch_id)
    return render_template("gestion/debits_batch.html", batch=batch, rows=sepa.batch_debits(batch))


@bp.get("/facturation/prelevements/<int:batch_id>/xml")
def debit_batch_xml(batch_id: int):
    """The file's pain.008 XML for the treasury (full IBANs: audited, never cached)."""
    batch = db.get_or_404(DebitBatch, batch_id)
    record(current_user, "sepa.file_downloaded", "debit_batch", batch.id, batch.message_id)
    commit()
    return attachment(
        batch.xml, "application/xml; charset=utf-8", f"prelevements-{month_value(batch.month)}-{batch.id}.xml"
    )


@bp.post("/facturation/prelevements/debits/<int:debit_id>/rejet")
def debit_reject(debit_id: int):
    """Enter a reject notified by the bank: the invoice is to pay again, the family is mailed."""
    debit = db.get_or_404(DirectDebit, debit_id)
    back = (
        url_for("gestion.invoice_show", invoice_id=debit.invoice_id)
        if request.form.get("retour") == "facture"
        else url_for("gestion.debit_batch", batch_id=debit.batch_id, _anchor=f"debit-{debit.id}")
    )
    form = RejectForm()
    if not form.validate_on_submit():
        for message in [*form.code.errors, *form.detail.errors] or ["Le formulaire n'était plus à jour."]:
            flash(message, "error")
        return redirect(back)
    if not sepa.reject(debit, form.code.data, current_user, utcnow(), form.detail.data or ""):
        flash(f"Le rejet du prélèvement {debit.end_to_end_id} est déjà enregistré.", "info")
        return redirect(back)
    return saved(
        f"Le rejet du prélèvement {debit.end_to_end_id} est enregistré : la facture est de nouveau à payer "
        "et la famille est prévenue par e-mail.",
        back,
    )


@bp.post("/facturation/prelevements/rejets")
def debit_report_import():
    """Import the bank's status report (pain.002): each rejected debit is entered; the same report
    again changes nothing."""
    form = ReportForm()
    if not form.validate_on_submit():
        for message in form.report.errors or ["Le formulaire n'était plus à jour."]:
            flash(message, "error")
        return redirect(url_for("gestion.debits"))
    try:
        result = sepa.import_report(form.report.data.read(), current_user, utcnow())
    except BillingError as error:
        rollback()
        flash(str(error), "error")
        return redirect(url_for("gestion.debits"))
    commit()
    for message, category in _report_messages(result):
        flash(message, category)
    return redirect(url_for("gestion.debits"))


def _report_messages(result: sepa.ReportResult) -> list[tuple[str, str]]:
    """What an import did, in French."""
    messages = []
    if result.rejected:
        messages.append(
            (
                f"{len(result.rejected)} rejet(s) enregistré(s) ({', '.join(result.rejected[:10])}"
                f"{'…' if len(result.rejected) > 10 else ''}) : chaque facture est de nouveau à payer "
                "et sa famille est prévenue par e-mail.",
                "success",
            )
        )
    if result.already:
        messages.append(
            (f"{len(result.already)} rejet(s) déjà enregistré(s) : rien n'a changé pour eux.", "info")
        )
    if result.unknown:
        messages.append(
            (
                f"{len(result.unknown)} référence(s) inconnue(s) du portail : {', '.join(result.unknown[:10])}.",
                "error",
            )
        )
    if not messages:
        messages.append(("Ce rapport ne contient aucun rejet.", "info"))
    return messages
