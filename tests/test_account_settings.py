"""Mon compte: change of e-mail confirmed by mail, RGPD export, account deletion."""

import json
from datetime import date

import pytest
import sqlalchemy as sa

from portail.extensions import db
from portail.models import Family, Role, Subscription, User
from tests.conftest import link_in
from tests.factories import PASSWORD, make_family, make_user, subscribe

pytestmark = pytest.mark.both_dbs


def test_email_change_is_confirmed_from_the_new_address(app, client, auth, mails):
    user = make_user()
    db.session.commit()
    other_device = app.test_client()
    type(auth)(other_device).login("parent@example.fr")
    auth.login("parent@example.fr")
    wrong = client.post(
        "/mon-espace/compte/adresse",
        data={"new_email": "nouveau@example.fr", "current_password": "faux-mot-de-passe"},
    )
    assert "Mot de passe actuel incorrect." in wrong.get_data(as_text=True) and mails == []
    response = client.post(
        "/mon-espace/compte/adresse", data={"new_email": "Nouveau@Example.fr", "current_password": PASSWORD}
    )
    assert response.status_code == 302
    assert mails[-1].recipients == ["nouveau@example.fr"]
    db.session.expire_all()
    assert db.session.get(User, user.id).email == "parent@example.fr", "unchanged until confirmed"
    path = link_in(mails[-1], "/mon-espace/compte/adresse/")
    anonymous = app.test_client()
    assert anonymous.get(path).status_code == 200, "the link works without being logged in"
    assert anonymous.post(path).status_code == 302
    db.session.expire_all()
    assert db.session.get(User, user.id).email == "nouveau@example.fr"
    assert mails[-1].recipients == ["parent@example.fr"] and "modifiée" in mails[-1].subject
    assert other_device.get("/mon-espace/").status_code == 302, "sessions end"
    assert anonymous.post(path).status_code == 400, "single use"
    assert auth.login("nouveau@example.fr").status_code == 302


def test_email_change_to_a_taken_address_sends_nothing_and_says_the_same(client, auth, mails):
    make_user()
    make_user(email="pris@example.fr")
    db.session.commit()
    auth.login("parent@example.fr")
    response = client.post(
        "/mon-espace/compte/adresse", data={"new_email": "pris@example.fr", "current_password": PASSWORD}
    )
    assert response.status_code == 302
    assert mails == []


def test_email_change_refused_if_the_address_was_taken_meanwhile(app, client, auth, mails):
    user = make_user()
    db.session.commit()
    auth.login("parent@example.fr")
    client.post(
        "/mon-espace/compte/adresse", data={"new_email": "nouveau@example.fr", "current_password": PASSWORD}
    )
    path = link_in(mails[-1], "/mon-espace/compte/adresse/")
    make_user(email="nouveau@example.fr")
    db.session.commit()
    assert client.post(path).status_code == 400
    db.session.expire_all()
    assert db.session.get(User, user.id).email == "parent@example.fr"


def test_export_contains_my_account_and_my_families_only(client, auth):
    mine = make_family(name="Famille MIENNE", children=(("Léa", date(2016, 3, 14)),))
    make_family(name="Famille AUTRE", children=(("Zoé", date(2015, 1, 1)),))
    subscribe(make_user(), mine)
    db.session.commit()
    auth.login("parent@example.fr")
    response = client.get("/mon-espace/compte/donnees")
    assert response.status_code == 200
    assert "attachment" in response.headers["Content-Disposition"]
    data = json.loads(response.get_data(as_text=True))
    assert data["compte"]["email"] == "parent@example.fr"
    assert [s["famille"] for s in data["abonnements"]] == ["Famille MIENNE"]
    assert data["abonnements"][0]["enfants"][0]["birth_date"] == "2016-03-14"
    assert "Zoé" not in response.get_data(as_text=True)
    assert "password" not in response.get_data(as_text=True)


def test_delete_account_needs_password_and_confirmation_and_keeps_the_family(client, auth):
    family = make_family()
    user = make_user()
    subscribe(user, family)
    db.session.commit()
    auth.login("parent@example.fr")
    page = client.post("/mon-espace/compte/supprimer", data={"current_password": PASSWORD}).get_data(
        as_text=True
    )
    assert "Cochez la case pour confirmer la suppression." in page
    page = client.post(
        "/mon-espace/compte/supprimer", data={"current_password": "faux", "confirm": "y"}
    ).get_data(as_text=True)
    assert "Mot de passe actuel incorrect." in page
    assert db.session.get(User, user.id) is not None
    response = client.post(
        "/mon-espace/compte/supprimer", data={"current_password": PASSWORD, "confirm": "y"}
    )
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.scalar(sa.select(sa.func.count(User.id))) == 0
    assert db.session.scalar(sa.select(sa.func.count(Subscription.id))) == 0
    assert db.session.get(Family, family.id) is not None
    assert client.get("/mon-espace/").status_code == 302


def test_staff_cannot_delete_their_account_themselves(client, auth):
    make_user(email="agent@example.fr", role=Role.AGENT)
    db.session.commit()
    auth.login("agent@example.fr")
    assert (
        client.post(
            "/mon-espace/compte/supprimer", data={"current_password": PASSWORD, "confirm": "y"}
        ).status_code
        == 403
    )
