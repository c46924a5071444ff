"""Benchmark of the planning on a large town (issue 4).

Builds, in temporary SQLite files, a large town (5,000 families, 8,000 children, every child booked
at the canteen for the whole school year: over 1,000,000 booking rows) and a 50-family town, then
prints, measured in one run with the Flask test client:
- month planning of a 3-child family / a bare logged-in page (target ≤ 2.0), and its SQL queries;
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

from portail.bookings import rules as booking_rules  # noqa: E402
from portail.demo import activities as demo_activities  # noqa: E402
from portail.extensions import db  # noqa: E402
from portail.models import (  # noqa: E402
    Activity,
    Booking,
    BookingState,
    Child,
    Enrolment,
    Family,
    Guardian,
    Subscription,
    User,
    utcnow,
)
from portail.services import passwords  # noqa: E402

ROUNDS = 100  # medians over many rounds: the machine's speed drifts by ±20 % from one run to the next
PASSWORD = "bench-portail-famille-2026"


def build(path: str, families: int) -> tuple:
    """A town of `families` families (+ the bench family with 3 children); returns its app and ids."""
    app = town_app(path)
    with app.app_context():
        start, end, activities = add_activities()
        canteen = activities[0]
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
        }
    return app, info


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
        f"{prefix}month": (
            client,
            engine,
            "GET",
            f"/famille/{fid}/planning?vue=mois&date={(today + timedelta(days=14)).isoformat()}",
            None,
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
