"""Benchmark of the planning on a large town (issue 4).

Builds, in temporary SQLite files, a large town (5,000 families, 8,000 children, every child booked
at the canteen for the whole school year: over 1,000,000 booking rows) and a 50-family town, then
prints, measured in one run with the Flask test client:
- month planning of a 3-child family / a bare logged-in page (target ≤ 2.0), and its SQL queries; the
  month shows the children's places on the morning care's waiting lists (in line on several days behind
  other families, ranks 1er to 5e, and a place offered to one of them), and its SQL queries are checked
  constant on the 50-family town: without a day in line, with one, with every one (target: at most one
  more query when a day shown is in line, none per cell);
- the confirmation of the place offered (its price and deadline) / the bare page, and its SQL queries;
- the phone's agenda (7 days from today, 3 children) / the bare page (target ≤ 1.5), its SQL queries,
  and the weight of the agenda and of the month (HTML, gzipped; target: agenda ≤ 15 KB);
- the cell request POST / the bare page (target ≤ 1.5), and its SQL queries;
- the time of a school-year period request;
- month planning on the large town / on the 50-family town (target ≤ 1.2);
- for reference, the floor of any write: a POST that only logs in, updates one row and commits,
  divided by the bare page.
Run with `make bench` (takes a few minutes, most of it building the data).
"""

import gc
import gzip
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from town import add_activities, town_app  # noqa: E402

from portail import bookings  # noqa: E402
from portail.bookings import rules as booking_rules  # noqa: E402
from portail.demo import activities as demo_activities  # noqa: E402
from portail.extensions import db  # noqa: E402
from portail.models import (  # noqa: E402
    Activity,
    ActivityDay,
    Booking,
    BookingState,
    Child,
    Enrolment,
    Family,
    Guardian,
    RequestKind,
    Subscription,
    Tariff,
    User,
    utcnow,
)
from portail.services import billing, passwords  # noqa: E402

ROUNDS = 100  # medians over many rounds: the machine's speed drifts by ±20 % from one run to the next
PASSWORD = "bench-portail-famille-2026"


def build(path: str, families: int) -> tuple:
    """A town of `families` families (+ the bench family with 3 children); returns its app and ids."""
    app = town_app(path)
    with app.app_context():
        start, end, activities = add_activities()
        canteen, morning = activities[0], activities[1]
        # the morning care keeps a waiting list on its full days, priced (its confirmation says the price)
        morning.waiting_list = True
        brackets = billing.make_brackets([(622, 100), (1000, 330), (1500, 420), (None, 510)])
        db.session.add(Tariff(activity_id=morning.id, valid_from=start, valid_until=end, brackets=brackets))
        open_days = [
            start + timedelta(days=i)
            for i in range((end - start).days + 1)
            if booking_rules.closure(canteen, start + timedelta(days=i), "C") is None
        ]
        connection = db.session.connection()
        connection.execute(
            sa.insert(Family),
            [
                {"id": i, "name": f"Famille F{i}", "subscriber_code": f"B{i:09d}"}
                for i in range(1, families + 2)
            ],
        )
        connection.execute(
            sa.insert(Guardian),
            [
                {"family_id": i, "position": 1, "first_name": "Parent", "last_name": f"F{i}"}
                for i in range(1, families + 2)
            ],
        )
        children, child_id = [], 0
        for family_id in range(1, families + 2):
            count = 3 if family_id == families + 1 else (2 if family_id % 5 < 3 else 1)
            for n in range(count):
                child_id += 1
                children.append(
                    {
                        "id": child_id,
                        "family_id": family_id,
                        "first_name": f"E{n}",
                        "last_name": f"F{family_id}",
                        "birth_date": start.replace(year=start.year - 6 - n),
                    }
                )
        connection.execute(sa.insert(Child), children)
        enrolments = []
        for child in children:
            for activity in activities[:3] if child["family_id"] == families + 1 else activities[:1]:
                enrolments.append(
                    {
                        "child_id": child["id"],
                        "activity_id": activity.id,
                        "start_date": start,
                        "end_date": end,
                    }
                )
        # three children of other families, ahead of the bench family's in the morning care's lines
        others = [child for child in children if child["family_id"] != families + 1][:3]
        enrolments += [
            {"child_id": child["id"], "activity_id": morning.id, "start_date": start, "end_date": end}
            for child in others
        ]
        connection.execute(sa.insert(Enrolment), enrolments)
        rows, now = 0, utcnow()
        batch = []
        for child in children:
            for day in open_days:
                batch.append(
                    {
                        "child_id": child["id"],
                        "activity_id": canteen.id,
                        "day": day,
                        "state": BookingState.RESERVED,
                        "updated_at": now,
                    }
                )
            if len(batch) > 50_000:
                connection.execute(sa.insert(Booking.__table__), batch)
                rows += len(batch)
                batch = []
        connection.execute(sa.insert(Booking.__table__), batch)
        rows += len(batch)
        user = User(
            email="bench@example.fr",
            first_name="Bench",
            last_name="MARK",
            password_hash=passwords.hash_password(PASSWORD),
            activated_at=utcnow(),
        )
        db.session.add(user)
        db.session.flush()
        db.session.add(Subscription(user_id=user.id, family_id=families + 1))
        db.session.commit()
        db.session.execute(sa.text("ANALYZE"))
        info = {
            "families": families + 1,
            "children": len(children),
            "bookings": rows,
            "family_id": families + 1,
            "child_ids": [c["id"] for c in children if c["family_id"] == families + 1],
            "evening": activities[2].id,
            "morning": morning.id,
            "others": [child["id"] for child in others],
        }
    return app, info


def line_days(app, info) -> tuple[list, object]:
    """The morning care's days the bench family waits on: up to five of the month the benchmark shows
    and the first of the phone's week (from two days ahead, before their deadlines), and the one of
    them where a place is offered."""
    today = utcnow().date()
    shown = (today + timedelta(days=14)).replace(day=1)
    with app.app_context():
        morning = db.session.get(Activity, info["morning"])
        open_days = [
            today + timedelta(days=n)
            for n in range(2, 60)
            if booking_rules.closure(morning, today + timedelta(days=n), "C") is None
        ]
    in_month = [day for day in open_days if (day.year, day.month) == (shown.year, shown.month)][:5]
    in_week = [day for day in open_days if day <= today + timedelta(days=6)][:1]
    assert in_month, "no open day of the morning care in the month shown"
    return sorted({*in_month, *in_week}), in_month[min(2, len(in_month) - 1)]


def add_lines(app, info, days: list, offered=None) -> None:
    """The morning care full on these days (its last place reserved by another family's child), two
    children of other families then the bench family's three in line; on `offered`, the bench family's
    alone in line, then the other child's absence: the place freed is offered to the first of them.
    Through the booking transitions, as parents would."""
    with app.app_context():
        morning = db.session.get(Activity, info["morning"])
        zone = app.config["SCHOOL_ZONE"]
        user = db.session.scalar(sa.select(User).where(User.email == "bench@example.fr"))
        children = {
            child.id: child
            for child in db.session.scalars(
                sa.select(Child).where(Child.id.in_(info["others"] + info["child_ids"]))
            )
        }
        holder, *ahead = (children[i] for i in info["others"])
        mine = [children[i] for i in info["child_ids"]]

        def ask(child, kind, day, waiting=False):
            submitted = bookings.submit(
                child.family_id, user, child, morning, kind, [day], utcnow(), zone, waiting=waiting
            )
            return submitted.days[day][0]

        for day in days:
            db.session.merge(ActivityDay(activity_id=morning.id, day=day, booked=morning.capacity - 1))
            assert ask(holder, RequestKind.RESERVATION, day) is BookingState.RESERVED
            for child in ([] if day == offered else ahead) + mine:
                assert ask(child, RequestKind.RESERVATION, day, waiting=True) is BookingState.WAITING
        if offered is not None:
            assert ask(holder, RequestKind.ABSENCE, offered) is BookingState.ABSENT
            state = db.session.scalar(
                sa.select(Booking.state).where(
                    Booking.child_id == mine[0].id, Booking.activity_id == morning.id, Booking.day == offered
                )
            )
            assert state is BookingState.OFFERED, state
        db.session.commit()


def month_url(info) -> str:
    return f"/famille/{info['family_id']}/planning?vue=mois&date={(utcnow().date() + timedelta(days=14)).isoformat()}"


def line_queries(app, info, days: list, offered) -> tuple[int, int, int]:
    """The month page's SQL queries without a day in line, with one, then with every day of `days`
    (the lines added as it goes); the month checked to show the ranks and the offer."""
    client = app.test_client()
    client.post("/connexion", data={"email": "bench@example.fr", "password": PASSWORD})
    with app.app_context():
        engine = db.engine

    def queries() -> int:
        return interleaved({"month": (client, engine, "GET", month_url(info), None)}, rounds=2)["month"][1]

    first = next(day for day in days if day != offered)
    without = queries()
    add_lines(app, info, [first])
    one = queries()
    add_lines(app, info, [day for day in days if day != first], offered)
    every = queries()
    html = client.get(month_url(info)).get_data(as_text=True).replace("&#39;", "'")
    assert "Liste d'attente — 3e" in html and "Liste d'attente — 5e" in html, "the ranks on the month"
    assert "Liste d'attente — 1er" in html and "Une place s'est libérée — à confirmer avant" in html
    return without, one, every


def interleaved(targets: dict, rounds: int) -> dict[str, tuple[float, int]]:
    """Median time and SQL query count of each request, the requests taking turns in every round
    (so that the machine's load drifts affect them all alike)."""
    timings: dict[str, list[float]] = {name: [] for name in targets}
    queries: dict[str, int] = {}
    for _ in range(rounds):
        for name, (client, engine, method, url, data, *expect) in targets.items():
            counter = {"n": 0}

            def count(*_args, counter=counter):
                counter["n"] += 1

            sa.event.listen(engine, "before_cursor_execute", count)
            try:
                begin = time.perf_counter()
                response = client.open(
                    url,
                    method=method,
                    data=data() if callable(data) else data,
                    headers={"HX-Request": "true"} if method == "POST" else {},
                )
                timings[name].append(time.perf_counter() - begin)
            finally:
                sa.event.remove(engine, "before_cursor_execute", count)
            assert response.status_code in (200, 302), (
                url,
                response.status_code,
                response.get_data(as_text=True)[:300],
            )
            assert not expect or expect[0] in response.get_data(as_text=True), (
                url,
                "the request did not do what is measured",
            )
            queries[name] = counter["n"]
    return {name: (statistics.median(values), queries[name]) for name, values in timings.items()}


def add_floor_route(app, family_id: int) -> None:
    """A reference request, for the bench only: log in, update one row, commit (the floor of any write)."""

    def floor():
        db.session.execute(sa.update(Family).where(Family.id == family_id).values(name=Family.name))
        db.session.commit()
        return "<p>ok</p>"

    app.add_url_rule("/bench/floor", "bench_floor", floor, methods=["POST"])


def targets(app, info, prefix: str) -> dict:
    """The requests measured on one town, by name."""
    client = app.test_client()
    client.post("/connexion", data={"email": "bench@example.fr", "password": PASSWORD})
    phone = app.test_client()  # (a narrow screen: its view is remembered apart from the computer's)
    phone.set_cookie("ecran", "etroit")
    phone.post("/connexion", data={"email": "bench@example.fr", "password": PASSWORD})
    with app.app_context():
        engine = db.engine
    today = utcnow().date()
    fid = info["family_id"]
    with app.app_context():
        evening = db.session.get(Activity, info["evening"])
        days = [
            today + timedelta(days=n)
            for n in range(10, 200)
            if booking_rules.closure(evening, today + timedelta(days=n), "C") is None
        ]
    # Each POST reserves a new evening day (automatic activity: decided at once), as a parent clicking along.
    clicks = iter([(child_id, day) for day in days for child_id in info["child_ids"]])

    def cell():
        child_id, day = next(clicks)
        return {"enfant": child_id, "activite": info["evening"], "jour": day.isoformat(), "action": "reserve"}

    return {
        f"{prefix}bare": (client, engine, "GET", "/mon-espace/", None),
        f"{prefix}month": (client, engine, "GET", month_url(info), None, "à confirmer avant"),
        f"{prefix}offer": (
            client,
            engine,
            "GET",
            f"/famille/{fid}/planning/confirmer?enfant={info['child_ids'][0]}&activite={info['morning']}"
            f"&jour={info['offered'].isoformat()}&action=confirm",
            None,
            "Prix de ce jour pour votre famille",
        ),
        f"{prefix}agenda": (phone, engine, "GET", f"/famille/{fid}/planning?vue=agenda", None, "Agenda"),
        f"{prefix}cell": (client, engine, "POST", f"/famille/{fid}/planning/cellule", cell, "Réservé"),
        f"{prefix}floor": (client, engine, "POST", "/bench/floor", {}, "ok"),
    }


def period_request(app, info) -> tuple[float, int]:
    client = app.test_client()
    client.post("/connexion", data={"email": "bench@example.fr", "password": PASSWORD})
    with app.app_context():
        engine = db.engine
    today = utcnow().date()
    _start, end = demo_activities.school_year(today)
    period = {
        "enfant": [str(c) for c in info["child_ids"]],
        "activite": str(info["evening"] - 1),
        "du": today.isoformat(),
        "au": end.isoformat(),
        "jours": ["1", "2", "4", "5"],
        "type": "reservation",
    }
    target = {"period": (client, engine, "POST", f"/famille/{info['family_id']}/planning/periode", period)}
    return interleaved(target, rounds=1)["period"]


def main() -> None:
    directory = tempfile.mkdtemp()
    began = time.perf_counter()
    large_app, large = build(f"{directory}/large.sqlite", 5000)
    add_floor_route(large_app, large["family_id"])
    print(
        f"large town: {large['families']} families, {large['children']} children, {large['bookings']:,} booking rows (built in {time.perf_counter() - began:.0f} s)"
    )
    small_app, small = build(f"{directory}/small.sqlite", 50)
    add_floor_route(small_app, small["family_id"])
    print(
        f"small town: {small['families']} families, {small['children']} children, {small['bookings']:,} booking rows"
    )
    days, offered = line_days(large_app, large)
    without, one, every = line_queries(small_app, small, days, offered)
    add_lines(large_app, large, days, offered)
    large["offered"] = small["offered"] = offered
    print(
        f"waiting lists (morning care): the 3 children in line on {len(days)} days ({', '.join(d.strftime('%d/%m') for d in days)}),"
        f" ranks 1er to 5e, a place offered on {offered.strftime('%d/%m')}"
    )
    print(
        f"month planning SQL queries: {without} with no day in line, {one} with one, {every} with every one"
        f" (target: constant, at most one more)" + ("" if one == every <= without + 1 else "  MISSED")
    )
    both = targets(large_app, large, "") | targets(small_app, small, "small ")
    gc.collect()
    gc.freeze()  # as app.py does once the app is loaded
    interleaved(both, rounds=3)  # warm-up
    measured = interleaved(both, rounds=ROUNDS)
    bare, bare_queries = measured["bare"]
    month, month_queries = measured["month"]
    cell, cell_queries = measured["cell"]
    print(f"bare logged-in page: {bare * 1000:.2f} ms, {bare_queries} SQL queries")
    print(
        f"month planning (3 children) / bare page: {month / bare:.2f}  (target ≤ 2.0), {month_queries} SQL queries, {month * 1000:.2f} ms"
    )
    print(
        f"cell request POST / bare page: {cell / bare:.2f}  (target ≤ 1.5), {cell_queries} SQL queries, {cell * 1000:.2f} ms"
    )
    offer, offer_queries = measured["offer"]
    print(
        f"confirmation of the place offered (price, deadline) / bare page: {offer / bare:.2f}, {offer_queries} SQL queries, {offer * 1000:.2f} ms"
    )
    agenda, agenda_queries = measured["agenda"]
    print(
        f"phone agenda, a week (3 children) / bare page: {agenda / bare:.2f}  (target ≤ 1.5), {agenda_queries} SQL queries, {agenda * 1000:.2f} ms"
    )
    for name, (client, _engine, _method, url, *_rest) in both.items():
        if name in ("agenda", "month"):
            html = client.get(url).get_data()
            print(
                f"{name} page weight: {len(html) / 1000:.1f} KB of HTML, {len(gzip.compress(html)) / 1000:.1f} KB gzipped"
                + ("  (target ≤ 15 KB gzipped)" if name == "agenda" else "")
            )
    period, period_queries = period_request(large_app, large)
    print(
        f"school-year period request (3 children, Mon/Tue/Thu/Fri): {period * 1000:.0f} ms, {period_queries} SQL queries"
    )
    print(
        f"month planning large town / 50-family town: {month / measured['small month'][0]:.2f}  (target ≤ 1.2)"
    )
    floor, floor_queries = measured["floor"]
    print(
        f"for reference, a POST that only logs in, updates one row and commits / bare page: {floor / bare:.2f}, {floor_queries} SQL queries"
    )


if __name__ == "__main__":
    main()
