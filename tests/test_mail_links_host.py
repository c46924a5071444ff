"""A mail's links come from PUBLIC_URL, never from the request's Host header: a forged Host on a
sign-up or a reset request cannot send a parent's single-use link to another site."""

import re
from pathlib import Path

from portail.extensions import db
from tests.factories import VALID, make_user

FORGED = {"Host": "portail.attaquant.example"}
EXTERNAL = re.compile(r"(?<![A-Za-z])_external\s*=\s*True")  # (not urls.py's force_external)
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


def test_no_code_builds_an_absolute_link_from_the_request():
    """url_for(..., _external=True) takes the request's Host: absolute links go through
    urls.public_url."""
    root = Path(__file__).resolve().parent.parent / "portail"
    scanned = (
        list(root.rglob("*.py"))
        + list((root / "templates").rglob("*.html"))
        + list((root / "templates").rglob("*.txt"))
    )
    assert len(scanned) > 100
    assert [
        str(path.relative_to(root)) for path in scanned if EXTERNAL.search(path.read_text(encoding="utf-8"))
    ] == []
