"""Pièces justificatives: the types of documents a town asks for, and the files families send."""

import enum
from datetime import date

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portail.extensions import db
from portail.models.accounts import User
from portail.models.families import Child, Family
from portail.models.types import Labelled, by_account, intpk, timestamp, utc


class DocumentScope(enum.Enum):
    FAMILY = "family"  # one for the family (e.g. justificatif de domicile)
    CHILD = "child"  # one per child (e.g. vaccinations)


class Validity(enum.Enum):
    NONE = "none"  # valid until replaced
    ONE_YEAR = "one_year"  # one year from validation
    SCHOOL_YEAR = "school_year"  # until the end of the school year (31 August)


class DocumentState(Labelled):
    PENDING = "pending", "En attente de validation"
    VALIDATED = "validated", "Validé"
    REFUSED = "refused", "Refusé"
    EXPIRED = "expired", "Expiré"
    REPLACED = "replaced", "Remplacé"  # a newer file was sent: kept for staff


FORMATS = {"pdf": "PDF", "jpeg": "JPEG", "png": "PNG"}


class DocumentType(db.Model):
    id: Mapped[intpk]
    name: Mapped[str] = mapped_column(sa.String(120))
    description: Mapped[str] = mapped_column(sa.Text, default="")
    scope: Mapped[DocumentScope] = mapped_column(sa.Enum(DocumentScope, native_enum=False, length=10))
    required: Mapped[bool] = mapped_column(default=True)
    validity: Mapped[Validity] = mapped_column(
        sa.Enum(Validity, native_enum=False, length=12), default=Validity.NONE
    )
    formats: Mapped[str] = mapped_column(sa.String(20), default="pdf,jpeg,png")  # among FORMATS
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[timestamp]

    @property
    def format_list(self) -> list[str]:
        return [f for f in self.formats.split(",") if f in FORMATS]


class Document(db.Model):
    """One file sent for a document type (for the family or one child); replaced files are kept."""

    id: Mapped[intpk]
    type_id: Mapped[int] = mapped_column(sa.ForeignKey("document_type.id", ondelete="RESTRICT"))
    family_id: Mapped[int] = mapped_column(sa.ForeignKey("family.id", ondelete="CASCADE"), index=True)
    child_id: Mapped[int | None] = mapped_column(sa.ForeignKey("child.id", ondelete="CASCADE"))
    stored_name: Mapped[str] = mapped_column(sa.String(40), unique=True)
    original_name: Mapped[str] = mapped_column(sa.String(120))  # cleaned, for display and download only
    mimetype: Mapped[str] = mapped_column(sa.String(40))
    size: Mapped[int]
    state: Mapped[DocumentState] = mapped_column(
        sa.Enum(DocumentState, native_enum=False, length=10), default=DocumentState.PENDING, index=True
    )
    reason: Mapped[str | None] = mapped_column(sa.Text)
    valid_until: Mapped[date | None]
    uploaded_by_id: Mapped[by_account]
    uploaded_at: Mapped[timestamp] = mapped_column(index=True)
    decided_by_id: Mapped[by_account]
    decided_at: Mapped[utc | None]
    expiry_warned_at: Mapped[utc | None]  # the 30-day notice, sent once

    type: Mapped[DocumentType] = relationship()
    family: Mapped[Family] = relationship()
    child: Mapped[Child | None] = relationship()
    uploaded_by: Mapped[User | None] = relationship(foreign_keys="Document.uploaded_by_id")
    decided_by: Mapped[User | None] = relationship(foreign_keys="Document.decided_by_id")
