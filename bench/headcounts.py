"""Benchmark of the Effectifs (issue 17): the coming week's headcounts of a large town.

Builds, in a temporary SQLite file, 5,000 families and 8,000 children (one in six with a diet, one
in ten with an allergy or a PAI), the canteen and the evening care booked on every open day of the
coming week (a few absences, sick days and pending reservations among them), then prints the time
and the SQL query count of the week's headcounts (the service, then the whole page with the
kitchen's named lists, the PDF and the CSV, as an agent gets them). Not part of the test suite.
Run with `python bench/headcounts.py`.
"""

import logging
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from town import add_activities, add_agent, town_app  # noqa: E402

from portail.bookings import rules as booking_rules  # noqa: E402
from portail.extensions import db  # noqa: E402
from portail.formatting import today_in_paris  # noqa: E402
from portail.models import Booking, BookingState, Child, Diet, Family, utcnow  # noqa: E402
from portail.services import headcounts  # noqa: E402
from portail.services.outbox import commit  # noqa: E402

FAMILIES = 5000
PASSWORD = "banc-essai-effectifs-2026"
DIETS = [None, None, None, None, None, Diet.PORK_FREE, None, Diet.VEGETARIAN, None, None, Diet.MEAL_BASKET]
# Most days reserved; now and then an absence, a sick day, a reservation waiting for the town.
STATES = [BookingState.RESERVED] * 17 + [
    BookingState.ABSENT,
    BookingState.SICK,
    BookingState.RESERVATION_REQUESTED,
]


def build(path: str):
    app = town_app(path)
    with app.app_context():
        _start, _end, activities = add_activities()
        canteen, evening = activities[0], activities[2]
        first = today_in_paris(utcnow())
        week = [first + timedelta(days=n) for n in range(headcounts.WEEK)]
        connection = db.session.connection()
        connection.execute(
            sa.insert(Family),
            [
                {"id": i, "name": f"Famille F{i}", "subscriber_code": f"B{i:09d}"}
                for i in range(1, FAMILIES + 1)
            ],
        )
        children, child_id = [], 0
        for family_id in range(1, FAMILIES + 1):
            for n in range(2 if family_id % 5 < 3 else 1):
                child_id += 1
                diet = DIETS[child_id % len(DIETS)] if child_id % 31 else Diet.OTHER
                children.append(
                    {
                        "id": child_id,
                        "family_id": family_id,
                        "first_name": f"E{n}",
                        "last_name": f"F{family_id}",
                        "birth_date": date(2017, 1, 1),
                        "diet": diet,
                        "diet_other": "Sans gluten" if diet is Diet.OTHER else None,
                        "allergies": "Arachides" if child_id % 10 == 0 else None,
                        "pai": child_id % 40 == 0,
                    }
                )
        connection.execute(sa.insert(Child), children)
        rows, now = [], utcnow()
        for activity, share in ((canteen, 1), (evening, 3)):
            days = [d for d in week if booking_rules.closure(activity, d, "C") is None]
            rows += [
                {
                    "child_id": child["id"],
                    "activity_id": activity.id,
                    "day": d,
                    "state": STATES[(child["id"] + d.toordinal()) % len(STATES)],
                    "updated_at": now,
                }
                for child in children
                if child["id"] % share == 0 or share == 1
                for d in days
            ]
        connection.execute(sa.insert(Booking.__table__), rows)
        add_agent(PASSWORD)
        commit()
        db.session.execute(sa.text("ANALYZE"))
    return app, first, len(rows), len(children)


def measured(app, work) -> tuple[float, int, object]:
    """Time and SQL statements of `work()` (best of three runs)."""
    best, queries, result = float("inf"), 0, None
    count = {"n": 0}

    def counter(*_args):
        count["n"] += 1

    for _ in range(3):
        count["n"] = 0
        with app.app_context():
            sa.event.listen(db.engine, "before_cursor_execute", counter)
            began = time.perf_counter()
            try:
                result = work()
            finally:
                elapsed = time.perf_counter() - began
                sa.event.remove(db.engine, "before_cursor_execute", counter)
        best, queries = min(best, elapsed), count["n"]
    return best, queries, result


def main() -> None:
    logging.getLogger("fontTools").setLevel(logging.WARNING)  # (fpdf2's font subsetting, at INFO)
    directory = tempfile.mkdtemp()
    began = time.perf_counter()
    app, first, booked, children = build(f"{directory}/headcounts.sqlite")
    print(
        f"large town: {FAMILIES} families, {children} children, {booked:,} booked days in the coming week "
        f"(built in {time.perf_counter() - began:.0f} s)"
    )
    last = first + timedelta(days=headcounts.WEEK - 1)
    elapsed, queries, week = measured(app, lambda: headcounts.period(first, last))
    print(
        f"week's headcounts (service): {elapsed * 1000:.0f} ms, {queries} SQL queries, "
        f"{week.total.expected:,} children expected, {week.notes:,} named for the kitchen"
    )
    client = app.test_client()
    client.post("/connexion", data={"email": "agent@example.fr", "password": PASSWORD})
    for label, url in (
        ("page, counts only", "/gestion/effectifs?periode=semaine"),
        ("page with the named lists", "/gestion/effectifs?periode=semaine&listes=1"),
        ("PDF", "/gestion/effectifs/effectifs.pdf?periode=semaine"),
        ("CSV", "/gestion/effectifs/effectifs.csv?periode=semaine"),
    ):
        elapsed, queries, response = measured(app, lambda url=url: client.get(url))
        assert response.status_code == 200, (url, response.status_code)
        print(
            f"{label}: {elapsed * 1000:.0f} ms, {queries} SQL queries, {len(response.get_data()) / 1024:,.0f} KB"
        )


if __name__ == "__main__":
    main()
