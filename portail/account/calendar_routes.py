"""Mon compte > Calendrier: the parent's private calendar addresses (ICS), and the feed itself, which
a phone's calendar fetches without a session (its own blueprint: public, rate-limited per address)."""

import hashlib
from urllib.parse import urlsplit

from flask import Blueprint, Response, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user

from portail.access import public
from portail.account.forms import CalendarFeedForm
from portail.account.routes import bp
from portail.extensions import db, limiter
from portail.family.loaders import family_of_current_user
from portail.formatting import today_in_paris
from portail.models import CalendarFeed, utcnow
from portail.services import calendar_feeds, subscriptions
from portail.services.outbox import commit
from portail.urls import public_url

feed_bp = Blueprint("calendar_feed", __name__, url_prefix="/calendrier")


def _domain() -> str:
    return urlsplit(current_app.config["PUBLIC_URL"]).hostname or "localhost"


def _token_key() -> str:
    """The rate limit's key: the address (as a hash), not the IP: Google's and Apple's servers fetch
    the calendars of many families from few addresses."""
    token = (request.view_args or {}).get("token", "")
    return "calendar:" + hashlib.sha256(token.encode()).hexdigest()[:32]


@feed_bp.get("/<string(maxlength=64):token>.ics")
@public
@limiter.limit("60 per hour", key_func=_token_key)
def feed(token: str):
    """The ICS feed of a calendar address (404 if unknown or revoked); 304 while unchanged.

    The ETag is a hash of the text, which holds no time of its own: it changes exactly when the
    days shown do. Last-Modified is the latest change of a day shown, of the family or of the
    address; a day whose request was withdrawn leaves no row, so a client sending only
    If-Modified-Since may see that day go at a later change (the ETag sees it at once)."""
    found = calendar_feeds.feed(token, today_in_paris(utcnow()), _domain())
    if found is None:
        abort(404)
    response = Response(found.body, mimetype="text/calendar")
    response.set_etag(found.etag)
    response.last_modified = found.last_modified
    response.cache_control.private = True
    response.cache_control.no_cache = True  # (kept, but asked again each time: 304 while unchanged)
    response.headers["X-Robots-Tag"] = "noindex"
    return response.make_conditional(request)


def _form(family, **options) -> CalendarFeedForm:
    """A family's form (its fields named after the family: the page has one per family)."""
    return CalendarFeedForm(prefix=f"famille{family.id}", **options).offer(family.children)


def _page(forms: dict | None = None, status: int = 200):
    families = subscriptions.active_families(current_user)
    forms = forms or {}
    for family in families:
        forms.setdefault(family.id, _form(family, formdata=None))
    return render_template(
        "account/calendar.html",
        families=families,
        forms=forms,
        feeds=calendar_feeds.feeds_in_force(current_user, [family.id for family in families]),
    ), status


def _created(feed_row: CalendarFeed, token: str, regenerated: bool):
    """The new address, shown once (it is not kept: only its hash is)."""
    url = public_url("calendar_feed.feed", token=token)
    return render_template(
        "account/calendar_created.html",
        feed=feed_row,
        url=url,
        webcal="webcal://" + url.split("://", 1)[1],
        regenerated=regenerated,
    )


@bp.get("/compte/calendrier")
def calendar():
    """Calendrier: the account's calendar addresses per family, and the form that creates one."""
    return _page()


@bp.post("/compte/calendrier/<int:family_id>")
def calendar_create(family_id: int):
    """Create a calendar address for a family I follow (or one of its children), shown once; one in
    force already for the same days is replaced."""
    family = family_of_current_user(family_id)
    form = _form(family)
    if not form.validate_on_submit():
        return _page({family.id: form}, status=422)
    created, token = calendar_feeds.issue(current_user, family, form.child(family.children), utcnow())
    commit()
    return _created(created, token, regenerated=False)


def _own_feed_or_404(feed_id: int) -> CalendarFeed:
    """A feed of this account for a family it still follows (revoked too: a second click), else 404."""
    found = db.session.scalar(
        db.select(CalendarFeed).where(CalendarFeed.id == feed_id, CalendarFeed.user_id == current_user.id)
    )
    if found is None:
        abort(404)
    family_of_current_user(found.family_id)
    return found


@bp.route("/compte/calendrier/adresse/<int:feed_id>/regenerer", methods=["GET", "POST"])
def calendar_regenerate(feed_id: int):
    """Régénérer an address: confirm (GET), then a new address replaces it (POST); the old one stops
    working at once."""
    found = _own_feed_or_404(feed_id)
    if found.revoked_at is not None:  # (deleted, or regenerated already: a second click, a page kept)
        flash("Cette adresse d'agenda n'existe plus : voici vos adresses actuelles.", "info")
        return redirect(url_for("account.calendar"))
    if request.method == "GET" or request.form.get("confirmer") != "oui":
        return render_template("account/calendar_confirm.html", feed=found, action="regenerer")
    created, token = calendar_feeds.issue(current_user, found.family, found.child, utcnow())
    commit()
    return _created(created, token, regenerated=True)


@bp.route("/compte/calendrier/adresse/<int:feed_id>/supprimer", methods=["GET", "POST"])
def calendar_revoke(feed_id: int):
    """Supprimer an address: confirm (GET), then it stops working at once (POST; twice: the same)."""
    found = _own_feed_or_404(feed_id)
    if request.method == "GET" or request.form.get("confirmer") != "oui":
        return render_template("account/calendar_confirm.html", feed=found, action="supprimer")
    calendar_feeds.revoke(found, current_user, utcnow())
    commit()
    flash("L'adresse d'agenda est supprimée : les agendas abonnés ne reçoivent plus vos jours.", "success")
    return redirect(url_for("account.calendar"))
