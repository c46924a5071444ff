"""The child's diet as a list the kitchen counts: the health form's choice and its precision, the
change-request flow (also for a change asked when the diet was free text), and the migration that
turned the free texts into choices."""

import importlib.util
from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa

from portail.extensions import db
from portail.models import ChangeAction, ChangeRequest, ChangeStatus, Diet, Role
from portail.services import dossier
from tests.factories import make_family, make_user, subscribe

pytestmark = pytest.mark.both_dbs

MIGRATION = next((Path(__file__).resolve().parents[1] / "migrations" / "versions").glob("0011_*.py"))
HEALTH = {"doctor_name": "", "doctor_phone": "", "allergies": "", "vaccinations": "", "health_notes": ""}
FREE_TEXTS = [
    None,
    "",
    "  ",
    "Aucun",
    "standard",
    "-",
    "Sans porc",
    "pas de porc",
    "Végétarien",
    "vegetarienne",
    "sans viande",
    "Panier repas (PAI)",
    "Sans gluten",
    "Halal, sans porc",
    "x" * 150,
]


@pytest.fixture
def home(app):
    """A family with one child (standard meal), its parent subscribed; an agent."""
    family = make_family(children=(("Léa", date(2016, 3, 14)),))
    subscribe(make_user(), family)
    make_user(email="agent@example.fr", role=Role.AGENT, first_name="Nadia", last_name="AGENT")
    db.session.commit()
    return family, family.children[0]


def health_changes() -> list[ChangeRequest]:
    return db.session.scalars(sa.select(ChangeRequest).where(ChangeRequest.section == "health")).all()


def as_agent(auth):
    auth.logout()
    auth.login("agent@example.fr")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"diet": "autre", "diet_other": ""},
            "Précisez le régime alimentaire de votre enfant (choix « Autre »).",
        ),
        ({"diet": "halal"}, "Régime alimentaire"),
        ({"diet": "autre", "diet_other": "x" * 101}, "100 caractères au maximum."),
    ],
)
def test_a_wrong_diet_is_refused_in_french_and_nothing_is_saved(client, auth, home, data, message):
    family, child = home
    auth.login("parent@example.fr")
    response = client.post(f"/famille/{family.id}/enfants/{child.id}/health", data={**HEALTH, **data})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert message in page and 'class="error-summary"' in page
    assert health_changes() == []


def test_the_form_offers_the_kitchens_list(client, auth, home):
    family, child = home
    auth.login("parent@example.fr")
    page = client.get(f"/famille/{family.id}/enfants/{child.id}/health").get_data(as_text=True)
    for value, label in [("", "Standard"), *((diet.value, diet.label) for diet in Diet)]:
        assert f'<option {"selected " if not value else ""}value="{value}">{label}</option>' in page
    assert '<label for="diet_other">Précision du régime</label>' in page


def test_an_other_diet_goes_through_the_change_request_readably(client, auth, home, mails):
    family, child = home
    auth.login("parent@example.fr")
    client.post(
        f"/famille/{family.id}/enfants/{child.id}/health",
        data={**HEALTH, "diet": "autre", "diet_other": "Sans gluten"},
    )
    [change] = health_changes()
    assert (change.new_values["diet"], change.new_values["diet_other"]) == ("autre", "Sans gluten")
    page = client.get(f"/famille/{family.id}/enfants/{child.id}").get_data(as_text=True)
    assert "<dt>Régime alimentaire</dt><dd>Standard</dd>" in page  # the validated value, until accepted
    assert "<dt>Régime alimentaire</dt><dd>Autre</dd><dt>Précision du régime</dt><dd>Sans gluten</dd>" in page
    as_agent(auth)
    page = client.get(f"/gestion/dossiers/{change.id}").get_data(as_text=True)
    assert "Standard" in page and "Autre" in page and "Sans gluten" in page
    client.post(f"/gestion/dossiers/{change.id}/accepter")
    db.session.expire_all()
    assert (child.diet, child.diet_other) == (Diet.OTHER, "Sans gluten")


def test_a_precision_left_typed_with_another_choice_is_not_kept(client, auth, home):
    family, child = home
    auth.login("parent@example.fr")
    client.post(
        f"/famille/{family.id}/enfants/{child.id}/health",
        data={**HEALTH, "diet": "sans_porc", "diet_other": "Sans gluten"},
    )
    [change] = health_changes()
    assert (change.new_values["diet"], change.new_values["diet_other"]) == ("sans_porc", None)


def legacy_change(family, child, diet_text: str) -> ChangeRequest:
    """A health change asked before migration 0011: the diet as free text, no precision field."""
    old = {**dict.fromkeys(HEALTH), "diet": None, "pai": False}
    change = ChangeRequest(
        family_id=family.id,
        key=f"child:{child.id}:health",
        section="health",
        action=ChangeAction.UPDATE,
        target_id=child.id,
        old_values=old,
        new_values={**old, "diet": diet_text, "allergies": "Pollen"},
        requested_by_id=None,
    )
    db.session.add(change)
    db.session.commit()
    return change


@pytest.mark.parametrize(
    ("text", "shown", "diet", "precision"),
    [("Sans porc", "Sans porc", Diet.PORK_FREE, None), ("sans gluten", "Autre", Diet.OTHER, "sans gluten")],
)
def test_a_change_asked_when_the_diet_was_free_text_shows_and_applies_as_the_migration_maps_it(
    client, auth, home, text, shown, diet, precision
):
    family, child = home
    change = legacy_change(family, child, text)
    auth.login("parent@example.fr")
    page = client.get(f"/famille/{family.id}/enfants/{child.id}").get_data(as_text=True)
    assert (
        f"<dt>Régime alimentaire</dt><dd>{shown}</dd><dt>Précision du régime</dt><dd>{precision or '—'}</dd>"
        in page
    )
    as_agent(auth)
    page = client.get(f"/gestion/dossiers/{change.id}").get_data(as_text=True)
    assert shown in page and 'class="conflict"' not in page  # the old file's values are today's
    assert dossier.conflicts(change) == []
    client.post(f"/gestion/dossiers/{change.id}/accepter")
    db.session.expire_all()
    assert (child.diet, child.diet_other, child.allergies) == (diet, precision, "Pollen")
    assert change.status is ChangeStatus.ACCEPTED


def _migration():
    spec = importlib.util.spec_from_file_location("migration_0011", MIGRATION)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("text", FREE_TEXTS)
def test_diet_choice_follows_the_migrations_rules(text):
    choice, precision = dossier.diet_choice(text)
    assert (choice.name if choice else None, precision) == _migration().diet_choice(text)


def test_the_migration_turns_free_text_diets_into_choices(db_url):
    from flask_migrate import upgrade

    from tests.conftest import make_app

    texts = ["Sans porc", "végétarien", "Panier repas", "Sans gluten", "aucun", None]
    app = make_app(db_url)
    with app.app_context():
        db.drop_all()
        with db.engine.begin() as connection:
            connection.execute(sa.text("DROP TABLE IF EXISTS alembic_version"))
        try:
            upgrade(revision="0010")
            with db.engine.begin() as connection:
                connection.execute(
                    sa.text(
                        "INSERT INTO family (id, subscriber_code, name, created_at, updated_at) "
                        "VALUES (1, 'ABCD-2345', 'Famille MARTIN', :now, :now)"
                    ),
                    {"now": "2026-11-01 08:00:00"},
                )
                for index, text in enumerate(texts, start=1):
                    connection.execute(
                        sa.text(
                            "INSERT INTO child (id, family_id, last_name, first_name, birth_date, diet) "
                            "VALUES (:id, 1, 'MARTIN', :name, '2016-01-01', :diet)"
                        ),
                        {"id": index, "name": f"Enfant {index}", "diet": text},
                    )
            upgrade(revision="0011")
            with db.engine.connect() as connection:
                migrated = connection.execute(sa.text("SELECT diet, diet_other FROM child ORDER BY id")).all()
        finally:
            db.drop_all()
            with db.engine.begin() as connection:
                connection.execute(sa.text("DROP TABLE IF EXISTS alembic_version"))
            db.engine.dispose()
    assert [tuple(row) for row in migrated] == [
        ("PORK_FREE", None),
        ("VEGETARIAN", None),
        ("MEAL_BASKET", None),
        ("OTHER", "Sans gluten"),
        (None, None),
        (None, None),
    ]
