"""Uploaded PDFs carrying JavaScript, launch actions or embedded files are refused, others kept."""

import html
import io
from pathlib import Path

import pytest
import sqlalchemy as sa
from pypdf import PdfWriter
from pypdf.actions import JavaScript
from pypdf.generic import (
    ArrayObject,
    DictionaryObject,
    NameObject,
    NumberObject,
    StreamObject,
    TextStringObject,
)

from portail.extensions import db
from portail.models import Document, DocumentScope, DocumentType
from portail.services import uploads
from portail.services.outbox import commit
from tests.factories import make_family, make_user, subscribe

JAVASCRIPT = "Ce PDF contient du JavaScript"
LAUNCH = "Ce PDF contient une action qui lance un programme"
EMBEDDED = "Ce PDF contient des fichiers joints"


def _writer() -> PdfWriter:
    writer = PdfWriter()
    writer.add_blank_page(width=200, height=200)
    return writer


def _bytes(writer: PdfWriter) -> bytes:
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _action(writer: PdfWriter, **entries) -> object:
    """An action dictionary, stored as an indirect object as PDF producers do."""
    action = DictionaryObject({NameObject("/Type"): NameObject("/Action")})
    action.update({NameObject(f"/{key}"): value for key, value in entries.items()})
    return writer._add_object(action)


def _link_annotation(writer: PdfWriter, action) -> None:
    """A link over the page that runs `action` when clicked."""
    annotation = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Annot"),
            NameObject("/Subtype"): NameObject("/Link"),
            NameObject("/Rect"): ArrayObject(
                [NumberObject(0), NumberObject(0), NumberObject(200), NumberObject(200)]
            ),
            NameObject("/A"): action,
        }
    )
    writer.pages[0][NameObject("/Annots")] = ArrayObject([writer._add_object(annotation)])


def _on_open(writer: PdfWriter, action) -> None:
    writer._root_object[NameObject("/OpenAction")] = action


def _on_page_open(writer: PdfWriter, action) -> None:
    """/AA on the page: the action runs when the page opens."""
    writer.pages[0][NameObject("/AA")] = DictionaryObject({NameObject("/O"): action})


def _active(trigger, **entries) -> bytes:
    """A PDF whose action (`entries`: its /S and what it runs) is set off by `trigger`: on opening the
    document or the page, or by a click on a link (`_link_annotation`)."""
    writer = _writer()
    trigger(writer, _action(writer, **entries))
    return _bytes(writer)


def plain_pdf() -> bytes:
    return _bytes(_writer())


def document_javascript() -> bytes:
    """JavaScript in the catalogue's /Names /JavaScript tree (PdfWriter.add_open_action, formerly add_js)."""
    writer = _writer()
    writer.add_open_action(JavaScript("app.alert('hello');"))
    return _bytes(writer)


def open_action_javascript() -> bytes:
    return _active(_on_open, S=NameObject("/JavaScript"), JS=TextStringObject("app.alert(1)"))


def page_additional_action_javascript() -> bytes:
    return _active(_on_page_open, S=NameObject("/JavaScript"), JS=TextStringObject("app.alert(2)"))


def annotation_javascript() -> bytes:
    return _active(_link_annotation, S=NameObject("/JavaScript"), JS=TextStringObject("app.alert(3)"))


def launch_open_action() -> bytes:
    return _active(_on_open, S=NameObject("/Launch"), F=TextStringObject("cmd.exe"))


def launch_annotation() -> bytes:
    return _active(_link_annotation, S=NameObject("/Launch"), F=TextStringObject("calc.exe"))


def embedded_file() -> bytes:
    """A file in the catalogue's /Names /EmbeddedFiles tree (what PdfWriter.add_attachment writes)."""
    writer = _writer()
    writer.add_attachment("facture.exe", b"MZ\x90\x00 not really a program")
    return _bytes(writer)


def file_attachment_annotation() -> bytes:
    """A paperclip annotation on the page carrying its own file."""
    writer = _writer()
    stream = StreamObject()
    stream.set_data(b"secret payload")
    stream[NameObject("/Type")] = NameObject("/EmbeddedFile")
    filespec = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Filespec"),
            NameObject("/F"): TextStringObject("note.txt"),
            NameObject("/EF"): DictionaryObject({NameObject("/F"): writer._add_object(stream)}),
        }
    )
    annotation = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Annot"),
            NameObject("/Subtype"): NameObject("/FileAttachment"),
            NameObject("/Rect"): ArrayObject(
                [NumberObject(10), NumberObject(10), NumberObject(30), NumberObject(30)]
            ),
            NameObject("/FS"): writer._add_object(filespec),
        }
    )
    writer.pages[0][NameObject("/Annots")] = ArrayObject([writer._add_object(annotation)])
    return _bytes(writer)


ACTIVE = [
    (document_javascript, JAVASCRIPT),
    (open_action_javascript, JAVASCRIPT),
    (page_additional_action_javascript, JAVASCRIPT),
    (annotation_javascript, JAVASCRIPT),
    (launch_open_action, LAUNCH),
    (launch_annotation, LAUNCH),
    (embedded_file, EMBEDDED),
    (file_attachment_annotation, EMBEDDED),
]
IDS = [make.__name__ for make, _message in ACTIVE]


@pytest.mark.parametrize(("make", "message"), ACTIVE, ids=IDS)
def test_pdf_with_active_content_is_refused_by_the_upload_check(app, make, message):
    data = make()
    assert data.startswith(b"%PDF")
    before = _stored(app)
    with pytest.raises(uploads.UploadError, match=message):
        uploads.save_document(data, ["pdf"])
    assert _stored(app) == before


def test_a_plain_pdf_is_accepted_byte_for_byte(app):
    data = plain_pdf()
    name, mimetype = uploads.save_document(data, ["pdf"])
    assert mimetype == "application/pdf"
    assert uploads.path_of(name).read_bytes() == data


@pytest.fixture
def home(app):
    family = make_family(name="Famille MARTIN")
    subscribe(make_user(email="parent@example.fr"), family)
    caf = DocumentType(name="Attestation CAF", scope=DocumentScope.FAMILY)
    db.session.add(caf)
    commit()
    return family, caf


def _stored(app) -> set[str]:
    path = Path(app.config["UPLOAD_DIR"])
    return {p.name for p in path.iterdir()} if path.exists() else set()


def _send(client, family, kind, data: bytes):
    form = {"type": str(kind.id), "fichier": (io.BytesIO(data), "attestation.pdf")}
    return client.post(f"/famille/{family.id}/pieces", data=form, content_type="multipart/form-data")


@pytest.mark.both_dbs
@pytest.mark.parametrize(("make", "message"), ACTIVE, ids=IDS)
def test_parent_sending_an_active_pdf_sees_why_at_the_field_and_nothing_is_kept(
    app, client, auth, home, make, message
):
    family, caf = home
    auth.login("parent@example.fr")
    before = _stored(app)
    response = _send(client, family, caf, make())
    assert response.status_code == 422
    page = html.unescape(response.get_data(as_text=True))
    assert message in page and 'class="error-summary"' in page
    assert db.session.scalar(sa.select(sa.func.count(Document.id))) == 0
    assert _stored(app) == before


@pytest.mark.both_dbs
def test_parent_sending_a_plain_pdf_has_it_kept(app, client, auth, home):
    family, caf = home
    auth.login("parent@example.fr")
    assert _send(client, family, caf, plain_pdf()).status_code == 302
    document = db.session.scalar(sa.select(Document))
    assert uploads.path_of(document.stored_name).read_bytes() == plain_pdf()
