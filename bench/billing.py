"""Benchmark of the billing run (issue 7).

Builds, in a temporary SQLite file, a large town (5,000 families with a parent account each,
8,000 children, the canteen every open day of a school month and the evening care for most:
over 200,000 booked days in the month, plus late absences), then runs the billing of that month
as the RQ job does and prints its duration, its SQL query count (it grows with the number of
batches of families, not with the number of days), invoices per second; then the same run again
(idempotent: nothing issued) and a run after a correction (credit notes and new invoices); then the
reminders job over those 5,000 invoices gone late: its first step, the same day again, and its second
step once a tenth of them are paid. On a copy of the town before the reminders, every family pays by
direct debit: the month's pain.008 file (5,000 debits: time to build and validate, size, queries).
Run with `make bench`.
"""

import shutil
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from datetime import time as dt_time
from pathlib import Path
from typing import NamedTuple

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from town import add_activities, add_agent, town_app  # noqa: E402

from portail.bookings import rules as booking_rules  # noqa: E402
from portail.extensions import db  # noqa: E402
from portail.formatting import PARIS  # noqa: E402
from portail.models import (  # noqa: E402
    BillingRun,
    Booking,
    BookingState,
    Child,
    Family,
    Guardian,
    Invoice,
    InvoiceKind,
    OutboxMessage,
    Payment,
    PaymentMethod,
    SepaMandate,
    Subscription,
    Tariff,
    User,
    utcnow,
)
from portail.services import billing  # noqa: E402
from portail.services.billing import reminders, sepa  # noqa: E402
from portail.services.outbox import commit  # noqa: E402

FAMILIES = 5000


def build(path: str):
    app = town_app(path)
    with app.app_context():
        start, end, activities = add_activities()
        canteen, evening = activities[0], activities[2]
        for activity in activities:
            brackets = billing.make_brackets([(622, 100), (1000, 330), (1500, 420), (None, 510)])
            db.session.add(
                Tariff(activity_id=activity.id, valid_from=start, valid_until=end, brackets=brackets)
            )
        month = date(start.year + 1, 3, 1)  # March: a full school month
        first, last = billing.month_bounds(month)
        days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
        canteen_days = [d for d in days if booking_rules.closure(canteen, d, "C") is None]
        evening_days = [d for d in days if booking_rules.closure(evening, d, "C") is None]
        connection = db.session.connection()
        connection.execute(
            sa.insert(Family),
            [
                {"id": i, "name": f"Famille F{i}", "subscriber_code": f"B{i:09d}"}
                for i in range(1, FAMILIES + 1)
            ],
        )
        connection.execute(
            sa.insert(Guardian),
            [
                {
                    "family_id": i,
                    "position": 1,
                    "first_name": "Parent",
                    "last_name": f"F{i}",
                    "quotient": (i * 37) % 2000 if i % 4 else None,
                    "quotient_valid_until": end,
                    "address_line1": f"{i} rue de la Paix",
                    "postcode": "75001",
                    "city": "Paris",
                }
                for i in range(1, FAMILIES + 1)
            ],
        )
        hashed = "$argon2id$v=19$m=65536,t=3,p=4$bench$bench"
        connection.execute(
            sa.insert(User),
            [
                {
                    "id": i,
                    "email": f"parent{i}@example.fr",
                    "first_name": "Parent",
                    "last_name": f"F{i}",
                    "password_hash": hashed,
                    "session_token": f"t{i}",
                    "activated_at": utcnow(),
                }
                for i in range(1, FAMILIES + 1)
            ],
        )
        connection.execute(
            sa.insert(Subscription), [{"user_id": i, "family_id": i} for i in range(1, FAMILIES + 1)]
        )
        children, child_id = [], 0
        for family_id in range(1, FAMILIES + 1):
            for n in range(2 if family_id % 5 < 3 else 1):
                child_id += 1
                children.append(
                    {
                        "id": child_id,
                        "family_id": family_id,
                        "first_name": f"E{n}",
                        "last_name": f"F{family_id}",
                        "birth_date": date(2017, 1, 1),
                    }
                )
        connection.execute(sa.insert(Child), children)
        rows, now = [], utcnow()
        for child in children:
            rows += [
                {
                    "child_id": child["id"],
                    "activity_id": canteen.id,
                    "day": d,
                    "state": BookingState.RESERVED,
                    "updated_at": now,
                }
                for d in canteen_days
            ]
            if child["id"] % 3:
                rows += [
                    {
                        "child_id": child["id"],
                        "activity_id": evening.id,
                        "day": d,
                        "state": BookingState.RESERVED,
                        "updated_at": now,
                    }
                    for d in evening_days
                ]
        for offset in range(0, len(rows), 50_000):
            connection.execute(sa.insert(Booking.__table__), rows[offset : offset + 50_000])
        commit()
        db.session.execute(sa.text("ANALYZE"))
    return app, month, len(rows), len(children)


class Figures(NamedTuple):
    invoices: int
    credit_notes: int


def measured_run(app, month) -> tuple[float, int, Figures]:
    with app.app_context():
        count = {"n": 0}

        def counter(*_args):
            count["n"] += 1

        run = BillingRun(month=month)
        db.session.add(run)
        commit()
        sa.event.listen(db.engine, "before_cursor_execute", counter)
        began = time.perf_counter()
        try:
            done = billing.run(run.id)
        finally:
            elapsed = time.perf_counter() - began
            sa.event.remove(db.engine, "before_cursor_execute", counter)
        return elapsed, count["n"], Figures(done.invoices, done.credit_notes)


def measured_reminders(app, now) -> tuple[float, int, int]:
    """The reminders job at `now`: (seconds, SQL queries, mails queued)."""
    with app.app_context():
        count = {"n": 0}

        def counter(*_args):
            count["n"] += 1

        sa.event.listen(db.engine, "before_cursor_execute", counter)
        began = time.perf_counter()
        try:
            mails = reminders.send_due(now)
        finally:
            elapsed = time.perf_counter() - began
            sa.event.remove(db.engine, "before_cursor_execute", counter)
        return elapsed, count["n"], mails


def reminders_bench(app) -> None:
    """The invoices in force gone late: the first step, the same day again, then a tenth of them
    paid and the second step."""
    in_force = (Invoice.kind == InvoiceKind.INVOICE, Invoice.credited_by_id.is_(None))
    with app.app_context():
        due = db.session.scalar(sa.select(sa.func.max(Invoice.due_date)).where(*in_force))
        late = db.session.scalar(sa.select(sa.func.count(Invoice.id)).where(*in_force))
    for label, days in (("first step", 7), ("same day again", 7), ("second step", 30)):
        if days == 30:
            with app.app_context():
                late -= pay_a_tenth(due, in_force)
        now = datetime.combine(due + timedelta(days=days), dt_time(10), PARIS)
        elapsed, queries, mails = measured_reminders(app, now)
        batches = -(-mails // reminders.BATCH)  # (one parent per family: a mail per family reminded)
        per_batch = f" for {batches} batches ({(queries - 1) / batches:.1f} per batch)" if batches else ""
        print(
            f"reminders, {label} (D+{days}): {elapsed:.1f} s, {mails:,} mails for {late:,} late invoices, "
            f"{queries} SQL queries{per_batch}"
        )


def pay_a_tenth(due, in_force) -> int:
    """Every tenth family pays its invoice (by cheque, on the due date): how many were paid."""
    paid = db.session.execute(
        sa.select(Invoice.id, Invoice.total_cents).where(
            *in_force, Invoice.family_id % 10 == 1, Invoice.total_cents > 0
        )
    ).all()
    db.session.execute(
        sa.insert(Payment),
        [
            {"invoice_id": invoice_id, "paid_on": due, "amount_cents": total, "method": PaymentMethod.CHEQUE}
            for invoice_id, total in paid
        ],
    )
    commit()
    return len(paid)


def sepa_bench(directory: str, month: date) -> None:
    """Every family of a copy of the town pays by direct debit: the month's pain.008 file."""
    shutil.copy(f"{directory}/billing.sqlite", f"{directory}/sepa.sqlite")
    app = town_app(f"{directory}/sepa.sqlite")
    with app.app_context():
        agent = add_agent("bench-sepa-password", email="tresorerie@example.fr")
        db.session.execute(
            sa.insert(SepaMandate),
            [
                {
                    "family_id": i,
                    "reference": f"PF-{i:06d}-01",
                    "holder": f"Parent F{i}",
                    "iban": "FR7630006000011234567890189",
                    "bic": "AGRIFRPPXXX",
                    "signed_on": month - timedelta(days=60),
                    "created_at": utcnow(),
                }
                for i in range(1, FAMILIES + 1)
            ],
        )
        commit()
        count = {"n": 0}

        def counter(*_args):
            count["n"] += 1

        sa.event.listen(db.engine, "before_cursor_execute", counter)
        began = time.perf_counter()
        try:
            batch, _new = sepa.make_file(month, agent, utcnow())
            commit()
        finally:
            elapsed = time.perf_counter() - began
            sa.event.remove(db.engine, "before_cursor_execute", counter)
        checked = time.perf_counter()
        sepa.validate(batch.xml)
        validation = time.perf_counter() - checked
        print(
            f"pain.008 of the month: {elapsed:.1f} s for {batch.count:,} debits ({billing.euros(batch.total_cents)}), "
            f"{len(batch.xml) / 1024 / 1024:.1f} MB, {count['n']} SQL queries; its XSD validation alone {validation:.1f} s"
        )


def main() -> None:
    directory = tempfile.mkdtemp()
    began = time.perf_counter()
    app, month, booked, children = build(f"{directory}/billing.sqlite")
    print(
        f"large town: {FAMILIES} families, {children} children, {booked:,} booked days in {billing.month_label(month)} (built in {time.perf_counter() - began:.0f} s)"
    )
    batches = -(-FAMILIES // app.config["BILLING_BATCH"])
    elapsed, queries, run = measured_run(app, month)
    print(
        f"billing run: {elapsed:.1f} s, {run.invoices} invoices, {run.invoices / elapsed:,.0f} invoices/s, "
        f"{queries} SQL queries for {batches} batches of {app.config['BILLING_BATCH']} families ({queries / batches:.1f} per batch)"
    )
    with app.app_context():
        mails = db.session.scalar(sa.select(sa.func.count(OutboxMessage.id)))
        lines = db.session.scalar(sa.text("SELECT COUNT(*) FROM invoice_line"))
    print(f"  {lines:,} invoice lines, {mails:,} mails queued in the outbox")
    elapsed, queries, run = measured_run(app, month)
    print(
        f"same run again (idempotent): {elapsed:.1f} s, {run.invoices} invoices, {run.credit_notes} credit notes, {queries} SQL queries"
    )
    with app.app_context():  # a correction: one day more for every tenth family's children
        first_day = db.session.scalar(sa.select(sa.func.min(Booking.day)))
        changed = db.session.execute(
            sa.update(Booking)
            .where(
                Booking.day == first_day,
                Booking.child_id.in_(sa.select(Child.id).where(Child.family_id % 10 == 0)),
            )
            .values(state=BookingState.ABSENT)
        ).rowcount
        commit()
    elapsed, queries, run = measured_run(app, month)
    print(
        f"after {changed} bookings changed: {elapsed:.1f} s, {run.credit_notes} credit notes + {run.invoices} new invoices, {queries} SQL queries"
    )
    with app.app_context():
        numbers = db.session.scalars(
            sa.select(Invoice.number).where(Invoice.kind == InvoiceKind.INVOICE).order_by(Invoice.number)
        ).all()
        expected = [f"{numbers[0][:6]}-{n:06d}" for n in range(1, len(numbers) + 1)]
        print(f"invoice numbers: {numbers[0]} … {numbers[-1]}, {'no gap' if numbers == expected else 'GAPS'}")
    sepa_bench(directory, month)
    reminders_bench(app)


if __name__ == "__main__":
    main()
