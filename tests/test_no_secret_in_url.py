"""No secret in a URL: a CSRF token never travels in a GET's query (logs, history, Referer)."""

import re
from datetime import date, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest
import sqlalchemy as sa

from portail.extensions import db
from portail.models import Request, utcnow
from tests.conftest import make_app, tables
from tests.factories import PASSWORD, enrol, make_activity, make_family, make_user, period_form, subscribe

TEMPLATES = Path(__file__).resolve().parent.parent / "portail" / "templates"
FORM = re.compile(r"<form\b(?P<tag>[^>]*)>(?P<body>.*?)</form>", re.S | re.I)


def leaks(tag: str, body: str) -> str | None:
    """Why a form would send its CSRF token in a URL, or None."""
    if "csrf" not in body:
        return None
    method = re.search(r'\bmethod="(\w+)"', tag)
    if method is None or method.group(1).lower() == "get":
        return "a GET form holds the CSRF token"
    if re.search(r'formmethod="get"', body, re.I):
        return "a button sends the form (and its CSRF token) as a GET"
    if "hx-get" in tag:
        return "htmx sends the form (and its CSRF token) as a GET"
    return None


def test_no_template_sends_a_csrf_token_in_a_get():
    found, templates, forms = [], 0, 0
    for path in sorted(TEMPLATES.rglob("*.html")):
        templates += 1
        for match in FORM.finditer(path.read_text(encoding="utf-8")):
            forms += 1
            why = leaks(match.group("tag"), match.group("body"))
            if why:
                found.append(f"{path.relative_to(TEMPLATES)}: {why}")
    assert found == []
    # (a form written once in a macro — _macros/forms.html post_form — is one source form here)
    assert templates >= 80 and forms >= 40  # 94 templates and 46 source forms when this was written


def test_the_scan_sees_the_ways_a_token_leaks():
    assert leaks(' method="get"', '<input name="csrf_token">')
    assert leaks("", "{{ csrf_token() }}")
    assert leaks(' method="post"', '{{ csrf_token() }}<button formmethod="get">')
    assert leaks(' method="post" hx-get="/x"', "{{ csrf_token() }}")
    assert leaks(' method="post" hx-post="/x"', "{{ csrf_token() }}") is None


class Forms(HTMLParser):
    """The forms of a rendered page: method, htmx verb, and the submit buttons' formmethod."""

    def __init__(self):
        super().__init__()
        self.forms: list[dict] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.forms.append({"method": (attrs.get("method") or "get").lower(), "attrs": attrs, "names": []})
        elif self.forms and tag in ("input", "button", "select"):
            self.forms[-1]["names"].append(attrs.get("name"))
            if attrs.get("formmethod"):
                self.forms[-1]["method"] += "+" + attrs["formmethod"].lower()


@pytest.fixture
def csrf_app(tmp_path):
    with tables(make_app(f"sqlite:///{tmp_path / 'csrf.sqlite'}", WTF_CSRF_ENABLED=True), drop=True) as app:
        family = make_family(children=(("Léa", date(2016, 3, 14)),))
        subscribe(make_user(), family)
        activity = make_activity()
        enrol(family.children[0], activity)
        db.session.commit()
        yield app, family, family.children[0], activity


def test_the_period_preview_without_javascript_is_a_csrf_checked_post_that_changes_nothing(csrf_app):
    app, family, child, activity = csrf_app
    client = app.test_client()
    token = re.search(r'"X-CSRFToken": "([^"]+)"', client.get("/connexion").get_data(as_text=True)).group(1)
    client.post("/connexion", data={"email": "parent@example.fr", "password": PASSWORD, "csrf_token": token})
    url = f"/famille/{family.id}/planning/periode"
    page = client.get(url).get_data(as_text=True)
    parser = Forms()
    parser.feed(page)
    period = next(form for form in parser.forms if form["attrs"].get("id") == "period-form")
    assert period["method"] == "post" and "hx-get" not in period["attrs"]
    assert "hx-post" in period["attrs"] and "apercu" in period["names"]
    for form in parser.forms:
        assert "get" not in form["method"] or "csrf_token" not in form["names"], form
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    monday = utcnow().date() + timedelta(weeks=3)
    monday -= timedelta(days=monday.weekday())
    params = dict(period_form(child, activity, monday, monday + timedelta(days=13)), apercu="1")
    assert client.post(url, data=params).status_code == 400  # no token: refused
    preview = client.post(url, data=dict(params, csrf_token=token))
    text = preview.get_data(as_text=True)
    assert preview.status_code == 200 and "<html" in text
    assert "4 jours de réservation demandés" in text
    htmx = client.post(url, data=dict(params, csrf_token=token), headers={"HX-Request": "true"})
    assert "<html" not in htmx.get_data(as_text=True) and "4 jours de réservation demandés" in htmx.get_data(
        as_text=True
    )
    assert db.session.scalar(sa.select(sa.func.count(Request.id))) == 0
    params.pop("apercu")
    assert client.post(url, data=dict(params, csrf_token=token)).status_code == 302
    assert db.session.scalar(sa.select(sa.func.count(Request.id))) == 1
