"""Every route is private unless marked public; /gestion is staff only; admin pages admin only."""

from datetime import UTC, date, datetime

import pytest
import sqlalchemy as sa

from portail.access import is_public
from portail.extensions import db
from portail.models import (
    Authorization,
    DocumentScope,
    DocumentType,
    Invoice,
    RequestKind,
    Role,
)
from portail.services import documents, dossier
from tests.factories import (
    PDF,
    add_tariff,
    book,
    canteen,
    enrol,
    enrolled_child,
    make_family,
    make_user,
    run_month,
    submit_request,
)
from tests.support import check_headers

PUBLIC = {
    "main.home",
    "main.health",
    "auth.register",
    "auth.registered",
    "auth.activate",
    "auth.resend_activation",
    "auth.login",
    "auth.staff_login",
    "auth.forgot_password",
    "auth.reset_password",
    "account.confirm_email",
    "dev.mailbox",
    "waiting_room.status",
    "dev.message",
    "billing.test_bank",  # the test bank (404 unless PORTAIL_PAYMENT_PROVIDER=test; refused in production)
    "payment_notify.notify",  # the payment provider's server-to-server notification (POST, verified)
    "calendar_feed.feed",  # a parent's ICS address, fetched by calendar apps without a session (a 256-bit token)
    "static",
}
POST_ONLY_PUBLIC = {"payment_notify.notify"}
ADMIN_ONLY = {"gestion.staff", "gestion.staff_toggle"}


SAMPLES = {"section_name": "address", "owner": "responsables", "fmt": "csv", "day": "2026-10-01"}
EXTRA_QUERY = {"gestion.invoices_export": "?mois=2026-10"}  # a month is needed
NO_FILE_YET = {
    "gestion.child_photo",
    "gestion.change_photo",
    "gestion.register_photo",
    "gestion.attestations_document",
    "gestion.debit_batch",  # (a direct-debit file too)
    "gestion.debit_batch_xml",
}  # 404 until a photo (the year's attestations PDF) exists
# What an animator reaches of the back office: the registers.
FOR_ANIMATORS = {
    "gestion.registers",
    "gestion.register",
    "gestion.register_mark",
    "gestion.register_photo",
    "gestion.register_contacts",
    "gestion.register_add",
    "gestion.register_close",
    "gestion.register_reopen",
}


def routes(app, ids: dict | None = None):
    """(endpoint, method, url) for every rule, with sample values for its arguments."""
    found = []
    for rule in app.url_map.iter_rules():
        values = {
            arg: (ids or {}).get(arg, 1 if "id" in arg else SAMPLES.get(arg, "x")) for arg in rule.arguments
        }
        with app.test_request_context():
            from flask import url_for

            url = url_for(rule.endpoint, **values)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            found.append((rule.endpoint, method, url))
    return found


def test_public_endpoints_are_exactly_the_expected_ones(app):
    with app.test_request_context():
        public = {rule.endpoint for rule in app.url_map.iter_rules() if is_public(rule.endpoint)}
    assert public == PUBLIC


def test_every_public_get_page_answers_with_security_headers(app, client):
    visited = set()
    for endpoint, method, url in routes(app):
        if endpoint in PUBLIC and method == "GET" and endpoint != "static":
            check_headers(client.get(url))
            visited.add(endpoint)
    assert visited == PUBLIC - {"static"} - POST_ONLY_PUBLIC  # every public page has a GET


def test_anonymous_is_sent_to_login_on_every_private_route(app, client):
    checked = 0
    for endpoint, method, url in routes(app):
        if endpoint in PUBLIC:
            continue
        response = client.open(url, method=method)
        check_headers(response)
        assert response.status_code == 302, (endpoint, method, response.status_code)
        assert "/connexion?next=" in response.location, endpoint
        checked += 1
    assert checked >= 100  # 115 routes and methods when this was written


def test_parent_gets_403_on_every_back_office_route(app, client, auth):
    make_user()
    db.session.commit()
    auth.login("parent@example.fr")
    checked = 0
    for endpoint, method, url in routes(app):
        if endpoint.startswith("gestion."):
            response = client.open(url, method=method)
            check_headers(response)
            assert response.status_code == 403, (endpoint, method)
            assert "Accès refusé" in response.get_data(as_text=True)
            checked += 1
    assert checked >= 8


@pytest.mark.parametrize("role", [Role.AGENT, Role.ADMIN])
def test_staff_reach_the_back_office(app, client, auth, role):
    staff = make_user(email="staff@example.fr", role=role)
    family = make_family()
    parent = make_user()
    change = dossier.request_change(
        family,
        parent,
        "address",
        family.guardians[0],
        {"address_line1": "1 rue A", "postcode": "75001", "city": "Paris"},
    )
    authorization = Authorization(label="Droit à l'image")
    activity = canteen()
    db.session.add_all([authorization, activity])
    db.session.flush()
    child = family.children[0]
    enrol(child, activity)
    request = submit_request(
        family,
        parent,
        child,
        activity,
        RequestKind.RESERVATION,
        [date(2027, 3, 4)],
        datetime(2026, 10, 1, tzinfo=UTC),
    )
    kind = DocumentType(name="Attestation CAF", scope=DocumentScope.FAMILY)
    db.session.add(kind)
    db.session.flush()
    document = documents.submit(family, parent, kind, None, PDF, "caf.pdf", datetime(2026, 10, 1, tzinfo=UTC))
    add_tariff(activity)
    book(child, activity, [date(2026, 10, 1)])
    db.session.commit()
    run = run_month()
    invoice = db.session.scalar(sa.select(Invoice))
    auth.login("staff@example.fr")
    ids = {
        "family_id": family.id,
        "member_id": family.guardians[0].id,
        "child_id": child.id,
        "change_id": change.id,
        "user_id": staff.id,
        "authorization_id": authorization.id,
        "activity_id": activity.id,
        "request_id": request.id,
        "type_id": kind.id,
        "document_id": document.id,
        "run_id": run.id,
        "invoice_id": invoice.id,
    }
    checked = 0
    for endpoint, method, url in routes(app, ids):
        if not endpoint.startswith("gestion.") or method != "GET" or endpoint in NO_FILE_YET:
            continue
        response = client.get(url + EXTRA_QUERY.get(endpoint, ""))
        check_headers(response)
        assert response.headers["Cache-Control"] == "no-store"
        expected = 403 if endpoint in ADMIN_ONLY and role is Role.AGENT else 200
        assert response.status_code == expected, (endpoint, response.status_code)
        checked += 1
    assert checked >= 30  # 34 back-office pages when this was written


def test_an_animator_reaches_the_registers_and_nothing_else_of_the_back_office(app, client, auth):
    make_user(email="anim@example.fr", role=Role.ANIMATOR)
    activity = canteen()
    db.session.add(activity)
    db.session.flush()
    _family, child = enrolled_child(activity)
    book(child, activity, [date(2026, 10, 1)])
    db.session.commit()
    auth.login("anim@example.fr")
    ids = {"activity_id": activity.id, "child_id": child.id}
    reached = set()
    for endpoint, method, url in routes(app, ids):
        if not endpoint.startswith("gestion."):
            continue
        response = client.open(url, method=method)
        if endpoint in FOR_ANIMATORS:
            assert response.status_code != 403, (endpoint, method)
            reached.add(endpoint)
        else:
            assert response.status_code == 403, (endpoint, method, response.status_code)
    assert reached == FOR_ANIMATORS
    with app.test_request_context():
        from portail.access import _animators_allowed

        marked = {rule.endpoint for rule in app.url_map.iter_rules() if _animators_allowed(rule.endpoint)}
    assert marked == FOR_ANIMATORS  # a view opened to animators is named here, on purpose


def test_agent_cannot_manage_staff_accounts(client, auth):
    make_user(email="agent@example.fr", role=Role.AGENT)
    admin = make_user(email="admin@example.fr", role=Role.ADMIN)
    db.session.commit()
    auth.login("agent@example.fr")
    assert client.post(f"/gestion/agents/{admin.id}/acces").status_code == 403
    assert client.post("/gestion/agents", data={"last_name": "X"}).status_code == 403
