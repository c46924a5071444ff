"""Views of the authentication pages."""

from functools import partial

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, session, url_for
from flask_limiter.util import get_remote_address
from flask_login import current_user, login_user, logout_user
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import HTTPException

from portail.access import public
from portail.auth.forms import EmailOnlyForm, LoginForm, ResetPasswordForm, SignUpForm
from portail.extensions import limiter
from portail.models import Civility, TokenPurpose, utcnow
from portail.services import accounts, login_throttle, subscriptions, tokens
from portail.services.accounts import LoginOutcome
from portail.services.outbox import commit, rollback
from portail.urls import safe_next

bp = Blueprint("auth", __name__)

THROTTLED = (
    "Trop de tentatives de connexion sur ce compte : pour sa sécurité, réessayez plus tard. Vous pouvez"
    " aussi choisir un nouveau mot de passe avec « Mot de passe oublié ? » et vous connecter aussitôt."
)
STAFF_ONLY = (
    "Cette page de connexion est réservée aux agents du service. Parents : connectez-vous depuis"
    " la page « Se connecter »."
)


def _form_email() -> str:
    """Rate-limit key of the account being tried.

    It must never raise: Flask-Limiter takes any exception for a storage failure.
    """
    try:
        return "email:" + accounts.normalize_email(request.form.get("email", ""))[:254]
    except HTTPException:  # e.g. 413: the view answers it, the IP limit still counts
        return "email:"


def _failed(response) -> bool:
    """A login or form attempt counts against the limits unless it redirected (success)."""
    return response.status_code != 302


@bp.route("/inscription", methods=["GET", "POST"])
@public
@limiter.limit("10 per hour", methods=["POST"])
def register():
    """Créer un compte, optionally subscribing to a family with its code abonné."""
    if current_user.is_authenticated:
        return redirect(url_for("account.home"))
    form = SignUpForm()
    if form.validate_on_submit():
        family = None
        if form.subscriber_code.data:
            family = subscriptions.find_family(form.subscriber_code.data, form.child_birth_date.data)
            if family is None:
                form.subscriber_code.errors.append(subscriptions.GENERIC_ERROR)
        if not form.errors:
            data = accounts.SignUp(
                civility=Civility(form.civility.data) if form.civility.data else None,
                last_name=form.last_name.data,
                first_name=form.first_name.data,
                email=form.email.data,
                phone=form.phone.data,
                password=form.password.data,
            )
            try:
                accounts.register(data, family=family)
                commit()
            except IntegrityError:
                # The same e-mail was registered a moment ago (double click, two tabs).
                rollback()
            session["signup_email"] = accounts.normalize_email(form.email.data)
            return redirect(url_for("auth.registered"))
    return render_template("auth/register.html", form=form)


@bp.get("/inscription/envoyee")
@public
def registered():
    """Confirmation page: the activation mail is on its way."""
    return render_template("auth/registered.html", email=session.get("signup_email"))


@bp.route("/activation/<token>", methods=["GET", "POST"])
@public
@limiter.limit("20 per hour", methods=["POST"])
def activate(token: str):
    """Follow the activation link: GET shows a button (mail scanners only GET), POST activates."""
    if tokens.peek(token, TokenPurpose.ACTIVATION) is None:
        return render_template("auth/link_invalid.html", kind="activation"), 400
    if request.method == "GET":
        return render_template("auth/activate.html", token=token)
    if accounts.activate(token) is None:
        return render_template("auth/link_invalid.html", kind="activation"), 400
    commit()
    flash("Votre compte est activé. Vous pouvez maintenant vous connecter.", "success")
    return redirect(url_for("auth.login"))


def _mails_a_link(view):
    """A public form that mails a link: 5 posts an hour per client, 3 per address asked."""
    limited = limiter.limit("5 per hour", methods=["POST"])(
        limiter.limit("3 per hour", methods=["POST"], key_func=_form_email)(view)
    )
    return public(limited)


@bp.route("/activation/renvoyer", methods=["GET", "POST"])
@_mails_a_link
def resend_activation():
    """Renvoyer l'e-mail d'activation (same answer whether or not the account exists)."""
    return _mail_a_link(
        accounts.resend_activation,
        "Si un compte non activé existe pour cette adresse, un nouvel e-mail d'activation vient d'y être envoyé.",
        "auth/resend_activation.html",
    )


def _mail_a_link(send, sent: str, template: str):
    """A form asking for an e-mail address to mail a link to; the answer is the same whether or not
    an account has it."""
    form = EmailOnlyForm()
    if form.validate_on_submit():
        send(form.email.data)
        commit()
        flash(sent, "success")
        return redirect(url_for("auth.login"))
    return render_template(template, form=form)


@bp.route("/connexion", methods=["GET", "POST"])
@public
@limiter.shared_limit(login_throttle.PER_IP, scope="login", methods=["POST"], deduct_when=_failed)
def login():
    """Se connecter (throttled per client, per account and per known device: login_throttle).
    During an opening, visitors reach it through the waiting room's entrance line."""
    return _login(staff_only=False)


@bp.route("/connexion/agent", methods=["GET", "POST"])
@public
@limiter.shared_limit(login_throttle.PER_IP, scope="login", methods=["POST"], deduct_when=_failed)
def staff_login():
    """Connexion des agents: the same login, never held by the waiting room, for staff accounts
    only (a parent's account is refused here, so it is no way around the line)."""
    return _login(staff_only=True)


def _login(staff_only: bool):
    if current_user.is_authenticated:
        return redirect(url_for(current_user.home_endpoint))
    form = LoginForm()
    not_activated = False
    template = partial(render_template, "auth/login.html", form=form, staff_only=staff_only)
    if form.validate_on_submit():
        user = accounts.find_by_email(form.email.data)
        cookie = request.cookies.get(login_throttle.DEVICE_COOKIE)
        attempt = login_throttle.Attempt(
            email=accounts.normalize_email(form.email.data),
            user=user,
            ip=get_remote_address(),
            device=login_throttle.device_of(cookie, user),
        )
        if not login_throttle.allowed(attempt):
            # The wait may be a day: the owner's way in now is a new password (it lifts the count).
            form.form_errors.append(THROTTLED)
            return template(not_activated=False), 429
        outcome = accounts.authenticate(user, form.password.data)
        if outcome is LoginOutcome.OK and staff_only and not user.is_staff:
            commit()  # (a rehash of the password, if any)
            form.form_errors.append(STAFF_ONLY)
            return template(not_activated=False)
        if outcome is LoginOutcome.OK:
            commit()
            target = safe_next(request.args.get("next"))
            session.clear()
            login_user(user)
            session["login_at"] = utcnow().timestamp()
            flash(f"Bienvenue {user.first_name} !", "success")
            default = url_for(user.home_endpoint)
            response = redirect(target or default)
            _remember_device(response, cookie, user)
            return response
        if outcome is LoginOutcome.NOT_ACTIVATED:
            not_activated = True
        else:
            if login_throttle.failed(attempt):
                accounts.warn_of_attack(attempt.email)
                commit()  # the mail itself, when Redis is down and the warning is written now
            form.form_errors.append("Adresse e-mail ou mot de passe incorrect.")
    return template(not_activated=not_activated)


def _remember_device(response, cookie: str | None, user) -> None:
    """Give this browser the known-device cookie of the account (sent to the login page only)."""
    response.set_cookie(
        login_throttle.DEVICE_COOKIE,
        login_throttle.remember_device(cookie, user),
        max_age=login_throttle.DEVICE_MAX_AGE,
        path=url_for("auth.login"),
        secure=current_app.config["SESSION_COOKIE_SECURE"],
        httponly=True,
        samesite="Lax",
    )


@bp.post("/deconnexion")
def logout():
    """Se déconnecter: ends every session of the account, on every device."""
    current_user.end_all_sessions()
    commit()
    logout_user()
    session.clear()
    flash("Vous êtes déconnecté.", "success")
    return redirect(url_for("main.home"))


@bp.route("/mot-de-passe-oublie", methods=["GET", "POST"])
@_mails_a_link
def forgot_password():
    """Mot de passe oublié: mail a reset link (same answer whether or not the account exists)."""
    return _mail_a_link(
        accounts.request_password_reset,
        "Si un compte existe pour cette adresse, un e-mail avec un lien de réinitialisation "
        "vient d'y être envoyé. Le lien est valable 24 heures.",
        "auth/forgot_password.html",
    )


@bp.route("/mot-de-passe/<token>", methods=["GET", "POST"])
@public
@limiter.limit("10 per hour", methods=["POST"])
def reset_password(token: str):
    """Choose a new password from the reset link; every session of the account ends."""
    user = tokens.peek(token, TokenPurpose.RESET)
    if user is None:
        return render_template("auth/link_invalid.html", kind="reset"), 400
    form = ResetPasswordForm()
    form.password_inputs = lambda: [user.first_name, user.last_name, user.email]
    if form.validate_on_submit():
        if accounts.reset_password(token, form.password.data) is None:
            abort(400)
        commit()
        if current_user.is_authenticated:
            logout_user()
        session.clear()
        flash("Votre mot de passe a été modifié. Connectez-vous avec le nouveau.", "success")
        return redirect(url_for("auth.login"))
    return render_template("auth/reset_password.html", form=form, token=token)
