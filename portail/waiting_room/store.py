"""The waiting room's state in Redis: the schedule of openings, tickets, admission, load reports.

Every change of a queue is one Lua script (atomic on the Redis server, whichever web process or
machine runs it). Keys, for an opening `<id>`:

- `wr:schedule` — the openings parents may queue for (JSON, written by services.openings);
- `wr:<id>:seq` — the last ticket handed out (INCR: tickets in order of arrival);
- `wr:<id>:state` — hash: `cursor` (every ticket ≤ cursor is admitted), `window` (parents in visit at
  most), `rate` (the measured pace, parents admitted per second), `tuned` and `counted` (last tuning,
  and the cursor then), `cut` (last cut), `drained`;
- `wr:<id>:admitted` — list of "ticket:admitted_at" in order of admission (the benchmark's check);
- `wr:<id>:visiting` — sorted set: the admitted tickets in visit, scored by their last guarded request;
- `wr:load` — hash: one field per web process, "busy slots p95 reported_at".
"""

import json
from dataclasses import dataclass

import redis

SCHEDULE_KEY = "wr:schedule"
LOAD_KEY = "wr:load"
KEY_TTL = 7 * 24 * 3600  # an opening's keys outlive it by a week, then Redis forgets them

# ARGV: now, opens_at, ticket (0: take one), tune_every, initial_window, min_window, max_window,
# target_p95, target_busy, stale_after, drain_after, key TTL, cooldown, idle_after, initial_rate,
# and for a line linked to another (KEYS[6], KEYS[7]: that line's seq and state) the link: "yields"
# (the entrance, to the booking line) and that line's opening second, or "fed" (the booking line, fed
# by the entrance).
# Returns: ticket, cursor, seq, rate (string), admitted_at of the ticket ("" if not admitted), drained.
ENTER = """
local now, opens_at, ticket = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tune_every, window0 = tonumber(ARGV[4]), tonumber(ARGV[5])
local min_window, max_window = tonumber(ARGV[6]), tonumber(ARGV[7])
local target_p95, target_busy = tonumber(ARGV[8]), tonumber(ARGV[9])
local stale_after, drain_after = tonumber(ARGV[10]), tonumber(ARGV[11])
local ttl, cooldown = tonumber(ARGV[12]), tonumber(ARGV[13])
local idle_after, rate0 = tonumber(ARGV[14]), tonumber(ARGV[15])

-- A line that yields (the entrance) admits nobody while the line it leads to (the booking line,
-- once open) holds more parents back than its window lets in: a parent let in there would only wait
-- again, and their login would take the server from those already booking. A line that is fed
-- (the booking line) does not close while parents still wait in the line that feeds it.
local link = ARGV[16] or ''
local held, feeding = false, 0
if link == 'yields' and now >= tonumber(ARGV[17]) then
  local next_seq = tonumber(redis.call('GET', KEYS[6]) or '0')
  local next_state = redis.call('HMGET', KEYS[7], 'cursor', 'window', 'drained')
  local next_waiting = next_seq - tonumber(next_state[1] or '0')
  held = next_state[3] ~= '1' and next_waiting > math.floor(tonumber(next_state[2] or '0'))
elseif link == 'fed' then
  feeding = tonumber(redis.call('GET', KEYS[6]) or '0') - tonumber(redis.call('HGET', KEYS[7], 'cursor') or '0')
end

local state = redis.call('HMGET', KEYS[2], 'cursor', 'window', 'rate', 'tuned', 'drained', 'cut',
  'counted')
local cursor = tonumber(state[1] or '0')
local window = tonumber(state[2] or window0)
local rate = tonumber(state[3] or rate0)
local tuned = tonumber(state[4] or '0')
local drained = state[5] or '0'
local cut = tonumber(state[6] or '0')
local counted = tonumber(state[7] or '0')

if ticket == 0 and drained ~= '1' then
  ticket = redis.call('INCR', KEYS[1])
  redis.call('EXPIRE', KEYS[1], ttl)
end
local seq = tonumber(redis.call('GET', KEYS[1]) or '0')

if now >= opens_at and drained ~= '1' then
  -- Parents in visit: admitted, with a guarded request in the last idle_after seconds.
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', '(' .. (now - idle_after))
  if ticket > 0 and ticket <= cursor then redis.call('ZADD', KEYS[5], now, ticket) end
  local visiting = redis.call('ZCARD', KEYS[5])
  if now - tuned >= tune_every then
    -- Tune the window from the web processes' reports (at most once per tune_every seconds).
    local busy, slots, p95, fresh = 0, 0, 0, 0
    local rows = redis.call('HGETALL', KEYS[4])
    for i = 1, #rows, 2 do
      local b, s, p, at = string.match(rows[i + 1], '^(%S+) (%S+) (%S+) (%S+)$')
      if at and now - tonumber(at) <= stale_after then
        busy = busy + tonumber(b)
        slots = slots + tonumber(s)
        if tonumber(p) > p95 then p95 = tonumber(p) end
        fresh = fresh + 1
      elseif (not at) or now - tonumber(at) > 60 then
        redis.call('HDEL', KEYS[4], rows[i])
      end
    end
    if fresh > 0 and slots > 0 then
      local load = busy / slots
      -- The reports cover the last `cooldown` seconds: a cut, then no other cut nor growth for
      -- that long. A cut is as deep as the excess (30 % at most, 10 % at least: a passing slow
      -- second, a collection or a burst of logins, costs little). A growth adds 10 % a second until
      -- the first cut (slow start), then one parent a second, and only while the window is what
      -- holds parents back (more waiting than free places): an idle line does not bank a flood.
      if p95 > target_p95 or load > target_busy then
        if now - cut >= cooldown then
          local excess = target_busy / math.max(load, 1e-9)
          if p95 > 0 then excess = math.min(excess, target_p95 / p95) end
          window = math.max(min_window, window * math.max(0.7, math.min(0.9, excess)))
          cut = now
        end
      elseif p95 < 0.8 * target_p95 and load < 0.8 * target_busy and now - cut >= cooldown
          and seq - cursor > math.floor(window) - visiting and not held then
        if cut == 0 then window = window * 1.1 else window = window + 1 end
        window = math.min(max_window, window)
      end
    end
    -- The pace parents go in at (what a waiting parent's estimate divides by), smoothed.
    -- (not while held: the estimate keeps the pace of the line when it moves)
    if tuned >= opens_at and now > tuned and not held then
      rate = 0.7 * rate + 0.3 * (cursor - counted) / (now - tuned)
    end
    counted, tuned = cursor, now
  end
  local admit = math.max(0, math.min(math.floor(window) - visiting, seq - cursor))
  if held then admit = 0 end
  for t = cursor + 1, cursor + admit do
    redis.call('RPUSH', KEYS[3], t .. ':' .. ARGV[1])
    redis.call('ZADD', KEYS[5], now, t)
  end
  if admit > 0 then redis.call('EXPIRE', KEYS[3], ttl) end
  redis.call('EXPIRE', KEYS[5], ttl)
  cursor = cursor + admit
  if cursor >= seq and feeding <= 0 and now >= opens_at + drain_after then drained = '1' end
  redis.call('HSET', KEYS[2], 'cursor', cursor, 'window', tostring(window), 'rate', tostring(rate),
    'tuned', tostring(tuned), 'drained', drained, 'cut', tostring(cut), 'counted', counted)
  redis.call('EXPIRE', KEYS[2], ttl)
end

local admitted_at = ''
if ticket > 0 and ticket <= cursor then
  local entry = redis.call('LINDEX', KEYS[3], ticket - 1)
  if entry then admitted_at = string.match(entry, ':(.+)$') end
end
return {ticket, cursor, seq, tostring(rate), admitted_at, drained}
"""


@dataclass(frozen=True)
class Place:
    """Where a ticket stands: `ahead` parents before it (0 once admitted)."""

    ticket: int
    cursor: int
    seq: int
    rate: float
    admitted_at: float | None
    drained: bool

    @property
    def admitted(self) -> bool:
        return self.admitted_at is not None

    @property
    def position(self) -> int:
        """The place in line: 1 is the next parent admitted; 0 once admitted."""
        return 0 if self.admitted else max(1, self.ticket - self.cursor)


@dataclass(frozen=True)
class Tuning:
    """The admission controller's settings (config.py's WAITING_ROOM_*)."""

    tune_every: float = 1.0
    initial_window: float = 20.0  # parents in visit at the opening, before the first measures
    min_window: float = 2.0
    max_window: float = 2000.0
    target_p95: float = 0.3
    target_busy: float = 0.85
    stale_after: float = 5.0
    drain_after: float = 120.0
    cooldown: float = 5.0  # seconds after a cut before another cut or a growth (one window)
    idle_after: float = 10.0  # seconds after their last guarded request an admitted parent counts
    initial_rate: float = 5.0  # parents a second a wait is estimated with, before the first measures


def _keys(opening_id: int | str) -> list[str]:
    prefix = f"wr:{opening_id}"
    return [f"{prefix}:seq", f"{prefix}:state", f"{prefix}:admitted", LOAD_KEY, f"{prefix}:visiting"]


@dataclass(frozen=True)
class Link:
    """A line linked to another: the entrance `yields` to the booking line (which opens at
    `opens_at`); the booking line is `fed` by the entrance."""

    kind: str  # "yields" or "fed"
    queue: int | str
    opens_at: float = 0.0


def enter(
    client: redis.Redis,
    opening_id: int | str,
    opens_at: float,
    ticket: int,
    now: float,
    tuning: Tuning,
    link: Link | None = None,
) -> Place:
    """Take a ticket (when `ticket` is 0), admit whom the window allows from `opens_at` (a guarded
    request of an admitted `ticket` counts it in visit again), and say where `ticket` stands.
    `opening_id` names the queue: an opening's id (its booking line) or, for its entrance line, the
    id followed by ":entree". A line that `yields` admits nobody while the other, open, holds more
    parents back than its window; a `fed` line does not close while the other has parents waiting."""
    keys = _keys(opening_id) + (_keys(link.queue)[:2] if link else [])
    values = client.eval(
        ENTER,
        len(keys),
        *keys,
        repr(now),
        repr(opens_at),
        ticket,
        tuning.tune_every,
        tuning.initial_window,
        tuning.min_window,
        tuning.max_window,
        tuning.target_p95,
        tuning.target_busy,
        tuning.stale_after,
        tuning.drain_after,
        KEY_TTL,
        tuning.cooldown,
        tuning.idle_after,
        tuning.initial_rate,
        *([link.kind, repr(link.opens_at)] if link else []),
    )
    ticket, cursor, seq, rate, admitted_at, drained = (_text(value) for value in values)
    return Place(
        ticket=int(ticket),
        cursor=int(cursor),
        seq=int(seq),
        rate=float(rate),
        admitted_at=float(admitted_at) if admitted_at else None,
        drained=drained == "1",
    )


@dataclass(frozen=True)
class Figures:
    """A line as staff and the benchmark watch it."""

    tickets: int  # handed out
    admitted: int
    visiting: int  # admitted, with a guarded request since the time asked for
    window: float | None  # (None before the line's opening)
    rate: float | None  # the measured pace, parents a second


def figures(client: redis.Redis, opening_id: int | str, since: float) -> Figures:
    """A line's figures (`opening_id` names the queue as for `enter`), in one round trip."""
    seq, state, _admitted, _load, visiting = _keys(opening_id)
    pipe = client.pipeline(transaction=False)
    pipe.get(seq)
    pipe.hmget(state, "cursor", "window", "rate")
    pipe.zcount(visiting, since, "+inf")
    tickets, (cursor, window, rate), in_visit = pipe.execute()
    return Figures(
        tickets=int(tickets or 0),
        admitted=int(cursor or 0),
        visiting=int(in_visit),
        window=float(window) if window is not None else None,
        rate=float(rate) if rate is not None else None,
    )


def admissions(client: redis.Redis, opening_id: int | str) -> list[tuple[int, float]]:
    """(ticket, admitted_at) of an opening, in the order they were admitted."""
    entries = client.lrange(f"wr:{opening_id}:admitted", 0, -1)
    pairs = (_text(entry).split(":", 1) for entry in entries)
    return [(int(ticket), float(at)) for ticket, at in pairs]


def latest_opening_id(client: redis.Redis) -> int | None:
    """The opening of the schedule that opened last (or opens next, when none has opened)."""
    schedule = read_schedule(client)
    if not schedule:
        return None
    return max(schedule, key=lambda item: item["opens_at"])["id"]


def report_load(client: redis.Redis, process: str, busy: float, slots: int, p95: float, now: float) -> None:
    """A web process's measure of its recent work (mean requests in flight, its slots, p95 in s)."""
    client.hset(LOAD_KEY, process, f"{busy:.3f} {slots} {p95:.4f} {now:.3f}")


def publish_schedule(client: redis.Redis, openings: list[dict]) -> None:
    """Write the openings parents may queue for: dicts of id, queue_from, opens_at (epoch
    seconds) and fast_path (seconds)."""
    client.set(SCHEDULE_KEY, json.dumps(openings))


def read_schedule(client: redis.Redis) -> list[dict] | None:
    """The published openings, or None when Redis has none (restarted empty: publish them again)."""
    raw = client.get(SCHEDULE_KEY)
    return None if raw is None else json.loads(raw)


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
