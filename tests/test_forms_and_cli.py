"""Every remaining form rejects bad input with a French message and saves nothing; the admin CLI."""

import pytest
import sqlalchemy as sa

from portail.extensions import db
from portail.models import AccountToken, Role, User
from portail.services import passwords
from tests.conftest import link_in
from tests.factories import PASSWORD, make_user


@pytest.mark.parametrize(
    ("url", "data", "message"),
    [
        ("/connexion", {"email": "", "password": ""}, "Ce champ est obligatoire."),
        ("/connexion", {"email": "pas-une-adresse", "password": "x"}, "Adresse e-mail invalide"),
        ("/mot-de-passe-oublie", {"email": "pas-une-adresse"}, "Adresse e-mail invalide"),
        ("/activation/renvoyer", {"email": ""}, "Ce champ est obligatoire."),
    ],
)
def test_public_forms_reject_bad_input_in_french(client, mails, url, data, message):
    response = client.post(url, data=data)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert message in page and 'class="error-summary"' in page
    assert mails == []
    assert db.session.scalar(sa.select(sa.func.count(AccountToken.id))) == 0


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"current_password": "", "password": "x", "password_confirm": "x"}, "Ce champ est obligatoire."),
        (
            {"current_password": PASSWORD, "password": "court", "password_confirm": "court"},
            "au moins 12 caractères",
        ),
        (
            {
                "current_password": PASSWORD,
                "password": "camilledupont2016",
                "password_confirm": "camilledupont2016",
            },
            "trop courant",
        ),
        (
            {
                "current_password": PASSWORD,
                "password": "lampadaire-girafe-trombone",
                "password_confirm": "lampadaire-girafe-tromb",
            },
            "ne sont pas identiques",
        ),
    ],
)
def test_change_password_rejects_bad_input_and_keeps_the_old_password(client, auth, mails, data, message):
    user = make_user()
    db.session.commit()
    old_hash = user.password_hash
    auth.login("parent@example.fr")
    response = client.post("/mon-espace/compte/mot-de-passe", data=data)
    assert message in response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(User, user.id).password_hash == old_hash
    assert mails == []


def test_phone_form_rejects_bad_numbers_and_saves_good_ones(client, auth):
    user = make_user()
    db.session.commit()
    auth.login("parent@example.fr")
    bad = client.post("/mon-espace/compte", data={"phone": "appelez-moi"})
    assert "Numéro de téléphone invalide" in bad.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(User, user.id).phone is None
    assert client.post("/mon-espace/compte", data={"phone": "+33 6 12 34 56 78"}).status_code == 302
    db.session.expire_all()
    assert db.session.get(User, user.id).phone == "+33 6 12 34 56 78"


def test_reset_link_of_another_account_only_changes_that_account(app, client, auth, mails):
    owner = make_user(email="owner@example.fr")
    intruder = make_user(email="intruder@example.fr")
    db.session.commit()
    intruder_hash = intruder.password_hash
    client.post("/mot-de-passe-oublie", data={"email": "owner@example.fr"})
    path = link_in(mails[0], "/mot-de-passe/")
    auth.login("intruder@example.fr")
    new = "lampadaire-girafe-trombone-nuage"
    client.post(path, data={"password": new, "password_confirm": new})
    db.session.expire_all()
    assert passwords.verify_password(db.session.get(User, owner.id).password_hash, new)
    assert db.session.get(User, intruder.id).password_hash == intruder_hash
    assert client.get("/mon-espace/").status_code == 302, "the reset logs the browser out"


def test_change_password_is_rate_limited(client, auth):
    make_user()
    db.session.commit()
    auth.login("parent@example.fr")
    data = {"current_password": "faux-mot-de-passe", "password": "x", "password_confirm": "x"}
    for _ in range(10):
        assert client.post("/mon-espace/compte/mot-de-passe", data=data).status_code == 200
    assert client.post("/mon-espace/compte/mot-de-passe", data=data).status_code == 429


def test_create_admin_command(app):
    runner = app.test_cli_runner()

    def create_admin(email, first_name, last_name, password):
        return runner.invoke(
            args=[
                "create-admin",
                *("--email", email, "--first-name", first_name, "--last-name", last_name),
                *("--password", password),
            ]
        )

    weak = create_admin("chef@example.fr", "A", "B", "court")
    assert weak.exit_code != 0 and "au moins 12 caractères" in weak.output
    ok = create_admin("Chef@Example.fr", "Anne", "CHEF", PASSWORD)
    assert ok.exit_code == 0, ok.output
    admin = db.session.scalar(sa.select(User).where(User.email == "chef@example.fr"))
    assert admin.role is Role.ADMIN and admin.activated_at is not None
    again = create_admin("chef@example.fr", "A", "B", PASSWORD)
    assert again.exit_code != 0


def test_demo_load_only_on_an_empty_database(app):
    from portail.models import Family

    runner = app.test_cli_runner()
    assert runner.invoke(args=["demo", "load", "--if-empty"]).exit_code == 0
    families = db.session.scalar(sa.select(sa.func.count(Family.id)))
    assert families >= 3
    assert "déjà présentes" in runner.invoke(args=["demo", "load", "--if-empty"]).output
    assert db.session.scalar(sa.select(sa.func.count(Family.id))) == families
    demo_code = db.session.scalar(sa.select(Family).where(Family.name == "Famille DUBOIS")).subscriber_code
    assert demo_code == "DBSFM38472", "the README's demo code"


def test_demo_reserves_only_open_days_even_before_the_school_holidays(app, monkeypatch):
    """Loaded ten days before the Christmas holidays, the demo books no day the activity is closed
    (school holidays, Christmas day, New Year's day)."""
    from datetime import UTC, date, datetime

    from portail.bookings import rules as booking_rules
    from portail.demo import activities as demo_activities
    from portail.models import Activity, Booking

    monkeypatch.setattr(demo_activities, "utcnow", lambda: datetime(2026, 12, 8, 9, 0, tzinfo=UTC))
    assert app.test_cli_runner().invoke(args=["demo", "load", "--if-empty"]).exit_code == 0
    rows = db.session.execute(sa.select(Booking.day, Activity).join(Activity)).all()
    december = [day for day, _activity in rows if date(2026, 12, 8) <= day <= date(2027, 1, 12)]
    assert december, "the demo books the coming weeks"
    closed = [(day, activity.name, booking_rules.closure(activity, day, "C")) for day, activity in rows]
    assert [row for row in closed if row[2]] == []
