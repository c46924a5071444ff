"""Benchmark of the registers (Pointage, issue 17).

Builds, in a temporary SQLite file, an activity of the day with 300 children of ten classes booked
(each with a responsable's phone, two people allowed to collect them, one in five with a health alert,
half already marked) and another with 30, then prints, measured in one run with the Flask test client:
- the 300-child register as it opens (class by class: its first class) / a bare logged-in page
  (target ≤ 2.0), the 30-child register, and the 300 children on one page ("Tous"), with their SQL
  queries (target: the same number whatever the size);
- one tap (a mark, htmx: the row and the figures come back) / the bare page, and its SQL queries;
- the weights (HTML, gzipped).
Run with `make bench`.
"""

import gzip
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from planning import interleaved  # noqa: E402
from town import add_agent, town_app  # noqa: E402

from portail.extensions import db  # noqa: E402
from portail.formatting import PARIS  # noqa: E402
from portail.models import (  # noqa: E402
    Activity,
    Attendance,
    AuthorizedContact,
    Booking,
    BookingState,
    Child,
    Family,
    Guardian,
    Presence,
    ValidationMode,
    utcnow,
)

ROUNDS = 60
# A school's ten classes: a register of 300 children is shown class by class (30 each)
CLASSES = ["CP A", "CP B", "CE1 A", "CE1 B", "CE2 A", "CE2 B", "CM1 A", "CM1 B", "CM2 A", "CM2 B"]
PASSWORD = "bench-portail-famille-2026"


def activity_of(name: str, start: date) -> Activity:
    activity = Activity(
        name=name,
        site="École Jules Ferry",
        weekdays="1234567",
        start_date=start - timedelta(days=30),
        end_date=start + timedelta(days=300),
        capacity=None,
        validation_mode=ValidationMode.AUTOMATIC,
    )
    db.session.add(activity)
    db.session.flush()
    return activity


def fill(activity: Activity, children: int, day: date, offset: int) -> list[int]:
    """`children` children of as many families booked that day, half of them marked; their ids."""
    ids = []
    for n in range(children):
        family = Family(name=f"Famille BENCH{offset + n}", subscriber_code=f"B{offset + n:09d}")
        db.session.add(family)
        db.session.flush()
        db.session.add(
            Guardian(
                family_id=family.id,
                position=1,
                first_name="Parent",
                last_name=f"BENCH{n}",
                phone="0600000000",
            )
        )
        child = Child(
            family_id=family.id,
            first_name=f"Enfant{n}",
            last_name=f"BENCH{offset + n}",
            birth_date=date(2017, 5, 1),
            school_class=CLASSES[n % len(CLASSES)],
            allergies="Arachides" if n % 5 == 0 else None,
            pai=n % 10 == 0,
        )
        db.session.add(child)
        db.session.flush()
        for relation in ("Grand-mère", "Voisin"):
            db.session.add(
                AuthorizedContact(
                    child_id=child.id,
                    first_name="Contact",
                    last_name=relation,
                    relationship_label=relation,
                    phone="0611223344",
                )
            )
        db.session.add(
            Booking(child_id=child.id, activity_id=activity.id, day=day, state=BookingState.RESERVED)
        )
        if n % 2:
            db.session.add(
                Attendance(
                    child_id=child.id,
                    activity_id=activity.id,
                    day=day,
                    presence=Presence.PRESENT,
                    marked_at=utcnow() - timedelta(days=1),
                )
            )
        ids.append(child.id)
    db.session.flush()
    return ids


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        app = town_app(str(Path(folder) / "registers.sqlite"))
        with app.app_context():
            db.create_all()
            today = utcnow().astimezone(PARIS).date()
            big, small = activity_of("Restauration scolaire", today), activity_of("Accueil du soir", today)
            big_children = fill(big, 300, today, 0)
            fill(small, 30, today, 1000)
            add_agent(PASSWORD)
            db.session.commit()
            engine, big_id, small_id = db.engine, big.id, small.id
        client = app.test_client()
        client.post("/connexion", data={"email": "agent@example.fr", "password": PASSWORD})
        day = today.isoformat()
        taps = iter(big_children * (ROUNDS // len(big_children) + 2))

        def tap():
            return {"presence": "present", "tapped": str(int(utcnow().timestamp() * 1000))}

        # (each tap marks the next child; its URL names the child)
        tap_urls = iter(f"/gestion/pointage/{big_id}/{day}/enfants/{child}" for child in taps)
        measured = {
            "bare": (client, engine, "GET", "/mon-espace/", None),
            "register300": (
                client,
                engine,
                "GET",
                f"/gestion/pointage/{big_id}/{day}",
                None,
                "300 attendu(s)",
            ),
            "register30": (
                client,
                engine,
                "GET",
                f"/gestion/pointage/{small_id}/{day}",
                None,
                "30 attendu(s)",
            ),
            "register300all": (
                client,
                engine,
                "GET",
                f"/gestion/pointage/{big_id}/{day}?classe=tous",
                None,
                "300 attendu(s)",
            ),
        }
        results = interleaved(measured, ROUNDS)
        tap_times = []
        tap_queries = 0
        for _ in range(ROUNDS):
            counter = {"n": 0}

            def count(*_args, counter=counter):
                counter["n"] += 1

            url = next(tap_urls)
            sa.event.listen(engine, "before_cursor_execute", count)
            begin = time.perf_counter()
            response = client.post(url, data=tap(), headers={"HX-Request": "true"})
            tap_times.append(time.perf_counter() - begin)
            sa.event.remove(engine, "before_cursor_execute", count)
            assert response.status_code == 200 and "Présent" in response.get_data(as_text=True)
            tap_queries = counter["n"]
        page = client.get(f"/gestion/pointage/{big_id}/{day}").get_data()
        everyone = client.get(f"/gestion/pointage/{big_id}/{day}?classe=tous").get_data()
        bare, _ = results["bare"]
        big_time, big_queries = results["register300"]
        all_time, all_queries = results["register300all"]
        small_time, small_queries = results["register30"]
        tap_time = sorted(tap_times)[len(tap_times) // 2]
        print("Registers (Pointage) — medians over", ROUNDS, "rounds")
        print(f"  bare page: {bare * 1000:.1f} ms")
        print(
            f"  register of 300 children (shown class by class, 30 in the first) / bare page:"
            f" {big_time / bare:.2f} (target ≤ 2.0); SQL queries: {big_queries}"
        )
        print(f"  register of 30 children / bare page: {small_time / bare:.2f}; SQL queries: {small_queries}")
        print(
            f"  the 300 children on one page ('Tous') / bare page: {all_time / bare:.2f};"
            f" SQL queries: {all_queries} (target: the same as 30)"
        )
        print(f"  one tap (htmx) / bare page: {tap_time / bare:.2f}; SQL queries: {tap_queries}")
        for label, body in (("first class of the 300", page), ("the 300 on one page", everyone)):
            print(
                f"  weight, {label}: {len(body) / 1024:.1f} KB of HTML, {len(gzip.compress(body)) / 1024:.1f} KB gzipped"
            )


if __name__ == "__main__":
    main()
