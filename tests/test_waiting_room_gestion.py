"""Back office: staff announce, change and cancel openings; bad input gets French messages and saves
nothing; every change is audited and reaches the waiting room's schedule in Redis."""

import html
from datetime import UTC, datetime

import fakeredis
import pytest
import redis
import sqlalchemy as sa
import time_machine

from portail.extensions import db
from portail.models import AuditEvent, Opening
from portail.waiting_room import store
from portail.waiting_room.gate import room
from tests.factories import make_activity

# Paris is UTC+1 in winter: 08:30 in Paris on 12 January 2027 is 07:30 UTC.
NOW = datetime(2027, 1, 12, 6, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def clock():
    """The morning of the opening (the sessions are opened in it), the clock running."""
    with time_machine.travel(NOW, tick=True):
        yield


@pytest.fixture
def redis_client(app):
    client = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    room().client = client
    return client


@pytest.fixture
def activity(app):
    made = make_activity(name="Centre de loisirs été")
    db.session.commit()
    return made


def form(activity, **changes) -> dict:
    values = {
        "activities": [str(activity.id)],
        "day": "2027-01-12",
        "hour": "08:30",
        "queue_minutes": "30",
        "fast_path_minutes": "20",
    }
    values.update(changes)
    return values


def test_an_agent_announces_an_opening_in_paris_time(client, logged_in_agent, activity, redis_client):
    response = client.post("/gestion/ouvertures/formulaire", data=form(activity))
    assert response.status_code == 302
    opening = db.session.scalar(sa.select(Opening))
    assert opening.opens_at == datetime(2027, 1, 12, 7, 30, tzinfo=UTC)
    assert opening.queue_from == datetime(2027, 1, 12, 7, 0, tzinfo=UTC)
    assert opening.fast_path_minutes == 20 and [a.name for a in opening.activities] == [
        "Centre de loisirs été"
    ]
    event = db.session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "opening.announced"))
    assert event.actor_id == logged_in_agent.id and event.target_id == opening.id
    assert store.read_schedule(redis_client) == [
        {
            "id": opening.id,
            "queue_from": opening.queue_from.timestamp(),
            "opens_at": opening.opens_at.timestamp(),
            "fast_path": 1200,
        }
    ]
    page = client.get("/gestion/ouvertures").get_data(as_text=True)
    assert "Centre de loisirs été" in page and "À venir" in page and "08:30" in page


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"activities": []}, "Cochez au moins une activité."),
        ({"activities": ["999"]}, "n'est pas un choix valide pour ce champ."),
        ({"day": ""}, "Saisissez le jour d'ouverture."),
        ({"hour": "25:00"}, "N'est pas un horaire valide."),
        ({"day": "2027-01-11"}, "L'ouverture doit être dans le futur."),
        ({"day": "2027-03-28", "hour": "02:30"}, "Cette heure n'existe pas ce jour-là"),
        ({"queue_minutes": "-5"}, "Entre 0 et 240 minutes."),
        ({"queue_minutes": "abc"}, "N'est pas un entier valide."),
        ({"fast_path_minutes": "0"}, "Entre 1 et 240 minutes."),
    ],
)
def test_bad_input_gets_a_french_message_and_saves_nothing(
    client, logged_in_agent, activity, redis_client, changes, message
):
    response = client.post("/gestion/ouvertures/formulaire", data=form(activity, **changes))
    assert response.status_code == 422
    assert message in html.unescape(response.get_data(as_text=True))
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Opening)) == 0
    assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)) == 0
    assert store.read_schedule(redis_client) is None


def test_an_opening_is_changed_before_its_queue_starts_and_not_after(
    client, logged_in_agent, activity, redis_client
):
    client.post("/gestion/ouvertures/formulaire", data=form(activity))
    opening = db.session.scalar(sa.select(Opening))
    url = f"/gestion/ouvertures/formulaire?ouverture={opening.id}"
    assert 'value="08:30"' in client.get(url).get_data(as_text=True)
    assert client.post(url, data=form(activity, hour="09:00", fast_path_minutes="15")).status_code == 302
    db.session.expire_all()
    assert opening.opens_at == datetime(2027, 1, 12, 8, 0, tzinfo=UTC) and opening.fast_path_minutes == 15
    assert store.read_schedule(redis_client)[0]["opens_at"] == opening.opens_at.timestamp()
    with time_machine.travel(opening.queue_from, tick=False):
        response = client.post(url, data=form(activity, hour="10:00"), follow_redirects=True)
    assert "ne peut plus être modifiée" in response.get_data(as_text=True)
    db.session.expire_all()
    assert opening.opens_at == datetime(2027, 1, 12, 8, 0, tzinfo=UTC)
    actions = db.session.scalars(sa.select(AuditEvent.action).order_by(AuditEvent.id)).all()
    assert actions == ["opening.announced", "opening.updated"]


def test_cancelling_an_opening_takes_it_off_the_schedule_once(
    client, logged_in_agent, activity, redis_client
):
    client.post("/gestion/ouvertures/formulaire", data=form(activity))
    opening = db.session.scalar(sa.select(Opening))
    assert client.post(f"/gestion/ouvertures/{opening.id}/annuler").status_code == 302
    assert client.post(f"/gestion/ouvertures/{opening.id}/annuler").status_code == 302  # a double click
    page = client.get("/gestion/ouvertures").get_data(as_text=True)
    assert "Annulée" in page
    assert store.read_schedule(redis_client) == []
    cancelled = db.session.scalars(
        sa.select(AuditEvent).where(AuditEvent.action == "opening.cancelled")
    ).all()
    assert len(cancelled) == 1


def test_parents_cannot_reach_the_openings(client, auth, activity):
    from tests.factories import make_user

    make_user(email="parent@example.fr")
    db.session.commit()
    auth.login("parent@example.fr")
    assert client.get("/gestion/ouvertures").status_code == 403
    assert client.post("/gestion/ouvertures/formulaire", data=form(activity)).status_code == 403
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Opening)) == 0


def test_the_list_publishes_again_a_schedule_that_redis_missed(
    client, logged_in_agent, activity, redis_client
):
    client.post("/gestion/ouvertures/formulaire", data=form(activity))
    redis_client.flushall()  # Redis was down when the opening was saved
    assert client.get("/gestion/ouvertures").status_code == 200
    assert [item["id"] for item in store.read_schedule(redis_client)] == [
        db.session.scalar(sa.select(Opening.id))
    ]


def test_the_same_announcement_sent_twice_is_one_opening(client, logged_in_agent, activity, redis_client):
    first = client.post("/gestion/ouvertures/formulaire", data=form(activity))
    second = client.post("/gestion/ouvertures/formulaire", data=form(activity))  # a double click
    assert first.status_code == second.status_code == 302
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Opening)) == 1
    announced = (
        sa.select(sa.func.count()).select_from(AuditEvent).where(AuditEvent.action == "opening.announced")
    )
    assert db.session.scalar(announced) == 1
    # another time is another opening
    assert client.post("/gestion/ouvertures/formulaire", data=form(activity, hour="09:30")).status_code == 302
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Opening)) == 2


def test_the_list_shows_the_line_of_an_opening_that_started(client, logged_in_agent, activity, redis_client):
    """Tickets, parents admitted, parents in visit now and the pace, read from Redis."""
    assert client.post("/gestion/ouvertures/formulaire", data=form(activity, hour="07:10")).status_code == 302
    opening = db.session.scalar(sa.select(Opening))
    opens_at = opening.opens_at.timestamp()
    tuning = store.Tuning(initial_window=2.0, initial_rate=2.0)
    with time_machine.travel(opening.opens_at, tick=False):
        for _ in range(3):
            store.enter(redis_client, opening.id, opens_at, 0, opens_at - 1, tuning)
        store.enter(redis_client, opening.id, opens_at, 1, opens_at, tuning)  # tickets 1 and 2 go in
        page = html.unescape(client.get("/gestion/ouvertures").get_data(as_text=True))
        assert "3 tickets, 2 admis, 2 en cours de visite, 2,0 parents par seconde" in page
    with time_machine.travel(opening.opens_at.timestamp() + 11, tick=False):  # both quiet for 11 s
        page = html.unescape(client.get("/gestion/ouvertures").get_data(as_text=True))
        assert "3 tickets, 2 admis, 0 en cours de visite" in page
    redis_client.connection_pool.disconnect()
    room().client = redis.Redis(port=9, socket_timeout=0.2, socket_connect_timeout=0.2)  # Redis down
    with time_machine.travel(opening.opens_at, tick=False):
        page = html.unescape(client.get("/gestion/ouvertures").get_data(as_text=True))
        assert "tickets" not in page and "Centre de loisirs été" in page  # the list without figures
