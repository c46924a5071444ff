"""The waiting room in the request cycle: the hook before the login check, the load meter, the
waiting page and its status fragment (see the package's docstring for the algorithm)."""

import logging
import math
import os
import socket
import threading
import time
from collections import deque
from datetime import UTC, datetime

import redis
from flask import Blueprint, Flask, Response, current_app, flash, g, request, session, url_for
from flask_login import AnonymousUserMixin

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
SESSION_KEY = "waiting_room"
HEADER = "X-Waiting-Room"
UNSAVED = "Votre demande n'a pas été enregistrée : la réservation est très demandée. Vous pourrez la faire à votre tour."
SCHEDULE_REFRESH = 1.0  # seconds a process keeps the schedule it read from Redis
REPORT_EVERY = 0.5  # seconds between two load reports of a process

bp = Blueprint("waiting_room", __name__, url_prefix="/salle-d-attente")


class Meter:
    """This process's recent work: requests in flight now, and the answer times of the last window."""

    def __init__(self, window: float = 5.0):
        self.window = window
        self.in_flight = 0
        self.samples: deque[tuple[float, float]] = deque()
        self.lock = threading.Lock()
        self.cached: tuple[float, float, float, float, int] | None = None

    def start(self) -> None:
        with self.lock:
            self.in_flight += 1

    def stop(self, duration: float | None, now: float) -> None:
        with self.lock:
            self.in_flight -= 1
            if duration is not None:
                self.samples.append((now, duration))

    def snapshot(self, now: float) -> tuple[float, float, float, int]:
        """(mean requests in flight, p95, median, samples) over the window, recomputed at most every
        REPORT_EVERY seconds."""
        with self.lock:
            if self.cached and now - self.cached[0] < REPORT_EVERY:
                return self.cached[1:]
            while self.samples and self.samples[0][0] < now - self.window:
                self.samples.popleft()
            durations = sorted(duration for _end, duration in self.samples)
        busy = sum(min(duration, self.window) for duration in durations) / self.window
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
            initial_rate=config["WAITING_ROOM_INITIAL_RATE"],
            min_rate=config["WAITING_ROOM_MIN_RATE"],
            max_rate=config["WAITING_ROOM_MAX_RATE"],
            target_p95=config["WAITING_ROOM_TARGET_P95"],
            target_busy=config["WAITING_ROOM_TARGET_BUSY"],
            drain_after=config["WAITING_ROOM_DRAIN_AFTER"],
        )
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

    def enter(self, opening: dict, ticket: int, now: float) -> store.Place:
        place = store.enter(self.redis(), opening["id"], opening["opens_at"], ticket, now, self.tuning)
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
    app.before_request(_before)
    app.teardown_request(_teardown)


def _before():
    """Measure the request; answer the status fragment and hold the guarded pages without reading
    the database (the login check that follows reads the account)."""
    if request.endpoint == "static" or request.endpoint is None:
        return None
    current = room()
    current.meter.start()
    g.waiting_room_started = time.perf_counter()
    if not current.enabled or "_user_id" not in session:
        return None  # anonymous: the login check sends them to the login page
    if request.endpoint == STATUS_ENDPOINT:
        return status()
    if request.endpoint not in GUARDED:
        return None
    return _hold(current)


def _teardown(_error=None) -> None:
    started = g.pop("waiting_room_started", None)
    if started is None:
        return
    current = room()
    now = time.time()
    # the waiting pages are not the work the room measures
    measured = None if g.get("waiting_room_held") else time.perf_counter() - started
    current.meter.stop(measured, now)
    if g.get("waiting_room_opening") and not current.resting():
        try:
            current.report(now)
        except redis.exceptions.RedisError as error:
            current.failed(error)


def _hold(current: Room):
    """None to let the request through, else the waiting page."""
    now = time.time()
    if current.resting():
        return None
    try:
        kept = session.get(SESSION_KEY) or {}
        opening = current.current(now, queued=bool(kept))
        if opening is None:
            return _shed(current, now)
        g.waiting_room_opening = True
        ticket = kept.get("t", 0) if kept.get("o") == opening["id"] else 0
        place = current.enter(opening, ticket, now)
        if place.admitted and now >= place.admitted_at + opening["fast_path"]:
            place = current.enter(opening, 0, now)  # the fast path is over: back in line
    except redis.exceptions.RedisError as error:
        current.failed(error)
        return None
    if place.drained:
        return None
    if place.ticket != ticket:
        session[SESSION_KEY] = {"o": opening["id"], "t": place.ticket}
    if place.admitted:
        return None
    return _waiting(place, opening, now, 200)


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
    queued = _queued_for(now)
    if queued is not None and queued > config["WAITING_ROOM_SHED_QUEUE"]:
        reasons.append(f"queued {queued:.3f} s before the app")
    if not reasons:
        return None
    log.info("waiting room: shedding %s %s (%s)", request.method, request.path, "; ".join(reasons))
    return _waiting(None, None, now, 503)


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


def _planning_url() -> str:
    family_id = (request.view_args or {}).get("family_id")
    return url_for("family.planning_page", family_id=family_id)


def _waiting(place: store.Place | None, opening: dict | None, now: float, code: int) -> Response:
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
        response.headers["HX-Redirect"] = _planning_url()
    else:
        target = _planning_url() if unsaved else request.full_path.rstrip("?")
        context = _status_context(place, opening, now, target)
        html = current_app.jinja_env.get_template("waiting_room/page.html").render(
            unsaved=UNSAVED if unsaved else None,
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


def _status_context(place: store.Place | None, opening: dict | None, now: float, target: str) -> dict:
    """What the page and the fragment say: place, wait, opening time, when to look again."""
    if place is None or opening is None:
        refresh = current_app.config["WAITING_ROOM_RETRY_AFTER"]
        return {"position": 0, "wait": None, "opens": None, "refresh": refresh, "target": target, "shown": ""}
    before = max(0.0, opening["opens_at"] - now)
    opens = french_datetime(datetime.fromtimestamp(opening["opens_at"], UTC))
    refresh = 15 if before > 60 else 5
    return {
        "position": place.position,
        "wait": french_wait(place.position / max(place.rate, 0.1)),
        "opens": opens if before > 0 else None,
        "refresh": refresh,
        "target": target,
        # what the fragment shows that may change (the place, the polling pace, before/after the
        # opening): a poll that would show the same gets 204 and no swap
        "shown": f"{place.position}-{refresh}-{int(before > 0)}",
    }


def french_wait(seconds: float) -> str:
    """An estimated wait in French words."""
    if seconds < 60:
        return "moins d'une minute"
    minutes = math.ceil(seconds / 60)
    if minutes < 60:
        return f"environ {minutes} minute{'s' if minutes > 1 else ''}"
    return f"environ {minutes // 60} h {minutes % 60:02d}"


def _local_target() -> str | None:
    """The guarded page a status request names (`suite`), or None (no open redirect)."""
    target = request.args.get("suite", "")
    if not target.startswith("/") or target.startswith("//"):
        return None
    try:
        endpoint, _args = current_app.url_map.bind("localhost").match(target.partition("?")[0])
    except Exception:  # noqa: BLE001  (werkzeug's NotFound, MethodNotAllowed, RequestRedirect)
        return None
    return target if endpoint in GUARDED else None


@bp.get("/etat")
def status():
    """The waiting page's status fragment (htmx polls it): the place in line, or off to the page."""
    current = room()
    target = _local_target() or url_for("family.home")
    now = time.time()
    g.waiting_room_held = True
    g._login_user = AnonymousUserMixin()  # (as on the waiting page: no account read)
    kept = session.get(SESSION_KEY) or {}
    place = opening = None
    if not current.resting():
        try:
            opening = current.current(now, queued=bool(kept))
            if opening is not None and kept.get("o") == opening["id"]:
                place = current.enter(opening, kept["t"], now)
        except redis.exceptions.RedisError as error:
            current.failed(error)
    if place is None or place.admitted or place.drained:
        response = Response(status=200 if is_htmx() else 303)
        response.headers["HX-Redirect" if is_htmx() else "Location"] = target
        response.headers[HEADER] = "0"
        response.headers["Cache-Control"] = "no-store"
        return response
    context = _status_context(place, opening, now, target)
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
