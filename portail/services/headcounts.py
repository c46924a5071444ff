"""Effectifs: the children expected per day, activity and site, with what the kitchen needs (meals
without pork, vegetarian, meal baskets, other diets, allergies and PAI); the printable PDF, the CSV,
and the kitchen's daily mail.

Expected: a day reserved, or reserved with an absence asked and not decided yet (the meal is
still owed until the town accepts it). A reservation asked and not decided is counted apart
("en attente"); an absence, a sick day, a day the town cancelled or a refused request are not
expected.

Whatever the number of families, a period costs two queries: the counts aggregated by the
database, and the children the kitchen must know by name (allergies, PAI, "Autre" diets).

The kitchen's mail, at KITCHEN_MAIL_AT (Paris time) or at the first run of the job after it, is
sent once a day: its `DailyMail` row is inserted with ON CONFLICT DO NOTHING in the transaction
that queues it, so a second run, a second scheduler or a retried job finds the row and sends
nothing.
"""

import csv
import io
from dataclasses import dataclass, field, fields
from datetime import date, datetime, time, timedelta

import sqlalchemy as sa
from flask import current_app
from fpdf import FPDF

from portail.extensions import db
from portail.formatting import PARIS, french_date, french_datetime, french_day
from portail.models import Activity, Booking, BookingState, Child, DailyMail, Diet, User
from portail.services import transactions
from portail.services.audit import record
from portail.services.outbox import queue_mail
from portail.services.printing import NEXT, document, fit
from portail.services.transactions import upsert
from portail.urls import public_url

EXPECTED = (BookingState.RESERVED, BookingState.ABSENCE_REQUESTED)
PENDING = BookingState.RESERVATION_REQUESTED
MAIL = "kitchen_headcounts"  # the DailyMail's name
WEEK = 7  # days


@dataclass
class Counts:
    """The figures of one activity on one day, or their sum over activities or days."""

    expected: int = 0
    pending: int = 0
    pork_free: int = 0
    vegetarian: int = 0
    meal_basket: int = 0
    other: int = 0
    allergies: int = 0

    def __add__(self, more: "Counts") -> "Counts":
        return Counts(*(getattr(self, f.name) + getattr(more, f.name) for f in fields(Counts)))

    def values(self) -> list[int]:
        """The figures in the order of COLUMNS."""
        return [getattr(self, name) for name, _label in COLUMNS]


# The figures as every page, file and mail heads them, in this order.
COLUMNS = (
    ("expected", "Enfants attendus"),
    ("pending", "En attente"),
    ("pork_free", Diet.PORK_FREE.label),
    ("vegetarian", Diet.VEGETARIAN.label),
    ("meal_basket", Diet.MEAL_BASKET.label),
    ("other", "Autre régime"),
    ("allergies", "Allergies ou PAI"),
)


@dataclass(frozen=True)
class Note:
    """A child the kitchen must know by name: an allergy, a PAI, or a diet "Autre"."""

    name: str
    diet: str  # the diet's label, "" for the standard meal
    precision: str
    allergies: str
    pai: bool

    def text(self) -> str:
        """One line: 'Léa MARTIN — Autre : sans gluten — allergies : arachides — PAI'."""
        parts = [self.name]
        if self.diet:
            parts.append(f"{self.diet} : {self.precision}" if self.precision else self.diet)
        if self.allergies:
            parts.append(f"allergies : {self.allergies}")
        if self.pai:
            parts.append("PAI")
        return " — ".join(parts)


@dataclass
class Line:
    """One activity on one day."""

    activity_id: int
    activity: str
    site: str
    counts: Counts
    notes: list[Note] = field(default_factory=list)


@dataclass
class Day:
    day: date
    lines: list[Line]

    @property
    def total(self) -> Counts:
        return sum((line.counts for line in self.lines), Counts())


@dataclass
class Headcounts:
    """The days of a period (every day, those without anyone too) and each activity's totals."""

    first: date
    last: date
    days: list[Day]

    @property
    def by_activity(self) -> list[tuple[str, str, Counts]]:
        """(activity, site, totals over the period), in the order of the days' lines."""
        totals: dict[int, tuple[str, str, Counts]] = {}
        for day in self.days:
            for line in day.lines:
                name, site, counts = totals.get(line.activity_id, (line.activity, line.site, Counts()))
                totals[line.activity_id] = (name, site, counts + line.counts)
        return sorted(totals.values(), key=lambda item: (item[1], item[0]))

    @property
    def total(self) -> Counts:
        return sum((day.total for day in self.days), Counts())

    @property
    def notes(self) -> int:
        """How many names the lists give (0: no health data shown)."""
        return sum(len(line.notes) for day in self.days for line in day.lines)

    def title(self) -> str:
        """'jeudi 3 décembre 2026' or 'du jeudi 3 au mercredi 9 décembre 2026'."""
        if self.first == self.last:
            return french_date(self.first, weekday=True)
        return f"du {french_day(self.first)} au {french_date(self.last, weekday=True)}"


def _counted(condition) -> sa.ColumnElement:
    """How many of a group's rows meet `condition` (a SUM, as both databases write it)."""
    return sa.func.sum(sa.case((condition, 1), else_=0))


def _has_allergies() -> sa.ColumnElement:
    """A child with an allergy written down or a PAI."""
    return sa.or_(sa.func.coalesce(sa.func.trim(Child.allergies), "") != "", Child.pai.is_(True))


def period(first: date, last: date) -> Headcounts:
    """The headcounts of every day from `first` to `last` (two queries, whatever the town's size)."""
    expected = Booking.state.in_(EXPECTED)
    in_period = sa.and_(Booking.day >= first, Booking.day <= last)
    figures = db.session.execute(
        sa.select(
            Booking.day,
            Activity.id,
            Activity.name,
            Activity.site,
            _counted(expected),
            _counted(Booking.state == PENDING),
            _counted(expected & (Child.diet == Diet.PORK_FREE)),
            _counted(expected & (Child.diet == Diet.VEGETARIAN)),
            _counted(expected & (Child.diet == Diet.MEAL_BASKET)),
            _counted(expected & (Child.diet == Diet.OTHER)),
            _counted(expected & _has_allergies()),
        )
        .join(Activity, Activity.id == Booking.activity_id)
        .join(Child, Child.id == Booking.child_id)
        .where(in_period, Booking.state.in_([*EXPECTED, PENDING]))
        .group_by(Booking.day, Activity.id, Activity.name, Activity.site)
    ).all()
    named = db.session.execute(
        sa.select(
            Booking.day,
            Booking.activity_id,
            Child.first_name,
            Child.last_name,
            Child.diet,
            Child.diet_other,
            Child.allergies,
            Child.pai,
        )
        .join(Child, Child.id == Booking.child_id)
        .where(in_period, expected, sa.or_(Child.diet == Diet.OTHER, _has_allergies()))
        .order_by(Booking.day, Child.last_name, Child.first_name, Child.id)
    ).all()
    lines: dict[tuple[date, int], Line] = {
        (row[0], row[1]): Line(row[1], row[2], row[3] or "", Counts(*(int(n or 0) for n in row[4:])))
        for row in figures
    }
    for row in named:
        lines[(row.day, row.activity_id)].notes.append(
            Note(
                name=f"{row.first_name} {row.last_name}",
                diet=row.diet.label if row.diet else "",
                precision=(row.diet_other or "") if row.diet is Diet.OTHER else "",
                allergies=(row.allergies or "").strip(),
                pai=bool(row.pai),
            )
        )
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    return Headcounts(
        first,
        last,
        [
            Day(
                day,
                sorted(
                    (line for (on, _id), line in lines.items() if on == day),
                    key=lambda line: (line.site, line.activity, line.activity_id),
                ),
            )
            for day in days
        ],
    )


def audit_lists(agent: User | None, headcounts: Headcounts, what: str) -> None:
    """Record that the named lists (health data) were read or sent, when they name anyone."""
    if headcounts.notes:
        record(agent, "health.viewed", "headcount", None, f"Effectifs {headcounts.title()} — {what}")


# --- files ---------------------------------------------------------------------------------------

HEADER = ["Date", "Activité", "Site", *(label for _name, label in COLUMNS), "Enfants à connaître (cuisine)"]


def csv_file(headcounts: Headcounts) -> bytes:
    """One row per day and activity: semicolons, UTF-8 with BOM (Excel FR)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";")
    writer.writerow(HEADER)
    for day in headcounts.days:
        for line in day.lines:
            writer.writerow(
                [
                    day.day.isoformat(),
                    _cell(line.activity),
                    _cell(line.site),
                    *line.counts.values(),
                    _cell(" | ".join(note.text() for note in line.notes)),
                ]
            )
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def _cell(text: str) -> str:
    """A text as a spreadsheet shows it, never as a formula (a name or an allergy typed "=…")."""
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


WIDTHS = (62, 42, 24, 22, 22, 28, 26, 20, 28)  # activity, site, then the figures (A4 landscape: 277 mm)
SHORT = ("Attendus", "En attente", "Sans porc", "Végétarien", "Panier repas", "Autre", "Allergies/PAI")


def pdf_file(headcounts: Headcounts, town: str, now: datetime) -> bytes:
    """The period on A4 landscape: per day, a table of activities with the kitchen's figures, the
    day's total, then the children to know by name."""
    pdf = document(f"Effectifs {headcounts.title()}", town, orientation="L")
    pdf.set_auto_page_break(True, margin=12)
    pdf.add_page()
    pdf.set_font("DejaVu", "B", 15)
    pdf.cell(0, 9, f"{town} — Effectifs {headcounts.title()}", **NEXT)
    pdf.set_font("DejaVu", "", 9)
    pdf.cell(
        0, 5, f"Édité le {french_datetime(now)}. En attente : réservations demandées, non comptées.", **NEXT
    )
    for day in headcounts.days:
        pdf.ln(3)
        pdf.set_font("DejaVu", "B", 12)
        pdf.cell(0, 8, french_date(day.day, weekday=True), **NEXT)
        if not day.lines:
            pdf.set_font("DejaVu", "", 9)
            pdf.cell(0, 6, "Aucun enfant attendu.", **NEXT)
            continue
        pdf.set_font("DejaVu", "B", 8)
        for width, heading in zip(WIDTHS, ("Activité", "Site", *SHORT), strict=True):
            pdf.cell(width, 6, heading, border=1, align="L" if heading in ("Activité", "Site") else "R")
        pdf.ln()
        pdf.set_font("DejaVu", "", 8)
        for line in day.lines:
            _row(pdf, [line.activity, line.site or "—", *map(str, line.counts.values())])
        pdf.set_font("DejaVu", "B", 8)
        _row(pdf, ["Total du jour", "", *map(str, day.total.values())])
        notes = [(line.activity, note) for line in day.lines for note in line.notes]
        if notes:
            pdf.set_font("DejaVu", "B", 9)
            pdf.cell(0, 6, "À connaître pour la cuisine (allergies, PAI, régimes « Autre ») :", **NEXT)
            pdf.set_font("DejaVu", "", 8)
            for activity, note in notes:
                text = f"• {activity} : {note.text()}"
                # (a line that fits is a cell: fpdf2 lays a multi_cell out slowly, and a town has thousands)
                if pdf.get_string_width(text) < pdf.epw:
                    pdf.cell(0, 4.5, text, **NEXT)
                else:
                    pdf.multi_cell(0, 4.5, text, **NEXT)
    return bytes(pdf.output())


def _row(pdf: FPDF, values: list[str]) -> None:
    for index, (width, value) in enumerate(zip(WIDTHS, values, strict=True)):
        pdf.cell(width, 6, fit(pdf, value, width), border=1, align="L" if index < 2 else "R")
    pdf.ln()


def export(first: date, last: date, fmt: str, agent: User, now: datetime) -> tuple[str, bytes, str]:
    """The period as a PDF or CSV file, its read of the lists audited: (file name, content, MIME type)."""
    headcounts = period(first, last)
    name = f"effectifs-{first.isoformat()}" + (f"-au-{last.isoformat()}" if last != first else "")
    audit_lists(agent, headcounts, fmt.upper())
    if fmt == "pdf":
        return f"{name}.pdf", pdf_file(headcounts, current_app.config["TOWN_NAME"], now), "application/pdf"
    return f"{name}.csv", csv_file(headcounts), "text/csv; charset=utf-8"


# --- the kitchen's daily mail ----------------------------------------------------------------------


def mail_due(now: datetime, send_at: time) -> date | None:
    """The Paris day whose mail is due at `now` (at or after `send_at` that day), else None."""
    local = now.astimezone(PARIS)
    return local.date() if local.time() >= send_at else None


def send_kitchen_mail(now: datetime) -> bool:
    """Queue today's kitchen mail if it is due and not sent yet (the job runs every minute); whether
    this call queued it. Costs no query before the time, one after the mail is sent."""
    recipient = current_app.config["KITCHEN_EMAIL"]
    day = mail_due(now, current_app.config["KITCHEN_MAIL_AT"])
    if not recipient or day is None:
        return False
    sent = sa.select(sa.exists().where(DailyMail.name == MAIL, DailyMail.day == day))
    if db.session.scalar(sent):
        db.session.rollback()  # (no transaction left open between two runs)
        return False
    return transactions.run(lambda: _queue_kitchen_mail(recipient, day, now))


def _queue_kitchen_mail(recipient: str, day: date, now: datetime) -> bool:
    """Take the day's DailyMail row and queue the mail in the same transaction (False: taken already)."""
    won = db.session.execute(
        upsert(DailyMail)
        .values(name=MAIL, day=day, sent_at=now)
        .on_conflict_do_nothing(index_elements=["name", "day"])
        .returning(DailyMail.day)
    ).first()
    if won is None:
        return False
    # Today's figures (the day's last changes: sick days, late absences) and tomorrow's, to prepare.
    headcounts = period(day, day + timedelta(days=1))
    audit_lists(None, headcounts, "e-mail à la cuisine")
    queue_mail(
        MAIL,
        recipient,
        day=day.isoformat(),
        days=[
            mail_day(entry, label)
            for entry, label in zip(headcounts.days, ("Aujourd'hui", "Demain"), strict=True)
        ],
        columns=[label for _name, label in COLUMNS],
        link=public_url("gestion.headcounts", periode="semaine"),
    )
    return True


def mail_day(day: Day, label: str) -> dict:
    """A day of the mail's context (plain JSON, kept in the outbox row)."""
    return {
        "label": f"{label}, {french_date(day.day, weekday=True)}",
        "lines": [
            {
                "activity": line.activity,
                "site": line.site,
                "figures": line.counts.values(),
                "notes": [note.text() for note in line.notes],
            }
            for line in day.lines
        ],
        "total": day.total.values(),
    }
