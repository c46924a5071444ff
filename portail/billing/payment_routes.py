"""Paying online (issue 18): the parent's "Payer en ligne", the return from the bank, the provider's
server-to-server notification, and the test bank that plays the provider in development and tests.

The return page only reads what the notification recorded: the invoice is paid by the notification.
"""

import logging

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user

from portail.access import public
from portail.billing.routes import bp
from portail.extensions import csrf, db
from portail.family.loaders import family_of_current_user, member_or_404
from portail.htmx import is_htmx
from portail.models import Invoice, OnlinePayment, OnlineState, utcnow
from portail.queue import enqueue
from portail.services.billing import BillingError, online, providers
from portail.services.outbox import commit, rollback

log = logging.getLogger(__name__)

# The provider's notifications: no session, no CSRF token (the provider is not a browser); what
# they say is verified with the provider (`providers`).
notify_bp = Blueprint("payment_notify", __name__, url_prefix="/paiement")
csrf.exempt(notify_bp)


@bp.post("/<int:family_id>/payer")
def pay(family_id: int):
    """Start paying one invoice (`facture`) or everything due (no `facture`): to the provider's page."""
    family = family_of_current_user(family_id)
    if online.provider() is None:
        abort(404)
    raw = request.form.get("facture", "").strip()
    if raw and not raw.isdigit():
        abort(404)
    invoice_ids = [member_or_404(family, Invoice, int(raw)).id] if raw else None
    shown = request.form.get("montant", "").strip()  # (everything due, as the page showed it)
    expected = int(shown) if shown.isdigit() and len(shown) < 10 else None
    try:
        payment = online.start(current_user, family, invoice_ids, utcnow(), expected)
        target = online.begin(payment)
        commit()
    except BillingError as problem:
        rollback()
        flash(str(problem), "error")
        return redirect(url_for("billing.home"))
    except providers.ProviderError as problem:
        rollback()
        log.warning("online payment not started: %s", problem)
        flash(
            "Le service de paiement en ligne ne répond pas pour le moment. Rien n'a été payé : "
            "réessayez dans quelques minutes.",
            "error",
        )
        return redirect(url_for("billing.home"))
    return redirect(target)


@bp.get("/<int:family_id>/paiements/<reference>")
def payment_return(family_id: int, reference: str):
    """Where the bank sends the parent back: what the provider's notification said, or that it is
    awaited (the browser's return itself pays nothing). While awaited, htmx asks every 3 s: an
    empty 204 while nothing changed (nothing swapped, nothing announced, the focus stays), then the
    answer, swapped into the page's live region, with 286 to stop asking."""
    family = family_of_current_user(family_id)
    payment = online.of_family(family.id, reference)
    if payment is None:
        abort(404)
    now = utcnow()
    waiting = payment.state is OnlineState.PENDING and now < online.awaited_until(payment)
    context = dict(
        family=family,
        payment=payment,
        states=OnlineState,
        waiting=waiting,
        online_until=online.awaited_until(payment),
    )
    if is_htmx():
        if waiting:
            return "", 204
        return render_template("billing/_payment_answer.html", **context), 286
    return render_template("billing/payment_return.html", **context)


@bp.post("/<int:family_id>/paiements/<reference>/abandonner")
def payment_give_up(family_id: int, reference: str):
    """The parent gives up a payment the bank has not answered (its page closed): the invoices can be
    paid again at once (a payment the bank notifies later is still recorded)."""
    family = family_of_current_user(family_id)
    payment = online.of_family(family.id, reference)
    if payment is None:
        abort(404)
    if online.give_up(payment, current_user):
        commit()
        flash("Le paiement en ligne est abandonné : vous pouvez payer à nouveau.", "success")
    else:
        flash("Ce paiement a déjà reçu la réponse de la banque : il n'est pas abandonné.", "info")
    return redirect(url_for("billing.payment_return", family_id=family.id, reference=payment.reference))


@notify_bp.post("/notification/<provider>")
@public
def notify(provider: str):
    """The provider's server-to-server notification: 200 once recorded (or already), 400 if it is
    not a verified notification of one of our payments (logged; nothing is paid)."""
    try:
        payment = online.notify(provider, request.form)
    except providers.InvalidNotification as problem:
        log.warning("online payment notification refused (%s): %s", provider, problem)
        return "notification refusée\n", 400, {"Content-Type": "text/plain; charset=utf-8"}
    log.info("online payment %s: %s", payment.reference, payment.state.value)
    return "OK\n", 200, {"Content-Type": "text/plain; charset=utf-8"}


def _test_bank() -> providers.TestBank:
    bank = online.provider()
    if not isinstance(bank, providers.TestBank):
        abort(404)
    return bank


TEST_OUTCOMES = {
    "P": "Paiement accepté",
    "R": "Paiement refusé par la banque",
    "A": "Abandon : le payeur annule",
}


@bp.route("/banque-test/<reference>", methods=["GET", "POST"])
@public
def test_bank(reference: str):
    """The test bank (PORTAIL_PAYMENT_PROVIDER=test only): it shows the payment, then posts its
    signed notification to the portal, as PayFiP would, and sends the payer back."""
    bank = _test_bank()
    payment = db.session.scalar(db.select(OnlinePayment).where(OnlinePayment.reference == reference))
    if payment is None:
        abort(404)
    if request.method == "GET":
        return render_template("billing/test_bank.html", payment=payment, outcomes=TEST_OUTCOMES)
    code = request.form.get("resultat", "")
    if code not in TEST_OUTCOMES:
        return render_template(
            "billing/test_bank.html", payment=payment, outcomes=TEST_OUTCOMES, error="Choisissez un résultat."
        ), 422
    amount = payment.amount_cents
    if request.form.get("montant_faux"):
        amount += 1
    fields = bank.notification_fields(payment, code, amount, utcnow())
    times = 2 if request.form.get("deux_fois") else 1
    delay = current_app.config.get("TEST_BANK_LATE_SECONDS", 8) if request.form.get("en_retard") else 0
    path = url_for("payment_notify.notify", provider=bank.name)
    if not enqueue("portail.jobs.test_bank_notification", path, fields, delay, times):
        flash("La banque de test n'a pas pu envoyer sa notification (Redis indisponible).", "error")
    return redirect(
        url_for("billing.payment_return", family_id=payment.family_id, reference=payment.reference)
    )
