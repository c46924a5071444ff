"""The waiting room: parents queue for an announced opening, and the booking pages shed load.

Which pages: the family planning and everything under it (`GUARDED`: the planning page, a cell's
fragment, its confirmation and POST, the period form and its POST) for parents logged in — the
opening's *booking line* —, and the login form (`GET` and `POST /connexion`) for visitors not logged
in — its *entrance line*, which admits from `queue_from` instead of `opens_at` and never closes the
room by itself (gate.ENTRANCE: at 2,500 parents the logins alone would fill the machine before the
opening). Once the booking line has opened, the entrance yields to it: it admits nobody while the
booking line holds more parents back than its window (a visitor let in would only wait again there,
and their login and first pages would take the server from the parents booking — measured at 2,500
parents with both lines admitting side by side: the entrance's window grew to 50–128 while the
booking line's stayed at 10–25, and parents who had waited since the opening booked last). Staff
pages, `/connexion/agent` (staff accounts only), static files and the other pages are never held. An anonymous request for a planning page goes on to the login as before; access
rules (a parent only sees their families) apply unchanged once a parent is let through. Both lines
work as below, each with its own ticket (session keys `waiting_room` and `waiting_room_entree`) and
its own Redis keys (`wr:<id>:…` and `wr:<id>:entree:…`).

During an opening (from `queue_from` until the queue has drained after `opens_at`):

1. A logged-in parent reaching a guarded page takes a ticket: one Lua script on Redis INCRs the
   opening's counter, so tickets follow the order of arrival across every process and machine.
   The ticket is kept in the session (the signed cookie): a reload or a new tab keeps it.
2. Admission is a cursor: every ticket ≤ cursor is admitted, so parents are admitted first come,
   first served. The same script advances the cursor as far as the *window* allows: the number of
   parents in visit at once (admitted, with a guarded page in the last `WAITING_ROOM_IDLE_AFTER`
   seconds, kept in a sorted set by each of their guarded requests — or status polls — with its
   time). The first in line go in at the opening second; afterwards a parent goes in when one in
   visit has been quiet that long (self-clocked, as TCP's acknowledgements clock its window: the
   server's own pace admits the next parent). Each admitted ticket is appended with its time to a
   list (`admissions`).
3. The window follows the server (AIMD, as TCP's congestion window): each web process reports into
   Redis, every half second, its mean requests in flight over the last seconds (busy time / window,
   Little's law: exact for sync and threaded workers alike; the waiting pages count there too, not
   in the p95), its slots (requests it serves at once) and the p95 of its answer times (what the
   client waited: behind a proxy that sets `X-Request-Start`, the time queued before the app counts
   too). Once a second the script sums busy / slots over the fresh reports and takes the worst
   p95: above `WAITING_ROOM_TARGET_P95` or `..._TARGET_BUSY` the window is cut as deep as the
   excess (target / measure, between 10 % and 30 %: a passing slow second costs little), at most
   once per measuring window (`WAITING_ROOM_WINDOW`: the reports still cover the seconds before a
   cut; cutting again each second took one overshoot to the floor, measured at 1,000 parents);
   below 80 % of both, not within a measuring window of a cut, and only while the window is what
   holds parents back (more waiting than free places: an idle line banks no flood), it grows by
   10 % a second until the first cut (slow start), then by one parent a second (additive: growing
   by 5 % a second after cuts swung the p95 of 10-s windows up to 2.7 s at 2,500 parents); else
   held; between `..._MIN_WINDOW` and `..._MAX_WINDOW`. No fresh report: the window holds.
   Why a window and not a rate: an admitted parent loads the server over the half-minute of their
   visit, so a rate only shows its effect that much later. Measured at 2,500 parents with a rate
   (a token bucket whose rate the same AIMD tuned): the rate swung between 1 and 7 parents a
   second on a ~50 s cycle, and every swing up gave 10 s windows at p95 0.9–1.3 s for pages served
   at 55–70 a second, while the calm windows served 30–45 a second at p95 60–120 ms. A window
   bounds the parents in visit, and so the load, directly.
   A waiting parent's estimate divides their place by the measured pace (parents admitted per
   second, smoothed over the tunings; `WAITING_ROOM_INITIAL_RATE` before the first measure).
4. An admitted parent keeps the fast path for the opening's `fast_path_minutes` from their
   admission; after it, the next guarded page gives them a new ticket at the end of the line.
5. A waiting parent gets a light page (no database query, one Redis round trip) with their place in
   line and an estimated wait, refreshed by htmx polling `/salle-d-attente/etat` (and a meta
   refresh without JavaScript); HTTP 200 with `X-Waiting-Room: <place>`. The poll's pace follows
   the wait (gate.poll_every: 5 s near the turn, up to 30 s far from it).
6. The queue is drained when every ticket is admitted `WAITING_ROOM_DRAIN_AFTER` seconds or more
   after the opening and nobody waits at the entrance (which still feeds it): the room then closes
   for that opening.

Outside openings, the guarded pages shed load: when this process has more requests in flight than
its limit (`WAITING_ROOM_SHED_INFLIGHT`, or computed: the number of requests of the measured median
time that fit in `WAITING_ROOM_SHED_P95`), or its recent p95 is above `WAITING_ROOM_SHED_P95`, or
the request waited longer than `WAITING_ROOM_SHED_QUEUE` before reaching the app (`X-Request-Start`
set by the proxy), the answer is a 503 waiting page with `Retry-After` (`X-Waiting-Room: 0`).
A POST held by the room or shed is not recorded, and the page says so.

Redis down or stalled: the room fails open (parents go through, it is logged) and skips Redis for
`REDIS_PAUSE_AFTER_FAILURE` seconds, as the mail queue does.
"""

from flask import Flask

from portail.waiting_room import store


def admissions(redis_client, opening_id: int | None = None) -> list[tuple[int, float]]:
    """(ticket number, admitted at in epoch seconds) in the order of admission, for an opening (by
    default the one of the schedule that opened last)."""
    if opening_id is None:
        opening_id = store.latest_opening_id(redis_client)
        if opening_id is None:
            return []
    return store.admissions(redis_client, opening_id)


def init_app(app: Flask) -> None:
    """Hold the guarded pages before the login check (which reads the database) and serve the status."""
    from portail.waiting_room import gate

    gate.init_app(app)
