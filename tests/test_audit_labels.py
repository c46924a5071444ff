"""The audit trail speaks French to agents: every action code written anywhere has a label, and the
dashboard and a family's page show labels, never codes."""

import ast
import re
from pathlib import Path

import pytest
import sqlalchemy as sa

from portail.extensions import db
from portail.models import AuditEvent
from portail.services import audit, dossier
from tests.factories import make_family

ROOT = Path(__file__).resolve().parent.parent / "portail"


def _strings(node, assigned: dict[str, list]) -> list[str]:
    """The string values an expression can take (constants, both sides of `a if c else b`, a name
    assigned constants in the same module)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp):
        return _strings(node.body, assigned) + _strings(node.orelse, assigned)
    if isinstance(node, ast.Name):
        return [value for expression in assigned.get(node.id, []) for value in _strings(expression, assigned)]
    return []


def _assignments(tree) -> dict[str, list]:
    """name → the expressions assigned to it (tuple assignments included)."""
    found: dict[str, list] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    found.setdefault(target.id, []).append(node.value)
                elif isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):
                    for name, value in zip(target.elts, node.value.elts, strict=False):
                        if isinstance(name, ast.Name):
                            found.setdefault(name.id, []).append(value)
    return found


def written_action_codes() -> tuple[set[str], list[str]]:
    """Every action code passed to audit.record in the code, and the calls whose code is built at
    run time (f-strings), as file:line."""
    codes, built = set(), []
    for path in sorted(ROOT.rglob("*.py")):
        tree = ast.parse(path.read_text())
        assigned = _assignments(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or len(node.args) < 2:
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name != "record" or any(k.arg == "by_town" for k in node.keywords):
                continue  # (requests.record writes a request's history, with by_town)
            action = node.args[1]
            if isinstance(action, ast.JoinedStr):
                built.append(f"{path.relative_to(ROOT)}:{node.lineno}")
                continue
            values = _strings(action, assigned)
            assert values, f"{path.relative_to(ROOT)}:{node.lineno}: action code not found"
            codes.update(values)
    return codes, built


def test_every_action_code_written_has_a_french_label():
    codes, built = written_action_codes()
    assert len(codes) >= 25  # the scan found the calls
    assert sorted(codes - set(audit.ACTION_LABELS)) == []
    # The one code built at run time: a staff read of a sensitive section ("health.viewed", "bank.viewed").
    assert len(built) == 1 and built[0].startswith("services/dossier.py:")
    sensitive = {section.sensitive for section in dossier.SECTIONS.values() if section.sensitive}
    assert sensitive and {f"{kind}.viewed" for kind in sensitive} <= set(audit.ACTION_LABELS)
    assert sorted(set(audit.ACTION_LABELS) - codes - {f"{kind}.viewed" for kind in sensitive}) == []


def test_recording_an_action_without_a_label_is_refused(app):
    with pytest.raises(audit.UnknownAction):
        audit.record(None, "billing.exportd", "invoice", None)


@pytest.mark.both_dbs
def test_dashboard_and_family_page_show_french_labels_not_codes(client, logged_in_agent):
    family = make_family()
    for code in audit.ACTION_LABELS:
        audit.record(logged_in_agent, code, "family", family.id, "détail")
    db.session.commit()
    assert db.session.scalar(sa.select(sa.func.count(AuditEvent.id))) == len(audit.ACTION_LABELS)
    dashboard = client.get("/gestion/").get_data(as_text=True)
    family_page = client.get(f"/gestion/familles/{family.id}").get_data(as_text=True)
    latest = list(audit.ACTION_LABELS)[-15:]  # the dashboard shows the 15 latest
    for code in audit.ACTION_LABELS:
        assert code not in dashboard and code not in family_page
        assert audit.ACTION_LABELS[code] in family_page
    for code in latest:
        assert audit.ACTION_LABELS[code] in dashboard


def test_dashboard_cards_have_distinct_links(client, logged_in_agent):
    page = client.get("/gestion/").get_data(as_text=True)
    links = re.findall(r'<section class="card">.*?</section>', page, flags=re.S)
    texts = [text for card in links for text in re.findall(r"<a [^>]*>([^<]+)</a>", card)]
    assert len(texts) >= 6 and len(texts) == len(set(texts))
    assert (
        "Traiter les réservations et absences" in texts and "Traiter les modifications de dossiers" in texts
    )
