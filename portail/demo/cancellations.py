"""The demo's strike: the canteen cancelled on its first open day of next week ("Grève"), declared by
the agent yesterday afternoon, with its mail to the parents of the children who had reserved it (Léa
MARTIN's: Claire and Julien). In a holiday week the canteen is closed: no strike then."""

from datetime import time, timedelta

import sqlalchemy as sa

from portail.bookings import rules as booking_rules
from portail.demo.activities import open_days, paris_time, sent_then, zone
from portail.extensions import db
from portail.models import Activity, User, utcnow
from portail.services import cancellations


def load(agent: User) -> None:
    """The strike next week on the canteen, as declared yesterday at 16:30 (the caller commits)."""
    now = utcnow()
    today = now.astimezone(booking_rules.PARIS).date()
    monday = today + timedelta(days=7 - today.weekday())
    canteen = db.session.scalar(sa.select(Activity).where(Activity.name == "Restauration scolaire"))
    days = [day for day in open_days(canteen, monday, 5) if day < monday + timedelta(days=5)]
    if not days:
        return
    declared = paris_time(now, 1, time(16, 30))
    cancellations.cancel(canteen, days[0], days[0], "Grève", agent, declared, zone())
    sent_then("service_cancelled", declared)
