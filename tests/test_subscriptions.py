"""Mes abonnements: M'abonner with code abonné and verification, limits, two parents, two families."""

from datetime import date

import pytest
import sqlalchemy as sa

from portail.extensions import db
from portail.models import Subscription, SubscriptionAttempt
from tests.factories import make_family, make_user, subscribe

pytestmark = pytest.mark.both_dbs

BORN = date(2016, 3, 14)


@pytest.fixture
def family(app):
    family = make_family(children=(("Léa", BORN), ("Tom", date(2019, 9, 2))))
    db.session.commit()
    return family


def search(client, code, born="2016-03-14", **kwargs):
    return client.post(
        "/mon-espace/abonnements/nouveau", data={"subscriber_code": code, "child_birth_date": born}, **kwargs
    )


def confirm(client, code, born="2016-03-14"):
    return client.post(
        "/mon-espace/abonnements/confirmer", data={"subscriber_code": code, "child_birth_date": born}
    )


def test_search_shows_the_family_then_confirm_makes_menus_appear_without_relogin(client, auth, family):
    make_user()
    db.session.commit()
    auth.login("parent@example.fr")
    assert 'href="/facturation/"' not in client.get("/mon-espace/abonnements").get_data(as_text=True)
    found = search(client, family.subscriber_code.lower(), "2019-09-02")
    page = found.get_data(as_text=True)
    assert found.status_code == 200
    assert "Famille trouvée : Famille DUPONT" in page and "Confirmer l'abonnement" in page
    assert db.session.scalar(sa.select(sa.func.count(Subscription.id))) == 0, "searching subscribes nothing"
    response = confirm(client, family.subscriber_code, "2019-09-02")
    assert response.status_code == 302
    page = client.get(response.location).get_data(as_text=True)
    assert 'href="/famille/"' in page and 'href="/facturation/"' in page
    assert client.get(f"/famille/{family.id}").status_code == 200


def test_code_is_accepted_with_dash_spaces_and_lowercase(client, auth, family):
    make_user()
    db.session.commit()
    auth.login("parent@example.fr")
    code = family.subscriber_code
    assert "Famille trouvée" in search(client, f" {code[:5].lower()} - {code[5:]} ").get_data(as_text=True)


@pytest.mark.parametrize("case", ["wrong_code", "wrong_date", "other_family_date"])
def test_wrong_code_or_verification_gets_one_generic_message(client, auth, family, case):
    other = make_family(name="Famille AUTRE", children=(("Zoé", date(2015, 5, 5)),))
    make_user()
    db.session.commit()
    auth.login("parent@example.fr")
    code, born = {
        "wrong_code": ("ABCDEFGHJK", "2016-03-14"),
        "wrong_date": (family.subscriber_code, "2016-03-15"),
        "other_family_date": (family.subscriber_code, "2015-05-05"),
    }[case]
    response = search(client, code, born)
    assert response.status_code == 422
    assert "Aucune famille ne correspond à ce code abonné et à cette date de naissance." in response.get_data(
        as_text=True
    )
    assert confirm(client, code, born).status_code == 422
    assert db.session.scalar(sa.select(sa.func.count(Subscription.id))) == 0
    assert other.id


def test_missing_fields_get_french_messages(client, auth, family):
    make_user()
    db.session.commit()
    auth.login("parent@example.fr")
    page = search(client, "", "").get_data(as_text=True)
    assert page.count("Ce champ est obligatoire.") >= 2
    assert db.session.scalar(sa.select(sa.func.count(SubscriptionAttempt.id))) == 0


def test_five_failed_tries_per_hour_then_429_even_with_the_right_code(client, auth, family):
    make_user()
    db.session.commit()
    auth.login("parent@example.fr")
    for _ in range(5):
        assert search(client, "ABCDEFGHJK").status_code == 422
    assert search(client, family.subscriber_code).status_code == 429
    assert confirm(client, family.subscriber_code).status_code == 429
    assert db.session.scalar(sa.select(sa.func.count(Subscription.id))) == 0


def test_tries_are_counted_per_account(app, client, auth, family):
    make_user()
    make_user(email="autre@example.fr")
    db.session.commit()
    auth.login("parent@example.fr")
    for _ in range(5):
        search(client, "ABCDEFGHJK")
    other = app.test_client()
    type(auth)(other).login("autre@example.fr")
    assert search(other, family.subscriber_code).status_code == 200


def test_two_parent_accounts_on_one_family(app, client, auth, family):
    make_user()
    make_user(email="second@example.fr")
    db.session.commit()
    auth.login("parent@example.fr")
    confirm(client, family.subscriber_code)
    second = app.test_client()
    type(auth)(second).login("second@example.fr")
    assert confirm(second, family.subscriber_code).status_code == 302
    assert second.get(f"/famille/{family.id}").status_code == 200
    assert db.session.scalar(sa.select(sa.func.count(Subscription.id))) == 2


def test_one_account_on_two_families(client, auth, family):
    other = make_family(name="Famille RECOMPOSEE", children=(("Nina", date(2020, 1, 1)),))
    make_user()
    db.session.commit()
    auth.login("parent@example.fr")
    confirm(client, family.subscriber_code)
    confirm(client, other.subscriber_code, "2020-01-01")
    page = client.get("/famille/").get_data(as_text=True)
    assert "Famille DUPONT" in page and "Famille RECOMPOSEE" in page


def test_confirming_twice_keeps_one_subscription(client, auth, family):
    make_user()
    db.session.commit()
    auth.login("parent@example.fr")
    confirm(client, family.subscriber_code)
    confirm(client, family.subscriber_code)
    assert db.session.scalar(sa.select(sa.func.count(Subscription.id))) == 1


def test_database_refuses_two_active_subscriptions_for_the_same_pair(family):
    user = make_user()
    subscribe(user, family)
    db.session.commit()
    db.session.add(Subscription(user_id=user.id, family_id=family.id))
    with pytest.raises(sa.exc.IntegrityError):
        db.session.commit()
    db.session.rollback()


def test_end_subscription_hides_the_family_at_once(client, auth, family):
    user = make_user()
    subscription = subscribe(user, family)
    db.session.commit()
    auth.login("parent@example.fr")
    assert client.get(f"/famille/{family.id}").status_code == 200
    assert client.post(f"/mon-espace/abonnements/{subscription.id}/terminer").status_code == 302
    assert client.get(f"/famille/{family.id}").status_code == 404
    assert 'href="/facturation/"' not in client.get("/mon-espace/").get_data(as_text=True)
    confirm(client, family.subscriber_code)
    assert client.get(f"/famille/{family.id}").status_code == 200, "one can subscribe again"


def test_another_account_subscription_or_family_gives_404(client, auth, family):
    owner = make_user(email="owner@example.fr")
    subscription = subscribe(owner, family)
    make_user()
    db.session.commit()
    auth.login("parent@example.fr")
    assert client.post(f"/mon-espace/abonnements/{subscription.id}/terminer").status_code == 404
    assert client.get(f"/famille/{family.id}").status_code == 404
    assert db.session.get(Subscription, subscription.id).ended_at is None


def test_htmx_search_returns_a_fragment(client, auth, family):
    make_user()
    db.session.commit()
    auth.login("parent@example.fr")
    response = search(client, family.subscriber_code, headers={"HX-Request": "true"})
    page = response.get_data(as_text=True)
    assert "<html" not in page and 'id="abonnement"' in page and "Famille trouvée" in page
