"""Back-office: the year's attestations de frais de garde of every family, made by the worker in one
PDF for the town to print and post (services.billing.attestation_bulk)."""

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from portail.files import attachment
from portail.gestion.routes import bp
from portail.htmx import is_htmx
from portail.models import utcnow
from portail.services.billing import BillingError, attestation_bulk, today_in_paris
from portail.services.outbox import commit, rollback


def _year() -> int:
    """The year of `?annee=` (or of the form), the last finished one by default."""
    return request.values.get("annee", type=int) or today_in_paris(utcnow()).year - 1


@bp.get("/facturation/attestations")
def attestations():
    """The form to generate a year's attestations, and that year's generation (the fragment alone
    when HTMX polls it)."""
    year = _year()
    context = {"year": year, "current": attestation_bulk.status(year)}
    if is_htmx():
        return render_template("gestion/_attestations_progress.html", **context)
    return render_template(
        "gestion/attestations.html", years=attestation_bulk.years_offered(today_in_paris(utcnow())), **context
    )


@bp.post("/facturation/attestations")
def attestations_start():
    """Queue the generation of a year's attestations for the worker, then show its progress."""
    year, now = _year(), utcnow()
    try:
        fresh = attestation_bulk.start(year, current_user, now)
    except BillingError as error:
        rollback()
        flash(str(error), "error")
        return redirect(url_for("gestion.attestations"))
    commit()
    if fresh:
        attestation_bulk.hand_over(year, current_user, now)
    return redirect(url_for("gestion.attestations", annee=year))


@bp.get("/facturation/attestations/document.pdf")
def attestations_document():
    """The year's attestations in one PDF, once made."""
    year = _year()
    path = attestation_bulk.pdf_path(year)
    if not path.is_file():
        abort(404)
    return attachment(path.read_bytes(), "application/pdf", path.name)
