"""Back-office views of the family file: change queue, decisions, direct edits, audited reads."""

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from portail.extensions import db
from portail.family.loaders import member_or_404
from portail.files import send_photo
from portail.forms import form_page
from portail.forms.dossier import build_form, form_values
from portail.gestion.routes import bp
from portail.models import Authorization, ChangeRequest, ChangeStatus, Child, Family, Guardian, utcnow
from portail.services import dossier, uploads
from portail.services.dossier import CHILD_SECTIONS, GUARDIAN_SECTIONS, SECTIONS, DossierError
from portail.services.outbox import commit, rollback

REFUSAL_REASONS = [
    "Justificatif manquant",
    "Information incomplète ou incohérente",
    "Modification à faire en mairie",
]


@bp.get("/dossiers")
def changes():
    """Demandes de modification en attente: filter by family, section and age."""
    family_q = (request.args.get("famille") or "").strip()
    section = request.args.get("section") or ""
    older = request.args.get("anciennete", type=int)
    page = dossier.pending_changes(
        family_q, section, older, utcnow(), page=max(request.args.get("page", 1, type=int), 1)
    )
    return render_template(
        "gestion/changes.html",
        page=page,
        sections=SECTIONS,
        family_q=family_q,
        section=section,
        older=older,
        describe=dossier.describe,
    )


@bp.get("/dossiers/<int:change_id>")
def change_show(change_id: int):
    """One change: old → new values, conflicts with the current file, accept or refuse."""
    change = db.get_or_404(ChangeRequest, change_id)
    section = SECTIONS[change.section]
    target = dossier.target_of(change)
    if target is not None:
        dossier.audit_sensitive_read(current_user, section, target)
        commit()
    old = {field: value for field, _label, value in dossier.rows(section, change.old_values)}
    diff = [
        (label, old.get(field, "—"), new) for field, label, new in dossier.rows(section, change.new_values)
    ]
    return render_template(
        "gestion/change_show.html",
        change=change,
        section=section,
        diff=diff,
        conflicts=dossier.conflicts(change),
        describe=dossier.describe,
        reasons=REFUSAL_REASONS,
    )


def _decide(change_id: int, decide, done: str):
    """Run one decision on a change; on a refused decision, back to the change with the reason."""
    change = db.get_or_404(ChangeRequest, change_id)
    try:
        decide(change)
        commit()
    except DossierError as error:
        rollback()
        flash(str(error), "error")
        return redirect(url_for("gestion.change_show", change_id=change_id))
    flash(done, "success")
    return redirect(url_for("gestion.changes"))


@bp.post("/dossiers/<int:change_id>/accepter")
def change_accept(change_id: int):
    """Accept: the proposed values are applied atomically (force=1 after a conflict was shown)."""
    force = request.form.get("force") == "1"
    return _decide(
        change_id,
        lambda change: dossier.accept(change, current_user, force=force),
        "Modification acceptée : le dossier est à jour et la famille est prévenue par e-mail.",
    )


@bp.post("/dossiers/<int:change_id>/refuser")
def change_refuse(change_id: int):
    """Refuse with a reason; the file is unchanged and the family is told why."""
    reason = (request.form.get("reason") or "").strip()
    detail = (request.form.get("detail") or "").strip()
    text = f"{reason} — {detail}" if reason and detail else (reason or detail)
    return _decide(
        change_id,
        lambda change: dossier.refuse(change, current_user, text[:1000]),
        "Modification refusée : la famille est prévenue par e-mail avec le motif.",
    )


@bp.get("/dossiers/<int:change_id>/photo/fichier")
def change_photo(change_id: int):
    """The photo proposed by a pending change."""
    change = db.get_or_404(ChangeRequest, change_id)
    name = change.new_values.get("photo") if change.section == "photo" else None
    if not name or change.status is not ChangeStatus.PENDING:
        abort(404)
    return send_photo(name)


OWNERS = {"responsables": (Guardian, GUARDIAN_SECTIONS), "enfants": (Child, CHILD_SECTIONS)}


def _member_section_or_404(family: Family, owner: str, member_id: int, section_name: str):
    """A responsable or child of the family whose section exists, else 404."""
    model, allowed = OWNERS.get(owner, (None, ()))
    if model is None or section_name not in allowed:
        abort(404)
    return member_or_404(family, model, member_id)


@bp.get("/familles/<int:family_id>/enfants/<int:child_id>/photo/fichier")
def child_photo(family_id: int, child_id: int):
    """A child's validated photo, for staff."""
    kid = member_or_404(db.get_or_404(Family, family_id), Child, child_id)
    if not kid.photo:
        abort(404)
    return send_photo(kid.photo)


@bp.get("/familles/<int:family_id>/<owner>/<int:member_id>/<section_name>")
def member_section(family_id: int, owner: str, member_id: int, section_name: str):
    """A sensitive section (health or bank data) of a member: shown on request, audited."""
    family = db.get_or_404(Family, family_id)
    member = _member_section_or_404(family, owner, member_id, section_name)
    section = SECTIONS[section_name]
    dossier.audit_sensitive_read(current_user, section, member)
    commit()
    return render_template(
        "gestion/member_section.html",
        family=family,
        member=member,
        section=section,
        owner=owner,
        rows=dossier.rows(section, dossier.snapshot(section, member)),
    )


@bp.route(
    "/familles/<int:family_id>/<owner>/<int:member_id>/<section_name>/modifier", methods=["GET", "POST"]
)
def member_edit(family_id: int, owner: str, member_id: int, section_name: str):
    """An agent edits a section directly: applied at once, recorded in the history."""
    family = db.get_or_404(Family, family_id)
    member = _member_section_or_404(family, owner, member_id, section_name)
    section = SECTIONS[section_name]
    submitted = request.method == "POST"
    if not submitted:
        dossier.audit_sensitive_read(current_user, section, member)
        commit()
    form = build_form(section_name, member, submitted)
    back = url_for("gestion.family_show", family_id=family.id)
    if submitted and form.validate_on_submit():
        try:
            values = (
                {"photo": uploads.save_image(form.photo.data.read())}
                if section_name == "photo"
                else form_values(section_name, form)
            )
            dossier.edit_directly(family, current_user, section_name, member, values)
            commit()
        except (DossierError, uploads.UploadError) as error:
            rollback()
            (form.photo.errors if section_name == "photo" else form.form_errors).append(str(error))
        else:
            flash(f"{section.label} de {member.full_name} : modification enregistrée.", "success")
            return redirect(back)
    return form_page(
        "family/section_form.html",
        form=form,
        family=None,
        title=f"{section.label} — {member.full_name}",
        back=back,
        section=section,
        multipart=section_name == "photo",
    )


@bp.route("/autorisations", methods=["GET", "POST"])
def authorizations():
    """Autorisations asked for every child (droit à l'image, sortie seul…): list and add."""
    if request.method == "POST":
        label = (request.form.get("label") or "").strip()
        if not label or len(label) > 150:
            flash("Indiquez le libellé de l'autorisation (150 caractères au plus).", "error")
        else:
            dossier.add_authorization(label, request.form.get("description") or "", current_user)
            commit()
            flash(f"Autorisation « {label} » ajoutée.", "success")
        return redirect(url_for("gestion.authorizations"))
    return render_template("gestion/authorizations.html", items=dossier.all_authorizations())


@bp.post("/autorisations/<int:authorization_id>/basculer")
def authorization_toggle(authorization_id: int):
    """Stop or resume asking an authorisation (answers already given are kept).

    The form says which (`actif`): the same click sent twice stops it once, instead of twice."""
    item = db.get_or_404(Authorization, authorization_id)
    wanted = request.form.get("actif")
    active = (wanted == "1") if wanted in ("0", "1") else not item.active
    dossier.set_authorization_active(item, active, current_user)
    commit()
    return redirect(url_for("gestion.authorizations"))
