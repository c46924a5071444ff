"""The waiting room: tickets in order of arrival, admission as parents in visit leave, the fast path, the
light waiting page (no query), load shedding, and failing open when Redis does not answer."""

import dataclasses
import html
import re
import time
from datetime import UTC, datetime, timedelta

import fakeredis
import pytest
import redis
import time_machine

from portail.extensions import db
from portail.models import Family, Request, Role
from portail.services import openings
from portail.waiting_room import admissions, store
from portail.waiting_room.gate import room
from tests.factories import (
    cell_form,
    enrolled_child,
    make_activity,
    make_family,
    make_user,
    next_weekday,
    subscribe,
)
from tests.support import count_queries

TUNING = store.Tuning(initial_window=2.0, min_window=1.0, tune_every=1.0, drain_after=60.0, initial_rate=2.0)
OPENS = 1_900_000_000.0  # an opening, in epoch seconds


def fake() -> redis.Redis:
    return fakeredis.FakeRedis(server=fakeredis.FakeServer())


def window(client, queue=1) -> float:
    return float(client.hget(f"wr:{queue}:state", "window"))


# --- the queue in Redis, without the app ---------------------------------------------------------


def test_tickets_follow_the_order_of_arrival_and_nobody_goes_in_before_the_opening_second():
    client = fake()
    places = [store.enter(client, 1, OPENS, 0, OPENS - 600 + i, TUNING) for i in range(5)]
    assert [place.ticket for place in places] == [1, 2, 3, 4, 5]
    assert [place.position for place in places] == [1, 2, 3, 4, 5]
    assert not store.enter(client, 1, OPENS, 1, OPENS - 0.001, TUNING).admitted
    first = store.enter(client, 1, OPENS, 1, OPENS, TUNING)
    assert first.admitted and first.admitted_at == OPENS
    assert store.enter(client, 1, OPENS, 3, OPENS, TUNING).position == 1  # 1 and 2 fill the window


def test_a_parent_goes_in_when_one_in_visit_leaves_first_come_first_served():
    """The window is the number of parents in visit (admitted, with a guarded page in the last
    idle_after seconds): a place frees when one of them has been quiet that long, and the next
    ticket takes it — self-clocked, whatever the pace the server keeps up."""
    client = fake()
    for i in range(10):
        store.enter(client, 1, OPENS, 0, OPENS - 100 + i, TUNING)
    assert store.enter(client, 1, OPENS, 10, OPENS, TUNING).cursor == 2  # tickets 1 and 2 in visit
    store.enter(client, 1, OPENS, 1, OPENS + 5, TUNING)  # ticket 1 opens a page: still in visit
    assert store.enter(client, 1, OPENS, 10, OPENS + 9.9, TUNING).cursor == 2
    # ticket 2 has been quiet for 10 s: its place goes to ticket 3; ticket 1 (seen at +5) stays in
    assert store.enter(client, 1, OPENS, 10, OPENS + 10.5, TUNING).cursor == 3
    assert store.enter(client, 1, OPENS, 10, OPENS + 15.5, TUNING).cursor == 4
    assert store.enter(client, 1, OPENS, 10, OPENS + 15.5, TUNING).position == 6
    admitted = admissions(client, 1)
    assert [ticket for ticket, _at in admitted] == [1, 2, 3, 4]
    assert [at for _ticket, at in admitted] == [OPENS, OPENS, OPENS + 10.5, OPENS + 15.5]


def test_after_a_quiet_minute_the_window_s_worth_goes_in_and_no_more():
    client = fake()
    tuning = dataclasses.replace(TUNING, drain_after=600.0)
    store.enter(client, 1, OPENS, 0, OPENS - 1, tuning)
    store.enter(client, 1, OPENS, 1, OPENS, tuning)  # ticket 1 in at the opening
    for i in range(10):
        store.enter(client, 1, OPENS, 0, OPENS + 60 + i / 100, tuning)
    assert store.enter(client, 1, OPENS, 0, OPENS + 60.2, tuning).cursor == 1 + 2


@pytest.mark.parametrize(
    ("p95", "busy", "window_after"),
    [
        (1.0, 0.2, 7.0),  # 3 × the target: cut by 30 % (the most)
        (0.33, 0.2, 9.0),  # 10 % over: cut by 10 % (the least)
        (0.05, 0.95, 10.0 * 0.85 / 0.95),  # busy 0.95 for 0.85: cut as deep as the excess
        (0.05, 0.2, 11.0),  # well below both: grows (by one parent at least)
        (0.3, 0.75, 10.0),  # near the targets: held
    ],
)
def test_the_window_follows_the_answer_times_and_work_in_flight(p95, busy, window_after):
    client = fake()
    tuning = dataclasses.replace(TUNING, initial_window=10.0)
    for _ in range(12):  # more parents than the window: the window limits
        store.enter(client, 1, OPENS, 0, OPENS - 1, tuning)
    store.report_load(client, "web-1:1", busy, 1, p95, OPENS + 0.5)
    store.report_load(client, "web-2:1", busy, 1, 0.01, OPENS + 0.5)  # the worst p95 counts
    store.enter(client, 1, OPENS, 1, OPENS + 1, tuning)
    assert window(client) == pytest.approx(window_after)


def test_the_window_grows_by_10_percent_a_second_until_the_first_cut_then_by_one_parent():
    """Slow start, then additive growth (TCP's congestion window): an admitted parent loads the
    server over the seconds of their visit, and growing fast past the first cut would overshoot
    (measured at 2,500 parents: 5 % a second after cuts swung the p95 of 10 s windows up to 2.7 s)."""
    client = fake()
    tuning = dataclasses.replace(TUNING, initial_window=50.0, cooldown=5.0)
    for _ in range(200):
        store.enter(client, 1, OPENS, 0, OPENS - 1, tuning)
    windows = []
    for second in range(1, 13):
        slow = second == 4
        store.report_load(client, "web-1:1", 0.1, 1, 2.0 if slow else 0.01, OPENS + second - 0.5)
        store.enter(client, 1, OPENS, 1, OPENS + second, tuning)
        windows.append(window(client))
    cut = 66.55 * 0.7
    assert windows == pytest.approx([55.0, 60.5, 66.55] + [cut] * 5 + [cut + 1, cut + 2, cut + 3, cut + 4])


def test_the_window_does_not_grow_while_nobody_waits():
    """An idle line does not bank a flood: the window grows only while it is full."""
    client = fake()
    tuning = dataclasses.replace(TUNING, initial_window=10.0)
    store.enter(client, 1, OPENS, 0, OPENS - 1, tuning)  # one parent: the window is not full
    for second in range(1, 30):
        store.report_load(client, "web-1:1", 0.1, 1, 0.01, OPENS + second - 0.5)
        store.enter(client, 1, OPENS, 1, OPENS + second, tuning)
    assert window(client) == 10.0


def test_after_a_cut_the_window_is_left_alone_for_one_measuring_window():
    """The reports after a cut still cover the seconds before it: cutting again each second would
    take one overshoot down to the floor."""
    client = fake()
    tuning = dataclasses.replace(TUNING, initial_window=10.0, cooldown=5.0)
    for _ in range(20):
        store.enter(client, 1, OPENS, 0, OPENS - 1, tuning)
    windows = []
    for second in range(1, 8):  # slow answers reported all along
        store.report_load(client, "web-1:1", 0.1, 1, 2.0, OPENS + second - 0.5)
        store.enter(client, 1, OPENS, 1, OPENS + second, tuning)
        windows.append(window(client))
    assert windows == pytest.approx([7.0, 7.0, 7.0, 7.0, 7.0, 4.9, 4.9])
    # fast again: it grows only once the window after the last cut is over
    store.report_load(client, "web-1:1", 0.1, 1, 0.01, OPENS + 10.5)
    store.enter(client, 1, OPENS, 1, OPENS + 10.9, tuning)
    assert window(client) == pytest.approx(4.9)
    store.report_load(client, "web-1:1", 0.1, 1, 0.01, OPENS + 11.5)
    store.enter(client, 1, OPENS, 1, OPENS + 12, tuning)
    assert window(client) == pytest.approx(5.9)


def test_stale_load_reports_are_ignored_and_the_window_holds():
    client = fake()
    store.report_load(client, "web-1:1", 5.0, 1, 9.0, OPENS - 30)
    store.enter(client, 1, OPENS, 0, OPENS + 1, TUNING)
    assert window(client) == 2.0


def test_a_waiting_parent_s_estimate_uses_the_pace_parents_go_in_at():
    client = fake()
    for i in range(10):
        store.enter(client, 1, OPENS, 0, OPENS - 100 + i, TUNING)
    assert store.enter(client, 1, OPENS, 10, OPENS - 1, TUNING).rate == 2.0  # before: the setting
    store.enter(client, 1, OPENS, 10, OPENS, TUNING)  # 2 in at the opening
    # 10.5 s later: those 2 went in over the 10.5 s since the last measure
    place = store.enter(client, 1, OPENS, 10, OPENS + 10.5, TUNING)
    assert place.rate == pytest.approx(0.7 * 2.0 + 0.3 * 2 / 10.5)


def test_the_entrance_yields_to_the_booking_line_once_it_opens():
    """After the opening, a visitor let in to log in would only wait again in the booking line, and
    their login would take the server from the parents booking: the entrance admits nobody while
    the booking line holds more parents back than its window."""
    client = fake()
    queue_from = OPENS - 600
    booking = store.Link("yields", 1, OPENS)
    tuning = dataclasses.replace(TUNING, initial_window=2.0, drain_after=1e12)
    # before the opening, the entrance lets visitors in (the window's worth) to log in
    for i in range(8):
        store.enter(client, "1:entree", queue_from, 0, queue_from + i, tuning, booking)
    assert store.enter(client, "1:entree", queue_from, 0, queue_from + 8, tuning, booking).cursor == 2
    for i in range(5):  # five parents logged in and queue for the booking line
        store.enter(client, 1, OPENS, 0, OPENS - 100 + i, TUNING)
    # (their places at the entrance freed long ago)
    assert store.enter(client, "1:entree", queue_from, 0, OPENS - 1, tuning, booking).cursor == 4
    # the opening: the booking line lets 2 in and holds 3 back; the entrance admits nobody
    assert store.enter(client, 1, OPENS, 5, OPENS, TUNING).cursor == 2
    assert store.enter(client, "1:entree", queue_from, 0, OPENS + 1, tuning, booking).cursor == 4
    assert store.enter(client, "1:entree", queue_from, 0, OPENS + 11, tuning, booking).cursor == 4
    # the booking line moves (its first two left): 1 held back now, within its window of 2
    assert store.enter(client, 1, OPENS, 5, OPENS + 11, TUNING).cursor == 4
    assert store.enter(client, "1:entree", queue_from, 0, OPENS + 12, tuning, booking).cursor == 6


def test_the_booking_line_stays_open_while_visitors_wait_at_the_entrance():
    """Its line empty, the booking line would close after drain_after and let everyone in at once,
    while the entrance still holds visitors who will come to book (measured at 2,500 parents: the
    room closed 3 minutes after the opening with 1,500 at the login form, p50 10 s)."""
    client = fake()
    tuning = dataclasses.replace(TUNING, drain_after=60.0)
    entrance = store.Link("fed", "1:entree")
    store.enter(client, 1, OPENS, 0, OPENS - 1, tuning, entrance)
    for i in range(3):  # three visitors wait at the entrance (held there: a window of 0)
        store.enter(
            client, "1:entree", OPENS - 600, 0, OPENS - 600 + i, dataclasses.replace(TUNING, initial_window=0)
        )
    assert not store.enter(client, 1, OPENS, 1, OPENS + 61, tuning, entrance).drained
    client.hset("wr:1:entree:state", "cursor", 3)  # they went in
    assert store.enter(client, 1, OPENS, 1, OPENS + 62, tuning, entrance).drained


def test_the_room_closes_once_drained_after_the_opening():
    client = fake()
    store.enter(client, 1, OPENS, 0, OPENS - 1, TUNING)
    assert not store.enter(client, 1, OPENS, 1, OPENS + 1, TUNING).drained  # empty, but just opened
    drained = store.enter(client, 1, OPENS, 1, OPENS + 61, TUNING)
    assert drained.drained and drained.admitted
    assert store.enter(client, 1, OPENS, 0, OPENS + 62, TUNING).ticket == 0  # no more tickets


# --- the app ----------------------------------------------------------------------------------


@pytest.fixture
def redis_client(app):
    client = fake()
    room().client = client
    return client


@pytest.fixture
def family_setup(app, redis_client):
    """A parent of a family with a child enrolled in an activity (ids), and an agent."""
    activity = make_activity()
    family, child = enrolled_child(activity, name="Léa")
    parent = make_user(email="parent@example.fr")
    subscribe(parent, family)
    other = make_family(name="Famille AUTRE")
    agent = make_user(email="agent@example.fr", role=Role.AGENT)
    db.session.commit()
    return {"family": family.id, "child": child, "activity": activity, "other": other.id, "agent": agent}


def announce(setup, opens_in: float, queue_for: float = 1800, fast_path: int = 20):
    """An opening `opens_in` seconds from now (parents queue `queue_for` seconds before it)."""
    now = datetime.now(UTC)
    opens_at = (now + timedelta(seconds=opens_in)).replace(microsecond=0)
    opening = openings.announce(
        setup["agent"],
        [setup["activity"].id],
        opens_at,
        opens_at - timedelta(seconds=queue_for),
        fast_path_minutes=fast_path,
        now=now - timedelta(hours=1),
    )
    db.session.commit()
    return opening


def login(client, email="parent@example.fr"):
    from tests.factories import PASSWORD

    assert client.post("/connexion", data={"email": email, "password": PASSWORD}).status_code == 302


def planning(setup, family=None) -> str:
    return f"/famille/{family or setup['family']}/planning"


def test_a_waiting_parent_gets_a_light_page_without_any_query(app, family_setup):
    announce(family_setup, opens_in=600)
    client = app.test_client()
    login(client)
    client.get(planning(family_setup))  # takes the ticket (and warms the process's schedule)
    timings = []
    with count_queries() as counter:
        for _ in range(20):
            started = time.perf_counter()
            response = client.get(planning(family_setup))
            timings.append(time.perf_counter() - started)
    assert counter["n"] == 0
    assert response.status_code == 200
    assert response.headers["X-Waiting-Room"] == "1"
    assert response.headers["Cache-Control"] == "no-store"
    page = response.get_data(as_text=True)
    assert "Votre place dans la file : <strong>1</strong>" in page
    assert 'role="status"' in page and 'aria-live="polite"' in page
    assert 'http-equiv="refresh"' in page and 'hx-get="/salle-d-attente/etat' in page
    assert "Léa" not in page  # nothing of the family: nothing was read
    assert "https://" not in page and "http://" not in page  # no external request
    median = sorted(timings)[len(timings) // 2]
    assert median < 0.005, f"waiting page median {median * 1000:.2f} ms"


def test_a_waiting_page_and_a_poll_run_none_of_the_other_hooks(app, family_setup, monkeypatch):
    """The room's hook runs first: a held page or a poll pays for no rate-limit check, CSRF check
    or login check (it records nothing; the limiter's check alone was a quarter of a poll's CPU)."""
    announce(family_setup, opens_in=600)
    client = app.test_client()
    login(client)
    called = []

    def spy(hook):
        def wrapped():
            called.append(getattr(hook, "__name__", repr(hook)))
            return hook()

        return wrapped

    hooks = app.before_request_funcs[None]
    monkeypatch.setitem(app.before_request_funcs, None, [hooks[0], *(spy(hook) for hook in hooks[1:])])
    waiting = client.get(planning(family_setup))
    assert waiting.headers["X-Waiting-Room"] == "1"
    poll = client.get(f"/salle-d-attente/etat?suite={planning(family_setup)}", headers={"HX-Request": "true"})
    assert poll.headers["X-Waiting-Room"] == "1"
    assert called == []
    client.get("/mon-espace/")  # any other page goes through every hook as before
    assert len(called) == len(hooks) - 1


def test_the_ticket_is_kept_by_the_session_and_each_session_has_one(app, family_setup):
    announce(family_setup, opens_in=600)
    second = make_user(email="second@example.fr")
    subscribe(second, db.session.get(Family, family_setup["family"]))
    db.session.commit()
    first_tab, other_parent = app.test_client(), app.test_client()
    login(first_tab)
    login(other_parent, "second@example.fr")
    assert first_tab.get(planning(family_setup)).headers["X-Waiting-Room"] == "1"
    assert other_parent.get(planning(family_setup)).headers["X-Waiting-Room"] == "2"
    # a reload, another page of the planning (a new tab shares the cookie): the same place
    assert first_tab.get(planning(family_setup) + "?vue=semaine").headers["X-Waiting-Room"] == "1"
    assert first_tab.get(planning(family_setup) + "/periode").headers["X-Waiting-Room"] == "1"


def test_staff_pages_login_and_other_pages_are_never_held(app, family_setup):
    announce(family_setup, opens_in=600)
    client = app.test_client()
    login(client)
    assert "X-Waiting-Room" not in client.get(f"/famille/{family_setup['family']}").headers
    assert "X-Waiting-Room" not in client.get("/static/css/portail.css").headers
    anonymous = app.test_client()
    response = anonymous.get(planning(family_setup))
    assert response.status_code == 302 and "/connexion" in response.headers["Location"]
    agent = app.test_client()
    login(agent, "agent@example.fr")
    assert agent.get("/gestion/ouvertures").status_code == 200


def test_at_the_opening_second_the_first_in_line_goes_in_and_keeps_the_fast_path(app, family_setup):
    opening = announce(family_setup, opens_in=600, fast_path=20)
    client = app.test_client()
    login(client)
    opens_at = opening.opens_at
    with time_machine.travel(opens_at - timedelta(seconds=1), tick=False):
        assert client.get(planning(family_setup)).headers["X-Waiting-Room"] == "1"
    with time_machine.travel(opens_at, tick=False):
        response = client.get(planning(family_setup))
        assert response.status_code == 200 and "X-Waiting-Room" not in response.headers
        assert "Léa" in response.get_data(as_text=True)
    with time_machine.travel(opens_at + timedelta(minutes=19, seconds=59), tick=False):
        assert "X-Waiting-Room" not in client.get(planning(family_setup)).headers
    assert admissions(room().client) == [(1, opens_at.timestamp())]


def test_after_the_fast_path_a_parent_queues_again_at_the_end(app, family_setup, redis_client):
    opening = announce(family_setup, opens_in=600, fast_path=1)
    room().tuning = dataclasses.replace(room().tuning, initial_window=2.0)
    client = app.test_client()
    login(client)
    opens_at = opening.opens_at
    at = opens_at.timestamp()
    with time_machine.travel(opens_at - timedelta(seconds=5), tick=False):
        assert client.get(planning(family_setup)).headers["X-Waiting-Room"] == "1"
    for i in range(40):  # forty parents behind: tickets 2 to 41
        store.enter(redis_client, opening.id, at, 0, at - 4 + i / 10, TUNING)
    with time_machine.travel(opens_at, tick=False):
        assert "X-Waiting-Room" not in client.get(planning(family_setup)).headers
    with time_machine.travel(opens_at + timedelta(seconds=59), tick=False):
        assert "X-Waiting-Room" not in client.get(planning(family_setup)).headers
    with time_machine.travel(opens_at + timedelta(seconds=60), tick=False):
        response = client.get(planning(family_setup))
    # the fast path is over: a new ticket, 42, behind those not admitted yet
    assert int(redis_client.get(f"wr:{opening.id}:seq")) == 42
    cursor = int(redis_client.hget(f"wr:{opening.id}:state", "cursor"))
    assert cursor < 41 and response.headers["X-Waiting-Room"] == str(42 - cursor)


def test_a_post_held_by_the_room_records_nothing_and_says_so(app, family_setup):
    announce(family_setup, opens_in=600)
    client = app.test_client()
    login(client)
    day = next_weekday(1)
    form = cell_form(family_setup["child"], family_setup["activity"], day, action="reserve")
    response = client.post(planning(family_setup) + "/cellule", data=form)
    assert response.status_code == 200
    assert response.headers["X-Waiting-Room"] == "1"
    assert "Votre demande n'a pas été enregistrée" in html.unescape(response.get_data(as_text=True))
    assert f"url={planning(family_setup)}" in response.get_data(as_text=True)
    htmx = client.post(planning(family_setup) + "/cellule", data=form, headers={"HX-Request": "true"})
    assert htmx.headers["HX-Redirect"] == planning(family_setup)
    assert "Votre demande n'a pas été enregistrée" in html.unescape(client.get(planning(family_setup)).text)
    assert db.session.query(Request).count() == 0


def test_the_status_fragment_gives_the_place_then_sends_the_parent_in(app, family_setup):
    opening = announce(family_setup, opens_in=600)
    client = app.test_client()
    login(client)
    target = planning(family_setup)
    client.get(target)
    with time_machine.travel(opening.opens_at - timedelta(seconds=1), tick=False):
        with count_queries() as counter:
            fragment = client.get(f"/salle-d-attente/etat?suite={target}", headers={"HX-Request": "true"})
        assert counter["n"] == 0
        assert "<html" not in fragment.get_data(as_text=True)
        assert "Votre place dans la file" in fragment.get_data(as_text=True)
        assert fragment.headers["X-Waiting-Room"] == "1"
    with time_machine.travel(opening.opens_at, tick=False):
        admitted = client.get(f"/salle-d-attente/etat?suite={target}", headers={"HX-Request": "true"})
        assert admitted.headers["HX-Redirect"] == target
        # a foreign address is never followed
        foreign = client.get("/salle-d-attente/etat?suite=//evil.example/x", headers={"HX-Request": "true"})
        assert foreign.headers["HX-Redirect"] == "/famille/"


def test_a_parent_of_another_family_still_gets_404_once_admitted(app, family_setup):
    opening = announce(family_setup, opens_in=600)
    client = app.test_client()
    login(client)
    with time_machine.travel(opening.opens_at, tick=False):
        assert client.get(planning(family_setup, family_setup["other"])).status_code == 404
        assert client.get(planning(family_setup)).status_code == 200


def test_redis_down_or_stalled_lets_parents_through_and_logs_it(app, family_setup, monkeypatch):
    from portail.waiting_room import gate

    announce(family_setup, opens_in=600)

    class Broken:
        def __getattr__(self, name):
            def fail(*_args, **_kwargs):
                raise redis.exceptions.TimeoutError("Timeout reading from socket")

            return fail

    warnings = []
    monkeypatch.setattr(gate.log, "warning", lambda *args: warnings.append(args[0] % args[1:]))
    room().client = Broken()
    room().schedule_read = float("-inf")
    client = app.test_client()
    login(client)
    response = client.get(planning(family_setup))
    assert response.status_code == 200 and "X-Waiting-Room" not in response.headers
    assert "Léa" in response.get_data(as_text=True)
    # the login (the entrance line) and the planning both went through, each failure logged
    assert warnings == ["waiting room: Redis failed (Timeout reading from socket); parents go through"] * 2


def test_a_cancelled_opening_lets_parents_in(app, family_setup):
    opening = announce(family_setup, opens_in=600)
    client = app.test_client()
    login(client)
    assert client.get(planning(family_setup)).headers["X-Waiting-Room"] == "1"
    openings.cancel(opening, family_setup["agent"])
    db.session.commit()
    assert "X-Waiting-Room" not in client.get(planning(family_setup)).headers


def test_a_lost_schedule_is_read_again_from_the_database_by_a_queued_parent(app, family_setup, redis_client):
    announce(family_setup, opens_in=600)
    queued, newcomer = app.test_client(), app.test_client()
    login(queued)
    assert queued.get(planning(family_setup)).headers["X-Waiting-Room"] == "1"
    redis_client.flushall()  # Redis restarted empty
    room().schedule_read = float("-inf")
    login(newcomer)
    # without a ticket, nothing is read for the room: the parent goes through (the schedule stays lost)
    assert "X-Waiting-Room" not in newcomer.get(f"/famille/{family_setup['family']}/planning/periode").headers
    assert store.read_schedule(redis_client) is None
    room().schedule_read = float("-inf")
    assert queued.get(planning(family_setup)).headers["X-Waiting-Room"] == "1"  # a new ticket, in a new line
    assert store.read_schedule(redis_client)


# --- load shedding outside openings -----------------------------------------------------------


def test_a_saturated_process_sheds_the_booking_pages_with_503_and_retry_after(app, family_setup):
    client = app.test_client()
    login(client)
    app.config["WAITING_ROOM_SHED_INFLIGHT"] = 3
    room().meter.in_flight = 3  # three requests already in flight in this process
    try:
        response = client.get(planning(family_setup))
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "5"
        assert response.headers["X-Waiting-Room"] == "0"
        assert "Service très sollicité" in response.get_data(as_text=True)
        form = cell_form(family_setup["child"], family_setup["activity"], next_weekday(1), action="reserve")
        posted = client.post(planning(family_setup) + "/cellule", data=form)
        assert posted.status_code == 503
        assert "Votre demande n'a pas été enregistrée" in html.unescape(posted.text)
        assert db.session.query(Request).count() == 0
        # never the other pages, staff pages or the login
        assert client.get(f"/famille/{family_setup['family']}").status_code == 200
        assert app.test_client().get("/connexion").status_code == 200
    finally:
        room().meter.in_flight = 0
    assert client.get(planning(family_setup)).status_code == 200


def test_slow_answers_or_a_long_wait_before_the_app_shed_load(app, family_setup):
    client = app.test_client()
    login(client)
    app.config["WAITING_ROOM_SHED_P95"] = 2.0  # (production's default; tests run without it)
    meter = room().meter
    now = time.time()
    for _ in range(30):
        meter.samples.append((now, 3.0, True))  # answers of 3 s: above the 2 s bound
    meter.cached = None
    assert client.get(planning(family_setup)).status_code == 503
    meter.samples.clear()
    meter.cached = None
    assert client.get(planning(family_setup)).status_code == 200
    stamp = f"t={time.time() - 4:.3f}"  # nginx's X-Request-Start: waited 4 s for a worker
    assert client.get(planning(family_setup), headers={"X-Request-Start": stamp}).status_code == 503


def test_the_french_wait():
    from portail.waiting_room.gate import french_wait

    assert french_wait(20) == "moins d'une minute"
    assert french_wait(61) == "environ 2 minutes"
    assert french_wait(3700) == "environ 1 h 02"


def test_the_queue_starts_at_its_exact_second(app, family_setup):
    opening = announce(family_setup, opens_in=600, queue_for=300)
    client = app.test_client()
    login(client)
    with time_machine.travel(opening.queue_from - timedelta(seconds=1), tick=False):
        room().schedule_read = float("-inf")
        assert "X-Waiting-Room" not in client.get(planning(family_setup)).headers
    with time_machine.travel(opening.queue_from, tick=False):
        room().schedule_read = float("-inf")
        assert client.get(planning(family_setup)).headers["X-Waiting-Room"] == "1"


def test_each_process_reports_its_load_to_redis_during_an_opening(app, family_setup, redis_client):
    import os

    announce(family_setup, opens_in=600)
    client = app.test_client()
    login(client)
    client.get(f"/famille/{family_setup['family']}")  # a measured page
    client.get(planning(family_setup))
    reports = {key.decode(): value.decode() for key, value in redis_client.hgetall(store.LOAD_KEY).items()}
    [(process, report)] = reports.items()
    assert process.endswith(f":{os.getpid()}")
    busy, slots, p95, at = (float(part) for part in report.split())
    assert busy > 0 and slots == 1 and 0 < p95 < 5 and abs(at - time.time()) < 5


def test_a_poll_that_would_show_the_same_place_swaps_nothing(app, family_setup):
    """The status sits in a polite live region: re-sending the same words every few seconds would
    have a screen reader read them out again and again."""
    opening = announce(family_setup, opens_in=600)
    client = app.test_client()
    login(client)
    target = planning(family_setup)
    client.get(target)
    with time_machine.travel(opening.opens_at - timedelta(seconds=300), tick=False):
        first = client.get(f"/salle-d-attente/etat?suite={target}", headers={"HX-Request": "true"})
        shown = re.search(r"vu=([^&\"]+)", html.unescape(first.text)).group(1)
        again = client.get(f"/salle-d-attente/etat?suite={target}&vu={shown}", headers={"HX-Request": "true"})
        assert again.status_code == 204 and again.data == b"" and again.headers["X-Waiting-Room"] == "1"
    with time_machine.travel(opening.opens_at - timedelta(seconds=30), tick=False):  # polling faster now
        closer = client.get(
            f"/salle-d-attente/etat?suite={target}&vu={shown}", headers={"HX-Request": "true"}
        )
        assert closer.status_code == 200 and 'hx-trigger="every 5s"' in closer.text
    with time_machine.travel(opening.opens_at, tick=False):  # admitted: off to the planning
        admitted = client.get(
            f"/salle-d-attente/etat?suite={target}&vu={shown}", headers={"HX-Request": "true"}
        )
        assert admitted.headers["HX-Redirect"] == target


# --- the entrance line: the login form during an opening ------------------------------------------


def test_at_an_opening_visitors_queue_at_the_login_form_then_log_in_in_their_turn(
    app, family_setup, redis_client
):
    opening = announce(family_setup, opens_in=600, queue_for=300)
    entrance = f"{opening.id}:entree"
    start = opening.queue_from.timestamp()
    visitor = app.test_client()
    with time_machine.travel(opening.queue_from - timedelta(seconds=1), tick=False):
        room().schedule_read = float("-inf")
        response = visitor.get("/connexion")
        assert response.status_code == 200 and "X-Waiting-Room" not in response.headers
    with time_machine.travel(opening.queue_from, tick=False):
        room().schedule_read = float("-inf")
        for _ in range(3):  # three visitors arrived first: they go in at once (a window of 3)
            store.enter(
                redis_client, entrance, start, 0, start, dataclasses.replace(TUNING, initial_window=3)
            )
        with count_queries() as counter:
            waiting = visitor.get("/connexion")
        assert counter["n"] == 0
        assert waiting.status_code == 200 and waiting.headers["X-Waiting-Room"] == "1"
        page = html.unescape(waiting.text)
        assert "les familles se connectent au portail dans leur ordre d'arrivée" in page
        assert 'href="/connexion/agent"' in page  # agents are not held
        from tests.factories import PASSWORD

        held = visitor.post("/connexion", data={"email": "parent@example.fr", "password": PASSWORD})
        assert held.status_code == 200 and held.headers["X-Waiting-Room"] == "1"
        assert "Vous n'êtes pas encore connecté" in html.unescape(held.text)
        assert visitor.get(planning(family_setup)).status_code == 302  # not logged in
        poll = visitor.get("/salle-d-attente/etat?suite=/connexion", headers={"HX-Request": "true"})
        assert poll.headers["X-Waiting-Room"] == "1" and "Attente estimée" in html.unescape(poll.text)
    with time_machine.travel(opening.queue_from + timedelta(seconds=11), tick=False):  # one left
        poll = visitor.get("/salle-d-attente/etat?suite=/connexion", headers={"HX-Request": "true"})
        assert poll.headers["HX-Redirect"] == "/connexion"
        assert "X-Waiting-Room" not in visitor.get("/connexion").headers
        login(visitor)
        # logged in: the booking line is another line, which starts at the opening second
        assert visitor.get(planning(family_setup)).headers["X-Waiting-Room"] == "1"
    assert [ticket for ticket, _at in admissions(redis_client, entrance)] == [1, 2, 3, 4]


def test_agents_log_in_during_an_opening_without_waiting_and_parents_cannot_use_their_door(
    app, family_setup, redis_client
):
    from tests.factories import PASSWORD

    opening = announce(family_setup, opens_in=600, queue_for=300)
    start = opening.queue_from.timestamp()
    with time_machine.travel(opening.queue_from, tick=False):
        room().schedule_read = float("-inf")
        for _ in range(50):  # the first in a window of one
            store.enter(
                redis_client,
                f"{opening.id}:entree",
                start,
                0,
                start,
                dataclasses.replace(TUNING, initial_window=1),
            )
        agent = app.test_client()
        assert agent.get("/connexion").headers["X-Waiting-Room"] == "50"
        page = agent.get("/connexion/agent")
        assert page.status_code == 200 and "Connexion des agents" in page.text
        assert "X-Waiting-Room" not in page.headers
        response = agent.post("/connexion/agent", data={"email": "agent@example.fr", "password": PASSWORD})
        assert response.status_code == 302 and response.location.endswith("/gestion/")
        parent = app.test_client()
        refused = parent.post("/connexion/agent", data={"email": "parent@example.fr", "password": PASSWORD})
        assert refused.status_code == 200
        assert "réservée aux agents du service" in html.unescape(refused.text)
        assert parent.get(planning(family_setup)).status_code == 302  # not logged in
        wrong = parent.post("/connexion/agent", data={"email": "parent@example.fr", "password": "faux"})
        assert "Adresse e-mail ou mot de passe incorrect." in html.unescape(wrong.text)


def test_the_poll_slows_down_far_from_the_turn():
    from portail.waiting_room.gate import poll_every

    assert poll_every(before=600, wait=0) == 15  # the line has not started: every 15 s
    assert poll_every(before=0, wait=10) == 5  # close to the turn
    assert poll_every(before=0, wait=100) == 25
    assert poll_every(before=0, wait=3600) == 30
    # spread by ticket, the same at each look, within ±20 % (at least a second)
    paces = [poll_every(before=0, wait=100, ticket=ticket) for ticket in range(1, 200)]
    assert min(paces) >= 20 and max(paces) <= 30 and len(set(paces)) >= 8
    assert paces == [poll_every(before=0, wait=100, ticket=ticket) for ticket in range(1, 200)]
    assert {poll_every(before=0, wait=1, ticket=ticket) for ticket in range(1, 50)} <= {4, 5, 6}
