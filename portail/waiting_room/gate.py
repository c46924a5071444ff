"""The waiting room in the request cycle: the hook before the login check, the load meter, the
waiting page and its status fragment (see the package's docstring for the algorithm)."""

import dataclasses
import logging
import math
import os
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime

import redis
from flask import Blueprint, Flask, Response, current_app, flash, g, request, session, url_for
from flask_login import AnonymousUserMixin

from portail.access import public
from portail.formatting import french_datetime
from portail.htmx import is_htmx
from portail.waiting_room import store

log = logging.getLogger(__name__)

GUARDED = frozenset(
    {
        "family.planning_page",
        "family.planning_cell",
        "family.planning_confirm",
        "family.planning_act",
        "family.planning_period",
    }
)
STATUS_ENDPOINT = "waiting_room.status"
HEADER = "X-Waiting-Room"
UNSAVED = "Votre demande n'a pas été enregistrée : la réservation est très demandée. Vous pourrez la faire à votre tour."
SCHEDULE_REFRESH = 1.0  # seconds a process keeps the schedule it read from Redis
UNSAVED_LOGIN = "Vous n'êtes pas encore connecté : le portail fait entrer les familles dans leur ordre d'arrivée. Vous pourrez vous connecter à votre tour."
REPORT_EVERY = 0.5  # seconds between two load reports of a process

bp = Blueprint("waiting_room", __name__, url_prefix="/salle-d-attente")


@dataclass(frozen=True)
class Line:
    """One of an opening's two lines: its pages, its Redis queue, where its ticket is kept, when it
    starts admitting, and whether its emptying closes the room."""

    endpoints: frozenset[str]
    session_key: str
    key_suffix: str  # after the opening's id in the Redis keys
    starts: str  # the schedule's field: admission starts at that second
    drains: bool


# The booking pages, for parents logged in: admitted from the opening second.
BOOKING = Line(GUARDED, "waiting_room", "", "opens_at", True)
# The login form, for visitors not logged in: admitted from the start of the queue, at the rate the
# server sustains (at 2,500 parents the logins alone would fill the machine); never closes the room
# by itself (late visitors still come through it until the booking line has drained). Agents log in
# at auth.staff_login, which is not held and refuses parents' accounts.
ENTRANCE = Line(frozenset({"auth.login"}), "waiting_room_entree", ":entree", "queue_from", False)
NEVER = 1e12  # (a drain time for the entrance line: never)


class Meter:
    """This process's recent work: requests in flight now, and the answer times of the last window."""

    def __init__(self, window: float = 5.0):
        self.window = window
        self.in_flight = 0
        self.samples: deque[tuple[float, float, bool]] = deque()
        self.lock = threading.Lock()
        self.cached: tuple[float, float, float, float, int] | None = None

    def start(self) -> None:
        with self.lock:
            self.in_flight += 1

    def stop(self, duration: float, now: float, timed: bool = True) -> None:
        """A request ended: its time counts in the busy time; in the p95 only if `timed` (the
        waiting pages are load, not the answer times the room keeps low)."""
        with self.lock:
            self.in_flight -= 1
            self.samples.append((now, duration, timed))

    def snapshot(self, now: float) -> tuple[float, float, float, int]:
        """(mean requests in flight, p95, median, samples) over the window, recomputed at most every
        REPORT_EVERY seconds."""
        with self.lock:
            if self.cached and now - self.cached[0] < REPORT_EVERY:
                return self.cached[1:]
            while self.samples and self.samples[0][0] < now - self.window:
                self.samples.popleft()
            busy = sum(min(duration, self.window) for _end, duration, _timed in self.samples) / self.window
            durations = sorted(duration for _end, duration, timed in self.samples if timed)
        count = len(durations)
        p95 = durations[int(0.95 * (count - 1))] if count else 0.0
        median = durations[count // 2] if count else 0.0
        with self.lock:
            self.cached = (now, busy, p95, median, count)
        return busy, p95, median, count


class Room:
    """A process's view of the room: its Redis connection, the cached schedule, its meter."""

    def __init__(self, app: Flask):
        config = app.config
        self.enabled = config["WAITING_ROOM_ENABLED"]
        self.tuning = store.Tuning(
            tune_every=config["WAITING_ROOM_TUNE_EVERY"],
            initial_window=config["WAITING_ROOM_INITIAL_WINDOW"],
            min_window=config["WAITING_ROOM_MIN_WINDOW"],
            max_window=config["WAITING_ROOM_MAX_WINDOW"],
            target_p95=config["WAITING_ROOM_TARGET_P95"],
            target_busy=config["WAITING_ROOM_TARGET_BUSY"],
            drain_after=config["WAITING_ROOM_DRAIN_AFTER"],
            cooldown=config["WAITING_ROOM_WINDOW"],
            idle_after=config["WAITING_ROOM_IDLE_AFTER"],
            initial_rate=config["WAITING_ROOM_INITIAL_RATE"],
        )
        self.entrance_tuning = dataclasses.replace(self.tuning, drain_after=NEVER)
        self.slots = config["WAITING_ROOM_PROCESS_SLOTS"]
        self.meter = Meter(config["WAITING_ROOM_WINDOW"])
        self.client: redis.Redis | None = None
        self.schedule: list[dict] = []
        self.schedule_read = -math.inf
        self.drained: set[int] = set()
        self.down_until = 0.0
        self.reported = 0.0

    def redis(self) -> redis.Redis:
        """A connection of its own with short timeouts (a stalled Redis holds a page half a second at
        most), or the app's (the embedded or fake Redis of development and tests)."""
        if self.client is None:
            url = current_app.config.get("REDIS_URL")
            if url:
                timeout = current_app.config["WAITING_ROOM_REDIS_TIMEOUT"]
                self.client = redis.Redis.from_url(
                    url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=None
                )
            else:
                from portail.queue import get_redis

                self.client = get_redis()
        return self.client

    def resting(self) -> bool:
        return time.monotonic() < self.down_until

    def failed(self, error: Exception) -> None:
        log.warning("waiting room: Redis failed (%s); parents go through", error)
        self.down_until = time.monotonic() + current_app.config["REDIS_PAUSE_AFTER_FAILURE"]

    def openings(self, now: float, queued: bool) -> list[dict]:
        """The schedule, from memory (SCHEDULE_REFRESH), else Redis. Redis without one (restarted
        empty) while this parent holds a ticket: read from the database and published again (one
        query, once); without a ticket, none (no query on the pages outside openings)."""
        if now - self.schedule_read < SCHEDULE_REFRESH:
            return self.schedule
        schedule = store.read_schedule(self.redis())
        if schedule is None and not queued:
            schedule = []
        elif schedule is None:
            from portail.services import openings

            schedule = openings.schedule(datetime.fromtimestamp(now, UTC))
            store.publish_schedule(self.redis(), schedule)
        self.schedule, self.schedule_read = schedule, now
        return schedule

    def current(self, now: float, queued: bool = False) -> dict | None:
        """The opening parents queue for now: in its window and not drained (the earliest first)."""
        live = [
            item
            for item in self.openings(now, queued)
            if item["queue_from"] <= now and item["id"] not in self.drained
        ]
        return min(live, key=lambda item: item["opens_at"]) if live else None

    def enter(self, opening: dict, ticket: int, now: float, line: Line = BOOKING) -> store.Place:
        tuning = self.tuning if line.drains else self.entrance_tuning
        queue = f"{opening['id']}{line.key_suffix}"
        # the entrance yields to the booking line, which the entrance feeds (see store.ENTER)
        if line.drains:
            link = store.Link("fed", f"{opening['id']}{ENTRANCE.key_suffix}")
        else:
            link = store.Link("yields", opening["id"], opening["opens_at"])
        place = store.enter(self.redis(), queue, opening[line.starts], ticket, now, tuning, link)
        if place.drained:
            self.drained.add(opening["id"])
        return place

    def report(self, now: float) -> None:
        """Tell Redis this process's load, at most every REPORT_EVERY seconds."""
        if now - self.reported < REPORT_EVERY:
            return
        self.reported = now
        busy, p95, _median, _count = self.meter.snapshot(now)
        # (the process id is read here: gunicorn --preload builds the app before forking its workers)
        process = f"{socket.gethostname()}:{os.getpid()}"
        store.report_load(self.redis(), process, busy, self.slots, p95, now)


def room() -> Room:
    return current_app.extensions["waiting_room"]


def init_app(app: Flask) -> None:
    app.extensions["waiting_room"] = Room(app)
    app.register_blueprint(bp)
    # First of the app's hooks: a waiting page or a poll needs none of the others (it records
    # nothing: no CSRF check, no rate limit — the limiter's check alone was a quarter of a poll's CPU).
    app.before_request_funcs.setdefault(None, []).insert(0, _before)
    app.teardown_request(_teardown)


def _before():
    """Measure the request; answer the status fragment and hold the guarded pages without reading
    the database (the login check that follows reads the account)."""
    if request.endpoint == "static" or request.endpoint is None:
        return None
    current = room()
    current.meter.start()
    g.waiting_room_started = time.perf_counter()
    g.waiting_room_queued = max(0.0, _queued_for(time.time()) or 0.0)
    if not current.enabled:
        return None
    if request.endpoint == STATUS_ENDPOINT:
        return status()
    logged_in = "_user_id" in session
    if logged_in and request.endpoint in BOOKING.endpoints:
        return _hold(current, BOOKING)
    if not logged_in and request.endpoint in ENTRANCE.endpoints:
        return _hold(current, ENTRANCE)
    return None  # (anonymous on a page of the family: the login check sends them to the login page)


def _teardown(_error=None) -> None:
    started = g.pop("waiting_room_started", None)
    if started is None:
        return
    current = room()
    now = time.time()
    # The waiting pages are not the work the room measures. A request's time is what its client
    # waited: in the app, and before it in the proxy's and the server's queues (X-Request-Start).
    queued = g.pop("waiting_room_queued", 0.0)
    current.meter.stop(time.perf_counter() - started + queued, now, timed=not g.get("waiting_room_held"))
    if g.get("waiting_room_opening") and not current.resting():
        try:
            current.report(now)
        except redis.exceptions.RedisError as error:
            current.failed(error)


def _hold(current: Room, line: Line):
    """None to let the request through, else the waiting page."""
    now = time.time()
    if current.resting():
        return None
    try:
        kept = session.get(line.session_key) or {}
        opening = current.current(now, queued=bool(kept))
        if opening is None:
            return _shed(current, now) if line is BOOKING else None
        g.waiting_room_opening = True
        ticket = kept.get("t", 0) if kept.get("o") == opening["id"] else 0
        place = current.enter(opening, ticket, now, line)
        if place.admitted and now >= place.admitted_at + opening["fast_path"]:
            place = current.enter(opening, 0, now, line)  # the fast path is over: back in line
    except redis.exceptions.RedisError as error:
        current.failed(error)
        return None
    if place.drained:
        return None
    if place.ticket != ticket:
        session[line.session_key] = {"o": opening["id"], "t": place.ticket}
    if place.admitted:
        return None
    return _waiting(place, opening, now, 200, line)


def _shed(current: Room, now: float):
    """The 503 waiting page when this process is saturated; None when it is not."""
    config = current_app.config
    busy, p95, median, count = current.meter.snapshot(now)
    bound = config["WAITING_ROOM_SHED_P95"]
    limit = config["WAITING_ROOM_SHED_INFLIGHT"] or max(2, int(bound / max(median, 0.005)))
    reasons = []
    if current.meter.in_flight > limit:
        reasons.append(f"{current.meter.in_flight} requests in flight > {limit}")
    if count >= 20 and p95 > bound:
        reasons.append(f"p95 {p95:.3f} s > {bound} s")
    queued = g.waiting_room_queued  # (read from X-Request-Start by _before)
    if queued > config["WAITING_ROOM_SHED_QUEUE"]:
        reasons.append(f"queued {queued:.3f} s before the app")
    if not reasons:
        return None
    log.info("waiting room: shedding %s %s (%s)", request.method, request.path, "; ".join(reasons))
    return _waiting(None, None, now, 503, BOOKING)


def _queued_for(now: float) -> float | None:
    """How long the request waited before the app, from the proxy's `X-Request-Start: t=<seconds>`
    (nginx: `proxy_set_header X-Request-Start "t=${msec}";`)."""
    raw = request.headers.get("X-Request-Start", "").removeprefix("t=")
    try:
        started = float(raw)
    except ValueError:
        return None
    if started > 1e11:  # milliseconds or microseconds
        started /= 1000 if started < 1e14 else 1_000_000
    return now - started


def _landing(line: Line) -> str:
    """Where a held POST sends the parent back: the planning, or the login page."""
    if line is ENTRANCE:
        return url_for("auth.login")
    family_id = (request.view_args or {}).get("family_id")
    return url_for("family.planning_page", family_id=family_id)


def _waiting(place: store.Place | None, opening: dict | None, now: float, code: int, line: Line) -> Response:
    """The waiting page, or for htmx a redirect to it (a fragment in a cell would not do)."""
    g.waiting_room_held = True
    # Nothing below may load the account: the security headers ask Flask-Login whether someone is
    # logged in, which would read it. No-store is set here instead.
    g._login_user = AnonymousUserMixin()
    unsaved = request.method == "POST"
    position = place.position if place else 0
    retry = current_app.config["WAITING_ROOM_RETRY_AFTER"]
    if is_htmx():
        if unsaved:
            flash(UNSAVED, "error")
        # (a fragment's request: the browser goes to the planning, which is the waiting page)
        response = Response(status=code)
        response.headers["HX-Redirect"] = _landing(line)
    else:
        target = _landing(line) if unsaved else request.full_path.rstrip("?")
        context = _status_context(place, opening, now, target, line)
        html = current_app.jinja_env.get_template("waiting_room/page.html").render(
            unsaved=(UNSAVED if line is BOOKING else UNSAVED_LOGIN) if unsaved else None,
            shed=place is None,
            retry=retry,
            town_name=current_app.config["TOWN_NAME"],
            messages=_flashes(),
            **context,
        )
        response = Response(html, status=code, mimetype="text/html")
    response.headers[HEADER] = str(position)
    response.headers["Cache-Control"] = "no-store"
    if code == 503:
        response.headers["Retry-After"] = str(retry)
    return response


def _flashes() -> list[tuple[str, str]]:
    return session.pop("_flashes", []) if "_flashes" in session else []


def _status_context(
    place: store.Place | None, opening: dict | None, now: float, target: str, line: Line = BOOKING
) -> dict:
    """What the page and the fragment say: place, wait, opening time, when to look again."""
    entrance = line is ENTRANCE
    if place is None or opening is None:
        refresh = current_app.config["WAITING_ROOM_RETRY_AFTER"]
        return {
            "position": 0,
            "wait": None,
            "opens": None,
            "refresh": refresh,
            "target": target,
            "shown": "",
            "entrance": entrance,
        }
    before = max(0.0, opening[line.starts] - now)
    opens = french_datetime(datetime.fromtimestamp(opening["opens_at"], UTC))
    refresh = poll_every(before, place.position / max(place.rate, 0.1), place.ticket)
    return {
        "position": place.position,
        "wait": french_wait(place.position / max(place.rate, 0.1)),
        "opens": opens if before > 0 or entrance else None,
        "refresh": refresh,
        "target": target,
        "entrance": entrance,
        # what the fragment shows that may change (the place, the polling pace, before/after the
        # opening): a poll that would show the same gets 204 and no swap
        "shown": f"{place.position}-{refresh}-{int(before > 0)}",
    }


def poll_every(before: float, wait: float, ticket: int | None = None) -> int:
    """Seconds between two looks at the place: 5 near the turn, up to 30 when it is far (a parent
    1,000th in line at 10 a second looks every 25 s: 2,500 parents ask a few hundred times a second,
    not 500), 15 until the line starts moving. With a ticket, spread by up to ±20 % (at least 1 s),
    the same for a ticket at each look: parents who arrived together do not all ask in the same
    second (measured: bursts of 1,000 polls in 5 s at 2,500 parents), and a poll that has nothing
    new to say still changes nothing (its pace is part of what the fragment shows)."""
    base = 15 if before > 60 else min(30, max(5, wait / 4))
    if ticket is None:
        return int(base)
    spread = max(1.0, base * 0.2) * ((ticket * 0.6180339887) % 1 * 2 - 1)
    return max(4, round(base + spread))


def french_wait(seconds: float) -> str:
    """An estimated wait in French words."""
    if seconds < 60:
        return "moins d'une minute"
    minutes = math.ceil(seconds / 60)
    if minutes < 60:
        return f"environ {minutes} minute{'s' if minutes > 1 else ''}"
    return f"environ {minutes // 60} h {minutes % 60:02d}"


def _local_target() -> tuple[str, Line] | None:
    """The held page a status request names (`suite`) and its line, or None (no open redirect)."""
    target = request.args.get("suite", "")
    if not target.startswith("/") or target.startswith("//"):
        return None
    try:
        endpoint, _args = current_app.url_map.bind("localhost").match(target.partition("?")[0])
    except Exception:  # noqa: BLE001  (werkzeug's NotFound, MethodNotAllowed, RequestRedirect)
        return None
    for line in (BOOKING, ENTRANCE):
        if endpoint in line.endpoints:
            return target, line
    return None


@bp.get("/etat")
@public  # (visitors waiting to log in poll it too; it reads nothing but the session and Redis)
def status():
    """The waiting page's status fragment (htmx polls it): the place in line, or off to the page."""
    current = room()
    target, line = _local_target() or (url_for("family.home"), BOOKING)
    now = time.time()
    g.waiting_room_held = True
    g._login_user = AnonymousUserMixin()  # (as on the waiting page: no account read)
    kept = session.get(line.session_key) or {}
    place = opening = None
    if not current.resting():
        try:
            opening = current.current(now, queued=bool(kept))
            if opening is not None and kept.get("o") == opening["id"]:
                place = current.enter(opening, kept["t"], now, line)
        except redis.exceptions.RedisError as error:
            current.failed(error)
    if place is None or place.admitted or place.drained:
        response = Response(status=200 if is_htmx() else 303)
        response.headers["HX-Redirect" if is_htmx() else "Location"] = target
        response.headers[HEADER] = "0"
        response.headers["Cache-Control"] = "no-store"
        return response
    context = _status_context(place, opening, now, target, line)
    if is_htmx() and request.args.get("vu") == context["shown"]:
        # Nothing new to say: no swap, so the live region is not read out again every few seconds
        # (the polling element stays and asks again).
        response = Response(status=204)
    else:
        html = current_app.jinja_env.get_template("waiting_room/_status.html").render(**context)
        response = Response(html, mimetype="text/html")
    response.headers[HEADER] = str(place.position)
    response.headers["Cache-Control"] = "no-store"
    return response
