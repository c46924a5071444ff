"""Browser test support: Debian's chromium through Playwright, a live server, axe at every step."""

import os
import re  # noqa: F401
import threading
from datetime import date, timedelta
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from portail.extensions import db
from portail.models import Family, Role, utcnow
from tests.conftest import make_app, missing_service, tables
from tests.factories import PASSWORD, enrol, make_activity, make_family, make_user, subscribe

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        missing_service(f"chromium ({CHROMIUM}, Debian package chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def live_server(tmp_path):
    """The app served on a free local port, with real CSRF and the dev mailbox."""
    app = make_app(
        f"sqlite:///{tmp_path / 'browser.sqlite'}",
        WTF_CSRF_ENABLED=True,
        DEV_TOOLS=True,
        DEV_MAILBOX_DIR=str(tmp_path / "mailbox"),
    )
    with tables(app):
        family = make_family(
            name="Famille MARTIN", children=(("Léa", date(2016, 3, 14)), ("Tom", date(2019, 9, 2)))
        )
        make_user(email="agent@example.fr", role=Role.AGENT, first_name="Nadia", last_name="AGENT")
        db.session.commit()
        app.demo_code = family.subscriber_code
        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        app.base_url = f"http://127.0.0.1:{server.server_port}"
        app.config["PUBLIC_URL"] = app.base_url  # (mail links come from it, as `make run` sets it)
        try:
            yield app
        finally:
            server.shutdown()


def enrolled_martins() -> tuple:
    """In the live server's app context: an activity open every weekday from today on (30 places),
    both MARTIN children enrolled in it, and their mother Claire (claire@example.fr) subscribed to the
    family; with the weekdays of the 40 days from two weeks ahead: (family, activity, claire, days)."""
    today = utcnow().date()
    family = db.session.scalar(db.select(Family))
    activity = make_activity(start_date=today, end_date=today + timedelta(days=200), capacity=30)
    for child in family.children:
        enrol(child, activity)
    claire = make_user(email="claire@example.fr", first_name="Claire", last_name="MARTIN")
    subscribe(claire, family)
    ahead = (today + timedelta(days=14 + n) for n in range(40))
    return family, activity, claire, [day for day in ahead if day.isoweekday() <= 5]


class Journey:
    """A page in a browser context, checking axe and the 360 px layout at every step."""

    def __init__(self, page, name: str):
        self.page = page
        self.name = name
        self.step = 0
        ARTIFACTS.mkdir(exist_ok=True)

    def check(self, label: str) -> None:
        from axe_playwright_python.sync_playwright import Axe

        self.step += 1
        results = Axe().run(self.page)
        assert results.violations_count == 0, f"{label}: {results.generate_report()}"
        width = self.page.evaluate("document.documentElement.scrollWidth")
        assert width <= self.page.viewport_size["width"], f"{label}: horizontal scroll ({width}px)"
        self.page.screenshot(path=str(ARTIFACTS / f"{self.name}-{self.step:02d}-{label}.png"), full_page=True)


def login(page, base: str, email: str) -> None:
    """Log in through the login form."""
    page.goto(base + "/connexion")
    page.get_by_label("Adresse e-mail").fill(email)
    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_role("button", name="Se connecter").click()
    page.wait_for_load_state()


def new_page(browser, javascript: bool = True, width: int = 360):
    context = browser.new_context(
        viewport={"width": width, "height": 780}, java_script_enabled=javascript, locale="fr-FR"
    )
    page = context.new_page()
    page.set_default_timeout(10_000)
    return page


def logged_in(browser, base: str, email: str, name: str, width: int = 360) -> tuple:
    """A new page logged in as `email` through the login form, and its journey named `name`."""
    page = new_page(browser, width=width)
    journey = Journey(page, name)
    login(page, base, email)
    return page, journey
