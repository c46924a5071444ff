"""Shared helpers have one home: French amounts and Paris time in formatting.py, the dialect's INSERT in
transactions.py, the form filter in forms/__init__.py — no second copy elsewhere in portail/."""

import ast
from datetime import UTC, datetime
from pathlib import Path

from portail.formatting import euros, today_in_paris

ROOT = Path(__file__).resolve().parent.parent / "portail"

HOMES = {
    "euros": "formatting.py",
    "today_in_paris": "formatting.py",
    "PARIS": "formatting.py",
    "MONTHS": "formatting.py",
    "WEEKDAYS": "formatting.py",
    "upsert": "services/transactions.py",
    "strip": "forms/__init__.py",
    "record": None,  # checked below: the audit's record is in services/audit.py
}


def definitions() -> dict[str, list[str]]:
    """Each top-level function or constant name → the modules of portail/ defining it."""
    found: dict[str, list[str]] = {}
    for path in sorted(ROOT.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef):
                names = [node.name]
            elif isinstance(node, ast.Assign):
                names = [target.id for target in node.targets if isinstance(target, ast.Name)]
            else:
                continue
            for name in names:
                found.setdefault(name.lstrip("_"), []).append(str(path.relative_to(ROOT)))
    return found


def test_each_shared_helper_is_defined_in_one_module():
    found = definitions()
    assert len(found) > 200  # the scan read the package
    for name, home in HOMES.items():
        if home is not None:
            assert found.get(name) == [home], name
    assert "services/audit.py" in found["record"] and "services/families.py" not in found["record"]


def test_only_transactions_switches_the_insert_on_the_dialect():
    offenders = [
        str(path.relative_to(ROOT))
        for path in sorted(ROOT.rglob("*.py"))
        if "sqlalchemy.dialects.sqlite import insert" in path.read_text()
    ]
    assert offenders == ["services/transactions.py"]


def test_euros_in_french_and_as_a_template_filter(app):
    assert euros(123456) == "1\u202f234,56\u00a0€"
    assert euros(-5) == "-0,05\u00a0€"
    rendered = app.jinja_env.from_string("{{ 330|euros }} · {{ euros(330) }}").render()
    assert rendered == "3,30\u00a0€ · 3,30\u00a0€"


def test_today_in_paris_is_the_town_date_not_utc():
    assert str(today_in_paris(datetime(2026, 12, 31, 23, 30, tzinfo=UTC))) == "2027-01-01"
    assert str(today_in_paris(datetime(2026, 7, 1, 21, 59, tzinfo=UTC))) == "2026-07-01"
