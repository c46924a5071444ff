"""Pages cost a constant number of SQL queries, whatever the amount of data."""

from datetime import date

import sqlalchemy as sa

from portail.extensions import db
from portail.models import Child, Role
from tests.factories import make_family, make_user, subscribe
from tests.support import queries_for


def test_family_pages_cost_the_same_with_one_or_many_children_and_families(client, auth):
    user = make_user()
    small = make_family(children=(("Léa", date(2016, 1, 1)),))
    subscribe(user, small)
    db.session.commit()
    auth.login("parent@example.fr")
    urls = ["/mon-espace/", "/mon-espace/abonnements", f"/famille/{small.id}", "/facturation/"]
    before = {url: queries_for(client, url) for url in urls}
    big = make_family(
        name="Famille NOMBREUSE",
        children=tuple((f"E{i}", date(2010 + i % 10, 1, 1)) for i in range(8)),
        guardians=(("A", "B"), ("C", "D")),
    )
    subscribe(user, big)
    for index in range(30):
        make_family(name=f"Famille X{index}")
    db.session.commit()
    after = {url: queries_for(client, url) for url in urls}
    assert after == before
    assert queries_for(client, f"/famille/{big.id}") == before[f"/famille/{small.id}"]
    assert max(after.values()) <= 6


def test_families_list_in_back_office_costs_a_constant_number_of_queries(client, auth):
    make_user(email="agent@example.fr", role=Role.AGENT)
    for index in range(3):
        make_family(name=f"Famille A{index}")
    db.session.commit()
    auth.login("agent@example.fr")
    few = queries_for(client, "/gestion/familles")
    for index in range(17):
        make_family(
            name=f"Famille B{index}",
            guardians=(("A", "B"), ("C", "D")),
            children=(("X", date(2016, 1, 1)), ("Y", date(2017, 1, 1))),
        )
    db.session.commit()
    assert queries_for(client, "/gestion/familles") == few


def test_dossier_pages_cost_a_constant_number_of_queries(client, auth):
    from portail.models import Authorization, AuthorizedContact, ChildAuthorization

    def populate(family, children: int):
        for index in range(children):
            kid = Child(first_name=f"E{index}", last_name="X", birth_date=date(2015, 1, 1))
            family.children.append(kid)
        db.session.flush()
        for kid in family.children:
            kid.contacts.append(
                AuthorizedContact(
                    last_name="C", first_name="D", relationship_label="Oncle", phone="0612345678"
                )
            )
            for auth_row in db.session.scalars(sa.select(Authorization)):
                kid.authorizations.append(ChildAuthorization(authorization_id=auth_row.id, granted=True))

    db.session.add_all([Authorization(label=f"A{i}") for i in range(4)])
    user = make_user()
    agent = make_user(email="agent@example.fr", role=Role.AGENT)
    small, big = (
        make_family(name="Famille PETITE"),
        make_family(name="Famille GRANDE", guardians=(("A", "B"), ("C", "D"))),
    )
    populate(small, 0)
    populate(big, 6)
    subscribe(user, small)
    subscribe(user, big)
    db.session.commit()
    assert agent
    auth.login("parent@example.fr")
    for page in ("", "/responsables"):
        assert queries_for(client, f"/famille/{small.id}{page}") == queries_for(
            client, f"/famille/{big.id}{page}"
        ), page
    assert queries_for(client, f"/famille/{small.id}/enfants/{small.children[0].id}") == queries_for(
        client, f"/famille/{big.id}/enfants/{big.children[3].id}"
    )
    auth.logout()
    auth.login("agent@example.fr")
    assert queries_for(client, f"/gestion/familles/{small.id}") == queries_for(
        client, f"/gestion/familles/{big.id}"
    )
