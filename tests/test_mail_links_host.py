"""A mail's links come from PUBLIC_URL, never from the request's Host header: a forged Host on a
sign-up or a reset request cannot send a parent's single-use link to another site."""

import re

from portail.extensions import db
from tests.factories import VALID, make_user

FORGED = {"Host": "portail.attaquant.example"}
LINK = re.compile(r"https?://[^\s\"'<>]+")


def links(message) -> set[str]:
    return set(LINK.findall(message.body)) | set(LINK.findall(message.html or ""))


def test_the_activation_link_ignores_a_forged_host(app, client, mails):
    assert client.post("/inscription", data=VALID, headers=FORGED).status_code in (200, 302, 303)
    (message,) = mails
    found = links(message)
    assert any("/activation/" in link for link in found)
    assert all(link.startswith(app.config["PUBLIC_URL"]) for link in found), found


def test_the_reset_link_and_the_already_registered_mail_ignore_a_forged_host(app, client, mails):
    make_user(email="parent@example.fr")
    db.session.commit()
    client.post("/mot-de-passe-oublie", data={"email": "parent@example.fr"}, headers=FORGED)
    client.post("/inscription", data=dict(VALID, email="parent@example.fr"), headers=FORGED)
    assert len(mails) == 2
    for message in mails:
        found = links(message)
        assert found and all(link.startswith(app.config["PUBLIC_URL"]) for link in found), found
