"""The waiting lists' exactly-once guarantees through the real thing (issue 19): an offer not confirmed
in time is passed on once, whatever runs the minute's job (two RQ workers and two schedulers on a real
redis-server, an SMTP sink), a worker killed in the middle of a change (SIGKILL while PostgreSQL holds
it on a lock), threads running it at the same moment, or joining the same full day at once; and a
place freed on the planning reaches the first in line by mail within seconds.

The line of the tests: a day of an automatic activity with two places, reserved by Anna and Basile;
Chloe, David and Emma wait in that order. Anna's absence freed a place three hours ago: it was offered
to Chloe for two hours, so her offer has expired when the test starts (built with `now` in the past).
"""

import email
import email.policy
import time
from collections import Counter
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import NamedTuple

import pytest
import redis
import sqlalchemy as sa
from flask import current_app
from rq import Queue, Worker
from rq.job import Job

from portail import bookings
from portail.bookings import facts as booking_facts
from portail.bookings import transitions
from portail.extensions import db
from portail.models import (
    Activity,
    ActivityDay,
    Booking,
    BookingState,
    Child,
    OutboxMessage,
    OutboxStatus,
    Request,
    RequestEvent,
    RequestKind,
    User,
    ValidationMode,
    WaitingEntry,
    utcnow,
)
from portail.services.outbox import RELAY_EVERY, SUBJECTS, commit
from portail.urls import public_url
from tests.conftest import live_app
from tests.factories import (
    PASSWORD,
    cell_form,
    enrolled_child,
    make_activity,
    make_user,
    next_weekday,
    subscribe,
)
from tests.support import (
    at_first_write_together,
    kill_process,
    mails_settled,
    start,
    wait_for,
)

CAPACITY = 2
RESERVED = ("Anna", "Basile")  # the day's places
LINE = ("Chloe", "David", "Emma")  # its line, in order
HOLD = 120  # minutes a place offered is held
JOB = "portail.jobs.waiting_lists"
WAITING_MAILS = ("waiting_offer", "waiting_ended")
OFFERED_EVENT = "Une place s'est libérée"  # (how the history's line of a place offered)
TEMPLATE_OF = {SUBJECTS[template]: template for template in WAITING_MAILS}


# --- the line ------------------------------------------------------------------------------------


class Line(NamedTuple):
    """A full day and its waiting list: the activity, the day, each child's id and family by name."""

    activity_id: int
    day: date
    children: dict[str, int]
    families: dict[str, int]
    parents: dict[str, int]


def line_activity(capacity: int = CAPACITY, **changes) -> Activity:
    """An activity decided at once, with a capacity and a waiting list (open every weekday)."""
    return make_activity(
        name="Accueil de loisirs",
        validation_mode=ValidationMode.AUTOMATIC,
        capacity=capacity,
        waiting_list=True,
        offer_hold_minutes=HOLD,
        **changes,
    )


def family_of(activity: Activity, name: str) -> tuple:
    """A family with `name`'s child enrolled and one parent (name@example.fr) following it."""
    family, child = enrolled_child(activity, name)
    parent = make_user(email=f"{name.lower()}@example.fr", first_name=name)
    subscribe(parent, family)
    return family, child, parent


def ask(line: Line, name: str, kind: RequestKind, now: datetime, **options):
    """`name`'s parent asks the day (`waiting`: a full day's line joined)."""
    return bookings.submit(
        line.families[name],
        db.session.get(User, line.parents[name]),
        db.session.get(Child, line.children[name]),
        db.session.get(Activity, line.activity_id),
        kind,
        [line.day],
        now,
        current_app.config["SCHOOL_ZONE"],
        **options,
    )


def full_day(activity: Activity, names: tuple, now: datetime) -> Line:
    """Each of `names` asks the day in turn, a second apart (the first `capacity` reserve it, the
    others join its line)."""
    line = Line(activity.id, next_weekday(3), {}, {}, {})
    for index, name in enumerate(names):
        family, child, parent = family_of(activity, name)
        line.children[name], line.families[name], line.parents[name] = child.id, family.id, parent.id
        ask(line, name, RequestKind.RESERVATION, now + timedelta(seconds=index), waiting=True)
    return line


def sent_already() -> None:
    """The mails so far (receipts, the first offer) count as sent: the tests count what follows."""
    db.session.execute(sa.update(OutboxMessage).values(status=OutboxStatus.SENT))


def expired_offer() -> Line:
    """The tests' line (module docstring), committed: Chloe's offer ended an hour ago."""
    past = utcnow() - timedelta(hours=3)
    line = full_day(line_activity(), RESERVED + LINE, past)
    ask(line, "Anna", RequestKind.ABSENCE, past + timedelta(minutes=1))  # the place offered to Chloe
    sent_already()
    commit()
    return line


def expire(line: Line, name: str) -> None:
    """The place offered to `name` reaches its end (committed)."""
    db.session.execute(
        sa.update(WaitingEntry)
        .where(WaitingEntry.child_id == line.children[name], WaitingEntry.ended_at.is_(None))
        .values(offer_expires_at=utcnow() - timedelta(minutes=1))
    )
    commit()


def snapshot(line: Line) -> dict:
    """The day as committed in the database, read on a connection of its own: each child's day and
    entry, the places counted, the history's waiting-list events and the waiting-list mails queued."""
    names = {child_id: name for name, child_id in line.children.items()}
    of_day = (Booking.activity_id == line.activity_id, Booking.day == line.day)
    with db.engine.connect() as connection:
        days = {
            names[child_id]: (state.name, reason)
            for child_id, state, reason in connection.execute(
                sa.select(Booking.child_id, Booking.state, Booking.reason).where(*of_day)
            )
        }
        entries = {
            names[child_id]: (end.name if end else "OPEN", offered is not None)
            for child_id, end, offered in connection.execute(
                sa.select(WaitingEntry.child_id, WaitingEntry.end, WaitingEntry.offered_at).where(
                    WaitingEntry.activity_id == line.activity_id, WaitingEntry.day == line.day
                )
            )
        }
        booked = connection.scalar(
            sa.select(ActivityDay.booked).where(
                ActivityDay.activity_id == line.activity_id, ActivityDay.day == line.day
            )
        )
        summaries = connection.execute(
            sa.select(Request.child_id, RequestEvent.summary)
            .join(Request, Request.id == RequestEvent.request_id)
            .where(Request.activity_id == line.activity_id)
        )
        events = Counter(
            (names[child_id], label)
            for child_id, summary in summaries
            for label, start in (("offered", OFFERED_EVENT), ("lapsed", transitions.OFFER_LAPSED))
            if summary.startswith(start)
        )
        mails = Counter(
            (template, recipient.split("@")[0].title())
            for template, recipient in connection.execute(
                sa.select(OutboxMessage.template, OutboxMessage.recipient).where(
                    OutboxMessage.template.in_(WAITING_MAILS)
                )
            )
        )
    return {"days": days, "entries": entries, "booked": booked, "events": events, "mails": mails}


OFFER_LAPSED = ("REFUSED", transitions.OFFER_LAPSED)
# The line as built: Chloe offered the place Anna freed.
BEFORE = {
    "days": {
        "Anna": ("ABSENT", None),
        "Basile": ("RESERVED", None),
        "Chloe": ("OFFERED", None),
        "David": ("WAITING", None),
        "Emma": ("WAITING", None),
    },
    "entries": {"Chloe": ("OPEN", True), "David": ("OPEN", False), "Emma": ("OPEN", False)},
    "booked": CAPACITY,
    "events": Counter({("Chloe", "offered"): 1}),
    "mails": Counter({("waiting_offer", "Chloe"): 1}),
}
# Chloe's offer expired and passed on to David, once.
AFTER_CHLOE = {
    "days": BEFORE["days"] | {"Chloe": OFFER_LAPSED, "David": ("OFFERED", None)},
    "entries": BEFORE["entries"] | {"Chloe": ("EXPIRED", True), "David": ("OPEN", True)},
    "booked": CAPACITY,
    "events": BEFORE["events"] + Counter({("Chloe", "lapsed"): 1, ("David", "offered"): 1}),
    "mails": BEFORE["mails"] + Counter({("waiting_ended", "Chloe"): 1, ("waiting_offer", "David"): 1}),
}
# Then David's expired too, passed on to Emma, once.
AFTER_DAVID = {
    "days": AFTER_CHLOE["days"] | {"David": OFFER_LAPSED, "Emma": ("OFFERED", None)},
    "entries": AFTER_CHLOE["entries"] | {"David": ("EXPIRED", True), "Emma": ("OPEN", True)},
    "booked": CAPACITY,
    "events": AFTER_CHLOE["events"] + Counter({("David", "lapsed"): 1, ("Emma", "offered"): 1}),
    "mails": AFTER_CHLOE["mails"] + Counter({("waiting_ended", "David"): 1, ("waiting_offer", "Emma"): 1}),
}


# --- the real services ---------------------------------------------------------------------------


@pytest.fixture
def live_pg(pg_url, redis_server, smtp):
    """`live` on PostgreSQL: the app and its worker and scheduler processes share the test database."""
    yield from live_app(pg_url, redis_server, smtp, drop=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def served(request):
    """The live app on each database (SQLite: `live`; PostgreSQL: `live_pg`)."""
    return request.getfixturevalue("live" if request.param == "sqlite" else "live_pg")


def rq_queue(app) -> Queue:
    return Queue(app.config["RQ_QUEUE"], connection=redis.Redis.from_url(app.config["REDIS_URL"]))


def finished_runs(app) -> list[dict]:
    """What the waiting_lists jobs that have finished returned (RQ keeps them 500 s)."""
    queue = rq_queue(app)
    try:
        jobs = Job.fetch_many(queue.finished_job_registry.get_job_ids(), connection=queue.connection)
        return [job.return_value() for job in jobs if job is not None and job.func_name == JOB]
    finally:
        queue.connection.close()


def enqueue_runs(app, count: int) -> None:
    """`count` runs of the minute's job enqueued at once, as the schedulers do."""
    queue = rq_queue(app)
    try:
        for _ in range(count):
            queue.enqueue(JOB)
    finally:
        queue.connection.close()


def failed_runs(app) -> int:
    queue = rq_queue(app)
    try:
        jobs = Job.fetch_many(queue.failed_job_registry.get_job_ids(), connection=queue.connection)
        return sum(1 for job in jobs if job is not None and job.func_name == JOB)
    finally:
        queue.connection.close()


def total(runs: list[dict]) -> Counter:
    return sum((Counter(run) for run in runs), Counter())


def mail_texts(smtp) -> list[tuple[str, str, str]]:
    """The waiting-list mails the SMTP sink received, one per addressee: (template, address, text)."""
    found = []
    for envelope in smtp.messages:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        # (the subject: "<town> — <the template's subject>")
        if (template := TEMPLATE_OF.get(str(message["Subject"]).split(" — ", 1)[-1])) is not None:
            text = message.get_body(("plain",)).get_content()
            found += [(template, address, text) for address in envelope.rcpt_tos]
    return found


def mailed(smtp) -> Counter:
    """The waiting-list mails the SMTP sink received: (template, addressee's name)."""
    return Counter((template, address.split("@")[0].title()) for template, address, _text in mail_texts(smtp))


def runs_done(app, count: int) -> bool:
    """At least `count` runs of the job finished, and every mail they queued has gone."""
    return len(finished_runs(app)) >= count and mails_settled(app)


# --- 1. two workers and two schedulers -----------------------------------------------------------


@pytest.mark.integration
def test_two_workers_and_two_schedulers_pass_each_expired_offer_on_once(served, redis_server, smtp):
    """Each scheduler enqueues the minute's job at its start, the two workers take the two copies:
    Chloe's expired offer ends once (one mail to her, her day refused), David is offered the place once
    (one mail), the places counted stay at the capacity. Then David's offer expires too and two more
    runs are enqueued at once: the same for him and Emma."""
    redis_server.start()
    line = expired_offer()
    assert snapshot(line) == BEFORE
    for role in ("worker", "worker", "scheduler", "scheduler"):
        start(served, role)
    wait_for(lambda: runs_done(served, 2), timeout=60)
    runs = finished_runs(served)
    assert total(runs)["expired"] == 1, runs  # one run passed the offer on, the other found it gone
    assert snapshot(line) == AFTER_CHLOE
    assert mailed(smtp) == Counter({("waiting_ended", "Chloe"): 1, ("waiting_offer", "David"): 1})

    expire(line, "David")
    enqueue_runs(served, 2)  # (the schedulers' next minute, without waiting for it)
    wait_for(lambda: runs_done(served, len(runs) + 2), timeout=60)
    runs = finished_runs(served)
    assert total(runs)["expired"] == 2, runs
    assert total(runs)["offered"] == total(runs)["closed"] == 0
    assert snapshot(line) == AFTER_DAVID
    assert mailed(smtp) == AFTER_DAVID["mails"] - BEFORE["mails"]
    assert failed_runs(served) == 0


# --- 2. a worker killed in the middle of a change ------------------------------------------------


def blocked_on_counter() -> int | None:
    """The PostgreSQL backend that waits for a lock to give a place back (release_places), if any."""
    with db.engine.connect() as connection:
        return connection.scalar(
            sa.text(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock' AND query LIKE 'UPDATE activity_day%'"
            )
        )


def backend_gone(pid: int) -> bool:
    with db.engine.connect() as connection:
        return not connection.scalar(
            sa.text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
        )


def entry_locked(line: Line, name: str) -> bool:
    """Whether a transaction has written `name`'s entry and not ended (its row lock is held)."""
    with db.engine.connect() as connection:
        try:
            connection.execute(
                sa.select(WaitingEntry.id)
                .where(WaitingEntry.child_id == line.children[name])
                .with_for_update(nowait=True)
            )
        except sa.exc.OperationalError as error:
            assert getattr(error.orig, "sqlstate", None) == "55P03", error  # lock_not_available
            return True
        finally:
            connection.rollback()
    return False


@pytest.mark.integration
def test_a_worker_killed_mid_change_leaves_the_line_whole_then_the_next_run_passes_the_offer_once(
    live_pg, redis_server, smtp
):
    """The job's transaction has ended Chloe's entry, refused her day and queued her mail, and waits
    (on a lock the test holds on the day's counter) to give her place back: the worker is killed
    (SIGKILL) there. Nothing of it was committed, nothing is mailed; a new worker then passes the offer
    on exactly once."""
    app = live_pg
    redis_server.start()
    line = expired_offer()
    worker = start(app, "worker")
    with db.engine.connect() as holder:
        holder.execute(
            sa.select(ActivityDay.booked)
            .where(ActivityDay.activity_id == line.activity_id, ActivityDay.day == line.day)
            .with_for_update()
        )
        enqueue_runs(app, 1)
        pid = wait_for(blocked_on_counter, timeout=30)
        assert entry_locked(line, "Chloe")  # (the job is past her entry's UPDATE)
        assert snapshot(line) == BEFORE  # (and none of it is seen)
        kill_process(worker)
        holder.rollback()  # the killed job's backend goes on, finds its client gone, rolls back
    wait_for(lambda: backend_gone(pid), timeout=30)
    assert not entry_locked(line, "Chloe")
    assert snapshot(line) == BEFORE  # Chloe's offer still open, her day OFFERED, nothing queued
    assert mailed(smtp) == Counter()

    start(app, "worker")
    start(app, "worker")
    start(app, "scheduler")  # the minute's job at its start, and the relay
    enqueue_runs(app, 1)  # (and a second run at the same moment)
    wait_for(lambda: runs_done(app, 2), timeout=60)
    assert total(finished_runs(app))["expired"] == 1
    assert snapshot(line) == AFTER_CHLOE
    assert mailed(smtp) == Counter({("waiting_ended", "Chloe"): 1, ("waiting_offer", "David"): 1})


class Killed(BaseException):
    """The process dying (not an Exception: nothing on the way catches it)."""


@pytest.mark.both_dbs
def test_a_run_that_dies_mid_change_leaves_the_line_as_it_was_then_the_next_passes_it_on_once(
    app, monkeypatch
):
    """The same crash inside one process: the run dies when it gives Chloe's place back, after ending
    her entry, refusing her day and queuing her mail; its transaction rolled back (as the worker's
    session is removed after each job) leaves the line as it was. The next run passes the offer on;
    a third finds nothing to do."""
    line = expired_offer()

    def die(*_args, **_kwargs):
        # (in this transaction, Chloe's entry is ended and her mail queued)
        assert db.session.scalar(
            sa.select(WaitingEntry.end).where(WaitingEntry.child_id == line.children["Chloe"])
        )
        assert db.session.scalar(sa.select(sa.func.count()).where(OutboxMessage.template == "waiting_ended"))
        raise Killed

    monkeypatch.setattr(transitions, "release_places", die)
    with pytest.raises(Killed):
        bookings.tend_lines(utcnow())
    db.session.remove()
    assert snapshot(line) == BEFORE
    monkeypatch.undo()
    assert bookings.tend_lines(utcnow()) == {"expired": 1, "closed": 0, "offered": 0}
    assert snapshot(line) == AFTER_CHLOE
    assert bookings.tend_lines(utcnow()) == {"expired": 0, "closed": 0, "offered": 0}
    assert snapshot(line) == AFTER_CHLOE


# --- 3. threads at the same moment ---------------------------------------------------------------


def at_once(app, calls: list[Callable]) -> list:
    """Each call in a thread of its own (its own app context, session and connection), every one held
    at its first write until all have reached theirs (or 10 s): what each returned or raised."""
    results: list = [None] * len(calls)

    def run(index: int) -> None:
        with app.app_context():
            try:
                results[index] = calls[index]()
            except Exception as error:  # noqa: BLE001 - reported by the caller's assertion
                results[index] = error
            finally:
                db.session.remove()

    at_first_write_together([lambda index=index: run(index) for index in range(len(calls))], timeout=10)
    return results


@pytest.mark.both_dbs
def test_runs_at_the_same_moment_pass_each_expired_offer_on_once(app):
    """Four runs of the minute's job read Chloe's expired offer and reach its UPDATE together: one
    ends it and offers David the place, the others find it ended."""
    line = expired_offer()
    now = utcnow()
    results = at_once(app, [lambda: bookings.tend_lines(now)] * 4)
    assert sorted(results, key=str) == [{"expired": 0, "closed": 0, "offered": 0}] * 3 + [
        {"expired": 1, "closed": 0, "offered": 0}
    ], results
    assert snapshot(line) == AFTER_CHLOE
    expire(line, "David")
    results = at_once(app, [lambda: bookings.tend_lines(utcnow())] * 4)
    assert total(results)["expired"] == 1, results
    assert snapshot(line) == AFTER_DAVID


JOINERS = ("Felix", "Gabin", "Hugo", "Ines", "Jade", "Louis")


@pytest.mark.both_dbs
@pytest.mark.parametrize("limit", [None, 3])
def test_joins_at_the_same_moment_get_distinct_ranks_in_the_order_of_the_line(app, limit):
    """Six families join the line of the same full day at the same moment (held at their first write
    until all have read the day): ranks 1..n, all distinct, in the line's order (its key, then id);
    with a maximum of 3, exactly 3 join and the others' day is refused "liste d'attente pleine"."""
    now = utcnow()
    activity = line_activity(capacity=1, waiting_list_max=limit)
    line = full_day(activity, ("Anna",), now)
    for name in JOINERS:
        family, child, parent = family_of(activity, name)
        line.children[name], line.families[name], line.parents[name] = child.id, family.id, parent.id
    commit()
    assert snapshot(line)["days"] == {"Anna": ("RESERVED", None)} and snapshot(line)["booked"] == 1

    def join(name: str) -> Callable:
        return lambda: bookings.with_retries(
            lambda: ask(line, name, RequestKind.RESERVATION, now, waiting=True).days[line.day]
        )

    results = at_once(app, [join(name) for name in JOINERS])
    assert not [result for result in results if isinstance(result, Exception)], results
    joined = limit or len(JOINERS)
    order = db.session.scalars(
        sa.select(WaitingEntry.child_id)
        .where(WaitingEntry.activity_id == line.activity_id, WaitingEntry.ended_at.is_(None))
        .order_by(WaitingEntry.queue_key, WaitingEntry.id)
    ).all()
    assert len(order) == len(set(order)) == joined
    ranks = {
        child_id: rank
        for child_id, _activity, _day, _state, _reason, rank, _until in db.session.execute(
            booking_facts.BOOKINGS,
            {
                "ids": list(line.children.values()),
                "activities": [line.activity_id],
                "start": line.day,
                "end": line.day,
            },
        )
        if rank is not None
    }
    assert [ranks[child_id] for child_id in order] == list(range(1, joined + 1))
    days = snapshot(line)["days"]
    assert Counter(days.values()) == Counter(
        {("RESERVED", None): 1, ("WAITING", None): joined}
        | ({("REFUSED", transitions.FULL_LINE): len(JOINERS) - joined} if limit else {})
    )
    # each family was told what it got: in line, or refused because the line is full
    assert Counter(result for result in results) == Counter(
        {(BookingState.WAITING, None): joined}
        | ({(BookingState.REFUSED, transitions.FULL_LINE): len(JOINERS) - joined} if limit else {})
    )
    assert snapshot(line)["booked"] == 1


# --- 4. a place freed on the planning, offered by mail within seconds ----------------------------


@pytest.mark.integration
def test_an_absence_on_the_planning_offers_the_place_to_the_first_in_line_within_seconds(
    live, redis_server, smtp
):
    """Anna declares her absence on the planning (the cell's POST): Chloe, first in line, has the mail
    of the place held for her within a relay period, with the time until when it is hers and the link
    to her request on the public address."""
    redis_server.start()
    now = utcnow()
    line = full_day(line_activity(capacity=1), ("Anna", "Chloe", "David"), now)
    sent_already()
    commit()
    start(live, "worker")
    start(live, "scheduler")
    client = redis.Redis.from_url(live.config["REDIS_URL"])
    wait_for(lambda: Worker.all(connection=client) and mails_settled(live), timeout=30)
    client.close()
    browser = live.test_client()
    assert (
        browser.post("/connexion", data={"email": "anna@example.fr", "password": PASSWORD}).status_code == 302
    )
    activity = db.session.get(Activity, line.activity_id)
    anna = db.session.get(Child, line.children["Anna"])
    clicked = time.monotonic()
    answer = browser.post(
        f"/famille/{line.families['Anna']}/planning/cellule",
        data=cell_form(anna, activity, line.day, "absence"),
        headers={"HX-Request": "true"},
    )
    assert answer.status_code == 200
    wait_for(lambda: mailed(smtp)[("waiting_offer", "Chloe")], timeout=2 * RELAY_EVERY, interval=0.05)
    # (queued by the click's transaction and handed to the worker at its commit: well within the
    # relay's period, which would send it had Redis missed the enqueue; ~0.2 s here)
    assert time.monotonic() - clicked < RELAY_EVERY
    wait_for(lambda: mails_settled(live), timeout=30)
    assert mailed(smtp) == Counter({("waiting_offer", "Chloe"): 1})
    [text] = [text for template, _address, text in mail_texts(smtp) if template == "waiting_offer"]
    assert "Enfant : Chloe" in text and "La place vous est réservée jusqu'au" in text
    chloe = db.session.scalar(sa.select(Request.id).where(Request.child_id == line.children["Chloe"]))
    assert f"Votre demande : {public_url('account.request_history', request_id=chloe)}" in text
    assert snapshot(line)["days"]["Chloe"] == ("OFFERED", None) and snapshot(line)["booked"] == 1
