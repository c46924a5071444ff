"""Créer un compte and activation."""

from datetime import date, timedelta

import pytest
import sqlalchemy as sa
import time_machine

from portail.extensions import db
from portail.models import AccountToken, Subscription, User, utcnow
from portail.services import accounts
from tests.conftest import link_in
from tests.factories import PASSWORD, VALID, make_family, make_user

pytestmark = pytest.mark.both_dbs


def users() -> int:
    return db.session.scalar(sa.select(sa.func.count(User.id)))


def test_signup_creates_unactivated_account_and_sends_activation_mail(client, mails):
    response = client.post("/inscription", data=VALID)
    assert response.status_code == 302
    user = db.session.scalar(sa.select(User))
    assert user.email == "alice.durand@example.fr"
    assert user.activated_at is None
    assert user.password_hash.startswith("$argon2id$")
    assert len(mails) == 1
    assert mails[0].recipients == ["alice.durand@example.fr"]
    assert "Activez votre compte" in mails[0].subject
    assert "Ville de Démo" in mails[0].subject
    assert mails[0].html and "/activation/" in mails[0].html


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("last_name", "", "Ce champ est obligatoire."),
        ("first_name", "", "Ce champ est obligatoire."),
        ("email", "", "Ce champ est obligatoire."),
        ("email", "pas-une-adresse", "Adresse e-mail invalide"),
        ("phone", "abc", "Numéro de téléphone invalide"),
        ("password", "court", "au moins 12 caractères"),
        ("password", "x" * 129, "au plus 128 caractères"),
        ("password", "motdepasse123", "trop courant"),
        ("password", "azertyuiopqsdf", "trop courant"),
        ("password_confirm", "autre-chose-encore-differente", "ne sont pas identiques"),
        ("accept", "", "Vous devez accepter"),
        ("child_birth_date", "31/02/2020", "date"),
    ],
)
def test_signup_bad_input_gives_french_message_and_saves_nothing(client, mails, field, value, message):
    data = dict(VALID, **{field: value})
    if field == "password":
        data["password_confirm"] = value
    if not value:
        data.pop(field)
    response = client.post("/inscription", data=data)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert message in page
    assert "erreur" in page and 'class="error-summary"' in page
    kept = "Alice" if field != "first_name" else "Durand"
    assert f'value="{kept}"' in page, "typed values are kept"
    assert users() == 0
    assert mails == []


def test_signup_with_existing_email_shows_same_page_and_creates_nothing(client, mails):
    make_user(email="alice.durand@example.fr")
    db.session.commit()
    response = client.post("/inscription", data=VALID)
    assert response.status_code == 302
    assert response.location.endswith("/inscription/envoyee")
    assert users() == 1
    assert len(mails) == 1 and "existe déjà" in mails[0].subject


def test_signup_with_valid_code_subscribes_at_once(client, mails):
    family = make_family(children=(("Léa", date(2016, 3, 14)),))
    db.session.commit()
    code = f"{family.subscriber_code[:5].lower()}-{family.subscriber_code[5:]}"
    response = client.post(
        "/inscription", data=dict(VALID, subscriber_code=code, child_birth_date="2016-03-14")
    )
    assert response.status_code == 302
    subscription = db.session.scalar(sa.select(Subscription))
    assert subscription.family_id == family.id and subscription.ended_at is None


@pytest.mark.parametrize(
    ("code", "born"),
    [("ZZZZZZZZZZ", "2016-03-14"), (None, "2016-03-15"), (None, "")],
)
def test_signup_with_wrong_code_or_date_saves_nothing(client, mails, code, born):
    family = make_family()
    db.session.commit()
    response = client.post(
        "/inscription",
        data=dict(VALID, subscriber_code=code or family.subscriber_code, child_birth_date=born),
    )
    assert response.status_code == 200
    assert users() == 0 and mails == []
    page = response.get_data(as_text=True)
    assert "Aucune famille ne correspond" in page or "Indiquez la date de naissance" in page


def test_activation_link_activates_once(client, mails):
    client.post("/inscription", data=VALID)
    path = link_in(mails[0], "/activation/")
    assert client.post("/connexion", data={"email": VALID["email"], "password": PASSWORD}).status_code == 200
    assert client.get(path).status_code == 200, "GET (e.g. a mail scanner) changes nothing"
    assert db.session.scalar(sa.select(User)).activated_at is None
    response = client.post(path)
    assert response.status_code == 302
    assert db.session.scalar(sa.select(User)).activated_at is not None
    assert client.post(path).status_code == 400, "a used link is refused"
    assert client.get(path).status_code == 400


def test_unactivated_account_cannot_log_in_and_is_offered_a_new_mail(client, mails):
    client.post("/inscription", data=VALID)
    page = client.post("/connexion", data={"email": VALID["email"], "password": PASSWORD}).get_data(
        as_text=True
    )
    assert "Compte non activé" in page and "Renvoyer l'e-mail d'activation" in page
    assert client.get("/mon-espace/").status_code == 302


def expired(path: str) -> str:
    db.session.execute(sa.update(AccountToken).values(expires_at=utcnow() - timedelta(seconds=1)))
    db.session.commit()
    return path


def tampered(path: str) -> str:
    return path[:-2] + ("AA" if not path.endswith("AA") else "BB")


@pytest.mark.parametrize("spoil", [expired, tampered], ids=["expired", "tampered"])
def test_an_expired_or_tampered_activation_link_is_refused(client, mails, spoil):
    client.post("/inscription", data=VALID)
    path = spoil(link_in(mails[0], "/activation/"))
    assert client.get(path).status_code == 400
    assert client.post(path).status_code == 400
    assert db.session.scalar(sa.select(User)).activated_at is None


def test_new_activation_mail_revokes_the_previous_link(client, mails):
    client.post("/inscription", data=VALID)
    first = link_in(mails[0], "/activation/")
    with time_machine.travel(utcnow() + accounts.JUST_SENT + timedelta(seconds=1)):
        client.post("/activation/renvoyer", data={"email": VALID["email"]})
        assert len(mails) == 2
        second = link_in(mails[1], "/activation/")
        assert client.post(first).status_code == 400
        assert client.post(second).status_code == 302


def test_a_link_asked_again_at_once_is_the_same_request_and_the_first_link_works(client, mails):
    client.post("/inscription", data=VALID)
    client.post("/activation/renvoyer", data={"email": VALID["email"]})
    client.post("/inscription", data=VALID)  # the form sent again (back button, second tab)
    assert len(mails) == 1
    assert client.post(link_in(mails[0], "/activation/")).status_code == 302


def test_resend_activation_is_silent_for_unknown_email_and_rate_limited(client, mails):
    for _ in range(3):
        response = client.post("/activation/renvoyer", data={"email": "inconnu@example.fr"})
        assert response.status_code == 302
    assert mails == []
    assert client.post("/activation/renvoyer", data={"email": "inconnu@example.fr"}).status_code == 429
    page = client.post("/activation/renvoyer", data={"email": "inconnu@example.fr"}).get_data(as_text=True)
    assert "Trop de tentatives" in page


def test_unactivated_accounts_are_purged_after_seven_days(app):
    from portail.services.accounts import purge_unactivated

    old = make_user(email="vieux@example.fr", activated=False)
    old.created_at = utcnow() - timedelta(days=7, seconds=1)
    recent = make_user(email="recent@example.fr", activated=False)
    recent.created_at = utcnow() - timedelta(days=6, hours=23)
    active = make_user(email="actif@example.fr")
    active.created_at = utcnow() - timedelta(days=30)
    db.session.commit()
    assert purge_unactivated() == 1
    assert set(db.session.scalars(sa.select(User.email))) == {"recent@example.fr", "actif@example.fr"}


def test_simultaneous_signups_with_one_email_create_one_account(client, monkeypatch, mails):
    """A double click or two tabs: the unique e-mail wins and the second gets the same page."""
    from portail.services import accounts

    original = accounts.find_by_email
    monkeypatch.setattr(accounts, "find_by_email", lambda email: None)
    assert client.post("/inscription", data=VALID).status_code == 302
    assert client.post("/inscription", data=VALID).status_code == 302
    monkeypatch.setattr(accounts, "find_by_email", original)
    assert users() == 1
