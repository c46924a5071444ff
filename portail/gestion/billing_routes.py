"""Back-office billing: tariffs, billing runs with their progress, invoices, payments, exports."""

import csv
import io
import re
import secrets
from datetime import date
from decimal import Decimal

import sqlalchemy as sa
from flask import abort, flash, make_response, redirect, render_template, request, url_for
from flask_login import current_user
from wtforms import BooleanField, DateField, FieldList, FormField, HiddenField, SelectField, StringField
from wtforms.validators import Optional, ValidationError

from portail.billing import invoice_state, pdf_response
from portail.extensions import db
from portail.forms import FlaskForm, Subform, required
from portail.gestion import bp
from portail.htmx import is_htmx
from portail.models import (
    Activity,
    AuditEvent,
    BillingRun,
    Invoice,
    InvoiceKind,
    PaymentMethod,
    RunState,
    Tariff,
    utcnow,
)
from portail.queue import enqueue
from portail.services import billing
from portail.services.audit import record
from portail.services.billing import BillingError, euros, month_label
from portail.services.outbox import commit, rollback
from portail.services.transactions import TWIN_WITHIN, claim, twin

BRACKET_ROWS = 6
STATES = ["À payer", "En retard", "Payée", "Prélevée", "Annulée", "Avoir"]


def _euros_field(label: str, **kwargs) -> StringField:
    return StringField(
        label,
        description="En euros, par exemple 3,30",
        render_kw={"inputmode": "decimal", "autocomplete": "off"},
        **kwargs,
    )


def _check_euros(_form, field) -> None:
    if field.data and field.data.strip():
        try:
            billing.parse_euros(field.data)
        except ValueError:
            raise ValidationError("Saisissez un montant en euros, par exemple 3,30.") from None


class BracketForm(Subform):
    upper = StringField("Quotient jusqu'à", render_kw={"inputmode": "numeric", "autocomplete": "off"})
    price = StringField(
        "Prix par jour (€)",
        validators=[_check_euros],
        render_kw={"inputmode": "decimal", "autocomplete": "off"},
    )

    def validate_upper(self, field) -> None:
        if field.data and not field.data.strip().isdigit():
            raise ValidationError("Saisissez un quotient entier, par exemple 622.")


class TariffForm(FlaskForm):
    activity = SelectField("Activité", coerce=int, validators=[required("Choisissez l'activité.")])
    valid_from = DateField("Valable à partir du", validators=[required("Saisissez la date de début.")])
    valid_until = DateField("Valable jusqu'au", validators=[Optional()])
    surcharge = _euros_field("Majoration par jour réservé hors délai", validators=[_check_euros])
    bill_late_absences = BooleanField("Facturer les absences déclarées après le délai d'absence")
    brackets = FieldList(
        FormField(BracketForm), label="Tranche", min_entries=BRACKET_ROWS, max_entries=BRACKET_ROWS
    )

    def validate_valid_until(self, field) -> None:
        if field.data and self.valid_from.data and field.data < self.valid_from.data:
            raise ValidationError("La date de fin doit suivre la date de début.")

    def bracket_rows(self) -> list[tuple[int | None, int]]:
        rows = []
        for entry in self.brackets:
            upper, price = (entry.form.upper.data or "").strip(), (entry.form.price.data or "").strip()
            if not upper and not price:
                continue
            if not price:
                raise BillingError("Chaque tranche saisie doit avoir un prix.")
            rows.append((int(upper) if upper else None, billing.parse_euros(price)))
        return rows


@bp.get("/facturation/tarifs")
def tariffs():
    items = db.session.scalars(
        sa.select(Tariff)
        .join(Activity)
        .options(sa.orm.selectinload(Tariff.brackets), sa.orm.contains_eager(Tariff.activity))
        .order_by(Activity.name, Tariff.valid_from.desc())
    ).all()
    return render_template("gestion/tariffs.html", items=items, euros=euros)


@bp.route("/facturation/tarifs/nouveau", methods=["GET", "POST"])
def tariff_new():
    form = TariffForm()
    form.activity.choices = [(0, "— Choisir —")] + [
        (a.id, a.name) for a in db.session.scalars(sa.select(Activity).order_by(Activity.name))
    ]
    if request.method == "GET":
        form.bill_late_absences.data = True
    error = None
    if form.validate_on_submit():
        try:
            brackets = billing.make_brackets(form.bracket_rows())
        except BillingError as problem:
            error = str(problem)
        else:
            values = dict(
                activity_id=form.activity.data,
                valid_from=form.valid_from.data,
                valid_until=form.valid_until.data,
                late_surcharge_cents=billing.parse_euros(form.surcharge.data)
                if (form.surcharge.data or "").strip()
                else 0,
                bill_late_absences=form.bill_late_absences.data,
            )
            claim(current_user)  # (the same form sent twice: the second copy finds the first's tariff)
            if twin(Tariff, within=TWIN_WITHIN, **values) is not None:
                flash("Le tarif est enregistré.", "success")
                return redirect(url_for("gestion.tariffs"))
            tariff = Tariff(**values, brackets=brackets)
            db.session.add(tariff)
            db.session.flush()
            record(
                current_user,
                "tariff.created",
                "tariff",
                tariff.id,
                f"activité {tariff.activity_id} à partir du {tariff.valid_from}",
            )
            commit()
            flash("Le tarif est enregistré.", "success")
            return redirect(url_for("gestion.tariffs"))
    if error:
        form.form_errors.append(error)
    status = 422 if form.errors or error else 200
    return render_template("gestion/tariff_form.html", form=form), status


@bp.post("/facturation/tarifs/<int:tariff_id>/supprimer")
def tariff_delete(tariff_id: int):
    """Remove a tariff entered by mistake; issued invoices keep their prices (a new run of a month
    billed with it gives a credit note)."""
    tariff = db.session.get(Tariff, tariff_id)
    deleted = dict(action="tariff.deleted", target_type="tariff", target_id=tariff_id)
    if tariff is None and twin(AuditEvent, **deleted) is not None:  # (a double click: it is done)
        flash("Le tarif est supprimé. Les factures déjà émises ne changent pas.", "success")
        return redirect(url_for("gestion.tariffs"))
    if tariff is None:
        abort(404)
    claim(tariff)  # (removed once: a copy sent at the same moment then finds it gone)
    record(
        current_user,
        "tariff.deleted",
        "tariff",
        tariff.id,
        f"{tariff.activity.name} à partir du {tariff.valid_from}",
    )
    db.session.delete(tariff)
    commit()
    flash("Le tarif est supprimé. Les factures déjà émises ne changent pas.", "success")
    return redirect(url_for("gestion.tariffs"))


def _month_arg(name: str = "mois") -> date | None:
    value = request.values.get(name) or ""
    try:
        return date.fromisoformat(f"{value}-01")
    except ValueError:
        return None


@bp.get("/facturation")
def billing_home():
    runs = db.session.scalars(
        sa.select(BillingRun)
        .options(sa.orm.joinedload(BillingRun.started_by))
        .order_by(BillingRun.id.desc())
        .limit(12)
    ).all()
    months = db.session.execute(
        sa.select(Invoice.month, sa.func.count(Invoice.id), sa.func.sum(Invoice.total_cents))
        .group_by(Invoice.month)
        .order_by(Invoice.month.desc())
        .limit(24)
    ).all()
    default = billing.previous_month(billing.today_in_paris(utcnow()))
    return render_template(
        "gestion/billing.html",
        runs=runs,
        months=months,
        default=default,
        month_label=month_label,
        euros=euros,
    )


@bp.post("/facturation/lancer")
def billing_start():
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
    if fresh:
        record(current_user, "billing.started", "billing_run", run.id, month_label(month))
    commit()
    # A long month may take minutes on a large town: no retry (a run is started again by hand), 1 h at most.
    if fresh and not enqueue(
        "portail.jobs.billing_run", run.id, job_id=f"billing-run-{run.id}", timeout=3600, retry=None
    ):
        run.state, run.error, run.finished_at = (
            RunState.FAILED,
            "Le service des tâches est indisponible : relancez dans quelques minutes.",
            utcnow(),
        )
        commit()
    return redirect(url_for("gestion.billing_run", run_id=run.id))


@bp.get("/facturation/executions/<int:run_id>")
def billing_run(run_id: int):
    run = db.session.get(BillingRun, run_id)
    if run is None:
        abort(404)
    template = "gestion/_billing_progress.html" if is_htmx() else "gestion/billing_run.html"
    return render_template(template, run=run, month_label=month_label)


def _invoices_query(month: date | None, family_q: str, family_id: int | None = None):
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


@bp.get("/facturation/factures")
def invoices():
    month = _month_arg()
    family_q = (request.args.get("famille") or "").strip()[:100]
    state = request.args.get("etat") if request.args.get("etat") in STATES else None
    family_id = request.args.get("famille_id", type=int)
    query = _invoices_query(month, family_q, family_id)
    if state:  # the state depends on payments and dates: filter the month's rows in Python
        rows = [
            row for row in billing.with_states(db.session.scalars(query).all(), utcnow()) if row[2] == state
        ]
        page_rows, total, pages, page_number = rows[:200], len(rows), 1, 1
    else:
        page = db.paginate(
            query, page=max(request.args.get("page", 1, type=int), 1), per_page=50, error_out=False
        )
        page_rows, total, pages, page_number = (
            billing.with_states(page.items, utcnow()),
            page.total,
            page.pages,
            page.page,
        )
    return render_template(
        "gestion/invoices.html",
        rows=page_rows,
        total=total,
        pages=pages,
        page_number=page_number,
        month=month,
        family_q=family_q,
        family_id=family_id,
        state=state,
        states=STATES,
        month_label=month_label,
        euros=euros,
    )


def _export_rows(month: date) -> list[list]:
    """One row per invoice or credit note; amounts in euros as exact decimals."""
    rows = []
    invoices = db.session.scalars(
        _invoices_query(month, "").options(sa.orm.joinedload(Invoice.corrects))
    ).all()
    for invoice, paid, state in billing.with_states(invoices, utcnow()):
        rows.append(
            [
                invoice.number,
                "Avoir" if invoice.kind is InvoiceKind.CREDIT_NOTE else "Facture",
                invoice.family_id,
                invoice.family_name,
                month_label(invoice.month),
                billing.today_in_paris(invoice.issued_at).isoformat(),
                invoice.due_date.isoformat(),
                Decimal(invoice.total_cents) / 100,
                Decimal(paid) / 100,
                state,
                invoice.corrects.number if invoice.corrects else "",
            ]
        )
    return rows


EXPORT_HEADER = [
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


@bp.get("/facturation/export.<fmt>")
def invoices_export(fmt: str):
    """The month's invoices for the treasury: CSV (semicolon, decimal comma, UTF-8 with BOM, for Excel FR) or XLSX."""
    month = _month_arg()
    if month is None or fmt not in ("csv", "xlsx"):
        abort(404)
    rows = _export_rows(month)
    name = f"factures-{month:%Y-%m}.{fmt}"
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, delimiter=";")
        writer.writerow(EXPORT_HEADER)
        for row in rows:
            writer.writerow(
                [f"{value:.2f}".replace(".", ",") if isinstance(value, Decimal) else value for value in row]
            )
        body, mimetype = ("\ufeff" + buffer.getvalue()).encode("utf-8"), "text/csv; charset=utf-8"
    else:
        from openpyxl import Workbook

        book = Workbook()
        sheet = book.active
        sheet.title = f"Factures {month:%Y-%m}"
        sheet.append(EXPORT_HEADER)
        for row in rows:
            sheet.append(row)
        for cell in ("H", "I"):
            for column_cell in sheet[cell][1:]:
                column_cell.number_format = "#,##0.00 €"
        output = io.BytesIO()
        book.save(output)
        body, mimetype = (
            output.getvalue(),
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        )
    record(current_user, "billing.exported", "invoice", None, name)
    commit()
    response = make_response(body)
    response.headers["Content-Type"] = mimetype
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


def _invoice_or_404(invoice_id: int) -> Invoice:
    invoice = db.session.get(Invoice, invoice_id)
    if invoice is None:
        abort(404)
    return invoice


# The hidden key of a payment form as rendered (secrets.token_urlsafe(16): 22 characters).
PAYMENT_KEY = re.compile(r"[A-Za-z0-9_-]{16,64}")


class PaymentForm(FlaskForm):
    # One random key per form shown: its copies (a double click, a resent page) are one payment,
    # two forms are two payments even with the same values (two cheques of the same amount).
    key = HiddenField()
    paid_on = DateField("Date du paiement", validators=[required("Saisissez la date du paiement.")])
    amount = _euros_field("Montant", validators=[required("Saisissez le montant."), _check_euros])
    method = SelectField(
        "Moyen de paiement",
        choices=[("", "— Choisir —")] + [(m.name, billing.METHOD_LABELS[m]) for m in PaymentMethod],
        validators=[required("Choisissez le moyen de paiement.")],
    )

    def validate_paid_on(self, field) -> None:
        if field.data and field.data > billing.today_in_paris(utcnow()):
            raise ValidationError("La date du paiement ne peut pas être dans le futur.")

    def validate_amount(self, field) -> None:
        if field.data and not self.amount.errors:
            try:
                if billing.parse_euros(field.data) <= 0:
                    raise ValidationError("Le montant doit être supérieur à zéro.")
            except ValueError:
                pass

    def validate(self, extra_validators=None) -> bool:
        valid = super().validate(extra_validators)
        if not PAYMENT_KEY.fullmatch(self.key.data or ""):  # a page shown before the key existed
            self.form_errors.append(
                "Le paiement n'a pas été enregistré : ce formulaire n'était plus à jour. Vérifiez les "
                "paiements ci-dessus, puis cliquez à nouveau sur « Enregistrer le paiement »."
            )
            return False
        return valid

    def renew_key(self) -> None:
        """A new key: the form shown is a new entry."""
        self.key.data = secrets.token_urlsafe(16)


@bp.route("/facturation/factures/<int:invoice_id>", methods=["GET", "POST"])
def invoice_show(invoice_id: int):
    """An invoice, its payments, and the form to record one."""
    invoice = _invoice_or_404(invoice_id)
    form = PaymentForm()
    if request.method == "GET":
        form.paid_on.data = billing.today_in_paris(utcnow())
    if form.validate_on_submit():
        try:
            payment = billing.record_payment(
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
            if payment.id is None:
                db.session.flush()  # (a copy sent at the same moment stops here, then finds this payment)
                record(
                    current_user,
                    "payment.recorded",
                    "invoice",
                    invoice.id,
                    f"{euros(payment.amount_cents)} ({payment.method.value})",
                )
                message = f"Le paiement de {euros(payment.amount_cents)} est enregistré."
            else:  # the same form sent again: the payment it recorded
                message = f"Le paiement de {euros(payment.amount_cents)} est déjà enregistré."
            commit()
            flash(message, "success")
            return redirect(url_for("gestion.invoice_show", invoice_id=invoice.id))
    # Shown again after an error, the form is a new entry too: nothing was recorded under its old key.
    form.renew_key()
    paid, state = invoice_state(invoice)
    return render_template(
        "gestion/invoice.html",
        invoice=invoice,
        paid=paid,
        state=state,
        form=form,
        euros=euros,
        month_label=month_label,
        staff=True,
        methods=billing.METHOD_LABELS,
    ), 422 if form.errors or form.form_errors else 200


@bp.get("/facturation/factures/<int:invoice_id>/pdf")
def invoice_pdf(invoice_id: int):
    return pdf_response(_invoice_or_404(invoice_id))
