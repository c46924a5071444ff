"""Espace Famille → Pièces justificatives: what is asked, send or replace a file, download own files."""

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from portail.extensions import db
from portail.family.loaders import family_of_current_user, member_or_404
from portail.family.routes import bp
from portail.files import send_stored
from portail.models import Document, DocumentType, utcnow
from portail.services import documents, uploads
from portail.services.outbox import commit, rollback


@bp.get("/<int:family_id>/pieces")
def documents_page(family_id: int):
    family = family_of_current_user(family_id)
    return _page(family)


def _page(family, error: tuple[str, str] | None = None, status: int = 200):
    slots = documents.slots(family, utcnow())
    return render_template("family/documents.html", family=family, slots=slots, error=error), status


@bp.post("/<int:family_id>/pieces")
def documents_send(family_id: int):
    """Send (or replace) the file of one slot: a document type, for the family or one child."""
    family = family_of_current_user(family_id)
    kind = db.session.get(DocumentType, request.form.get("type", type=int) or 0)
    if kind is None or not kind.active:
        abort(404)
    child = None
    if request.form.get("enfant"):
        child = next((c for c in family.children if str(c.id) == request.form["enfant"]), None)
        if child is None:
            abort(404)
    slot_key = f"{kind.id}-{child.id if child else 0}"
    upload = request.files.get("fichier")
    if upload is None or not upload.filename:
        return _page(family, (slot_key, "Choisissez un fichier."), 422)
    data = upload.read(uploads.MAX_BYTES + 1)
    try:
        documents.submit(family, current_user, kind, child, data, upload.filename, utcnow())
        commit()
    except (uploads.UploadError, documents.DocumentError) as error:
        rollback()
        return _page(family, (slot_key, str(error)), 422)
    flash(f"« {kind.name} » est envoyé : il est en attente de validation par la mairie.", "success")
    return redirect(url_for("family.documents_page", family_id=family.id) + f"#piece-{slot_key}")


@bp.get("/<int:family_id>/pieces/<int:document_id>/fichier")
def document_file(family_id: int, document_id: int):
    """One of the family's files, as an attachment (any version the family sent)."""
    family = family_of_current_user(family_id)
    document = member_or_404(family, Document, document_id)
    return send_stored(document.stored_name, document.original_name)
