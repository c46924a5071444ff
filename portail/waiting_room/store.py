"""The waiting room's state in Redis: the schedule of openings, tickets, admission, load reports.

Every change of a queue is one Lua script (atomic on the Redis server, whichever web process or
machine runs it). Keys, for an opening `<id>`:

- `wr:schedule` — the openings parents may queue for (JSON, written by services.openings);
- `wr:<id>:seq` — the last ticket handed out (INCR: tickets in order of arrival);
- `wr:<id>:state` — hash: `cursor` (every ticket ≤ cursor is admitted), `rate` (parents admitted per
  second), `tokens` (the token bucket), `last` (last refill), `tuned` (last tuning), `cut` and
  `grown` (last cut, last change), `drained`;
- `wr:<id>:admitted` — list of "ticket:admitted_at" in order of admission (the benchmark's check);
- `wr:load` — hash: one field per web process, "busy slots p95 reported_at".
"""

import json
from dataclasses import dataclass

import redis

SCHEDULE_KEY = "wr:schedule"
LOAD_KEY = "wr:load"
KEY_TTL = 7 * 24 * 3600  # an opening's keys outlive it by a week, then Redis forgets them

# ARGV: now, opens_at, ticket (0: take one), tune_every, initial_rate, min_rate, max_rate,
# target_p95, target_busy, stale_after, drain_after, key TTL, cooldown.
# Returns: ticket, cursor, seq, rate (string), admitted_at of the ticket ("" if not admitted), drained.
ENTER = """
local now, opens_at, ticket = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tune_every, rate0 = tonumber(ARGV[4]), tonumber(ARGV[5])
local min_rate, max_rate = tonumber(ARGV[6]), tonumber(ARGV[7])
local target_p95, target_busy = tonumber(ARGV[8]), tonumber(ARGV[9])
local stale_after, drain_after = tonumber(ARGV[10]), tonumber(ARGV[11])
local ttl = tonumber(ARGV[12])

local cooldown = tonumber(ARGV[13])

local state = redis.call('HMGET', KEYS[2], 'cursor', 'rate', 'tokens', 'last', 'tuned', 'drained', 'cut',
  'grown')
local cursor = tonumber(state[1] or '0')
local rate = tonumber(state[2] or rate0)
local tokens = tonumber(state[3] or '0')
local last = tonumber(state[4] or '0')
local tuned = tonumber(state[5] or '0')
local drained = state[6] or '0'
local cut = tonumber(state[7] or '0')
local grown = tonumber(state[8] or '0')

if ticket == 0 and drained ~= '1' then
  ticket = redis.call('INCR', KEYS[1])
  redis.call('EXPIRE', KEYS[1], ttl)
end
local seq = tonumber(redis.call('GET', KEYS[1]) or '0')

if now >= opens_at and drained ~= '1' then
  -- Tune the rate from the web processes' reports (at most once per tune_every seconds).
  if now - tuned >= tune_every then
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
      -- The reports cover the last `cooldown` seconds (one measuring window), and the parents
      -- admitted load the server over the half-minute of their visit: a cut, then no other cut
      -- for a window (or one overshoot would take the rate to the floor); a growth of one parent
      -- a second at most once a window, and never within a window of a change.
      if p95 > target_p95 or load > target_busy then
        if now - cut >= cooldown then
          rate = math.max(min_rate, rate * 0.7)
          cut, grown = now, now
        end
      elseif p95 < 0.6 * target_p95 and load < 0.8 * target_busy and now - grown >= cooldown then
        rate = math.min(max_rate, rate + 1)
        grown = now
      end
    end
    tuned = now
  end
  -- Refill the bucket (at most one tuning period's worth, at least one parent) and admit.
  local size = math.max(1, rate * tune_every)
  if last < opens_at then tokens = 1 end  -- the first parent in line goes in at the opening second
  tokens = math.min(size, tokens + rate * math.max(0, now - math.max(last, opens_at)))
  local waiting = seq - cursor
  local admit = math.min(math.floor(tokens), waiting)
  for t = cursor + 1, cursor + admit do
    redis.call('RPUSH', KEYS[3], t .. ':' .. ARGV[1])
  end
  if admit > 0 then redis.call('EXPIRE', KEYS[3], ttl) end
  cursor = cursor + admit
  tokens = tokens - admit
  last = now
  if cursor >= seq and now >= opens_at + drain_after then drained = '1' end
  redis.call('HSET', KEYS[2], 'cursor', cursor, 'rate', tostring(rate), 'tokens', tostring(tokens),
    'last', ARGV[1], 'tuned', tostring(tuned), 'drained', drained, 'cut', tostring(cut),
    'grown', tostring(grown))
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
    initial_rate: float = 5.0
    min_rate: float = 1.0
    max_rate: float = 200.0
    target_p95: float = 0.3
    target_busy: float = 0.85
    stale_after: float = 5.0
    drain_after: float = 120.0
    cooldown: float = 5.0  # seconds between two cuts, or after a change before a growth (one window)


def _keys(opening_id: int | str) -> list[str]:
    return [f"wr:{opening_id}:seq", f"wr:{opening_id}:state", f"wr:{opening_id}:admitted", LOAD_KEY]


def enter(
    client: redis.Redis, opening_id: int | str, opens_at: float, ticket: int, now: float, tuning: Tuning
) -> Place:
    """Take a ticket (when `ticket` is 0), admit whom the rate allows from `opens_at`, and say where
    `ticket` stands. `opening_id` names the queue: an opening's id (its booking line) or, for its
    entrance line, the id followed by ":entree"."""
    values = client.eval(
        ENTER,
        4,
        *_keys(opening_id),
        repr(now),
        repr(opens_at),
        ticket,
        tuning.tune_every,
        tuning.initial_rate,
        tuning.min_rate,
        tuning.max_rate,
        tuning.target_p95,
        tuning.target_busy,
        tuning.stale_after,
        tuning.drain_after,
        KEY_TTL,
        tuning.cooldown,
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
