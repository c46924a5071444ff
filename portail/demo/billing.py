"""Demo billing: tariffs for the six activities, the days the demo children went to in two past
months (school days, and the holiday centre in the holidays and the summer), and those two months
billed (one invoice paid, one late, the newer ones to pay)."""

from datetime import date, datetime, time, timedelta

import sqlalchemy as sa

from portail.bookings import history, transitions
from portail.bookings import rules as booking_rules
from portail.demo import activities as demo_activities
from portail.demo import registers as demo_registers
from portail.extensions import db
from portail.formatting import month_label
from portail.models import (
    Activity,
    BillingRun,
    Booking,
    BookingState,
    EventKind,
    Family,
    Invoice,
    InvoiceKind,
    LineState,
    PaymentMethod,
    Request,
    RequestKind,
    RequestLine,
    RunState,
    Tariff,
    User,
    utcnow,
)
from portail.services import audit, billing, request_desk

# Price per day (cents) by quotient bracket: up to 622, up to 1000, up to 1500, above.
PRICES = {
    "Restauration scolaire": (100, 330, 420, 510),
    "Accueil du matin": (50, 120, 160, 200),
    "Accueil du soir": (80, 190, 250, 300),
    "Centre de loisirs du mercredi": (300, 750, 1050, 1400),
    "Centre de loisirs des vacances": (350, 850, 1200, 1600),
    "Atelier théâtre du mercredi": (200, 450, 600, 800),
}
UPPER_BOUNDS = (622, 1000, 1500, None)
# "Frais de garde": the attestation fiscale counts them; meals (the canteen) are not childcare.
CHILDCARE = {name for name in PRICES if name != "Restauration scolaire"}


def billed_months(today: date) -> list[date]:
    """The two months the demo has billed: the two before the current one, unless the older's
    invoices are not due yet (the first days after a short month), then the two before those, so
    that one can be late and the newer ones are still to pay."""
    last = billing.previous_month(today)
    older = billing.previous_month(last)
    due = billing.month_bounds(last)[0] + timedelta(days=billing.DUE_DAYS)  # older's, issued the 1st
    if today <= due:
        last, older = older, billing.previous_month(older)
    return [older, last]


def load(families: dict[str, Family], agent: User) -> None:
    """Tariffs, past bookings and two billed months (the caller commits)."""
    activities = {activity.name: activity for activity in db.session.scalars(sa.select(Activity))}
    for name, prices in PRICES.items():
        activity = activities[name]
        brackets = billing.make_brackets(list(zip(UPPER_BOUNDS, prices, strict=True)))
        db.session.add(
            Tariff(
                activity_id=activity.id,
                valid_from=activity.start_date,
                valid_until=activity.end_date,
                brackets=brackets,
                late_surcharge_cents=150 if name == "Restauration scolaire" else 0,
                bill_late_absences=True,
                childcare=name in CHILDCARE,
            )
        )
    months = billed_months(billing.today_in_paris(utcnow()))
    martin, bernard = families["MRTNA52846"], families["BRNRD73925"]
    lea, tom = martin.children
    ines = bernard.children[0]
    canteen, evening, morning, holidays = (
        activities["Restauration scolaire"],
        activities["Accueil du soir"],
        activities["Accueil du matin"],
        activities["Centre de loisirs des vacances"],
    )
    for month in months:
        _attended(
            month,
            [(lea, canteen), (lea, evening), (tom, canteen), (tom, morning), (ines, canteen)]
            + [(lea, holidays), (tom, holidays), (ines, holidays)],
        )
    _absences(months[-1], martin, lea, tom, [canteen, holidays], agent)
    animator = db.session.scalar(sa.select(User).where(User.email == "animateur@demo.fr"))
    demo_registers.in_billed_month(months[-1], lea, tom, ines, [canteen, holidays], animator)
    db.session.flush()
    tariffs = billing.tariffs_for(months[0], billing.month_bounds(months[-1])[1])
    by_id = {activity.id: activity for activity in activities.values()}
    for month in months:
        following = billing.month_bounds(month)[1] + timedelta(days=1)
        issued = datetime.combine(following, time(9), tzinfo=booking_rules.PARIS)
        family_ids = billing.families_to_bill(month)
        invoices, credit_notes, unpriced = billing.bill_families(family_ids, month, issued, tariffs, by_id)
        # The agent billed the month from Facturation: its run and its audit line say so.
        run = BillingRun(
            month=month,
            state=RunState.DONE,
            families_total=len(family_ids),
            families_done=len(family_ids),
            invoices=invoices,
            credit_notes=credit_notes,
            unpriced_days=unpriced,
            started_by_id=agent.id,
            created_at=issued - timedelta(minutes=2),
            finished_at=issued,
        )
        db.session.add(run)
        db.session.flush()
        demo_activities.sent_then("invoice_issued", issued)
        audit.record(agent, "billing.started", "billing_run", run.id, month_label(month), at=run.created_at)
        db.session.flush()
    paid = db.session.scalar(
        sa.select(Invoice).where(
            Invoice.family_id == martin.id, Invoice.month == months[0], Invoice.kind == InvoiceKind.INVOICE
        )
    )
    if paid is not None:
        billing.record_payment(
            paid, paid.due_date - timedelta(days=10), paid.total_cents, PaymentMethod.DIRECT_DEBIT, agent
        )


def _attended(month: date, pairs) -> None:
    """Every open day of the month reserved for these children and activities."""
    first, last = billing.month_bounds(month)
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    for child, activity in pairs:
        attended = [
            day
            for day in days
            if activity.start_date <= day <= activity.end_date
            and str(day.isoweekday()) in activity.weekdays
            and booking_rules.closure(activity, day, demo_activities.zone()) is None
        ]
        transitions.seed(child.id, activity.id, attended, BookingState.RESERVED)


def _absences(month: date, family: Family, lea, tom, choices: list[Activity], agent: User) -> None:
    """Two absences last month, at the canteen (at the holiday centre in a month of summer): Léa's
    declared in time (not billed), Tom's too late (billed); Claire asked them, the agent accepted
    them an hour later, and she read the answer."""
    claire = db.session.scalar(sa.select(User).where(User.email == "claire.martin@demo.fr"))
    found = demo_activities.month_open_days(month, choices, 6)
    if found is None:
        return
    activity, open_days = found
    for child, day, late in ((lea, open_days[3], False), (tom, open_days[5], True)):
        db.session.flush()
        booking = db.session.scalar(
            sa.select(Booking).where(
                Booking.child_id == child.id, Booking.activity_id == activity.id, Booking.day == day
            )
        )
        transitions.seed_state(booking, BookingState.ABSENT)
        deadline = booking_rules.absence_deadline(activity, day)
        asked_at = deadline + timedelta(hours=3) if late else deadline - timedelta(days=2)
        decided_at = asked_at + timedelta(hours=1)
        request = Request(
            family_id=family.id,
            child_id=child.id,
            activity_id=activity.id,
            kind=RequestKind.ABSENCE,
            created_by_id=claire.id,
            created_at=asked_at,
        )
        request.lines.append(
            RequestLine(day=day, state=LineState.ACCEPTED, decided_at=decided_at, decided_by_id=agent.id)
        )
        db.session.add(request)
        db.session.flush()
        shown = history.short_days([day])
        history.record(
            request.id,
            EventKind.CREATED,
            claire,
            by_town=False,
            summary=f"Demande d'absence : 1 jour ({shown})",
            at=asked_at,
        )
        history.record(
            request.id, EventKind.DECISION, agent, by_town=True, summary=f"Acceptée : {shown}", at=decided_at
        )
        request_desk.mark_read(request, claire, decided_at + timedelta(hours=2))
