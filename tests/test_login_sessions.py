"""Se connecter, throttling, logout and password change ending sessions, password reset."""

from datetime import timedelta

import pytest
import sqlalchemy as sa
import time_machine

from portail.extensions import db
from portail.models import AccountToken, Role, User, utcnow
from portail.services import accounts
from tests.conftest import link_in
from tests.factories import PASSWORD, make_user

NEW_PASSWORD = "lampadaire-girafe-trombone-nuage"


def test_login_then_home_shows_my_space(client, auth):
    make_user()
    db.session.commit()
    response = auth.login("Parent@Example.fr ")
    assert response.status_code == 302 and response.location.endswith("/mon-espace/")
    assert "Mon espace citoyen" in client.get("/mon-espace/").get_data(as_text=True)


def test_login_starts_a_fresh_session(client, auth):
    """Nothing planted in the session before login survives it (and the cookie changes)."""
    make_user()
    db.session.commit()
    with client.session_transaction() as session:
        session["planted"] = "by an attacker"
        session["_user_id"] = "999:forged"
    before = client.get_cookie("session").value
    auth.login("parent@example.fr")
    with client.session_transaction() as session:
        assert "planted" not in session
        assert session["_user_id"] != "999:forged"
    assert client.get_cookie("session").value != before


def test_unknown_email_and_wrong_password_get_the_same_answer(client, auth):
    make_user()
    db.session.commit()
    unknown = auth.login("personne@example.fr")
    wrong = auth.login("parent@example.fr", "mauvais-mot-de-passe-long")
    assert unknown.status_code == wrong.status_code == 200

    def strip(page) -> str:
        return (
            page.get_data(as_text=True).replace("personne@example.fr", "X").replace("parent@example.fr", "X")
        )

    for page in (unknown, wrong):
        assert "Adresse e-mail ou mot de passe incorrect." in page.get_data(as_text=True)
    assert _without_csrf(strip(unknown)) == _without_csrf(strip(wrong))


def _without_csrf(page: str) -> str:
    import re

    return re.sub(r'"[A-Za-z0-9_-]{20,}\.[A-Za-z0-9_.-]+"', "", page)


def test_forgot_password_answers_the_same_for_unknown_email(client, mails):
    make_user()
    db.session.commit()
    known = client.post("/mot-de-passe-oublie", data={"email": "parent@example.fr"})
    unknown = client.post("/mot-de-passe-oublie", data={"email": "personne@example.fr"})
    assert known.status_code == unknown.status_code == 302
    assert known.location == unknown.location
    assert len(mails) == 1 and mails[0].recipients == ["parent@example.fr"]


def test_login_is_throttled_per_account_and_client_with_429(client, auth):
    """Five wrong passwords from one client: that client waits, even with the right password
    (the owner elsewhere still gets in: test_login_throttle)."""
    make_user()
    db.session.commit()
    for _ in range(5):
        assert auth.login("parent@example.fr", "mauvais-mot-de-passe").status_code == 200
    blocked = auth.login("parent@example.fr", PASSWORD)
    assert blocked.status_code == 429
    assert "Trop de tentatives" in blocked.get_data(as_text=True)


def test_login_is_throttled_per_ip_across_accounts(client, auth):
    for index in range(20):
        assert auth.login(f"inconnu{index}@example.fr", "mauvais-mot-de-passe").status_code == 200
    assert auth.login("encore@example.fr", "mauvais-mot-de-passe").status_code == 429
    other_ip = auth.login("encore@example.fr", "mauvais", environ_base={"REMOTE_ADDR": "10.9.8.7"})
    assert other_ip.status_code == 200


def test_successful_logins_do_not_count_towards_the_limit(client, auth):
    make_user()
    db.session.commit()
    for _ in range(8):
        assert auth.login("parent@example.fr").status_code == 302
        auth.logout()


def test_cookie_replayed_after_logout_is_refused(client, auth):
    make_user()
    db.session.commit()
    auth.login("parent@example.fr")
    stolen = client.get_cookie("session").value
    assert client.get("/mon-espace/").status_code == 200
    auth.logout()
    client.set_cookie("session", stolen)
    response = client.get("/mon-espace/")
    assert response.status_code == 302 and "/connexion" in response.location


def test_logout_ends_sessions_on_other_devices(app, auth):
    make_user()
    db.session.commit()
    phone = app.test_client()
    Auth = type(auth)
    Auth(phone).login("parent@example.fr")
    auth.login("parent@example.fr")
    auth.logout()
    assert phone.get("/mon-espace/").status_code == 302


def test_password_change_needs_current_password_and_ends_other_sessions(app, client, auth, mails):
    make_user()
    db.session.commit()
    other = app.test_client()
    type(auth)(other).login("parent@example.fr")
    auth.login("parent@example.fr")
    stolen = client.get_cookie("session").value
    wrong = client.post(
        "/mon-espace/compte/mot-de-passe",
        data={
            "current_password": "pas-le-bon-mot-de-passe",
            "password": NEW_PASSWORD,
            "password_confirm": NEW_PASSWORD,
        },
    )
    assert "Mot de passe actuel incorrect." in wrong.get_data(as_text=True)
    assert other.get("/mon-espace/").status_code == 200
    ok = client.post(
        "/mon-espace/compte/mot-de-passe",
        data={"current_password": PASSWORD, "password": NEW_PASSWORD, "password_confirm": NEW_PASSWORD},
    )
    assert ok.status_code == 302
    assert client.get("/mon-espace/").status_code == 200, "the current session goes on"
    assert other.get("/mon-espace/").status_code == 302, "other sessions end"
    replay = app.test_client()
    replay.set_cookie("session", stolen)
    assert replay.get("/mon-espace/").status_code == 302, "the old cookie is refused"
    assert any("modifié" in message.subject for message in mails)


def test_password_reset_flow_ends_all_sessions_and_link_is_single_use(app, client, auth, mails):
    make_user()
    db.session.commit()
    device = app.test_client()
    type(auth)(device).login("parent@example.fr")
    client.post("/mot-de-passe-oublie", data={"email": "parent@example.fr"})
    path = link_in(mails[0], "/mot-de-passe/")
    assert client.get(path).status_code == 200
    short = client.post(path, data={"password": "court", "password_confirm": "court"})
    assert "au moins 12 caractères" in short.get_data(as_text=True)
    response = client.post(path, data={"password": NEW_PASSWORD, "password_confirm": NEW_PASSWORD})
    assert response.status_code == 302
    assert device.get("/mon-espace/").status_code == 302
    assert (
        client.post(path, data={"password": NEW_PASSWORD, "password_confirm": NEW_PASSWORD}).status_code
        == 400
    )
    assert auth.login("parent@example.fr").status_code == 200, "old password no longer works"
    assert auth.login("parent@example.fr", NEW_PASSWORD).status_code == 302


def test_reset_link_expires_after_24_hours(client, mails):
    make_user()
    db.session.commit()
    client.post("/mot-de-passe-oublie", data={"email": "parent@example.fr"})
    path = link_in(mails[0], "/mot-de-passe/")
    token = db.session.scalar(sa.select(AccountToken))
    assert token.expires_at - token.created_at == timedelta(hours=24)
    token.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    assert client.get(path).status_code == 400


def test_new_reset_request_invalidates_older_links(client, mails):
    make_user()
    db.session.commit()
    client.post("/mot-de-passe-oublie", data={"email": "parent@example.fr"})
    # asked again later (within a minute it would be the same request: one mail, see accounts.JUST_SENT)
    with time_machine.travel(utcnow() + accounts.JUST_SENT + timedelta(seconds=1)):
        client.post("/mot-de-passe-oublie", data={"email": "parent@example.fr"})
        first, second = (link_in(message, "/mot-de-passe/") for message in mails)
        assert client.get(first).status_code == 400
        assert client.get(second).status_code == 200


def test_reset_token_cannot_be_used_as_activation_token(client, mails):
    make_user(activated=False, email="nouveau@example.fr")
    user = make_user()
    db.session.commit()
    client.post("/mot-de-passe-oublie", data={"email": "parent@example.fr"})
    token = link_in(mails[0], "/mot-de-passe/").rsplit("/", 1)[1]
    assert client.get(f"/activation/{token}").status_code == 400
    assert client.post(f"/activation/{token}").status_code == 400
    assert db.session.get(User, user.id).activated_at is not None


@pytest.mark.parametrize(
    "target",
    ["https://evil.example/", "//evil.example/", "/\\evil.example", "http:/evil", "javascript:alert(1)"],
)
def test_next_redirects_only_to_local_paths(client, auth, target):
    make_user()
    db.session.commit()
    response = client.post(
        f"/connexion?next={target}", data={"email": "parent@example.fr", "password": PASSWORD}
    )
    assert response.status_code == 302
    assert response.location.endswith("/mon-espace/")


def test_next_local_path_is_followed(client):
    make_user()
    db.session.commit()
    response = client.post(
        "/connexion?next=/mon-espace/abonnements", data={"email": "parent@example.fr", "password": PASSWORD}
    )
    assert response.location.endswith("/mon-espace/abonnements")


def test_staff_login_lands_on_the_back_office(auth):
    make_user(email="agent@example.fr", role=Role.AGENT)
    db.session.commit()
    assert auth.login("agent@example.fr").location.endswith("/gestion/")


def test_disabled_staff_cannot_log_in(auth):
    agent = make_user(email="agent@example.fr", role=Role.AGENT)
    agent.disabled_at = utcnow()
    db.session.commit()
    assert auth.login("agent@example.fr").status_code == 200
