"""Back-office: the document types asked of families, the queue of documents to check, decisions."""

from datetime import date

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user

from portail.extensions import db
from portail.files import send_stored
from portail.formatting import today_in_paris
from portail.gestion.forms import DocumentTypeForm
from portail.gestion.routes import bp, saved
from portail.models import Document, DocumentScope, DocumentType, Validity, utcnow
from portail.services import documents
from portail.services.outbox import commit, rollback


@bp.get("/pieces/types")
def document_types():
    return render_template("gestion/document_types.html", items=documents.document_types(active_first=True))


@bp.route("/pieces/types/nouveau", methods=["GET", "POST"])
@bp.route("/pieces/types/<int:type_id>", methods=["GET", "POST"])
def document_type_edit(type_id: int | None = None):
    kind = db.get_or_404(DocumentType, type_id) if type_id else None
    form = DocumentTypeForm()
    if request.method == "GET":
        if kind:
            form.name.data, form.description.data, form.scope.data = (
                kind.name,
                kind.description,
                kind.scope.value,
            )
            form.required_doc.data, form.validity.data, form.formats.data, form.active.data = (
                kind.required,
                kind.validity.value,
                kind.format_list,
                kind.active,
            )
        else:
            form.required_doc.data, form.active.data, form.formats.data, form.validity.data = (
                True,
                True,
                ["pdf", "jpeg", "png"],
                "none",
            )
    if form.validate_on_submit():
        values = dict(
            name=form.name.data,
            description=form.description.data or "",
            scope=DocumentScope(form.scope.data),
            required=form.required_doc.data,
            validity=Validity(form.validity.data),
            formats=",".join(form.formats.data),
            active=form.active.data,
        )
        kind = documents.save_type(kind, values, current_user)
        return saved(f"Le document « {kind.name} » est enregistré.", url_for("gestion.document_types"))
    return render_template(
        "gestion/document_type_form.html", form=form, kind=kind
    ), 422 if form.errors else 200


@bp.get("/pieces")
def documents_queue():
    """Documents waiting for validation: filter by type, family and age."""
    type_id = request.args.get("type", type=int)
    family_q = (request.args.get("famille") or "").strip()[:100]
    older = request.args.get("anciennete", type=int)
    page = documents.pending(
        type_id, family_q, older, utcnow(), page=max(request.args.get("page", 1, type=int), 1)
    )
    types = documents.document_types()
    return render_template(
        "gestion/documents.html", page=page, types=types, type_id=type_id, family_q=family_q, older=older
    )


@bp.get("/pieces/<int:document_id>")
def document_show(document_id: int):
    document = db.get_or_404(Document, document_id)
    versions = documents.versions(document)
    today = today_in_paris(utcnow())
    return render_template(
        "gestion/document_show.html",
        document=document,
        versions=versions,
        reasons=documents.REFUSAL_REASONS,
        default_expiry=documents.default_expiry(document.type, today),
    )


@bp.post("/pieces/<int:document_id>/decision")
def document_decide(document_id: int):
    document = db.get_or_404(Document, document_id)
    accept = request.form.get("decision") == "valider"
    valid_until = None
    if accept and request.form.get("valide_jusqu_au"):
        try:
            valid_until = date.fromisoformat(request.form["valide_jusqu_au"])
        except ValueError:
            flash("La date de fin de validité est invalide.", "error")
            return redirect(url_for("gestion.document_show", document_id=document_id))
    reason = " — ".join(
        part for part in (request.form.get("motif", ""), request.form.get("precision", "").strip()) if part
    )
    try:
        documents.decide(document, current_user, accept, utcnow(), valid_until=valid_until, reason=reason)
        commit()
    except documents.DocumentError as error:
        rollback()
        flash(str(error), "error")
        return redirect(url_for("gestion.document_show", document_id=document_id))
    flash(f"Document {'validé' if accept else 'refusé'} ; la famille est prévenue par e-mail.", "success")
    return redirect(url_for("gestion.documents_queue"))


@bp.get("/pieces/<int:document_id>/fichier")
def document_file_staff(document_id: int):
    document = db.get_or_404(Document, document_id)
    return send_stored(document.stored_name, document.original_name)
