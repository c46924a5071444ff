"""Pièces justificatives: safe uploads, replacement, staff decisions mailed once, expiry once."""

import html
import io
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from PIL import Image

from portail.extensions import db
from portail.models import Document, DocumentScope, DocumentState, DocumentType, OutboxMessage, Role, Validity
from portail.services import documents
from portail.services.outbox import commit
from tests.factories import PDF, jpeg_with_exif, make_family, make_user, subscribe

pytestmark = pytest.mark.both_dbs


def bomb() -> bytes:
    out = io.BytesIO()
    Image.new("1", (9000, 9000)).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
def home(app):
    family = make_family(name="Famille MARTIN", children=(("Léa", date(2016, 3, 14)),))
    parent = make_user(email="parent@example.fr", first_name="Claire")
    subscribe(parent, family)
    other = make_family(name="Famille AUTRE")
    subscribe(make_user(email="autre@example.fr"), other)
    make_user(email="agent@example.fr", role=Role.AGENT)
    caf = DocumentType(name="Attestation CAF", scope=DocumentScope.FAMILY, validity=Validity.ONE_YEAR)
    vaccins = DocumentType(name="Vaccinations", scope=DocumentScope.CHILD, formats="pdf,jpeg,png")
    db.session.add_all([caf, vaccins])
    commit()
    return family, other, caf, vaccins


def upload_dir(app) -> set[str]:
    path = Path(app.config["UPLOAD_DIR"])
    return {p.name for p in path.iterdir()} if path.exists() else set()


def send(client, family, kind, data: bytes, name: str, child=None):
    form = {"type": str(kind.id), "fichier": (io.BytesIO(data), name)}
    if child is not None:
        form["enfant"] = str(child.id)
    return client.post(f"/famille/{family.id}/pieces", data=form, content_type="multipart/form-data")


def sent_by(client, auth, email, family, kind, name) -> Document:
    """`email` logs in, sends a PDF named `name` for `family`'s `kind` and logs out: the document kept."""
    auth.login(email)
    send(client, family, kind, PDF, name)
    auth.logout()
    return db.session.scalar(sa.select(Document).where(Document.original_name == name))


@pytest.mark.parametrize(
    ("data", "name", "message"),
    [
        (
            b"MZ\x90\x00" + b"\x00" * 200,
            "attestation.pdf",
            "Ce type de fichier n'est pas accepté",
        ),  # an executable renamed
        (
            b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
            "scan.svg",
            "Ce type de fichier n'est pas accepté",
        ),
        (
            b"<!doctype html><html><script>alert(1)</script></html>",
            "page.pdf",
            "Ce type de fichier n'est pas accepté",
        ),
        (b"", "vide.pdf", "Le fichier est vide"),
        (PDF[:40] + b"\x00garbage" * 50, "abime.pdf", "Le PDF est illisible ou endommagé"),
        (b"%PDF-1.4\n" + b"0" * (5 * 1024 * 1024), "gros.pdf", "Le fichier dépasse 5 Mo"),
        ("bomb", "bombe.png", "trop grande"),
        (PDF, "../../etc/passwd.pdf", "caractères non autorisés"),
        (PDF, "facture\u202efdp.exe", "caractères non autorisés"),
    ],
    ids=[
        "renamed-executable",
        "svg",
        "html",
        "empty",
        "corrupted-pdf",
        "too-big",
        "pixel-bomb",
        "path-traversal",
        "right-to-left-override",
    ],
)
def test_refused_files_get_a_french_message_and_leave_nothing(app, client, auth, home, data, name, message):
    family, _other, caf, _vaccins = home
    auth.login("parent@example.fr")
    before = upload_dir(app)
    response = send(client, family, caf, bomb() if data == "bomb" else data, name)
    assert response.status_code == 422
    page = html.unescape(response.get_data(as_text=True))
    assert message in page and 'class="error-summary"' in page
    assert db.session.scalar(sa.select(sa.func.count(Document.id))) == 0
    assert upload_dir(app) == before


def test_a_pdf_round_trips_byte_identical_and_is_served_as_an_attachment(app, client, auth, home):
    family, _other, caf, _vaccins = home
    auth.login("parent@example.fr")
    response = send(client, family, caf, PDF, "attestation CAF.pdf")
    assert response.status_code == 302
    document = db.session.scalar(sa.select(Document))
    assert (
        document.state is DocumentState.PENDING
        and document.original_name == "attestation CAF.pdf"
        and document.stored_name != "attestation CAF.pdf"
    )
    page = client.get(f"/famille/{family.id}/pieces").get_data(as_text=True)
    assert "En attente de validation" in page
    download = client.get(f"/famille/{family.id}/pieces/{document.id}/fichier")
    assert download.data == PDF
    assert download.headers["Content-Disposition"].startswith("attachment")
    assert download.headers["X-Content-Type-Options"] == "nosniff" and download.mimetype == "application/pdf"


def test_images_are_re_encoded_without_exif(app, client, auth, home):
    family, _other, _caf, vaccins = home
    child = family.children[0]
    auth.login("parent@example.fr")
    raw = jpeg_with_exif()
    assert b"AppareilSecret" in raw
    assert send(client, family, vaccins, raw, "carnet.jpg", child=child).status_code == 302
    document = db.session.scalar(sa.select(Document))
    stored = client.get(f"/famille/{family.id}/pieces/{document.id}/fichier").data
    assert stored.startswith(b"\xff\xd8") and b"AppareilSecret" not in stored
    assert Image.open(io.BytesIO(stored)).getexif() == {}


def test_another_familys_document_gives_404_for_every_method(app, client, auth, home):
    family, other, caf, vaccins = home
    foreign = sent_by(client, auth, "autre@example.fr", other, caf, "autre.pdf")
    auth.login("parent@example.fr")
    assert client.get(f"/famille/{other.id}/pieces/{foreign.id}/fichier").status_code == 404
    assert client.get(f"/famille/{family.id}/pieces/{foreign.id}/fichier").status_code == 404
    assert client.get(f"/famille/{other.id}/pieces").status_code == 404
    assert send(client, other, caf, PDF, "x.pdf").status_code == 404
    other_child = make_family(name="Famille TIERS").children[0]
    commit()
    assert send(client, family, vaccins, PDF, "x.pdf", child=other_child).status_code == 404
    assert client.get(f"/gestion/pieces/{foreign.id}/fichier").status_code == 403
    assert db.session.scalar(sa.select(sa.func.count(Document.id))) == 1


def test_replacing_keeps_the_previous_version_for_staff(app, client, auth, home):
    family, _other, caf, _vaccins = home
    auth.login("parent@example.fr")
    send(client, family, caf, PDF, "premier.pdf")
    send(client, family, caf, PDF, "second.pdf")
    rows = db.session.scalars(sa.select(Document).order_by(Document.id)).all()
    assert [(d.original_name, d.state) for d in rows] == [
        ("premier.pdf", DocumentState.REPLACED),
        ("second.pdf", DocumentState.PENDING),
    ]
    auth.logout()
    auth.login("agent@example.fr")
    page = client.get(f"/gestion/pieces/{rows[1].id}").get_data(as_text=True)
    assert "Versions envoyées" in page and "premier.pdf" in page
    assert client.get(f"/gestion/pieces/{rows[0].id}/fichier").data == PDF


def test_staff_refuse_then_validate_each_decision_mailed_once(app, client, auth, home, mails):
    family, _other, caf, _vaccins = home
    document = sent_by(client, auth, "parent@example.fr", family, caf, "caf.pdf")
    auth.login("agent@example.fr")
    assert "1 document en attente" in client.get("/gestion/pieces").get_data(as_text=True)
    without = client.post(
        f"/gestion/pieces/{document.id}/decision", data={"decision": "refuser"}, follow_redirects=True
    )
    assert "Indiquez le motif du refus" in without.get_data(as_text=True)
    client.post(
        f"/gestion/pieces/{document.id}/decision",
        data={"decision": "refuser", "motif": "Document illisible", "precision": "La page 2 manque."},
    )
    again = client.post(
        f"/gestion/pieces/{document.id}/decision", data={"decision": "valider"}, follow_redirects=True
    )
    assert "déjà été traité" in html.unescape(again.get_data(as_text=True))
    db.session.expire_all()
    assert (document.state, document.reason) == (
        DocumentState.REFUSED,
        "Document illisible — La page 2 manque.",
    )
    decisions = [m for m in mails if "pièce justificative" in m.subject]
    assert len(decisions) == 1 and "refusée" in decisions[0].body and "La page 2 manque." in decisions[0].body
    auth.logout()
    auth.login("parent@example.fr")
    page = client.get(f"/famille/{family.id}/pieces").get_data(as_text=True)
    assert "Refusé" in page and "Document illisible" in page
    assert "Pièce justificative — Attestation CAF" in client.get("/mon-espace/demandes").get_data(
        as_text=True
    )
    send(client, family, caf, PDF, "caf-lisible.pdf")
    auth.logout()
    auth.login("agent@example.fr")
    new = db.session.scalar(sa.select(Document).where(Document.state == DocumentState.PENDING))
    client.post(
        f"/gestion/pieces/{new.id}/decision", data={"decision": "valider", "valide_jusqu_au": "2030-06-30"}
    )
    db.session.expire_all()
    assert (new.state, new.valid_until) == (DocumentState.VALIDATED, date(2030, 6, 30))
    assert len([m for m in mails if "pièce justificative" in m.subject]) == 2


def test_expiry_marks_expired_and_warns_30_days_before_once(app, home):
    family, _other, caf, vaccins = home
    parent = family.subscriptions[0].user
    now = datetime(2027, 5, 2, 8, tzinfo=UTC)
    expiring = documents.submit(family, parent, caf, None, PDF, "caf.pdf", now - timedelta(days=300))
    old = documents.submit(
        family, parent, vaccins, family.children[0], PDF, "vaccins.pdf", now - timedelta(days=400)
    )
    later = make_family(name="Famille LOIN")
    far = documents.submit(later, parent, caf, None, PDF, "loin.pdf", now)
    for document, until in ((expiring, date(2027, 5, 20)), (old, date(2027, 5, 1)), (far, date(2027, 9, 1))):
        document.state, document.valid_until = DocumentState.VALIDATED, until
    commit()
    assert documents.expiry(now) == {"expired": 1, "warned": 1}
    commit()
    assert documents.expiry(now) == {"expired": 0, "warned": 0}
    commit()
    db.session.expire_all()
    assert (
        old.state is DocumentState.EXPIRED
        and expiring.state is DocumentState.VALIDATED
        and far.expiry_warned_at is None
    )
    warnings = db.session.scalars(
        sa.select(OutboxMessage).where(OutboxMessage.template == "document_expiry")
    ).all()
    assert len(warnings) == 1 and warnings[0].context["valid_until"] == "2027-05-20"
    slots = {slot.type.name: slot.state for slot in documents.slots(family, now)}
    assert slots == {"Attestation CAF": "Bientôt expiré", "Vaccinations": "Expiré"}


def test_quota_full_is_refused_with_a_message(app, client, auth, home):
    family, _other, caf, _vaccins = home
    app.config["DOCUMENT_QUOTA_BYTES"] = len(PDF) + 10
    auth.login("parent@example.fr")
    assert send(client, family, caf, PDF, "un.pdf").status_code == 302
    before = upload_dir(app)
    response = send(client, family, caf, PDF, "deux.pdf")
    assert response.status_code == 422 and "plein" in response.get_data(as_text=True)
    assert upload_dir(app) == before and db.session.scalar(sa.select(sa.func.count(Document.id))) == 1


def test_a_request_over_the_size_limit_gets_the_french_413_page(app, client, auth, home):
    family, _other, caf, _vaccins = home
    auth.login("parent@example.fr")
    response = send(
        client, family, caf, b"%PDF" + b"0" * (app.config["MAX_CONTENT_LENGTH"] + 10), "enorme.pdf"
    )
    assert response.status_code == 413 and "Fichier trop volumineux" in response.get_data(as_text=True)


def test_a_failed_save_leaves_no_file_without_its_row(app, home, monkeypatch):
    family, _other, caf, _vaccins = home
    parent = family.subscriptions[0].user
    before = upload_dir(app)

    def failing_commit(self):
        raise sa.exc.OperationalError("COMMIT", {}, Exception("disque plein"))

    documents.submit(family, parent, caf, None, PDF, "caf.pdf", datetime(2027, 1, 5, tzinfo=UTC))
    assert len(upload_dir(app) - before) == 1  # written, waiting for the commit
    monkeypatch.setattr(sa.orm.Session, "commit", failing_commit)
    with pytest.raises(sa.exc.OperationalError):
        commit()
    monkeypatch.undo()
    assert upload_dir(app) == before
    assert db.session.scalar(sa.select(sa.func.count(Document.id))) == 0
