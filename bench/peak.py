"""Opening-day benchmark (issue 15): N parents book a capacity-limited holiday centre at its opening.

    .venv/bin/pip install -r bench/requirements.txt      # locust (a bench dependency only)
    make peak PARENTS=250                                # or: .venv/bin/python bench/peak.py --parents 250

Options: --parents N (250; 1000 and 2500 are the issue's other levels), --ramp 60 (seconds to
start them all), --families 5000, --capacity (places a day; default 2/5 of the parents), --gunicorn
auto|conf|baseline (auto: `gunicorn -c gunicorn.conf.py` when the repository has one, else the
baseline `--workers 4` sync), --database-url (or PEAK_DATABASE_URL; default
postgresql+psycopg://portail:portail@localhost/portail_peak — the database of that name is
created, and dropped at the end), --hello-seconds 10, --max-minutes 12, --clients 1 (processes of
the load generator), --client-nice -10 (its nice value). A run takes the town's build (~1–2 min),
the ramp, the opening and the mails' drain.

What it does, on PostgreSQL and the production configuration (PORTAIL_ENV=production):
1. builds a town: 5,000 families (8,000 children), every child booked at the canteen from the
   start of the school year (> 500,000 booking rows), the holiday centre with automatic validation
   and a capacity, every child enrolled; N parent accounts, one per family (the password hashed
   once and the hash reused: argon2 is slow on purpose);
2. starts redis-server on a free port, an SMTP sink (aiosmtpd) that keeps the receipts, gunicorn,
   one RQ worker and the scheduler (`python worker.py worker|scheduler`) — the README's commands,
   each at its systemd unit's `Nice=` (the worker and the scheduler at 10) — and, unless `--proxy none`, nginx with deploy/nginx/portail.conf in front (TLS, static files)
   and the waiting room's one-process gunicorn (portail-room.service's command);
3. announces the opening (`portail.services.openings.announce`) when that module exists; the
   opening is at the end of the ramp, the queue from the start;
4. runs bench/peak_locustfile.py headless (each parent once through the morning: see that file),
   then the "hello" route (`/sante`, the health check: no database, session or template) as fast
   as the same server answers, for the ceiling;
5. waits for the outbox to drain, checks the database, stops everything (Ctrl-C included) and
   drops the database.

It prints: per endpoint the requests, failures and p50 / p95 / p99 / max (ms), waiting pages under
"WAIT …"; failures; the spread of every real page and POST (what admitted parents got) and of the
waiting pages, as the load generator measured them and as nginx logged them (from the request's
first byte to the answer's last: the server's side, without the load generator's own delays nor the
TLS handshake of a new connection; nginx does not log the static files); the mix's throughput (mean over the run, without the waiting pages, and the best
10 s) and the hello route's, and their ratio; per day of the holiday week the places booked
(reservations in the database and the day's counter) against the capacity, and any overbooking;
the requests created in the database against those the booking POSTs' answers announced (lost or
unannounced requests); the receipts in the outbox against the mails the SMTP sink received (each
request's receipt exactly once) and how long the outbox took to drain after the run; the
admission order against the ticket order (`portail.waiting_room.admissions`) when the waiting
room exists.

The production session cookie is `Secure`: the simulated browsers send it to http://127.0.0.1 as
real browsers do on loopback (LoopbackSecureCookies in the locustfile), so the configuration is the
production one, unchanged. The load generator runs on the same machine as the server (as in the
issue's measures): on a 2-core machine it takes a share of the CPU (~2 ms a request: TLS and
gevent in Python), which the hello ceiling includes too. So that its own delays count less in the
answer times it measures, it runs at nice -10 (it gets a core as soon as an answer arrives; the
server gets what it leaves): measured at 2,500 parents, at nice 0 it timed the status polls at p95
220 ms when nginx logged 31 ms; at nice -10, 70 ms against 26 ms. One process still takes the
answers of a burst in turn; two (`--clients 2`) took both cores in bursts, and nginx's own p95 of
the admitted pages went from 346 to 669 ms: one is the default.
"""

import argparse
import asyncio
import csv
import email
import email.policy
import importlib.util
import json
import logging
import os
import re
import resource
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis
import sqlalchemy as sa
from aiosmtpd.controller import Controller

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from portail import create_app  # noqa: E402
from portail.bookings import rules as booking_rules  # noqa: E402
from portail.demo import activities as demo_activities  # noqa: E402
from portail.extensions import db  # noqa: E402
from portail.models import (  # noqa: E402
    ActivityDay,
    Booking,
    BookingState,
    Child,
    Enrolment,
    Family,
    Guardian,
    OutboxMessage,
    OutboxStatus,
    Request,
    Role,
    Subscription,
    User,
    ValidationMode,
    utcnow,
)
from portail.services import passwords  # noqa: E402

PASSWORD = "ouverture-centre-de-loisirs-2026"
DEFAULT_URL = "postgresql+psycopg://portail:portail@localhost/portail_peak"
ZONE = "C"
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
HELLO_PATH = "/sante"  # the health check: no database, no session, no template
MIN_BOOKINGS = 500_000
LOCUST_CPU: dict[str, float] = {}  # CPU seconds of each locust run
WEEK = 5  # days of the holiday week on sale


def options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parents", type=int, default=250)
    parser.add_argument("--families", type=int, default=5000)
    parser.add_argument("--ramp", type=float, default=60.0, help="seconds to start every parent")
    parser.add_argument("--capacity", type=int, help="places a day (default: 2/5 of the parents)")
    parser.add_argument("--gunicorn", choices=("auto", "conf", "baseline"), default="auto")
    parser.add_argument(
        "--proxy",
        choices=("nginx", "none"),
        default="nginx" if NGINX else "none",
        help="nginx: the parents reach gunicorn through deploy/nginx/portail.conf (TLS, static files)",
    )
    parser.add_argument("--database-url", default=os.environ.get("PEAK_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--hello-seconds", type=float, default=10.0)
    parser.add_argument("--max-minutes", type=float, default=12.0, help="cap on the scenario's run")
    parser.add_argument("--think", type=float, nargs=2, default=(1.0, 3.0), metavar=("MIN", "MAX"))
    parser.add_argument("--keep-logs", action="store_true", help="keep the logs and CSV files")
    parser.add_argument("--timeout", type=float, default=60.0, help="a client gives up after (s)")
    parser.add_argument(
        "--clients",
        type=int,
        default=1,
        help="processes of the load generator (locust --processes; 1: one process, no master)",
    )
    parser.add_argument(
        "--client-nice",
        type=int,
        default=-10,
        help="the load generator's nice value (-10: it measures without waiting for a core; needs root, else 0)",
    )
    args = parser.parse_args()
    if args.parents > args.families:
        parser.error("one family per parent: --parents must not exceed --families")
    args.capacity = args.capacity or max(1, args.parents * 2 // 5)
    return args


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"{what} not ready after {timeout:.0f} s")


class Database:
    """The bench's own PostgreSQL database, created empty and dropped at the end."""

    def __init__(self, url: str):
        self.url = sa.engine.make_url(url)
        self.admin = sa.create_engine(self.url.set(database="postgres"), isolation_level="AUTOCOMMIT")

    def create(self) -> str:
        self.drop()
        with self.admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{self.url.database}"'))
        return self.url.render_as_string(hide_password=False)

    def drop(self) -> None:
        with self.admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{self.url.database}" WITH (FORCE)'))


class Receipts:
    """An SMTP sink (aiosmtpd, as in the tests) counting the mails and each receipt's request."""

    LINK = re.compile(r"/demandes/(\d+)")

    def __init__(self):
        self.port = free_port()
        self.mails = 0
        self.receipts: Counter = Counter()  # request id -> receipts received
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        logging.getLogger("mail.log").setLevel(logging.WARNING)  # (aiosmtpd logs every SMTP command)

    async def handle_DATA(self, server, session, envelope):
        self.mails += 1
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        if "Accusé de réception" in str(message["subject"]):
            body = message.get_body(("plain",)).get_content()
            found = self.LINK.search(body)
            self.receipts[int(found.group(1)) if found else 0] += 1
        await asyncio.sleep(0)
        return "250 Message accepted"


def renice(value: int) -> None:
    """In a child before it runs its command: its nice value (a lower one needs root: else kept)."""
    try:
        os.nice(value)
    except PermissionError:
        pass


def unit_nice(unit: str) -> int:
    """The `Nice=` of a unit in deploy/systemd/ (0 when it sets none)."""
    found = re.search(r"^Nice=(-?\d+)$", (ROOT / "deploy" / "systemd" / unit).read_text(), re.MULTILINE)
    return int(found.group(1)) if found else 0


class Processes:
    """The processes the bench starts, each in its own process group, stopped at the end."""

    def __init__(self, logs: Path):
        self.logs = logs
        self.started: list[tuple[str, subprocess.Popen]] = []

    def start(
        self, name: str, command: list[str], env: dict | None = None, unit: str | None = None
    ) -> subprocess.Popen:
        """Start `command`; with the name of its systemd unit, at the unit's `Nice=` (as in production)."""
        nice = unit_nice(unit) if unit else 0
        log = open(self.logs / f"{name}.log", "ab")
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=(lambda: renice(nice)) if nice else None,
        )
        log.close()
        self.started.append((name, process))
        return process

    def stop_all(self) -> None:
        for _name, process in reversed(self.started):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for _name, process in reversed(self.started):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def holiday_week(activity, now: datetime) -> list:
    """The first WEEK open days of the holiday centre, in one month, at least 3 days ahead (their
    booking deadline, a day before at noon, far from the run)."""
    day = now.date() + timedelta(days=3)
    while day < activity.end_date:
        days, probe = [], day
        while len(days) < WEEK and probe.month == day.month and probe <= activity.end_date:
            if booking_rules.closure(activity, probe, ZONE) is None:
                days.append(probe)
            probe += timedelta(days=1)
        if len(days) == WEEK and booking_rules.closure(activity, day, ZONE) is None:
            return days
        day += timedelta(days=1)
    raise RuntimeError("no holiday week open for booking in the activities' period")


def build_town(url: str, args) -> dict:
    """The town's rows (the schema comes from the migrations); returns what the scenario needs."""
    app = create_app("testing", {"SQLALCHEMY_DATABASE_URI": url})
    with app.app_context():
        now = utcnow()
        start, end = demo_activities.school_year(now.date())
        activities = demo_activities.make_activities(start, end)
        canteen, holiday = activities[0], activities[4]
        holiday.capacity = args.capacity
        holiday.validation_mode = ValidationMode.AUTOMATIC
        holiday.booking_deadline_days = 1
        db.session.add_all(activities)
        db.session.flush()
        days = holiday_week(holiday, now)
        connection = db.session.connection()
        families = range(1, args.families + 1)
        connection.execute(
            sa.insert(Family),
            [{"id": i, "name": f"Famille P{i}", "subscriber_code": f"P{i:09d}"} for i in families],
        )
        connection.execute(
            sa.insert(Guardian),
            [{"family_id": i, "position": 1, "first_name": "Parent", "last_name": f"P{i}"} for i in families],
        )
        children, by_family = [], {}
        for family_id in families:
            for n in range(2 if family_id % 5 < 3 else 1):
                child = {
                    "id": len(children) + 1,
                    "family_id": family_id,
                    "first_name": f"Enfant{n + 1}",
                    "last_name": f"P{family_id}",
                    "birth_date": start.replace(year=start.year - 6 - n),
                }
                children.append(child)
                by_family.setdefault(family_id, []).append(child["id"])
        connection.execute(sa.insert(Child), children)
        connection.execute(
            sa.insert(Enrolment),
            [
                {"child_id": child["id"], "activity_id": activity.id, "start_date": start, "end_date": end}
                for child in children
                for activity in (canteen, holiday)
            ],
        )
        canteen_days = [
            start + timedelta(days=n)
            for n in range((end - start).days + 1)
            if booking_rules.closure(canteen, start + timedelta(days=n), ZONE) is None
        ]
        # From the start of the school year to 8 weeks ahead, and at least enough for > 500,000 rows.
        needed = MIN_BOOKINGS // len(children) + 1
        horizon = now.date() + timedelta(weeks=8)
        canteen_days = [d for n, d in enumerate(canteen_days) if d <= horizon or n < needed]
        rows = 0
        for first in range(0, len(children), 500):
            batch = [
                {
                    "child_id": child["id"],
                    "activity_id": canteen.id,
                    "day": day,
                    "state": BookingState.RESERVED,
                    "updated_at": now,
                }
                for child in children[first : first + 500]
                for day in canteen_days
            ]
            connection.execute(sa.insert(Booking.__table__), batch)
            rows += len(batch)
        password_hash = passwords.hash_password(PASSWORD)  # once: argon2 is slow on purpose
        parents = [
            {"email": f"parent{i:05d}@peak.example.fr", "first_name": "Parent", "last_name": f"P{i}"}
            for i in families
        ][: args.parents]
        connection.execute(
            sa.insert(User),
            [dict(p, password_hash=password_hash, role=Role.PARENT, activated_at=now) for p in parents],
        )
        ids = dict(connection.execute(sa.select(User.email, User.id)).all())
        connection.execute(
            sa.insert(Subscription),
            [{"user_id": ids[p["email"]], "family_id": i} for i, p in enumerate(parents, start=1)],
        )
        agent = User(
            email="agent@peak.example.fr",
            first_name="Agent",
            last_name="PEAK",
            role=Role.AGENT,
            password_hash=password_hash,
            activated_at=now,
        )
        db.session.add(agent)
        db.session.commit()
        agent_id, activity_id = agent.id, holiday.id
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as autocommit:
            autocommit.execute(sa.text("ANALYZE"))
    return {
        "app": app,
        "agent_id": agent_id,
        "activity_id": activity_id,
        "days": days,
        "children": len(children),
        "bookings": rows,
        "parents": [
            {"index": i - 1, "email": p["email"], "family_id": i, "child_ids": by_family[i]}
            for i, p in enumerate(parents, start=1)
        ],
    }


def production_env(
    url: str, redis_url: str, smtp_port: int, public_url: str, work: Path, proxied: bool
) -> dict:
    """The environment of README "Running in production"."""
    return dict(
        os.environ,
        PORTAIL_ENV="production",
        SECRET_KEY=secrets.token_urlsafe(32),
        DATABASE_URL=url,
        REDIS_URL=redis_url,
        MAIL_SERVER="127.0.0.1",
        MAIL_PORT=str(smtp_port),
        PUBLIC_URL=public_url,
        TRUSTED_PROXIES="1" if proxied else "0",
        PORTAIL_TOWN_NAME="Ville de Démo",
        PORTAIL_SCHOOL_ZONE=ZONE,
        UPLOAD_DIR=str(work / "uploads"),
        PORTAIL_INSTANCE=str(work / "instance"),
    )


def gunicorn_command(choice: str, port: int) -> tuple[list[str], str]:
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    conf = ROOT / "gunicorn.conf.py"
    if choice == "conf" or (choice == "auto" and conf.exists()):
        return [gunicorn, "-c", str(conf), "--bind", f"127.0.0.1:{port}", "app:app"], "gunicorn.conf.py"
    return [gunicorn, "--workers", "4", "--bind", f"127.0.0.1:{port}", "app:app"], "--workers 4 (sync)"


def start_nginx(
    processes, work: Path, parents: int, web_port: int, room_port: int, tls_port: int, http_port: int
) -> None:
    """nginx running the repository's site (deploy/nginx/portail.conf) in front of gunicorn (and of
    the waiting room's own gunicorn, portail-room.service's command)."""
    from deploy.nginx.local import TIMED, command, nginx_config, self_signed, site_config

    cert, key = self_signed(work)
    site = site_config([web_port], tls_port, http_port, cert, key, rooms=[room_port])
    conf = work / "nginx.conf"
    connections = max(1024, 2 * parents + 256)
    conf.write_text(nginx_config(work, site, connections=connections, log_format=TIMED), encoding="utf-8")
    processes.start("nginx", command(NGINX, work, conf))


def answers(url: str) -> bool:
    import ssl
    from urllib.request import urlopen

    context = ssl._create_unverified_context()  # (the bench's throwaway certificate)
    try:
        with urlopen(url, timeout=2, context=context) as response:
            return response.status == 200
    except OSError:
        return False


def announce_opening(town: dict, redis_url: str, opens_at: datetime, queue_from: datetime) -> str:
    """Announce the opening through the waiting room's service, when it exists."""
    if importlib.util.find_spec("portail.services.openings") is None:
        return "no waiting room yet (portail.services.openings absent): opening not announced"
    from portail.services import openings

    app = town["app"]
    app.config["REDIS_URL"] = redis_url
    with app.app_context():
        agent = db.session.get(User, town["agent_id"])
        try:
            openings.announce(agent, [town["activity_id"]], opens_at, queue_from)
            db.session.commit()
        except Exception as error:  # (the waiting room is being written: run without it, and say so)
            db.session.rollback()
            return f"opening NOT announced, openings.announce failed: {type(error).__name__}: {error}"
    return f"opening announced at {opens_at:%H:%M:%S} UTC, queue from {queue_from:%H:%M:%S} UTC"


def locust(
    work: Path,
    config: dict,
    name: str,
    user: str,
    users: int,
    rate: float,
    seconds: float,
    env: dict,
    nice: int = 0,
    processes: int = 1,
):
    """Run locust headless (the locustfile reads `config`); return its per-endpoint CSV rows."""
    path = work / f"{name}.json"
    path.write_text(json.dumps(config, default=str), encoding="utf-8")
    command = [
        str(Path(sys.executable).with_name("locust")),
        "-f",
        str(ROOT / "bench" / "peak_locustfile.py"),
        "--headless",
        "--host",
        config["host"],
        "--users",
        str(users),
        "--spawn-rate",
        f"{rate:.3f}",
        "--run-time",
        f"{int(seconds)}s",
        "--stop-timeout",
        "5",
        "--csv",
        str(work / name),
        "--only-summary",
        "--loglevel",
        "WARNING",
        *(["--processes", str(processes)] if processes > 1 else []),
        user,
    ]
    with open(work / f"{name}.log", "wb") as log:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        run = subprocess.Popen(
            command,
            cwd=ROOT,
            env=dict(env, PEAK_CONFIG=str(path)),
            stdout=log,
            stderr=log,
            start_new_session=True,
            preexec_fn=(lambda: renice(nice)) if nice else None,
        )
        run.wait()
        # (locust's worker processes may outlive their master by a few seconds: they write what
        # their parents saw as they quit)
        try:
            wait_until(lambda: not group_alive(run.pid), 30, "locust's worker processes")
        except TimeoutError:
            os.killpg(run.pid, signal.SIGKILL)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # (the master's; the workers, not its children once it is gone, report their own: results)
    LOCUST_CPU[name] = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    with open(work / f"{name}_stats.csv", newline="", encoding="utf-8") as file:
        stats = list(csv.DictReader(file))
    history_path = work / f"{name}_stats_history.csv"
    history = []
    if history_path.exists():
        with open(history_path, newline="", encoding="utf-8") as file:
            history = [row for row in csv.DictReader(file) if row["Name"] == "Aggregated"]
    return stats, history


def ms(value) -> str:
    if value in ("N/A", "", None):
        return "-"
    number = float(value)
    return f"{number / 1000:.1f} s" if number >= 10_000 else f"{number:.0f}"


def print_endpoints(stats: list[dict]) -> dict:
    print(f"\n{'endpoint':<44}{'requests':>9}{'failed':>8}{'p50':>9}{'p95':>9}{'p99':>9}{'max':>9}   (ms)")
    total = None
    for row in stats:
        if row["Name"] == "Aggregated":
            total = row
            continue
        print(
            f"{row['Type'] + ' ' + row['Name'] if not row['Name'].startswith(('GET', 'POST', 'WAIT')) else row['Name']:<44.44}"
            f"{row['Request Count']:>9}{row['Failure Count']:>8}{ms(row['50%']):>9}{ms(row['95%']):>9}"
            f"{ms(row['99%']):>9}{ms(row['Max Response Time']):>9}"
        )
    if total:
        print(
            f"{'all':<44}{total['Request Count']:>9}{total['Failure Count']:>8}{ms(total['50%']):>9}"
            f"{ms(total['95%']):>9}{ms(total['99%']):>9}{ms(total['Max Response Time']):>9}"
        )
    return total or {}


def duration(milliseconds: float) -> str:
    return f"{milliseconds / 1000:.1f} s" if milliseconds >= 10_000 else f"{milliseconds:.0f} ms"


def spread(values: list[float]) -> str:
    """Count and p50 / p95 / p99 / max of response times."""
    if len(values) < 2:
        return f"{len(values)} answers"
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return (
        f"{len(values)} answers, p50 {duration(cuts[49])} / p95 {duration(cuts[94])}"
        f" / p99 {duration(cuts[98])} / max {duration(max(values))}"
    )


def running_processes():
    """(fields of /proc/<pid>/stat after the command, command name) of every process now."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                command = (entry / "comm").read_text().strip()
            except OSError:
                continue
            yield fields, command


def group_alive(group: int) -> bool:
    """Whether a process of that process group still runs (not a zombie)."""
    return any(int(fields[2]) == group and fields[0] != "Z" for fields, _command in running_processes())


def parents_results(work: Path) -> dict:
    """What the locustfile's processes wrote (results.json.<pid>), added up."""
    merged: dict = {"parents": [], "times": {"admitted": [], "waiting": []}}
    for path in work.glob("results.json.*"):
        for key, value in json.loads(path.read_text()).items():
            if key == "times":
                for kind, times in value.items():
                    merged["times"][kind] += times
            elif isinstance(value, list):
                merged[key] += value
            else:
                merged[key] = merged.get(key, 0) + value
    return merged


def server_times(log: Path, since: float, until: float) -> dict[str, list[float]]:
    """Answer times (ms) as nginx logged them (deploy/nginx/local.TIMED) between two epoch seconds,
    split as the locustfile splits the client's: waiting pages (an answer with `X-Waiting-Room` and
    200 or 503, and every status poll) and the rest."""
    times: dict[str, list[float]] = {"admitted": [], "waiting": []}
    if not log.exists():
        return times
    with open(log, encoding="utf-8") as lines:
        for line in lines:
            fields = line.split()
            if len(fields) < 7 or not since <= float(fields[0]) <= until:
                continue
            status, seconds, path, position = fields[1], float(fields[2]), fields[5], fields[6]
            waiting = path.startswith("/salle-d-attente/") or (position != "-" and status in ("200", "503"))
            times["waiting" if waiting else "admitted"].append(seconds * 1000)
    return times


def print_failures(path: Path) -> None:
    """The failures by cause (locust's failures CSV), most frequent first."""
    if not path.exists():
        return
    with open(path, newline="", encoding="utf-8") as file:
        rows = sorted(csv.DictReader(file), key=lambda row: -int(row["Occurrences"]))
    for row in rows[:8]:
        print(f"  {row['Occurrences']:>6} × {row['Name']}: {row['Error'][:100]}")


def best_window(history: list[dict], seconds: int = 10) -> float:
    """The highest mean of locust's per-second throughput over `seconds` consecutive seconds."""
    rates = [float(row["Requests/s"] or 0) for row in history]
    windows = [statistics.mean(rates[i : i + seconds]) for i in range(max(1, len(rates) - seconds + 1))]
    return max(windows, default=0.0)


def database_checks(url: str, town: dict, capacity: int, seen: dict, sink: Receipts, ended: float) -> None:
    engine = sa.create_engine(url)
    activity = town["activity_id"]
    with engine.connect() as connection:

        def outbox_left() -> int:
            return connection.execute(
                sa.select(sa.func.count()).where(
                    OutboxMessage.status.in_([OutboxStatus.PENDING, OutboxStatus.SENDING])
                )
            ).scalar_one()

        def drained() -> bool:
            left = outbox_left()
            connection.commit()
            return left == 0

        try:
            wait_until(drained, 300, "the outbox")
            print(f"\noutbox drained {time.monotonic() - ended:.1f} s after the run")
        except TimeoutError:
            print(f"\noutbox NOT drained 300 s after the run: {outbox_left()} mails left")
        reserved = dict(
            connection.execute(
                sa.select(Booking.day, sa.func.count())
                .where(Booking.activity_id == activity, Booking.state == BookingState.RESERVED)
                .group_by(Booking.day)
            ).all()
        )
        counters = dict(
            connection.execute(
                sa.select(ActivityDay.day, ActivityDay.booked).where(ActivityDay.activity_id == activity)
            ).all()
        )
        print(f"\nholiday centre, capacity {capacity} a day:")
        over = 0
        for day in town["days"]:
            booked = reserved.get(day, 0)
            over += max(0, booked - capacity)
            flag = "  OVERBOOKED" if booked > capacity or counters.get(day, 0) != booked else ""
            print(f"  {day}: {booked} reserved (counter {counters.get(day, 0)}) / {capacity}{flag}")
        print(f"overbooking: {over} places")
        created = connection.execute(
            sa.select(sa.func.count()).select_from(Request).where(Request.activity_id == activity)
        ).scalar_one()
        announced = seen.get("requests_created_seen", 0)
        print(
            f"requests created in the database: {created}; announced by the booking POSTs' answers: {announced}"
            f" (cell POSTs {seen.get('cell_posts_ok', 0)}, period forms {seen.get('period_posts_ok', 0)});"
            f" lost (announced, not in the database): {max(0, announced - created)};"
            f" created but not announced (the client gave up or missed the answer): {max(0, created - announced)}"
        )
        outbox = dict(
            connection.execute(
                sa.select(OutboxMessage.status, sa.func.count())
                .where(OutboxMessage.template == "booking_receipt")
                .group_by(OutboxMessage.status)
            ).all()
        )
        expected = {
            int(context["request_id"])
            for context in connection.execute(
                sa.select(OutboxMessage.context).where(OutboxMessage.template == "booking_receipt")
            ).scalars()
        }
    engine.dispose()
    received = sink.receipts
    twice = sum(1 for n in received.values() if n > 1)
    missing = len(expected - set(received))
    print(
        f"receipts: outbox {sum(outbox.values())} ({', '.join(f'{s.value} {n}' for s, n in outbox.items()) or 'none'}),"
        f" SMTP sink {sum(received.values())} for {len(received)} requests;"
        f" sent twice: {twice}; missing: {missing}; not in the outbox: {len(set(received) - expected)};"
        f" requests without a receipt: {created - len(expected)}"
    )


def admission_order(redis_url: str) -> None:
    if importlib.util.find_spec("portail.waiting_room") is None:
        print("admission order: no waiting room yet (portail.waiting_room absent), not checked")
        return
    from portail import waiting_room

    if not hasattr(waiting_room, "admissions"):
        print("admission order: portail.waiting_room.admissions absent, not checked")
        return
    client = redis.Redis.from_url(redis_url)
    opening = waiting_room.store.latest_opening_id(client)
    # Each list is in the order of admission (one Lua script appends each ticket as it moves the
    # cursor); its times are the entering process's clock when it called, which may lag another
    # process's by milliseconds, so they are not the order.
    for line, queue in (("booking line", opening), ("entrance line (login)", f"{opening}:entree")):
        tickets = [ticket for ticket, _at in waiting_room.store.admissions(client, queue)]
        inversions = sum(1 for a, b in zip(tickets, tickets[1:], strict=False) if b < a)
        verdict = (
            "equals the ticket order"
            if inversions == 0
            else f"{inversions} inversions against the ticket order"
        )
        print(f"admission order, {line}: {len(tickets)} admitted, the order {verdict}")


TICKS = os.sysconf("SC_CLK_TCK")


def cpu_of_groups(processes: "Processes") -> dict[str, float]:
    """CPU seconds (user + system) used so far by each started process and its children alive now,
    by process group (each was started in a session of its own), and by PostgreSQL's processes."""
    groups = {process.pid: name for name, process in processes.started}
    used: Counter = Counter()
    for fields, command in running_processes():
        pgid, seconds = int(fields[2]), (int(fields[11]) + int(fields[12])) / TICKS
        if pgid in groups:
            used[groups[pgid]] += seconds
        elif command == "postgres":
            used["postgresql"] += seconds
    return used


def machine_cpu() -> float:
    """CPU seconds the machine spent busy (all cores), from /proc/stat."""
    values = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return (sum(values[:8]) - idle) / TICKS


class RateWatch:
    """The admission pace, the window, the parents in visit and the lines' lengths every 10 s during
    the run (read from Redis)."""

    def __init__(self, redis_url: str, every: float = 10.0):
        import threading

        self.client = redis.Redis.from_url(redis_url)
        self.every = every
        self.rows: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        from portail.waiting_room import store

        started = time.monotonic()
        while not self.stop.wait(self.every):
            opening = store.latest_opening_id(self.client)
            parts = []
            for name, queue in (("entrance", f"{opening}:entree"), ("booking", opening)):
                line = store.figures(self.client, queue, time.time() - store.Tuning().idle_after)
                parts.append(
                    f"{name} {line.rate or 0:.0f}/s, window {line.window or 0:.0f} ({line.visiting} in visit),"
                    f" {line.tickets - line.admitted} waiting"
                )
            self.rows.append(f"  +{time.monotonic() - started:.0f} s: " + "; ".join(parts))

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *_exc):
        self.stop.set()
        self.thread.join(timeout=5)


def interrupted(_signum, _frame) -> None:
    """SIGTERM as Ctrl-C: the cleanup runs."""
    raise KeyboardInterrupt


def main() -> None:
    args = options()
    if shutil.which("redis-server") is None:
        sys.exit("redis-server is required (Debian package redis-server)")
    if not Path(sys.executable).with_name("locust").exists():
        sys.exit("locust is required: .venv/bin/pip install -r bench/requirements.txt")
    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # (even when started with SIGINT ignored)
    work = Path(tempfile.mkdtemp(prefix="portail-peak-"))
    database = Database(args.database_url)
    processes = Processes(work)
    with ExitStack() as cleanup:
        if not args.keep_logs:
            cleanup.callback(shutil.rmtree, work, ignore_errors=True)
        cleanup.callback(database.drop)
        cleanup.callback(processes.stop_all)
        began = time.monotonic()
        url = database.create()
        redis_port, web_port = free_port(), free_port()
        redis_url = f"redis://127.0.0.1:{redis_port}/0"
        processes.start(
            "redis",
            [
                "redis-server",
                "--port",
                str(redis_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
        )
        sink = Receipts()
        sink.controller.start()
        cleanup.callback(sink.controller.stop)
        proxied = args.proxy == "nginx"
        tls_port, http_port = free_port(), free_port()
        host = f"https://127.0.0.1:{tls_port}" if proxied else f"http://127.0.0.1:{web_port}"
        env = production_env(url, redis_url, sink.port, host, work, proxied)
        flask = str(Path(sys.executable).with_name("flask"))
        subprocess.run(
            [flask, "--app", "app", "db", "upgrade"], cwd=ROOT, env=env, check=True, capture_output=True
        )
        town = build_town(url, args)
        print(
            f"town: {args.families} families, {town['children']} children, {town['bookings']:,} booking rows,"
            f" {args.parents} parent accounts (built in {time.monotonic() - began:.0f} s)"
        )
        print(
            f"holiday centre: {town['days'][0]} to {town['days'][-1]}, {args.capacity} places a day,"
            " automatic validation"
        )
        command, served_by = gunicorn_command(args.gunicorn, web_port)
        processes.start("gunicorn", command, env, "portail-web.service")
        processes.start("worker", [sys.executable, "worker.py", "worker"], env, "portail-worker@.service")
        processes.start(
            "scheduler", [sys.executable, "worker.py", "scheduler"], env, "portail-scheduler.service"
        )
        wait_until(lambda: answers(f"http://127.0.0.1:{web_port}{HELLO_PATH}"), 60, "gunicorn")
        if proxied:
            room_port = free_port()
            gunicorn = str(Path(sys.executable).with_name("gunicorn"))
            room = [gunicorn, "-c", str(ROOT / "gunicorn.conf.py"), "--workers", "1"]
            processes.start(
                "room", [*room, "--bind", f"127.0.0.1:{room_port}", "app:app"], env, "portail-room.service"
            )
            wait_until(lambda: answers(f"http://127.0.0.1:{room_port}{HELLO_PATH}"), 60, "room")
            start_nginx(processes, work, args.parents, web_port, room_port, tls_port, http_port)
            wait_until(lambda: answers(host + "/connexion"), 20, "nginx")
        in_front = (
            "nginx (deploy/nginx/portail.conf, TLS; the waiting room's polls on their own gunicorn) in front of "
            if proxied
            else ""
        )
        print(
            f"stack: {in_front}gunicorn {served_by}, redis-server, 1 RQ worker, the scheduler,"
            " an SMTP sink (PostgreSQL)"
        )
        now = datetime.now(UTC)
        opens_at = now + timedelta(seconds=args.ramp + 5)
        print(announce_opening(town, redis_url, opens_at, now))
        config = {
            "host": host,
            "password": PASSWORD,
            "parents": town["parents"],
            "parents_count": args.parents,
            "activity_id": town["activity_id"],
            "days": [day.isoformat() for day in town["days"]],
            "opens_at": opens_at.timestamp(),
            "think_min": args.think[0],
            "think_max": args.think[1],
            "timeout": args.timeout,
            "waiting_retry": 3,
            "results": str(work / "results.json"),
            "clients": args.clients,
            "hello_path": HELLO_PATH,
        }
        print(
            f"\nrunning {args.parents} parents, ramp {args.ramp:.0f} s, opening at +{args.ramp + 5:.0f} s,"
            f" think {args.think[0]:g}–{args.think[1]:g} s"
            + (f", the load generator at nice {args.client_nice}" if args.client_nice else "")
            + " ..."
        )
        started, started_at = time.monotonic(), time.time()
        cpu_before, machine_before = cpu_of_groups(processes), machine_cpu()
        with RateWatch(redis_url) as watch:
            stats, history = locust(
                work,
                config,
                "mix",
                "Parent",
                args.parents,
                args.parents / args.ramp,
                args.ramp + 5 + args.max_minutes * 60,
                env,
                args.client_nice,
                args.clients,
            )
        ended = time.monotonic()
        cpu_after, machine_after = cpu_of_groups(processes), machine_cpu()
        seen = parents_results(work)
        total = print_endpoints(stats)
        elapsed = ended - started
        mix_rate = float(total.get("Request Count", 0)) / elapsed if elapsed else 0.0
        print(
            f"\nparents: {seen.get('parents_finished', 0)} of {args.parents} went through the morning in"
            f" {elapsed:.0f} s, on {len(set(seen['parents']))} different accounts;"
            f" {seen.get('parents_waited', 0)} saw a waiting page;"
            f" logins refused: {seen.get('logins_refused', 0)}"
        )
        print(f"failures: {total.get('Failure Count', '?')} of {total.get('Request Count', '?')} requests")
        print_failures(work / "mix_failures.csv")
        times = seen.get("times", {})
        served = server_times(work / "access.log", started_at, time.time())
        for kind, label in (("admitted", "real pages and POSTs (admitted)"), ("waiting", "waiting pages")):
            print(f"{label}: {spread(times.get(kind, []))}")
            if served[kind]:
                print(f"  the same as nginx timed them: {spread(served[kind])}")
        database_checks(url, town, args.capacity, seen, sink, ended)
        admission_order(redis_url)
        print("admission pace, window and lines, every 10 s:\n" + "\n".join(watch.rows))
        spent = {name: cpu_after[name] - cpu_before.get(name, 0.0) for name in cpu_after}
        # (one process: its CPU is in the bench's children's; several: the workers' own counts too)
        spent["locust"] = LOCUST_CPU.get("mix", 0.0) + (seen.get("cpu", 0.0) if args.clients > 1 else 0.0)
        available = (ended - started) * (os.cpu_count() or 1)
        print(
            f"CPU during the scenario ({ended - started:.0f} s × {os.cpu_count()} cores = {available:.0f} s;"
            f" machine busy {machine_after - machine_before:.0f} s): "
            + ", ".join(
                f"{name} {seconds:.0f} s" for name, seconds in sorted(spent.items(), key=lambda x: -x[1])
            )
        )
        hello_stats, _ = locust(
            work, config, "hello", "Hello", 16, 16, args.hello_seconds, env, args.client_nice, args.clients
        )
        hello = next((row for row in hello_stats if row["Name"] == "Aggregated"), {})
        hello_rate = float(hello.get("Requests/s") or 0)
        best = best_window(history)
        admitted_rate = len(times.get("admitted", [])) / elapsed if elapsed else 0.0
        print(
            f"\nthroughput: mix {mix_rate:.0f} req/s over the run ({admitted_rate:.0f} without the waiting"
            f" pages), best 10 s {best:.0f} req/s;"
            f" hello ({HELLO_PATH} through Flask, 16 clients without pause, {args.hello_seconds:.0f} s)"
            f" {hello_rate:.0f} req/s (p50 {ms(hello.get('50%', '0'))} ms, failures {hello.get('Failure Count', '?')});"
            f" ratio mix/hello {mix_rate / hello_rate if hello_rate else 0:.2f} (best 10 s {best / hello_rate if hello_rate else 0:.2f})"
        )
        kept = "kept" if args.keep_logs else "removed at the end (--keep-logs keeps them)"
        print(f"(logs and locust's CSV files in {work}: {kept}; total {time.monotonic() - began:.0f} s)")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit("interrupted: everything started was stopped and the database dropped")
