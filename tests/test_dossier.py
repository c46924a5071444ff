"""Dossier Famille: parents' changes stay pending until staff accept or refuse them."""

import io
import logging
import os
from datetime import date, timedelta

import pytest
import sqlalchemy as sa
from PIL import Image

from portail.extensions import db
from portail.models import (
    AuditEvent,
    Authorization,
    AuthorizedContact,
    ChangeRequest,
    ChangeStatus,
    Child,
    Guardian,
    Role,
)
from tests.factories import PASSWORD, make_family, make_user, subscribe

pytestmark = pytest.mark.both_dbs

IBAN = "FR7630006000011234567890189"
ADDRESS = {"address_line1": "8 avenue du Parc", "address_line2": "", "postcode": "75014", "city": "Paris"}


@pytest.fixture
def home(app):
    """A family with one guardian (address set), one child and a subscribed parent; an agent."""
    family = make_family(children=(("Léa", date(2016, 3, 14)),))
    guardian = family.guardians[0]
    guardian.address_line1, guardian.postcode, guardian.city = "12 rue des Écoles", "75005", "Paris"
    parent = make_user()
    subscribe(parent, family)
    agent = make_user(email="agent@example.fr", role=Role.AGENT, first_name="Nadia", last_name="AGENT")
    db.session.commit()
    return family, guardian, family.children[0], parent, agent


def changes(status=None):
    query = sa.select(ChangeRequest)
    if status:
        query = query.where(ChangeRequest.status == status)
    return db.session.scalars(query).all()


@pytest.fixture
def address_change(client, auth, home):
    """The parent, logged in, has asked to change the guardian's address: the pending change."""
    family, guardian, _child, _parent, _agent = home
    auth.login("parent@example.fr")
    client.post(f"/famille/{family.id}/responsables/{guardian.id}/address", data=ADDRESS)
    return changes()[0]


def as_agent(client, auth):
    auth.logout()
    auth.login("agent@example.fr")


def test_a_change_stays_pending_and_the_validated_values_do_not_move(client, auth, home):
    family, guardian, _child, _parent, _agent = home
    auth.login("parent@example.fr")
    response = client.post(f"/famille/{family.id}/responsables/{guardian.id}/address", data=ADDRESS)
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(Guardian, guardian.id).address_line1 == "12 rue des Écoles"
    change = changes()[0]
    assert change.status is ChangeStatus.PENDING
    assert change.old_values["address_line1"] == "12 rue des Écoles"
    assert change.new_values["address_line1"] == "8 avenue du Parc"
    page = client.get(f"/famille/{family.id}/responsables").get_data(as_text=True)
    assert "En attente de validation" in page and 'class="pending"' in page
    assert "12 rue des Écoles" in page and "8 avenue du Parc" in page


def test_accept_applies_exactly_the_proposed_values_and_mails_the_parent(
    client, auth, home, address_change, mails
):
    family, guardian, _child, _parent, agent = home
    change = address_change
    as_agent(client, auth)
    assert client.post(f"/gestion/dossiers/{change.id}/accepter").status_code == 302
    db.session.expire_all()
    saved = db.session.get(Guardian, guardian.id)
    assert (saved.address_line1, saved.address_line2, saved.postcode, saved.city) == (
        "8 avenue du Parc",
        None,
        "75014",
        "Paris",
    )
    change = db.session.get(ChangeRequest, change.id)
    assert change.status is ChangeStatus.ACCEPTED and change.decided_by_id == agent.id and change.decided_at
    assert len(mails) == 1 and mails[0].recipients == ["parent@example.fr"] and "acceptée" in mails[0].body
    assert client.post(f"/gestion/dossiers/{change.id}/accepter").status_code == 302
    assert len(mails) == 1, "a decided change cannot be decided again"


def test_refuse_keeps_everything_and_records_the_reason(client, auth, home, address_change, mails):
    family, guardian, _child, _parent, _agent = home
    change = address_change
    as_agent(client, auth)
    no_reason = client.post(f"/gestion/dossiers/{change.id}/refuser", data={"reason": "", "detail": ""})
    assert no_reason.status_code == 302
    db.session.expire_all()
    assert db.session.get(ChangeRequest, change.id).status is ChangeStatus.PENDING
    client.post(
        f"/gestion/dossiers/{change.id}/refuser",
        data={"reason": "Justificatif manquant", "detail": "Merci d'envoyer un justificatif de domicile."},
    )
    db.session.expire_all()
    change = db.session.get(ChangeRequest, change.id)
    assert change.status is ChangeStatus.REFUSED
    assert change.reason == "Justificatif manquant — Merci d'envoyer un justificatif de domicile."
    assert db.session.get(Guardian, guardian.id).address_line1 == "12 rue des Écoles"
    assert "refusée" in mails[0].body and "Justificatif manquant" in mails[0].body
    auth.logout()
    auth.login("parent@example.fr")
    assert "Justificatif manquant" in client.get(f"/famille/{family.id}/historique").get_data(as_text=True)


def test_parent_withdraws_a_pending_change(client, auth, home, address_change):
    family, guardian, _child, _parent, _agent = home
    change = address_change
    assert client.post(f"/famille/{family.id}/demandes/{change.id}/retirer").status_code == 302
    db.session.expire_all()
    assert db.session.get(ChangeRequest, change.id).status is ChangeStatus.WITHDRAWN
    assert "En attente de validation" not in client.get(f"/famille/{family.id}/responsables").get_data(
        as_text=True
    )


def test_a_new_edit_of_the_same_section_replaces_the_pending_one(client, auth, home):
    family, guardian, _child, _parent, _agent = home
    auth.login("parent@example.fr")
    client.post(f"/famille/{family.id}/responsables/{guardian.id}/address", data=ADDRESS)
    client.post(
        f"/famille/{family.id}/responsables/{guardian.id}/address",
        data=dict(ADDRESS, city="Lyon", postcode="69001"),
    )
    assert len(changes(ChangeStatus.PENDING)) == 1
    assert changes(ChangeStatus.PENDING)[0].new_values["city"] == "Lyon"
    assert len(changes(ChangeStatus.SUPERSEDED)) == 1


def test_saving_unchanged_values_is_refused_with_a_message(client, auth, home):
    family, guardian, _child, _parent, _agent = home
    auth.login("parent@example.fr")
    same = {"address_line1": "12 rue des Écoles", "postcode": "75005", "city": "Paris"}
    response = client.post(f"/famille/{family.id}/responsables/{guardian.id}/address", data=same)
    assert response.status_code == 422 and "Aucune modification" in response.get_data(as_text=True)
    assert changes() == []


def test_conflict_is_shown_when_the_file_changed_since_the_request(client, auth, home, address_change):
    family, guardian, _child, _parent, _agent = home
    change = address_change
    as_agent(client, auth)
    client.post(
        f"/gestion/familles/{family.id}/responsables/{guardian.id}/address/modifier",
        data={"address_line1": "3 place de la Mairie", "postcode": "75005", "city": "Paris"},
    )
    page = client.get(f"/gestion/dossiers/{change.id}").get_data(as_text=True)
    assert "Conflit" in page and "3 place de la Mairie" in page
    client.post(f"/gestion/dossiers/{change.id}/accepter")
    db.session.expire_all()
    assert db.session.get(ChangeRequest, change.id).status is ChangeStatus.PENDING
    assert db.session.get(Guardian, guardian.id).address_line1 == "3 place de la Mairie"
    client.post(f"/gestion/dossiers/{change.id}/accepter", data={"force": "1"})
    db.session.expire_all()
    assert db.session.get(Guardian, guardian.id).address_line1 == "8 avenue du Parc"
    assert (
        db.session.scalar(sa.select(AuditEvent.action).where(AuditEvent.action == "dossier.edited"))
        == "dossier.edited"
    )


# Bad input in a section of a guardian's or of the child's file, and what the form says.
GUARDIAN_ERRORS = [
    ("address", {"address_line1": "", "postcode": "75014", "city": "Paris"}, "Ce champ est obligatoire."),
    ("address", {"address_line1": "1 rue A", "postcode": "7501", "city": "Paris"}, "5 chiffres"),
    ("base", {"last_name": "X", "first_name": "Y", "email": "pas-un-email"}, "Adresse e-mail invalide"),
    ("base", {"last_name": "X", "first_name": "Y", "phone": "abc"}, "Numéro de téléphone invalide"),
    ("base", {"last_name": "X", "first_name": "Y", "birth_date": "2030-01-01"}, "invraisemblable"),
    ("tax", {"tax_regime": "CAF", "allocataire_number": ""}, "numéro d&#39;allocataire"),
    ("tax", {"tax_regime": "Autre", "allocataire_number": "12AB"}, "que des chiffres"),
    ("tax", {"quotient": "-5", "quotient_valid_until": "2027-01-01"}, "entre 0 et 99999"),
    ("tax", {"quotient": "700"}, "jusqu&#39;à quand"),
]
CHILD_ERRORS = [
    ("general", {"last_name": "DUPONT", "first_name": "Léa", "birth_date": ""}, "Ce champ est obligatoire."),
    ("general", {"last_name": "DUPONT", "first_name": "Léa", "birth_date": "1990-01-01"}, "invraisemblable"),
    ("health", {"allergies": "x" * 2001}, "2000 caractères au maximum."),
    ("health", {"doctor_phone": "12"}, "Numéro de téléphone invalide"),
]


@pytest.mark.parametrize(
    ("owner", "section", "data", "message"),
    [("responsables", *error) for error in GUARDIAN_ERRORS] + [("enfants", *error) for error in CHILD_ERRORS],
)
def test_guardian_and_child_sections_reject_bad_input_in_french_and_save_nothing(
    client, auth, home, owner, section, data, message
):
    family, guardian, child, _parent, _agent = home
    auth.login("parent@example.fr")
    person = guardian if owner == "responsables" else child
    response = client.post(f"/famille/{family.id}/{owner}/{person.id}/{section}", data=data)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert message in page and 'class="error-summary"' in page
    assert changes() == []


def test_bank_change_needs_a_recent_login_and_iban_is_never_shown_unmasked(app, client, auth, home, caplog):
    family, guardian, _child, _parent, _agent = home
    caplog.set_level(logging.DEBUG)
    auth.login("parent@example.fr")
    with client.session_transaction() as session:
        session["login_at"] -= 16 * 60
    url = f"/famille/{family.id}/responsables/{guardian.id}/bank"
    response = client.get(url)
    assert response.status_code == 302 and "/mon-espace/confirmer-mot-de-passe" in response.location
    assert "Mot de passe actuel incorrect." in client.post(
        response.location, data={"current_password": "faux"}
    ).get_data(as_text=True)
    assert client.post(response.location, data={"current_password": PASSWORD}).location.endswith(url)
    bad = client.post(
        url, data={"bank_holder": "Camille DUPONT", "iban": "FR76 3000 6000 0112 3456 7890 180", "bic": ""}
    )
    assert "IBAN invalide" in bad.get_data(as_text=True) and changes() == []
    bad_bic = client.post(url, data={"bank_holder": "Camille DUPONT", "iban": IBAN, "bic": "ZZ"})
    assert "BIC invalide" in bad_bic.get_data(as_text=True)
    assert (
        client.post(
            url,
            data={"bank_holder": "Camille DUPONT", "iban": "fr76 3000 6000 0112 3456 7890 189", "bic": ""},
        ).status_code
        == 302
    )
    change = changes()[0]
    assert change.new_values["iban"] == IBAN and change.new_values["bic"] == "AGRIFRPPXXX"
    pages = [
        client.get(u).get_data(as_text=True)
        for u in (f"/famille/{family.id}/responsables", url, f"/famille/{family.id}/historique")
    ]
    as_agent(client, auth)
    client.post(f"/gestion/dossiers/{change.id}/accepter")
    pages += [
        client.get(u).get_data(as_text=True)
        for u in (
            f"/gestion/dossiers/{change.id}",
            f"/gestion/familles/{family.id}",
            f"/gestion/familles/{family.id}/responsables/{guardian.id}/bank",
            f"/gestion/familles/{family.id}/responsables/{guardian.id}/bank/modifier",
        )
    ]
    assert any("FR76 •••• •••• •••• 0189" in page for page in pages)
    for page in pages:
        assert IBAN not in page and "3000 6000 0112" not in page
    assert IBAN not in caplog.text


def test_staff_reads_of_health_and_bank_data_are_audited(client, auth, home):
    family, guardian, child, _parent, agent = home
    as_agent(client, auth)
    client.get(f"/gestion/familles/{family.id}")
    assert (
        db.session.scalar(
            sa.select(sa.func.count(AuditEvent.id)).where(
                AuditEvent.action.in_(["health.viewed", "bank.viewed"])
            )
        )
        == 0
    )
    client.get(f"/gestion/familles/{family.id}/enfants/{child.id}/health")
    client.get(f"/gestion/familles/{family.id}/responsables/{guardian.id}/bank")
    events = db.session.scalars(
        sa.select(AuditEvent).where(AuditEvent.action.in_(["health.viewed", "bank.viewed"]))
    ).all()
    assert {(e.action, e.target_type, e.target_id, e.actor_id) for e in events} == {
        ("health.viewed", "child", child.id, agent.id),
        ("bank.viewed", "guardian", guardian.id, agent.id),
    }


def test_a_parent_cannot_set_fields_outside_the_form(client, auth, home):
    family, guardian, _child, _parent, _agent = home
    other = make_family(name="Famille AUTRE")
    db.session.commit()
    auth.login("parent@example.fr")
    data = dict(ADDRESS, family_id=other.id, status="accepted", iban=IBAN, position="2", id="999")
    client.post(f"/famille/{family.id}/responsables/{guardian.id}/address", data=data)
    change = changes()[0]
    assert set(change.new_values) == {"address_line1", "address_line2", "postcode", "city"}
    assert change.family_id == family.id and change.status is ChangeStatus.PENDING


def test_another_familys_objects_give_404_for_every_method(app, client, auth, home):
    family, guardian, child, _parent, _agent = home
    other = make_family(name="Famille AUTRE", children=(("Zoé", date(2015, 5, 5)),))
    contact = AuthorizedContact(
        child_id=other.children[0].id,
        last_name="X",
        first_name="Y",
        relationship_label="Oncle",
        phone="0612345678",
    )
    db.session.add(contact)
    stranger = make_user(email="stranger@example.fr")
    subscribe(stranger, other)
    db.session.commit()
    auth.login("stranger@example.fr")
    client.post(f"/famille/{other.id}/enfants/{other.children[0].id}/health", data={"allergies": "Pollen"})
    foreign_change = changes()[0]
    auth.logout()
    auth.login("parent@example.fr")
    o, oc, og = other.id, other.children[0].id, other.guardians[0].id
    urls = [
        ("GET", f"/famille/{o}"),
        ("GET", f"/famille/{o}/responsables"),
        ("GET", f"/famille/{o}/historique"),
        ("GET", f"/famille/{o}/responsables/{og}/address"),
        ("POST", f"/famille/{o}/responsables/{og}/address"),
        ("GET", f"/famille/{family.id}/responsables/{og}/address"),
        ("POST", f"/famille/{family.id}/responsables/{og}/address"),
        ("GET", f"/famille/{family.id}/enfants/{oc}"),
        ("POST", f"/famille/{family.id}/enfants/{oc}/health"),
        ("GET", f"/famille/{family.id}/enfants/{oc}/photo/fichier"),
        ("GET", f"/famille/{family.id}/enfants/{oc}/contacts/nouveau"),
        ("GET", f"/famille/{family.id}/contacts/{contact.id}"),
        ("POST", f"/famille/{family.id}/contacts/{contact.id}"),
        ("POST", f"/famille/{family.id}/contacts/{contact.id}/retirer"),
        ("POST", f"/famille/{family.id}/demandes/{foreign_change.id}/retirer"),
        ("GET", f"/famille/{family.id}/demandes/{foreign_change.id}/photo/fichier"),
    ]
    for method, url in urls:
        response = client.open(
            url, method=method, data=ADDRESS, headers={"HX-Request": "true"} if method == "POST" else {}
        )
        assert response.status_code == 404, (method, url, response.status_code)
    db.session.expire_all()
    assert db.session.get(ChangeRequest, foreign_change.id).status is ChangeStatus.PENDING
    assert len(changes()) == 1


def png_with_exif(size=(64, 48)) -> bytes:
    image = Image.new("RGB", size, (200, 30, 30))
    exif = Image.Exif()
    exif[0x010F] = "AppareilSecret"  # Make
    out = io.BytesIO()
    image.save(out, format="PNG", exif=exif)
    return out.getvalue()


def test_photo_is_re_encoded_without_metadata_pending_then_served_after_acceptance(app, client, auth, home):
    family, _guardian, child, _parent, _agent = home
    auth.login("parent@example.fr")
    raw = png_with_exif()
    assert b"AppareilSecret" in raw
    url = f"/famille/{family.id}/enfants/{child.id}/photo"
    assert (
        client.post(
            url, data={"photo": (io.BytesIO(raw), "photo.png")}, content_type="multipart/form-data"
        ).status_code
        == 302
    )
    change = changes()[0]
    pending = client.get(f"/famille/{family.id}/demandes/{change.id}/photo/fichier")
    assert pending.status_code == 200 and pending.mimetype == "image/png"
    assert (
        "attachment" in pending.headers["Content-Disposition"]
        and pending.headers["X-Content-Type-Options"] == "nosniff"
    )
    assert b"AppareilSecret" not in pending.data
    assert Image.open(io.BytesIO(pending.data)).size == (64, 48)
    assert client.get(f"/famille/{family.id}/enfants/{child.id}/photo/fichier").status_code == 404
    as_agent(client, auth)
    client.post(f"/gestion/dossiers/{change.id}/accepter")
    auth.logout()
    auth.login("parent@example.fr")
    assert client.get(f"/famille/{family.id}/enfants/{child.id}/photo/fichier").data == pending.data


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "Le fichier est vide."),
        (b"%PDF-1.4 not an image", "JPEG ou PNG"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'></svg>", "JPEG ou PNG"),
        (b"\x89PNG\r\n\x1a\n" + b"broken" * 10, "illisible"),
    ],
)
def test_bad_photos_are_refused_and_leave_nothing(app, client, auth, home, payload, message):
    family, _guardian, child, _parent, _agent = home
    auth.login("parent@example.fr")
    before = set(os.listdir(app.config["UPLOAD_DIR"]))
    response = client.post(
        f"/famille/{family.id}/enfants/{child.id}/photo",
        data={"photo": (io.BytesIO(payload), "photo.png")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 422 and message in response.get_data(as_text=True)
    assert changes() == []
    assert set(os.listdir(app.config["UPLOAD_DIR"])) == before


def test_pixel_bomb_is_refused(app, client, auth, home):
    family, _guardian, child, _parent, _agent = home
    auth.login("parent@example.fr")
    image = Image.new("1", (9000, 9000))
    out = io.BytesIO()
    image.save(out, format="PNG")
    response = client.post(
        f"/famille/{family.id}/enfants/{child.id}/photo",
        data={"photo": (io.BytesIO(out.getvalue()), "bombe.png")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 422 and "trop grande" in response.get_data(as_text=True)


def test_adding_a_child_and_a_contact_are_change_requests_too(client, auth, home):
    family, _guardian, child, _parent, _agent = home
    auth.login("parent@example.fr")
    client.post(
        f"/famille/{family.id}/enfants/nouveau",
        data={"last_name": "DUPONT", "first_name": "Max", "birth_date": "2021-02-02", "sex": "M"},
    )
    contact = {
        "last_name": "PETIT",
        "first_name": "Sarah",
        "relationship_label": "Voisine",
        "phone": "0755443322",
    }
    no_role = client.post(f"/famille/{family.id}/enfants/{child.id}/contacts/nouveau", data=contact)
    assert "Cochez au moins un rôle" in no_role.get_data(as_text=True)
    client.post(
        f"/famille/{family.id}/enfants/{child.id}/contacts/nouveau", data=dict(contact, can_pick_up="y")
    )
    assert db.session.scalar(sa.select(sa.func.count(Child.id))) == 1
    assert db.session.scalar(sa.select(sa.func.count(AuthorizedContact.id))) == 0
    hub = client.get(f"/famille/{family.id}").get_data(as_text=True)
    assert "Ajout d&#39;un enfant demandé" in hub or "Ajout d'un enfant demandé" in hub
    as_agent(client, auth)
    for change in changes(ChangeStatus.PENDING):
        client.post(f"/gestion/dossiers/{change.id}/accepter")
    db.session.expire_all()
    assert sorted(c.first_name for c in db.session.scalars(sa.select(Child))) == ["Léa", "Max"]
    contact = db.session.scalar(sa.select(AuthorizedContact))
    assert (contact.first_name, contact.can_pick_up, contact.emergency_call, contact.child_id) == (
        "Sarah",
        True,
        False,
        child.id,
    )
    auth.logout()
    auth.login("parent@example.fr")
    client.post(f"/famille/{family.id}/contacts/{contact.id}/retirer")
    as_agent(client, auth)
    client.post(f"/gestion/dossiers/{changes(ChangeStatus.PENDING)[0].id}/accepter")
    assert db.session.scalar(sa.select(sa.func.count(AuthorizedContact.id))) == 0


def test_authorizations_defined_by_the_town_are_answered_per_child(client, auth, home):
    family, _guardian, child, _parent, _agent = home
    image = Authorization(label="Droit à l'image", position=1)
    alone = Authorization(label="Sortie seul", position=2)
    db.session.add_all([image, alone])
    db.session.commit()
    auth.login("parent@example.fr")
    url = f"/famille/{family.id}/enfants/{child.id}/authorizations"
    missing = client.post(url, data={f"auth_{image.id}": "oui"})
    assert missing.status_code == 422 and "Répondez oui ou non." in missing.get_data(as_text=True)
    client.post(url, data={f"auth_{image.id}": "oui", f"auth_{alone.id}": "non"})
    as_agent(client, auth)
    client.post(f"/gestion/dossiers/{changes()[0].id}/accepter")
    db.session.expire_all()
    answers = {a.authorization_id: a.granted for a in db.session.get(Child, child.id).authorizations}
    assert answers == {image.id: True, alone.id: False}


def test_staff_queue_filters_by_family_section_and_age(client, auth, home):
    family, guardian, child, _parent, _agent = home
    auth.login("parent@example.fr")
    client.post(f"/famille/{family.id}/responsables/{guardian.id}/address", data=ADDRESS)
    client.post(f"/famille/{family.id}/enfants/{child.id}/health", data={"allergies": "Pollen"})
    old = changes()[0]
    old.created_at = old.created_at - timedelta(days=8)
    db.session.commit()
    as_agent(client, auth)
    assert "2 demandes" in client.get("/gestion/dossiers").get_data(as_text=True)
    assert "1 demande " in client.get("/gestion/dossiers?section=health").get_data(as_text=True)
    assert "1 demande " in client.get("/gestion/dossiers?anciennete=7").get_data(as_text=True)
    assert "0 demande " in client.get("/gestion/dossiers?famille=inconnue").get_data(as_text=True)


def test_demo_data_has_complete_files_and_pending_changes(app):
    runner = app.test_cli_runner()
    assert runner.invoke(args=["demo", "load"]).exit_code == 0
    assert len(changes(ChangeStatus.PENDING)) == 3
    claire = db.session.scalar(sa.select(Guardian).where(Guardian.first_name == "Claire"))
    assert claire.iban and claire.quotient and claire.city
