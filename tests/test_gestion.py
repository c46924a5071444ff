"""Back-office: families (search, create, edit, code letter), staff accounts, audit."""

import re
from datetime import date

import pytest
import sqlalchemy as sa

from portail.extensions import db
from portail.models import AuditEvent, Child, Family, Guardian, Role, User
from portail.services.families import CODE_ALPHABET, CODE_LENGTH
from tests.factories import make_family, make_user

pytestmark = pytest.mark.both_dbs

NEW_FAMILY = {
    "name": "Famille LEROY",
    "guardian1-civility": "Mme",
    "guardian1-last_name": "LEROY",
    "guardian1-first_name": "Anne",
    "guardian1-email": "anne.leroy@example.fr",
    "guardian1-phone": "06 11 22 33 44",
    "children-0-last_name": "LEROY",
    "children-0-first_name": "Paul",
    "children-0-birth_date": "2017-06-01",
}


def count(model) -> int:
    return db.session.scalar(sa.select(sa.func.count(model.id)))


def test_create_family_generates_an_unambiguous_code_and_records_who(client, logged_in_agent):
    response = client.post("/gestion/familles/nouvelle", data=NEW_FAMILY)
    assert response.status_code == 302
    family = db.session.scalar(sa.select(Family))
    assert len(family.subscriber_code) == CODE_LENGTH
    assert set(family.subscriber_code) <= set(CODE_ALPHABET)
    assert not set("01OIL") & set(family.subscriber_code)
    assert [g.first_name for g in family.guardians] == ["Anne"]
    assert [(c.first_name, c.birth_date.isoformat()) for c in family.children] == [("Paul", "2017-06-01")]
    event = db.session.scalar(sa.select(AuditEvent))
    assert (event.action, event.actor_id, event.target_id) == (
        "family.created",
        logged_in_agent.id,
        family.id,
    )
    page = client.get(response.location).get_data(as_text=True)
    assert f"{family.subscriber_code[:5]}-{family.subscriber_code[5:]}" in page


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("name", "", "Ce champ est obligatoire."),
        ("guardian1-last_name", "", "Ce champ est obligatoire."),
        ("guardian1-email", "pas-un-email", "Adresse e-mail invalide"),
        ("guardian1-phone", "12", "Numéro de téléphone invalide"),
        ("children-0-birth_date", "", "Ce champ est obligatoire."),
        ("children-0-birth_date", "1950-01-01", "invraisemblable"),
        ("children-0-birth_date", "pas-une-date", "date"),
        ("children-0-first_name", "", "Ce champ est obligatoire."),
    ],
)
def test_family_form_bad_input_saves_nothing(client, logged_in_agent, field, value, message):
    response = client.post("/gestion/familles/nouvelle", data=dict(NEW_FAMILY, **{field: value}))
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert message in page and 'class="error-summary"' in page
    assert count(Family) == count(Guardian) == count(Child) == 0


def test_add_child_button_adds_a_line_without_saving(client, logged_in_agent):
    response = client.post("/gestion/familles/nouvelle", data=dict(NEW_FAMILY, add_child="1"))
    assert response.status_code == 200
    assert 'name="children-1-first_name"' in response.get_data(as_text=True)
    assert count(Family) == 0


def test_edit_family_updates_guardians_and_children(client, logged_in_agent):
    family = make_family(children=(("Léa", date(2016, 3, 14)),))
    db.session.commit()
    child = family.children[0]
    form = client.get(f"/gestion/familles/{family.id}/modifier").get_data(as_text=True)
    assert 'value="Léa"' in form
    data = {
        "name": "Famille DUPONT-MARTIN",
        "guardian1-last_name": "DUPONT",
        "guardian1-first_name": "Camille",
        "guardian2-last_name": "MARTIN",
        "guardian2-first_name": "Luc",
        "children-0-id": str(child.id),
        "children-0-last_name": "DUPONT",
        "children-0-first_name": "Léa",
        "children-0-birth_date": "2016-03-15",
        "children-1-last_name": "DUPONT",
        "children-1-first_name": "Max",
        "children-1-birth_date": "2021-02-02",
    }
    assert client.post(f"/gestion/familles/{family.id}/modifier", data=data).status_code == 302
    db.session.expire_all()
    family = db.session.get(Family, family.id)
    assert family.name == "Famille DUPONT-MARTIN"
    assert [g.first_name for g in family.guardians] == ["Camille", "Luc"]
    assert sorted(c.first_name for c in family.children) == ["Léa", "Max"]
    assert db.session.get(Child, child.id).birth_date.isoformat() == "2016-03-15"
    data["children-1-remove"] = "y"
    data["children-1-id"] = str(next(c.id for c in family.children if c.first_name == "Max"))
    client.post(f"/gestion/familles/{family.id}/modifier", data=data)
    db.session.expire_all()
    assert [c.first_name for c in db.session.get(Family, family.id).children] == ["Léa"]


def test_search_finds_by_name_code_guardian_and_child_and_paginates(client, logged_in_agent):
    target = make_family(name="Famille ZORRO", children=(("Bernardo", date(2015, 1, 1)),))
    for index in range(25):
        make_family(name=f"Famille A{index:02d}")
    db.session.commit()
    for query in (
        "zorro",
        target.subscriber_code,
        f"{target.subscriber_code[:5]}-{target.subscriber_code[5:]}",
        "bernardo",
    ):
        page = client.get("/gestion/familles", query_string={"q": query}).get_data(as_text=True)
        assert "Famille ZORRO" in page and "1 famille" in page, query
    first = client.get("/gestion/familles").get_data(as_text=True)
    assert "26 familles" in first and "Page 1 sur 2" in first
    second = client.get("/gestion/familles?page=2").get_data(as_text=True)
    assert "Famille ZORRO" in second
    fragment = client.get("/gestion/familles?q=zorro", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "<html" not in fragment and "Famille ZORRO" in fragment


def test_letter_page_shows_the_code_for_printing(client, logged_in_agent):
    family = make_family()
    db.session.commit()
    page = client.get(f"/gestion/familles/{family.id}/courrier").get_data(as_text=True)
    assert f"{family.subscriber_code[:5]}-{family.subscriber_code[5:]}" in page
    assert "M&#39;abonner" in page or "M'abonner" in page


def test_new_code_replaces_the_old_one(client, logged_in_agent):
    family = make_family()
    db.session.commit()
    old = family.subscriber_code
    client.post(f"/gestion/familles/{family.id}/nouveau-code")
    db.session.expire_all()
    assert db.session.get(Family, family.id).subscriber_code != old


def test_unknown_family_gives_404(client, logged_in_agent):
    assert client.get("/gestion/familles/999").status_code == 404
    assert client.post("/gestion/familles/999/modifier", data=NEW_FAMILY).status_code == 404


def test_admin_creates_a_staff_account_who_sets_a_password_by_mail(client, auth, mails):
    from tests.conftest import link_in

    make_user(email="admin@example.fr", role=Role.ADMIN)
    db.session.commit()
    auth.login("admin@example.fr")
    bad = client.post(
        "/gestion/agents", data={"last_name": "", "first_name": "Jo", "email": "x", "role": "agent"}
    )
    assert bad.status_code == 422 and count(User) == 1
    response = client.post(
        "/gestion/agents",
        data={"last_name": "NOUVEL", "first_name": "Jo", "email": "jo@example.fr", "role": "agent"},
    )
    assert response.status_code == 302
    agent = db.session.scalar(sa.select(User).where(User.email == "jo@example.fr"))
    assert agent.role is Role.AGENT
    path = link_in(mails[-1], "/mot-de-passe/")
    auth.logout()
    new_password = "velo-cerise-montagne-orange"
    client.post(path, data={"password": new_password, "password_confirm": new_password})
    assert auth.login("jo@example.fr", new_password).location.endswith("/gestion/")


def test_admin_disables_a_staff_account_and_its_sessions_end(app, client, auth):
    make_user(email="admin@example.fr", role=Role.ADMIN)
    agent = make_user(email="agent@example.fr", role=Role.AGENT)
    db.session.commit()
    agent_client = app.test_client()
    type(auth)(agent_client).login("agent@example.fr")
    auth.login("admin@example.fr")
    client.post(f"/gestion/agents/{agent.id}/acces")
    assert agent_client.get("/gestion/").status_code == 302
    assert re.search("désactivé", client.get("/gestion/agents").get_data(as_text=True))
