"""Pièces justificatives: what each family must send, the files sent, staff decisions, expiry.

A "slot" is a document type for the family, or for one child. Its current document is the latest
file not replaced; sending a new file replaces the previous one (kept for staff). A validated
document expires at its `valid_until`; parents are told 30 days before, once.
"""

from dataclasses import dataclass
from datetime import date, datetime, timedelta

import sqlalchemy as sa
from flask import current_app

from portail.extensions import db
from portail.formatting import today_in_paris
from portail.models import (
    Child,
    Document,
    DocumentScope,
    DocumentState,
    DocumentType,
    Family,
    User,
    Validity,
)
from portail.services import uploads
from portail.services.audit import record
from portail.services.outbox import queue_mail
from portail.services.transactions import TWIN_WITHIN, claim, save_form
from portail.urls import public_url

SOON = timedelta(days=30)
REFUSAL_REASONS = [
    "Document illisible",
    "Document incomplet",
    "Document périmé",
    "Ce n'est pas le document demandé",
]


class DocumentError(ValueError):
    """A refused action; the message is French."""


@dataclass
class Slot:
    type: DocumentType
    child: Child | None
    document: Document | None
    today: date

    @property
    def key(self) -> str:
        return f"{self.type.id}-{self.child.id if self.child else 0}"

    @property
    def state(self) -> str:
        """À fournir, Facultatif, En attente de validation, Validé, Bientôt expiré, Refusé, Expiré."""
        document = self.document
        if document is None:
            return "À fournir" if self.type.required else "Facultatif"
        if document.state is DocumentState.VALIDATED and document.valid_until:
            if document.valid_until < self.today:
                return "Expiré"
            if document.valid_until <= self.today + SOON:
                return "Bientôt expiré"
        return document.state.label

    @property
    def needs_action(self) -> bool:
        return self.state in ("À fournir", "Refusé", "Expiré", "Bientôt expiré")


def slots(family: Family, now: datetime) -> list[Slot]:
    """Every document asked of the family and of each child, with its current file (three queries)."""
    types = db.session.scalars(
        sa.select(DocumentType)
        .where(DocumentType.active.is_(True))
        .order_by(DocumentType.scope, DocumentType.name)
    ).all()
    current = {
        (d.type_id, d.child_id): d
        for d in db.session.scalars(
            sa.select(Document)
            .where(Document.family_id == family.id, Document.state != DocumentState.REPLACED)
            .order_by(Document.uploaded_at)
        )
    }
    today = today_in_paris(now)
    # The family's documents first, then each child's (the page has one heading per child).
    owners = [(None, [k for k in types if k.scope is DocumentScope.FAMILY])]
    owners += [(child, [k for k in types if k.scope is DocumentScope.CHILD]) for child in family.children]
    return [
        Slot(kind, child, current.get((kind.id, child.id if child else None)), today)
        for child, kinds in owners
        for kind in kinds
    ]


def submit(
    family: Family,
    user: User,
    kind: DocumentType,
    child: Child | None,
    data: bytes,
    filename: str | None,
    now: datetime,
) -> Document:
    """Store a file for a slot; the previous file of the slot is kept as replaced. The caller commits.

    The same file sent twice (a double click, two tabs) is one document: the family's uploads take
    turns, and a file identical to the one waiting in its slot, under the same name, is that one.
    """
    if not kind.active:
        raise DocumentError("Ce document n'est plus demandé.")
    if (kind.scope is DocumentScope.CHILD) != (child is not None):
        raise DocumentError(
            "Choisissez l'enfant concerné."
            if child is None
            else "Ce document concerne la famille, pas un enfant."
        )
    uploads.check_filename(filename or "")
    stored, mimetype = uploads.save_document(data, kind.format_list)
    claim(family)  # (after the file checks, which take time; the quota is then counted once)
    quota = current_app.config["DOCUMENT_QUOTA_BYTES"]
    used = db.session.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(Document.size), 0)).where(Document.family_id == family.id)
    )
    if used + len(data) > quota:
        raise DocumentError(
            f"L'espace de documents de la famille est plein ({quota // (1024 * 1024)} Mo) : contactez la mairie."
        )
    content = uploads.path_of(stored).read_bytes()
    name = uploads.clean_filename(filename, stored.rsplit(".", 1)[-1])
    previous = db.session.scalars(
        sa.select(Document).where(
            Document.family_id == family.id,
            Document.type_id == kind.id,
            Document.child_id == (child.id if child else None),
            Document.state != DocumentState.REPLACED,
        )
    ).all()
    for old in previous:
        if (
            old.state is DocumentState.PENDING
            and old.original_name == name
            and _holds(old.stored_name, content)
        ):
            uploads.delete_after_commit(stored)
            return old
    for old in previous:
        old.state = DocumentState.REPLACED
    document = Document(
        type_id=kind.id,
        family_id=family.id,
        child_id=child.id if child else None,
        stored_name=stored,
        mimetype=mimetype,
        size=len(content),
        original_name=name,
        uploaded_by_id=user.id,
        uploaded_at=now,
    )
    db.session.add(document)
    return document


def _holds(name: str, content: bytes) -> bool:
    """Whether the stored file `name` has exactly this content."""
    path = uploads.path_of(name)
    return path.is_file() and path.stat().st_size == len(content) and path.read_bytes() == content


def default_expiry(kind: DocumentType, today: date) -> date | None:
    if kind.validity is Validity.ONE_YEAR:
        return (
            today.replace(year=today.year + 1)
            if not (today.month == 2 and today.day == 29)
            else date(today.year + 1, 2, 28)
        )
    if kind.validity is Validity.SCHOOL_YEAR:
        return date(today.year if today.month < 9 else today.year + 1, 8, 31)
    return None


def decide(
    document: Document,
    agent: User,
    accept: bool,
    now: datetime,
    valid_until: date | None = None,
    reason: str | None = None,
) -> None:
    """Validate (with an expiry date) or refuse (with a reason) a pending document, once; mail the
    parent; audited."""
    reason = (reason or "").strip() or None
    if not accept and not reason:
        raise DocumentError("Indiquez le motif du refus.")
    if accept and valid_until is not None and valid_until < today_in_paris(now):
        raise DocumentError("La date de fin de validité est déjà passée.")
    claimed = db.session.execute(
        sa.update(Document)
        .where(Document.id == document.id, Document.state == DocumentState.PENDING)
        .values(
            state=DocumentState.VALIDATED if accept else DocumentState.REFUSED,
            decided_by_id=agent.id,
            decided_at=now,
            reason=None if accept else reason,
            valid_until=valid_until if accept else None,
        )
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:
        raise DocumentError("Ce document a déjà été traité ou remplacé.")
    db.session.refresh(document)
    _mail(
        document,
        "document_decision",
        accepted=accept,
        reason=reason,
        valid_until=valid_until.isoformat() if accept and valid_until else None,
    )
    record(
        agent,
        "document.validated" if accept else "document.refused",
        "document",
        document.id,
        document.type.name,
    )


def _mail(document: Document, template: str, **context) -> None:
    parent = db.session.get(User, document.uploaded_by_id) if document.uploaded_by_id else None
    if parent is None or parent.is_staff or not parent.is_active:
        return
    queue_mail(
        template,
        parent.email,
        first_name=parent.first_name,
        document=document.type.name,
        child=document.child.first_name if document.child else None,
        link=public_url("family.documents_page", family_id=document.family_id),
        **context,
    )


def expiry(now: datetime) -> dict[str, int]:
    """Mark validated documents past their date as expired, and tell parents 30 days before, once.

    Idempotent: a document is expired once and warned once (the mark and the mail are in one transaction)."""
    today = today_in_paris(now)
    expired = db.session.execute(
        sa.update(Document)
        .where(Document.state == DocumentState.VALIDATED, Document.valid_until < today)
        .values(state=DocumentState.EXPIRED)
        .execution_options(synchronize_session=False)
    ).rowcount
    soon = db.session.scalars(
        sa.select(Document)
        .where(
            Document.state == DocumentState.VALIDATED,
            Document.valid_until <= today + SOON,
            Document.valid_until >= today,
            Document.expiry_warned_at.is_(None),
        )
        .with_for_update(skip_locked=True)
    ).all()
    for document in soon:
        document.expiry_warned_at = now
        _mail(document, "document_expiry", valid_until=document.valid_until.isoformat())
    return {"expired": expired, "warned": len(soon)}


def save_type(kind: DocumentType | None, values: dict, agent: User) -> DocumentType:
    """Create a document type asked of families (`kind` None) or change one with `values`; audited.

    The same creation sent twice (a double click) is the first one's type."""
    kind, written = save_form(agent, DocumentType, kind, values, same=("name", "scope"), within=TWIN_WITHIN)
    if written:
        record(agent, "document_type.saved", "document_type", kind.id, kind.name)
    return kind


def document_types(active_first: bool = False) -> list[DocumentType]:
    """The document types, by name (those asked at present first if `active_first`)."""
    order = (DocumentType.active.desc(), DocumentType.name) if active_first else (DocumentType.name,)
    return list(db.session.scalars(sa.select(DocumentType).order_by(*order)))


def pending(
    type_id: int | None, family_q: str, older: int | None, now: datetime, page: int, per_page: int = 30
):
    """The documents waiting for an agent, oldest first, paginated: of one type, of families whose
    name contains `family_q`, sent `older` days ago or more (each filter only when given)."""
    query = sa.select(Document).join(Family).where(Document.state == DocumentState.PENDING)
    if type_id:
        query = query.where(Document.type_id == type_id)
    if family_q:
        query = query.where(sa.func.lower(Family.name).like(f"%{family_q.lower()}%"))
    if older:
        query = query.where(Document.uploaded_at <= now - timedelta(days=older))
    return db.paginate(
        query.options(
            sa.orm.contains_eager(Document.family),
            sa.orm.joinedload(Document.type),
            sa.orm.joinedload(Document.child),
        ).order_by(Document.uploaded_at),
        page=page,
        per_page=per_page,
        error_out=False,
    )


def versions(document: Document) -> list[Document]:
    """Every file sent for the same family, type and child as `document`, newest first."""
    return list(
        db.session.scalars(
            sa.select(Document)
            .where(
                Document.family_id == document.family_id,
                Document.type_id == document.type_id,
                Document.child_id == document.child_id,
            )
            .order_by(Document.uploaded_at.desc())
        )
    )
