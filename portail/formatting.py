"""Dates, times and amounts as a French reader expects them, in Paris time: the one place that spells
a date or an amount (templates, mails, PDFs, flash messages and history lines all come here)."""

from datetime import UTC, date, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

PARIS = ZoneInfo("Europe/Paris")
MONTHS = "janvier février mars avril mai juin juillet août septembre octobre novembre décembre".split()
WEEKDAYS = ["lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"]


def today_in_paris(now: datetime) -> date:
    """The town's date at the instant `now`."""
    return now.astimezone(PARIS).date()


def _parse(value: date | datetime | str) -> date | datetime:
    """A date or datetime; an ISO string (kept in an outbox row's context) is parsed."""
    if isinstance(value, str):
        return datetime.fromisoformat(value) if "T" in value else date.fromisoformat(value)
    return value


def _paris(value: datetime) -> datetime:
    """The instant in Paris time (a naive datetime is UTC, as the database stores it)."""
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(PARIS)


def french_date(
    value: date | datetime | str | None, *, weekday: bool = False, year: bool = True, time: bool = False
) -> str:
    """ "1er mars 2027", "lundi 3 mars 2027", "3 mars 2027 à 12:45" (`time` only for datetimes).

    Datetimes are shown in Paris time, so the day is the one the reader lived."""
    if value is None or value == "":
        return ""
    value = _parse(value)
    clock = None
    if isinstance(value, datetime):
        value = clock = _paris(value)
    text = f"{value.day}{'er' if value.day == 1 else ''} {MONTHS[value.month - 1]}"
    if weekday:
        text = f"{WEEKDAYS[value.weekday()]} {text}"
    if year:
        text = f"{text} {value.year}"
    if time and clock is not None:
        text = f"{text} à {clock:%H:%M}"
    return text


def french_datetime(value: datetime | str | None) -> str:
    """3 mars 2027 à 14:05, in Paris time."""
    return french_date(value, time=True)


def french_day(day: date) -> str:
    """lundi 3 mars (a day of the current school year: no year)."""
    return french_date(day, weekday=True, year=False)


@lru_cache(maxsize=4096)  # the same deadlines are written in many planning cells
def french_instant(moment: datetime) -> str:
    """jeudi 27 février à 10:00 (a deadline, in Paris time)."""
    return french_date(moment, weekday=True, year=False, time=True)


def short_date(day: date | str) -> str:
    """04/03/2027, for compact lists (history lines, screen-reader labels of table rows)."""
    day = _parse(day)
    return f"{day.day:02d}/{day.month:02d}/{day.year}"


def clock(moment: datetime) -> str:
    """14:05, the time of an instant in Paris (a column beside its date)."""
    return f"{_paris(moment):%H:%M}"


def month_label(month: date) -> str:
    """mars 2027."""
    return f"{MONTHS[month.month - 1]} {month.year}"


def month_value(month: date) -> str:
    """2027-03: a month as URLs and <input type="month"> carry it (not for reading)."""
    return f"{month.year:04d}-{month.month:02d}"


def weekday_names(digits: str) -> str:
    """ "14" → "lundi, jeudi" (ISO weekday digits, each named once, in week order)."""
    numbers = sorted({int(d) for d in digits or "" if d.isdigit() and 1 <= int(d) <= 7})
    return ", ".join(WEEKDAYS[number - 1] for number in numbers) or "tous les jours"


def euros(cents: int) -> str:
    """1 234,56 € (French format, narrow no-break space between thousands)."""
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(cents), 100)
    return f"{sign}{whole:,}".replace(",", "\u202f") + f",{part:02d}\u00a0€"


FILTERS = {
    "euros": euros,
    "french_date": french_date,
    "french_datetime": french_datetime,
    "french_day": french_day,
    "short_date": short_date,
    "clock": clock,
    "month_label": month_label,
    "month_value": month_value,
    "weekday_names": weekday_names,
}
