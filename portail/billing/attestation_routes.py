"""Espace Facturation: the attestations de frais de garde (attestation fiscale) a parent downloads.

An attestation is offered for finished years only: the tax return of year Y is made in the spring of
Y+1, and a certificate of an unfinished year would miss its last payments.
"""

from flask import current_app, g, render_template, request

from portail.billing.routes import bp
from portail.family.loaders import family_of_current_user
from portail.files import attachment
from portail.models import Family, utcnow
from portail.services.billing import attestation, today_in_paris
from portail.services.billing import attestation_pdf as rendering


@bp.context_processor
def _attestations():
    """`attestations_of(families)` for Espace Facturation's include: each family's attestations of
    the finished years, computed once for all the families of the page (one query)."""

    def attestations_of(families: list[Family]) -> dict[int, list[attestation.Attestation]]:
        key = tuple(family.id for family in families)
        cached = g.get("attestations_of")
        if cached is None or cached[0] != key:
            this_year = today_in_paris(utcnow()).year
            g.attestations_of = cached = (key, attestation.years_by_family(list(key), this_year))
        return cached[1]

    return {"attestations_of": attestations_of}


@bp.get("/<int:family_id>/attestation-fiscale.pdf")
def attestation_download(family_id: int):
    """The family's attestation de frais de garde of a finished year (`?annee=`), as a PDF; a page
    that says why when there is none."""
    family = family_of_current_user(family_id)
    year = request.args.get("annee", type=int)
    today = today_in_paris(utcnow())
    if year is None or not attestation.FIRST_YEAR <= year < today.year:
        message = (
            f"L'attestation de l'année {year} sera disponible à partir du 1er janvier {year + 1}."
            if year is not None and year >= today.year
            else "Choisissez une année terminée."
        )
        return _none(family, message)
    found = attestation.for_family(family.id, year)
    if found is None:
        return _none(
            family,
            f"Aucun frais de garde n'a été payé en {year} pour un enfant de moins de six ans au "
            f"1er janvier {year} : il n'y a pas d'attestation pour cette année.",
        )
    holder = attestation.families_of([family.id])[family.id]
    return attachment(
        rendering.render(found, holder, rendering.town(current_app.config), today),
        "application/pdf",
        f"attestation-frais-de-garde-{year}.pdf",
    )


def _none(family: Family, message: str):
    """The page saying there is no attestation to download, and why (404: there is no such document)."""
    return render_template("billing/attestation_none.html", family=family, message=message), 404
