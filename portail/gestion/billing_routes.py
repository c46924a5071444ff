"""Back-office billing: tariffs, billing runs with their progress, invoices, payments, exports."""

from datetime import date

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from portail.billing.routes import invoice_page, pdf_response
from portail.extensions import db
from portail.files import attachment
from portail.gestion.forms import PaymentForm, TariffForm
from portail.gestion.routes import bp, saved
from portail.htmx import is_htmx
from portail.models import BillingRun, Invoice, PaymentMethod, utcnow
from portail.queue import enqueue
from portail.services import billing
from portail.services.billing import BillingError, euros, exports, reminders
from portail.services.outbox import commit, rollback


@bp.get("/facturation/tarifs")
def tariffs():
    """The tariffs of every activity, with their brackets."""
    return render_template("gestion/tariffs.html", items=billing.all_tariffs())


@bp.route("/facturation/tarifs/nouveau", methods=["GET", "POST"])
def tariff_new():
    """Enter a tariff: its period, brackets by quotient, surcharge and late absences."""
    form = TariffForm()
    form.activity.choices = [(0, "— Choisir —")] + billing.activity_choices()
    if request.method == "GET":
        form.bill_late_absences.data = form.bill_unexcused_absences.data = True
        form.sick_days_billed.data, form.sick_certificate_days.data = 1, 3
    if form.validate_on_submit():
        try:
            billing.create_tariff(
                current_user,
                form.bracket_rows(),
                activity_id=form.activity.data,
                valid_from=form.valid_from.data,
                valid_until=form.valid_until.data,
                late_surcharge_cents=form.surcharge_cents(),
                bill_late_absences=form.bill_late_absences.data,
                bill_unexcused_absences=form.bill_unexcused_absences.data,
                unbooked_price_cents=form.unbooked_cents()[0],
                unbooked_surcharge_cents=form.unbooked_cents()[1],
                sick_days_billed=form.sick_days_billed.data,
                sick_certificate_days=form.sick_certificate_days.data,
                childcare=form.childcare.data,
            )
        except BillingError as problem:
            form.form_errors.append(str(problem))
        else:
            return saved("Le tarif est enregistré.", url_for("gestion.tariffs"))
    status = 422 if form.errors or form.form_errors else 200
    return render_template("gestion/tariff_form.html", form=form), status


@bp.post("/facturation/tarifs/<int:tariff_id>/supprimer")
def tariff_delete(tariff_id: int):
    """Remove a tariff entered by mistake; issued invoices keep their prices (a new run of a month
    billed with it gives a credit note)."""
    if not billing.delete_tariff(tariff_id, current_user):
        abort(404)
    return saved(
        "Le tarif est supprimé. Les factures déjà émises ne changent pas.", url_for("gestion.tariffs")
    )


def _month_arg(name: str = "mois") -> date | None:
    """The month of a YYYY-MM parameter, if valid."""
    value = request.values.get(name) or ""
    try:
        return date.fromisoformat(f"{value}-01")
    except ValueError:
        return None


@bp.get("/facturation")
def billing_home():
    """The billing runs, the months billed, and the form to bill a month (the last one by default)."""
    return render_template(
        "gestion/billing.html",
        runs=billing.recent_runs(),
        months=exports.monthly_totals(),
        default=billing.previous_month(billing.today_in_paris(utcnow())),
    )


@bp.post("/facturation/lancer")
def billing_start():
    """Queue the billing of a month for the worker, then show its progress."""
    month = _month_arg()
    if month is None:
        flash("Choisissez le mois à facturer.", "error")
        return redirect(url_for("gestion.billing_home"))
    try:
        run, fresh = billing.start(month, current_user)
    except BillingError as error:
        rollback()
        flash(str(error), "error")
        return redirect(url_for("gestion.billing_home"))
    commit()
    # A long month may take minutes on a large town: no retry (a run is started again by hand), 1 h at most.
    if fresh and not enqueue(
        "portail.jobs.billing_run", run.id, job_id=f"billing-run-{run.id}", timeout=3600, retry=None
    ):
        billing.not_queued(run)
        commit()
    return redirect(url_for("gestion.billing_run", run_id=run.id))


@bp.get("/facturation/executions/<int:run_id>")
def billing_run(run_id: int):
    """A billing run's progress (the fragment alone when HTMX polls it)."""
    run = db.get_or_404(BillingRun, run_id)
    template = "gestion/_billing_progress.html" if is_htmx() else "gestion/billing_run.html"
    return render_template(template, run=run)


@bp.get("/facturation/factures")
def invoices():
    """Invoices and credit notes by month, family, number or state."""
    month = _month_arg()
    family_q = (request.args.get("famille") or "").strip()[:100]
    state = request.args.get("etat") if request.args.get("etat") in billing.STATES else None
    family_id = request.args.get("famille_id", type=int)
    rows, total, pages, page_number = exports.found(
        exports.search(month, family_q, family_id), state, request.args.get("page", 1, type=int), utcnow()
    )
    return render_template(
        "gestion/invoices.html",
        rows=rows,
        total=total,
        pages=pages,
        page_number=page_number,
        month=month,
        family_q=family_q,
        family_id=family_id,
        state=state,
        states=billing.STATES,
        last_reminders=reminders.last_of([row[0].id for row in rows]),
    )


@bp.get("/facturation/export.<fmt>")
def invoices_export(fmt: str):
    """The month's invoices for the treasury: CSV (semicolon, decimal comma, UTF-8 with BOM, for Excel FR) or XLSX."""
    month = _month_arg()
    if month is None or fmt not in exports.FORMATS:
        abort(404)
    name, body, mimetype = exports.export(month, fmt, current_user, utcnow())
    commit()
    return attachment(body, mimetype, name)


@bp.route("/facturation/factures/<int:invoice_id>", methods=["GET", "POST"])
def invoice_show(invoice_id: int):
    """An invoice, its payments, and the form to record one."""
    invoice = db.get_or_404(Invoice, invoice_id)
    form = PaymentForm()
    if request.method == "GET":
        form.paid_on.data = billing.today_in_paris(utcnow())
    if form.validate_on_submit():
        try:
            payment, new = billing.enter_payment(
                invoice,
                form.paid_on.data,
                billing.parse_euros(form.amount.data),
                PaymentMethod[form.method.data],
                current_user,
                key=form.key.data,
            )
        except BillingError as error:
            rollback()
            form.form_errors.append(str(error))
        else:
            commit()
            done = "est enregistré" if new else "est déjà enregistré"
            flash(f"Le paiement de {euros(payment.amount_cents)} {done}.", "success")
            return redirect(url_for("gestion.invoice_show", invoice_id=invoice.id))
    # Shown again after an error, the form is a new entry too: nothing was recorded under its old key.
    form.renew_key()
    status = 422 if form.errors or form.form_errors else 200
    return invoice_page(
        "gestion/invoice.html",
        invoice,
        form=form,
        staff=True,
        methods=billing.METHOD_LABELS,
        reminders=reminders.of_invoice(invoice.id),
    ), status


@bp.get("/facturation/factures/<int:invoice_id>/pdf")
def invoice_pdf(invoice_id: int):
    """The invoice's PDF."""
    return pdf_response(db.get_or_404(Invoice, invoice_id))
