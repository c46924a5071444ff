"""Views of Espace Famille: the family hub, Dossier Famille (responsables, children), history."""

from datetime import timedelta

from flask import Blueprint, abort, flash, redirect, render_template, request, session, url_for
from flask_login import current_user

from portail.family.loaders import family_of_current_user, member_or_404
from portail.files import send_photo
from portail.forms import form_page
from portail.forms.dossier import build_form, form_values
from portail.models import (
    AuthorizedContact,
    ChangeAction,
    ChangeRequest,
    ChangeStatus,
    Child,
    Guardian,
    utcnow,
)
from portail.services import dossier, uploads
from portail.services.dossier import CHILD_SECTIONS, GUARDIAN_SECTIONS, SECTIONS, DossierError
from portail.services.outbox import commit, rollback
from portail.services.subscriptions import active_families

bp = Blueprint("family", __name__, url_prefix="/famille")

RECENT_LOGIN = timedelta(minutes=15)
SAVED = "Votre demande de modification est enregistrée : elle sera prise en compte après validation par la mairie."


@bp.get("/")
def home():
    """Espace Famille: straight to the family when there is one, else the list."""
    families = active_families(current_user)
    if len(families) == 1:
        return redirect(url_for("family.show", family_id=families[0].id))
    return render_template("family/home.html", families=families)


@bp.get("/<int:family_id>")
def show(family_id: int):
    """The family hub: responsables, children, pending additions, history."""
    family = family_of_current_user(family_id)
    pending = dossier.pending_by_key(family)
    new_children = [
        change for key, change in pending.items() if key.startswith(f"family:{family.id}:child:new:")
    ]
    return render_template(
        "family/show.html", family=family, new_children=new_children, pending_count=len(pending)
    )


@bp.get("/<int:family_id>/responsables")
def guardians(family_id: int):
    """Responsables: each section with its validated values and, in yellow, its pending change."""
    family = family_of_current_user(family_id)
    pending = dossier.pending_by_key(family)
    blocks = [
        (guardian, [section_view(family, guardian, name, pending) for name in GUARDIAN_SECTIONS])
        for guardian in family.guardians
    ]
    return render_template("family/guardians.html", family=family, blocks=blocks)


@bp.get("/<int:family_id>/enfants/<int:child_id>")
def child(family_id: int, child_id: int):
    """One child's file: sections, photo and contacts habilités, with pending changes."""
    family = family_of_current_user(family_id)
    kid = member_or_404(family, Child, child_id)
    pending = dossier.pending_by_key(family)
    sections = [section_view(family, kid, name, pending) for name in CHILD_SECTIONS]
    contacts = [(contact, pending.get(f"contact:{contact.id}")) for contact in kid.contacts]
    new_contacts = [
        change for key, change in pending.items() if key.startswith(f"child:{kid.id}:contact:new:")
    ]
    return render_template(
        "family/child.html",
        family=family,
        child=kid,
        sections=sections,
        contacts=contacts,
        new_contacts=new_contacts,
        contact_section=SECTIONS["contact"],
        rows=dossier.rows,
    )


def section_view(family, target, name: str, pending: dict) -> dict:
    """What a section block shows: validated rows, and the pending change's rows if any."""
    section = SECTIONS[name]
    change = pending.get(dossier.key_for(section, target.id))
    return {
        "section": section,
        "rows": dossier.rows(section, dossier.snapshot(section, target)),
        "change": change,
        "pending_rows": dossier.rows(section, change.new_values) if change else None,
    }


def _needs_recent_login() -> bool:
    login_at = session.get("login_at")
    return login_at is None or utcnow().timestamp() - login_at > RECENT_LOGIN.total_seconds()


def _edit(
    family,
    section_name: str,
    target,
    back: str,
    title: str | None = None,
    child=None,
    action=ChangeAction.UPDATE,
):
    """Show a section's form (titled by default with the section and the member's name); a valid
    post records a pending change (never the values themselves)."""
    submitted = request.method == "POST"
    form = build_form(section_name, target, submitted)
    if submitted and form.validate_on_submit():
        try:
            if section_name == "photo":
                values = {"photo": uploads.save_image(form.photo.data.read())}
            else:
                values = form_values(section_name, form)
            dossier.request_change(
                family, current_user, section_name, target, values, action=action, child=child
            )
            commit()
        except (DossierError, uploads.UploadError) as error:
            rollback()
            (form.photo.errors if section_name == "photo" else form.form_errors).append(str(error))
        else:
            flash(SAVED, "success")
            return redirect(back)
    return form_page(
        "family/section_form.html",
        form=form,
        family=family,
        title=title or f"{SECTIONS[section_name].label} — {target.full_name}",
        back=back,
        section=SECTIONS[section_name],
        multipart=section_name == "photo",
    )


@bp.route("/<int:family_id>/responsables/<int:guardian_id>/<section_name>", methods=["GET", "POST"])
def edit_guardian(family_id: int, guardian_id: int, section_name: str):
    """Modifier a section of a responsable (bank data needs a login from the last 15 minutes)."""
    family, guardian = _member_for_section(family_id, Guardian, guardian_id, section_name, GUARDIAN_SECTIONS)
    if section_name == "bank" and _needs_recent_login():
        flash("Pour modifier les données bancaires, confirmez d'abord votre mot de passe.", "info")
        return redirect(url_for("account.reauthenticate", next=request.path))
    return _edit(family, section_name, guardian, url_for("family.guardians", family_id=family.id))


@bp.route("/<int:family_id>/enfants/<int:child_id>/<section_name>", methods=["GET", "POST"])
def edit_child(family_id: int, child_id: int, section_name: str):
    """Modifier a section of a child's file."""
    family, kid = _member_for_section(family_id, Child, child_id, section_name, CHILD_SECTIONS)
    return _edit(family, section_name, kid, url_for("family.child", family_id=family.id, child_id=kid.id))


def _member_for_section(family_id: int, model, member_id: int, section_name: str, sections):
    """The parent's family and its responsable or child, for a section such a member has, else 404."""
    family = family_of_current_user(family_id)
    member = member_or_404(family, model, member_id)
    if section_name not in sections:
        abort(404)
    return family, member


@bp.route("/<int:family_id>/enfants/nouveau", methods=["GET", "POST"])
def new_child(family_id: int):
    """Ajouter un enfant: a change request like any other."""
    family = family_of_current_user(family_id)
    back = url_for("family.show", family_id=family.id)
    return _edit(family, "new_child", None, back, "Ajouter un enfant", action=ChangeAction.CREATE)


@bp.route("/<int:family_id>/enfants/<int:child_id>/contacts/nouveau", methods=["GET", "POST"])
def new_contact(family_id: int, child_id: int):
    """Ajouter un contact habilité."""
    family = family_of_current_user(family_id)
    kid = member_or_404(family, Child, child_id)
    return _edit_contact(family, kid, None, f"Ajouter un contact habilité — {kid.full_name}")


@bp.route("/<int:family_id>/contacts/<int:contact_id>", methods=["GET", "POST"])
def edit_contact(family_id: int, contact_id: int):
    """Modifier un contact habilité."""
    family = family_of_current_user(family_id)
    contact = member_or_404(family, AuthorizedContact, contact_id)
    return _edit_contact(family, contact.child, contact, f"Modifier le contact {contact.full_name}")


def _edit_contact(family, kid, contact, title: str):
    """The form of a child's contact habilité: a new one (contact None) or a change; back to the child."""
    back = url_for("family.child", family_id=family.id, child_id=kid.id)
    action = ChangeAction.UPDATE if contact else ChangeAction.CREATE
    return _edit(family, "contact", contact, back, title, child=kid, action=action)


@bp.post("/<int:family_id>/contacts/<int:contact_id>/retirer")
def remove_contact(family_id: int, contact_id: int):
    """Ask to remove a contact habilité."""
    family = family_of_current_user(family_id)
    contact = member_or_404(family, AuthorizedContact, contact_id)
    dossier.request_change(
        family, current_user, "contact", contact, {}, action=ChangeAction.DELETE, child=contact.child
    )
    commit()
    flash(SAVED, "success")
    return redirect(url_for("family.child", family_id=family.id, child_id=contact.child_id))


@bp.post("/<int:family_id>/demandes/<int:change_id>/retirer")
def withdraw(family_id: int, change_id: int):
    """Retirer a pending change."""
    family = family_of_current_user(family_id)
    change = member_or_404(family, ChangeRequest, change_id)
    try:
        dossier.withdraw(change, current_user)
        commit()
        flash("Votre demande de modification a été retirée.", "success")
    except DossierError as error:
        rollback()
        flash(str(error), "error")
    return redirect(safe_back(family.id))


def safe_back(family_id: int) -> str:
    from portail.urls import safe_next

    return safe_next(request.form.get("back")) or url_for("family.show", family_id=family_id)


@bp.get("/<int:family_id>/enfants/<int:child_id>/photo/fichier")
def child_photo(family_id: int, child_id: int):
    """The validated photo of a child (family only)."""
    family = family_of_current_user(family_id)
    kid = member_or_404(family, Child, child_id)
    if not kid.photo:
        abort(404)
    return send_photo(kid.photo)


@bp.get("/<int:family_id>/demandes/<int:change_id>/photo/fichier")
def pending_photo(family_id: int, change_id: int):
    """The photo proposed in a change request (family only)."""
    family = family_of_current_user(family_id)
    change = member_or_404(family, ChangeRequest, change_id)
    name = (
        change.new_values.get("photo")
        if change.section == "photo" and change.status is ChangeStatus.PENDING
        else None
    )
    if not name:
        abort(404)
    return send_photo(name)


@bp.get("/<int:family_id>/historique")
def history(family_id: int):
    """Historique des modifications du dossier, with each decision and its reason."""
    family = family_of_current_user(family_id)
    return render_template(
        "family/history.html", family=family, changes=dossier.history(family), describe=dossier.describe
    )
