"""Back-office: the online payments of a day, with the provider's references, and the day's
reconciliation export for the treasury."""

from datetime import date, timedelta

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from portail.extensions import db
from portail.files import attachment
from portail.gestion.routes import bp
from portail.models import OnlinePayment, OnlineState, utcnow
from portail.services.billing import online, today_in_paris
from portail.services.outbox import commit


def _day() -> date:
    """The day asked (jour=YYYY-MM-DD), else today in Paris."""
    try:
        return date.fromisoformat(request.args.get("jour", ""))
    except ValueError:
        return today_in_paris(utcnow())


@bp.get("/facturation/paiements-en-ligne")
def online_payments():
    """The day's online payments: paid, refused, abandoned, awaited, to check (amount mismatch)."""
    day = _day()
    payments = online.for_day(day)
    paid = [p for p in payments if p.state is OnlineState.PAID]
    return render_template(
        "gestion/online_payments.html",
        day=day,
        previous=day - timedelta(days=1),
        following=day + timedelta(days=1),
        payments=payments,
        paid_total=sum(p.amount_cents for p in paid),
        paid_count=len(paid),
        states=OnlineState,
    )


@bp.get("/facturation/paiements-en-ligne/rapprochement.csv")
def online_reconciliation():
    """The day's reconciliation export (CSV for a spreadsheet): one line per invoice paid."""
    day = _day()
    return attachment(
        online.reconciliation_csv(day), "text/csv; charset=utf-8", f"paiements-en-ligne-{day.isoformat()}.csv"
    )


@bp.post("/facturation/paiements-en-ligne/<int:payment_id>/verifie")
def online_payment_checked(payment_id: int):
    """A payment notified with another amount, looked into: its invoices are to pay again (what
    was really received is entered on the invoice as a payment)."""
    payment = db.session.get(OnlinePayment, payment_id) or abort(404)
    if online.mark_checked(payment, current_user):
        commit()
        flash(
            "Le paiement est marqué vérifié. Enregistrez sur la facture le montant réellement reçu ; "
            "la famille peut de nouveau payer en ligne ce qui reste dû.",
            "success",
        )
    else:
        flash("Ce paiement n'est pas (ou plus) à vérifier.", "info")
    day = today_in_paris(payment.notified_at or payment.created_at)
    return redirect(url_for("gestion.online_payments", jour=day.isoformat()))
