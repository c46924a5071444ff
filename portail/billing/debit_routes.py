"""Espace Facturation: a family chooses to pay by direct debit (a SEPA mandate) or stops it; the
invoice page says when its debit is planned."""

from dataclasses import dataclass

import sqlalchemy as sa
from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user

from portail.billing.debit_forms import MandateForm
from portail.billing.routes import bp
from portail.extensions import db
from portail.family.loaders import family_of_current_user
from portail.models import Family, Guardian, Invoice, SepaMandate, utcnow
from portail.services import billing
from portail.services.billing import BillingError, sepa
from portail.services.dossier import mask_iban
from portail.services.outbox import commit, rollback


@dataclass
class DirectDebitView:
    """A family's section of the page: its mandate in force, the last one ended, the responsables
    with bank data, and the form to choose direct debit."""

    family: Family
    mandate: SepaMandate | None
    ended: SepaMandate | None
    guardians: list[Guardian]
    form: MandateForm

    @property
    def ended_by_bank_change(self) -> bool:
        return self.ended is not None and sepa.ended_by_bank_change(self.ended)


bp.add_app_template_global(mask_iban, "mask_iban")


def _form(family: Family, guardians: list[Guardian], posted: bool = False) -> MandateForm:
    """The family's form (its fields prefixed with the family: several families share the page)."""
    if posted:
        return MandateForm(prefix=f"prelevement-{family.id}").offer(guardians)
    # (shown: the only account on file is chosen already)
    only = guardians[0].id if len(guardians) == 1 else None
    return MandateForm(prefix=f"prelevement-{family.id}", formdata=None, guardian=only).offer(guardians)


@bp.app_template_global()
def direct_debit_views(families: list[Family]) -> dict[int, DirectDebitView]:
    """Each family's direct-debit section (two queries, whatever the number of families)."""
    ids = [family.id for family in families]
    mandates, ended = sepa.mandates_of(ids)
    guardians: dict[int, list[Guardian]] = {family_id: [] for family_id in ids}
    if ids:
        for guardian in db.session.scalars(
            sa.select(Guardian)
            .where(Guardian.family_id.in_(ids), Guardian.iban.is_not(None), Guardian.iban != "")
            .order_by(Guardian.family_id, Guardian.position)
        ):
            guardians[guardian.family_id].append(guardian)
    return {
        family.id: DirectDebitView(
            family,
            mandates.get(family.id),
            ended.get(family.id),
            guardians[family.id],
            _form(family, guardians[family.id]),
        )
        for family in families
    }


@bp.app_template_global()
def planned_debit(invoice: Invoice, paid: int) -> sepa.Planned | None:
    """The invoice's direct debit, planned, made or rejected (the parents' and the agents' pages)."""
    return sepa.planned(invoice, paid, billing.today_in_paris(utcnow()))


def _back(family: Family) -> str:
    return url_for("billing.home", _anchor=f"prelevement-{family.id}")


@bp.post("/<int:family_id>/prelevement")
def debit_choose(family_id: int):
    """Choose direct debit: a mandate signed for the chosen responsable's account."""
    family = family_of_current_user(family_id)
    guardians = sepa.with_bank_data(family)
    form = _form(family, guardians, posted=True)
    if form.validate_on_submit():
        try:
            mandate, new = sepa.sign_mandate(family, form.guardian.data, current_user, utcnow())
        except BillingError as error:
            rollback()
            form.form_errors.append(str(error))
        else:
            commit()
            if new:
                flash(
                    f"Le prélèvement est en place : mandat {mandate.reference}. Vos prochaines factures "
                    "seront prélevées à la date indiquée sur chacune.",
                    "success",
                )
            else:
                flash(f"Le prélèvement est déjà en place (mandat {mandate.reference}).", "success")
            return redirect(_back(family))
    view = DirectDebitView(family, sepa.mandates_in_force([family.id]).get(family.id), None, guardians, form)
    return render_template("billing/direct_debit.html", family=family, view=view), 422


@bp.get("/<int:family_id>/prelevement/arreter")
def debit_stop_confirm(family_id: int):
    """The page that asks to confirm stopping direct debit, and says what it ends."""
    family = family_of_current_user(family_id)
    mandate = sepa.mandates_in_force([family.id]).get(family.id)
    if mandate is None:
        flash("Le prélèvement n'est pas en place pour cette famille.", "info")
        return redirect(_back(family))
    return render_template("billing/direct_debit_stop.html", family=family, mandate=mandate)


@bp.post("/<int:family_id>/prelevement/arreter")
def debit_stop(family_id: int):
    """Stop paying by direct debit, once confirmed: the mandate in force ends (the debits already sent
    stay). Without the confirmation (a form of an older page), the page that asks for it."""
    family = family_of_current_user(family_id)
    if request.form.get("confirmer") != "oui":
        return redirect(url_for("billing.debit_stop_confirm", family_id=family.id))
    sepa.revoke(family, current_user, utcnow())
    commit()
    flash("Le prélèvement est arrêté : vos prochaines factures seront à régler vous-même.", "success")
    return redirect(_back(family))
