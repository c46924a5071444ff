"""French dates: one module spells them (portail/formatting.py), and nothing else does by hand."""

import ast
import re
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from portail import formatting
from portail.formatting import french_date, french_datetime, french_day, month_label, weekday_names

ROOT = Path(__file__).resolve().parent.parent / "portail"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (date(2026, 9, 1), "1er septembre 2026"),
        (date(2026, 11, 1), "1er novembre 2026"),
        (date(2026, 12, 2), "2 décembre 2026"),
        (date(2027, 2, 28), "28 février 2027"),
        (date(2027, 8, 15), "15 août 2027"),
        ("2027-03-04", "4 mars 2027"),  # an ISO date kept in an outbox row
        (None, ""),
    ],
)
def test_french_date_says_1er_for_the_first_and_names_the_month(value, expected):
    assert french_date(value) == expected


def test_french_date_options_add_the_weekday_drop_the_year_and_add_the_time():
    moment = datetime(2026, 12, 1, 11, 45, tzinfo=UTC)  # 12:45 in Paris (winter, UTC+1)
    assert french_date(date(2026, 12, 1), weekday=True) == "mardi 1er décembre 2026"
    assert french_date(date(2026, 12, 1), weekday=True, year=False) == "mardi 1er décembre"
    assert french_date(moment, time=True) == "1er décembre 2026 à 12:45"
    assert french_datetime(moment) == "1er décembre 2026 à 12:45"
    assert french_date(date(2026, 12, 1), time=True) == "1er décembre 2026"  # a day has no time
    assert french_day(date(2027, 3, 4)) == "jeudi 4 mars"
    assert formatting.french_instant(moment) == "mardi 1er décembre à 12:45"


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        # The day and the clock are Paris's: 23:30 UTC is already the next day in Paris.
        (datetime(2026, 12, 31, 23, 30, tzinfo=UTC), "1er janvier 2027 à 00:30"),
        # Summer time (UTC+2) and winter time (UTC+1) on both sides of each change.
        (datetime(2027, 3, 28, 0, 59, tzinfo=UTC), "28 mars 2027 à 01:59"),
        (datetime(2027, 3, 28, 1, 0, tzinfo=UTC), "28 mars 2027 à 03:00"),
        (datetime(2027, 10, 31, 0, 30, tzinfo=UTC), "31 octobre 2027 à 02:30"),
        (datetime(2027, 10, 31, 1, 30, tzinfo=UTC), "31 octobre 2027 à 02:30"),
        (datetime(2027, 7, 1, 10, 45, tzinfo=UTC), "1er juillet 2027 à 12:45"),
        ("2027-07-01T10:45:00+00:00", "1er juillet 2027 à 12:45"),
    ],
)
def test_datetimes_are_shown_in_paris_time_across_daylight_saving(moment, expected):
    assert french_datetime(moment) == expected


def test_month_labels_and_weekday_names():
    assert month_label(date(2026, 8, 1)) == "août 2026"
    assert formatting.month_value(date(2026, 8, 1)) == "2026-08"
    assert formatting.short_date(date(2027, 3, 4)) == "04/03/2027"
    assert weekday_names("14") == "lundi, jeudi"
    assert weekday_names("41") == "lundi, jeudi"
    assert weekday_names("") == "tous les jours"


def test_templates_use_the_french_filters(app):
    rendered = app.jinja_env.from_string(
        "{{ d|french_date }} · {{ d|french_date(weekday=True, year=False) }} · {{ t|french_datetime }}"
        " · {{ d|month_label }} · {{ french_day(d) }}"
    ).render(d=date(2026, 9, 1), t=datetime(2026, 9, 1, 10, 45, tzinfo=UTC))
    assert rendered == (
        "1er septembre 2026 · mardi 1er septembre · 1er septembre 2026 à 12:45 · septembre 2026 · mardi 1er septembre"
    )


# Hand-made dates in templates: strftime, a date's parts glued together, a list of month names.
TEMPLATE_HAND_DATES = re.compile(
    r"strftime|\.(day|month|year)\s*}}|\.(day|month|year)\s*~|'janvier'|\"janvier\""
)


def test_no_template_formats_a_date_by_hand():
    templates = sorted((ROOT / "templates").rglob("*.*"))
    assert len(templates) > 50
    offenders = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()[:120]}"
        for path in templates
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if TEMPLATE_HAND_DATES.search(line)
    ]
    assert offenders == []


MONTH_OR_DAY_NAMES = {"janvier", "février", "lundi", "mardi"}
# Formats that spell a date or a time for a reader; machine stamps (%Y%m%dT%H%M%S, %Y-%m-%d) are fine.
READER_FORMATS = re.compile(r"%d/|/%m|%H:%M|%H h|%[AaBbe]")


def test_python_code_spells_dates_only_in_the_formatting_module():
    offenders = []
    sources = sorted(ROOT.rglob("*.py"))
    assert len(sources) > 40
    for path in sources:
        if path.name == "formatting.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FormattedValue) and node.format_spec is not None:
                text = ast.unparse(node.format_spec)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                text = node.value
            else:
                continue
            names = set(re.findall(r"\w+", text)) & MONTH_OR_DAY_NAMES
            if len(names) >= 2 or READER_FORMATS.search(text):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {text[:60]!r}")
    assert offenders == []
