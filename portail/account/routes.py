"""Views of Mon espace citoyen."""

import json

import sqlalchemy as sa
from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_user, logout_user

from portail import bookings
from portail.access import public
from portail.account.forms import (
    ChangePasswordForm,
    DeleteAccountForm,
    EmailChangeForm,
    PhoneForm,
    ReauthForm,
    SubscribeForm,
)
from portail.bookings import history
from portail.extensions import db, limiter
from portail.htmx import is_htmx
from portail.models import (
    Request,
    RequestKind,
    Subscription,
    TokenPurpose,
    utcnow,
)
from portail.services import (
    accounts,
    dossier,
    notification_choices,
    passwords,
    planning,
    request_desk,
    subscriptions,
    tokens,
)
from portail.services.outbox import commit, rollback
from portail.services.transactions import claim
from portail.urls import safe_next

bp = Blueprint("account", __name__, url_prefix="/mon-espace")


@bp.get("/")
def home():
    """Mon espace citoyen: the entry points of the account."""
    return render_template("account/home.html")


@bp.get("/abonnements")
def subscriptions_list():
    """Mes abonnements: the families linked to this account."""
    return render_template(
        "account/subscriptions.html",
        subscriptions=subscriptions.active_subscriptions(current_user),
    )


def _subscribe_page(form: SubscribeForm, family=None, status: int = 200):
    template = "account/_subscribe_result.html" if is_htmx() else "account/subscribe.html"
    return render_template(
        template, form=form, family=family, tries_left=subscriptions.tries_left(current_user)
    ), status


@bp.route("/abonnements/nouveau", methods=["GET", "POST"])
def subscribe():
    """M'abonner, step 1: Rechercher the family from its code abonné and a child's birth date."""
    form = SubscribeForm()
    if request.method == "GET" or not form.validate_on_submit():
        return _subscribe_page(form, status=200 if request.method == "GET" else 422)
    if subscriptions.tries_left(current_user) <= 0:
        abort(429)
    family = subscriptions.find_family(form.subscriber_code.data, form.child_birth_date.data)
    subscriptions.record_attempt(current_user, succeeded=family is not None)
    commit()
    if family is None:
        form.form_errors.append(subscriptions.GENERIC_ERROR)
        return _subscribe_page(form, status=422)
    return _subscribe_page(form, family=family)


@bp.post("/abonnements/confirmer")
def confirm_subscription():
    """M'abonner, step 2: confirm; the subscription is active at once."""
    form = SubscribeForm()
    if not form.validate_on_submit():
        return _subscribe_page(form, status=422)
    if subscriptions.tries_left(current_user) <= 0:
        abort(429)
    family = subscriptions.find_family(form.subscriber_code.data, form.child_birth_date.data)
    if family is None:
        subscriptions.record_attempt(current_user, succeeded=False)
        commit()
        form.form_errors.append(subscriptions.GENERIC_ERROR)
        return _subscribe_page(form, status=422)
    subscriptions.subscribe(current_user, family)
    commit()
    flash(
        f"Votre compte est maintenant lié au dossier « {family.name} ». "
        "Les menus Espace Famille et Espace Facturation sont disponibles.",
        "success",
    )
    return redirect(url_for("account.subscriptions_list"))


@bp.post("/abonnements/<int:subscription_id>/terminer")
def end_subscription(subscription_id: int):
    """End one of my subscriptions (404 for anybody else's; ending it twice ends it once)."""
    subscription = db.session.scalar(
        sa.select(Subscription).where(
            Subscription.id == subscription_id, Subscription.user_id == current_user.id
        )
    )
    if subscription is None:
        abort(404)
    subscriptions.end(subscription)
    commit()
    flash(f"Votre abonnement au dossier « {subscription.family.name} » est terminé.", "success")
    return redirect(url_for("account.subscriptions_list"))


@bp.route("/compte", methods=["GET", "POST"])
def profile():
    """Mon compte: my details and my phone number."""
    form = PhoneForm(obj=current_user)
    if form.validate_on_submit():
        current_user.phone = form.phone.data or None
        commit()
        flash("Votre numéro de téléphone est enregistré.", "success")
        return redirect(url_for("account.profile"))
    return render_template(
        "account/profile.html",
        form=form,
        decisions_choice=notification_choices.decisions_now(current_user.id),
    )


def _account_key() -> str:
    return f"account:{current_user.get_id().partition(':')[0]}"


@bp.route("/compte/mot-de-passe", methods=["GET", "POST"])
@limiter.limit("10 per hour", methods=["POST"], key_func=_account_key)
def change_password():
    """Change my password (needs the current one); my other sessions end."""
    form = ChangePasswordForm()
    form.password_inputs = lambda: [current_user.first_name, current_user.last_name, current_user.email]
    if form.validate_on_submit():
        if passwords.verify_password(current_user.password_hash, form.current_password.data):
            # (changed once: a copy sent at the same moment waits, then finds the password changed)
            claim(current_user, password_hash=current_user.password_hash)
            accounts.set_password(current_user, form.password.data)
            commit()
        elif not passwords.verify_password(current_user.password_hash, form.password.data):
            form.current_password.errors.append("Mot de passe actuel incorrect.")
            return render_template("account/change_password.html", form=form)
        # else the same change sent twice at once: the other copy made it, this tab keeps its session
        login_user(current_user._get_current_object())
        flash("Votre mot de passe a été modifié. Vos autres sessions ont été fermées.", "success")
        return redirect(url_for("account.profile"))
    return render_template("account/change_password.html", form=form)


def _password_ok(form) -> bool:
    if passwords.verify_password(current_user.password_hash, form.current_password.data):
        return True
    form.current_password.errors.append("Mot de passe actuel incorrect.")
    return False


@bp.route("/compte/adresse", methods=["GET", "POST"])
@limiter.limit("10 per hour", methods=["POST"], key_func=_account_key)
def change_email():
    """Change my login e-mail: confirmed from a link sent to the new address."""
    form = EmailChangeForm()
    if form.validate_on_submit() and _password_ok(form):
        claim(current_user)  # (a copy sent at the same moment waits, then finds the link just sent)
        new_email = accounts.normalize_email(form.new_email.data)
        if not tokens.recently_issued(current_user, TokenPurpose.EMAIL_CHANGE, new_email):
            accounts.request_email_change(current_user, new_email)
        commit()
        flash(
            f"Un e-mail de confirmation a été envoyé à {accounts.normalize_email(form.new_email.data)}. "
            "Votre adresse actuelle reste valable tant que la nouvelle n'est pas confirmée.",
            "success",
        )
        return redirect(url_for("account.profile"))
    return render_template("account/change_email.html", form=form)


@bp.route("/compte/adresse/<token>", methods=["GET", "POST"])
@public
@limiter.limit("20 per hour", methods=["POST"])
def confirm_email(token: str):
    """Confirm a new e-mail from the link (GET shows a button, POST applies it).

    The button pressed twice at once (a double click, two tabs): the copy that loses the race for
    the link finds it used for the address now in force, and answers like the first. A link used
    before is refused (single use)."""
    if tokens.peek(token, TokenPurpose.EMAIL_CHANGE) is None:
        return render_template("auth/link_invalid.html", kind="email"), 400
    if request.method == "GET":
        return render_template("account/confirm_email.html", token=token)
    if accounts.confirm_email_change(token) is None:
        rollback()
        if not tokens.applied_email_change(token):
            return render_template("auth/link_invalid.html", kind="email"), 400
    commit()
    logout_user()
    flash("Votre nouvelle adresse e-mail est enregistrée. Connectez-vous avec celle-ci.", "success")
    return redirect(url_for("auth.login"))


@bp.get("/compte/donnees")
def export():
    """Download my data (RGPD) as a JSON file."""
    body = json.dumps(accounts.export_data(current_user), ensure_ascii=False, indent=2)
    return Response(
        body,
        mimetype="application/json",
        headers={"Content-Disposition": 'attachment; filename="mes-donnees-portail-famille.json"'},
    )


@bp.route("/compte/supprimer", methods=["GET", "POST"])
@limiter.limit("10 per hour", methods=["POST"], key_func=_account_key)
def delete():
    """Delete my account (parents only; the families' files stay with the town)."""
    if current_user.is_staff:
        abort(403)
    form = DeleteAccountForm()
    if form.validate_on_submit() and _password_ok(form):
        accounts.delete_account(current_user._get_current_object())
        commit()
        logout_user()
        session.clear()
        flash("Votre compte a été supprimé.", "success")
        return redirect(url_for("main.home"))
    return render_template("account/delete.html", form=form)


@bp.route("/confirmer-mot-de-passe", methods=["GET", "POST"])
@limiter.limit("10 per hour", methods=["POST"], key_func=_account_key)
def reauthenticate():
    """Confirm my password before a sensitive change (e.g. bank data)."""
    form = ReauthForm()
    if form.validate_on_submit() and _password_ok(form):
        session["login_at"] = utcnow().timestamp()
        return redirect(safe_next(request.args.get("next")) or url_for("account.home"))
    return render_template("account/reauthenticate.html", form=form)


PER_PAGE = 20


def _family_ids() -> list[int]:
    return [family.id for family in subscriptions.active_families(current_user)]


@bp.get("/demandes")
def requests_list():
    """Mes demandes: reservations, absences, dossier changes and documents of the parent's families, newest first."""
    listing = request_desk.parent_listing(
        _family_ids(), max(request.args.get("page", 1, type=int), 1), PER_PAGE
    )
    return render_template(
        "account/requests.html",
        page={"page": listing.page, "pages": listing.pages},
        items=listing.items,
        unread=request_desk.unread_counts(current_user, listing.request_ids),
        state_of=planning.request_state,
        may_withdraw=_may_withdraw,
        kinds=planning.KIND_LABELS,
        describe=dossier.describe,
    )


def _own_request_or_404(request_id: int):
    found = db.get_or_404(Request, request_id)
    if found.family_id not in _family_ids():
        abort(404)
    return found


@bp.get("/demandes/<int:request_id>")
def request_history(request_id: int):
    """The history of one request; opening it clears its "nouveau(x) message(s)" flag for this parent."""
    found = _own_request_or_404(request_id)
    events = history.events(found)
    request_desk.mark_read(found, current_user, utcnow())
    commit()
    return render_template(
        "account/request_history.html",
        item=found,
        events=events,
        state=planning.request_state(found.lines),
        kinds=planning.KIND_LABELS,
        line_labels=request_desk.LINE_LABELS,
        may_withdraw=_may_withdraw(found),
    )


@bp.post("/demandes/<int:request_id>/message")
def request_message(request_id: int):
    """A parent's message to the town about a request."""
    post_message(
        _own_request_or_404(request_id), by_town=False, sent="Votre message a été envoyé à la mairie."
    )
    return redirect(url_for("account.request_history", request_id=request_id))


def post_message(found: Request, by_town: bool, sent: str) -> None:
    """Add the message posted about a request (a parent's, which they have read, or the town's),
    commit, and flash that it is sent or why not (also the back office's)."""
    try:
        history.add_message(
            found, current_user, request.form.get("message", ""), by_town=by_town, now=utcnow()
        )
        if not by_town:
            request_desk.mark_read(found, current_user, utcnow())
        commit()
        flash(sent, "success")
    except bookings.DecisionError as error:
        rollback()
        flash(str(error), "error")


def _zone() -> str:
    return current_app.config["SCHOOL_ZONE"]


def _may_withdraw(found: Request) -> bool:
    """Whether the request's row or history offers "Retirer la demande" (no query: the confirmation
    reads the days)."""
    return bookings.open_to_withdrawal(found, utcnow(), _zone())


@bp.route("/demandes/<int:request_id>/retirer", methods=["GET", "POST"])
def withdraw_request(request_id: int):
    """Retirer a whole request: the confirmation lists the days that will be withdrawn and those whose
    deadline has passed (GET); confirming withdraws them at once (POST), back to where it was asked."""
    found = _own_request_or_404(request_id)
    # Back where the parent came from: Mes demandes, the request's history, or the family's Planning / Liste.
    way_back = request.values.get("retour", "")
    back, back_label = {
        "historique": (url_for("account.request_history", request_id=found.id), "Historique de la demande"),
        "planning": (url_for("family.planning_requests", family_id=found.family_id), "Planning / Liste"),
    }.get(way_back, (url_for("account.requests_list"), "Mes demandes"))
    if request.method == "GET":
        return render_template(
            "account/withdraw_request.html",
            item=found,
            withdrawal=bookings.withdrawal_of(found, utcnow(), _zone()),
            kinds=planning.KIND_LABELS,
            back=back,
            back_label=back_label,
            way_back=way_back if back_label != "Mes demandes" else "",
        )
    now = utcnow()
    try:
        withdrawal = bookings.with_retries(
            lambda: bookings.withdraw_request(found, current_user, now, _zone())
        )
    except bookings.BookingError as error:
        rollback()
        # (a second click, another tab: the days are already withdrawn, and the parent is told so calmly)
        flash(str(error), "info")
        return redirect(back)
    flash(_withdrawn_message(found, len(withdrawal.open), len(withdrawal.kept)), "success")
    return redirect(back)


def _withdrawn_message(found: Request, withdrawn: int, kept: int) -> str:
    """ "Demande retirée : 12 jours libérés." and, if some days could no longer be withdrawn, that
    they still wait for the town."""
    plural = "s" if withdrawn > 1 else ""
    done = "libéré" if found.kind is RequestKind.RESERVATION else "de nouveau réservé"
    message = f"Demande retirée : {withdrawn} jour{plural} {done}{plural}."
    if kept == 1:
        message += " 1 jour ne pouvait plus être retiré : il reste en attente de traitement par la mairie."
    elif kept:
        message += f" {kept} jours ne pouvaient plus être retirés : ils restent en attente de traitement par la mairie."
    return message
