"""Browser journeys in Debian's chromium (Playwright), with an axe check on every page."""

import os
import re
import threading
from datetime import date
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from portail.extensions import db
from portail.models import Role
from tests.conftest import make_app, missing_service
from tests.factories import PASSWORD, make_family, make_user

pytestmark = pytest.mark.browser

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
    with app.app_context():
        db.create_all()
        family = make_family(name="Famille MARTIN", children=(("Léa", date(2016, 3, 14)), ("Tom", date(2019, 9, 2))))
        make_user(email="agent@example.fr", role=Role.AGENT, first_name="Nadia", last_name="AGENT")
        db.session.commit()
        app.demo_code = family.subscriber_code
        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        app.base_url = f"http://127.0.0.1:{server.server_port}"
        yield app
        server.shutdown()
        db.session.remove()
        db.engine.dispose()


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


def new_page(browser, javascript: bool = True, width: int = 360):
    context = browser.new_context(viewport={"width": width, "height": 780}, java_script_enabled=javascript, locale="fr-FR")
    page = context.new_page()
    page.set_default_timeout(10_000)
    return page


def test_newcomer_journey_signup_activation_login_subscription(browser, live_server):
    page = new_page(browser)
    journey = Journey(page, "newcomer")
    errors = []
    page.on("console", lambda message: message.type == "error" and errors.append(f"{page.url} step {journey.step}: {message.text[:80]} {message.location}"))
    base = live_server.base_url

    page.goto(base + "/")
    journey.check("accueil")
    page.get_by_role("link", name="Créer un compte").first.click()
    page.wait_for_url(re.compile("/inscription$"))
    journey.check("inscription")

    page.get_by_role("button", name="Créer mon compte").click()
    assert page.locator(".error-summary").is_visible()
    journey.check("inscription-erreurs")

    page.get_by_label("Civilité").select_option("Mme")
    page.get_by_label("Nom", exact=True).fill("Martin")
    page.get_by_label("Prénom").fill("Claire")
    page.get_by_label("Adresse e-mail").fill("claire@example.fr")
    page.get_by_label("Mot de passe", exact=True).fill(PASSWORD)
    page.get_by_label("Confirmation du mot de passe").fill(PASSWORD)
    page.get_by_label("J'accepte").check()
    page.get_by_role("button", name="Créer mon compte").click()
    page.wait_for_url(re.compile("/inscription/envoyee$"))
    assert "claire@example.fr" in page.content()
    journey.check("inscription-envoyee")

    page.goto(base + "/dev/mailbox")
    journey.check("boite-mail")
    page.get_by_role("link", name=re.compile("Activez votre compte")).click()
    journey.check("mail-activation")
    page.locator("a[href*='/activation/']").click()
    journey.check("activer")
    page.get_by_role("button", name="Activer mon compte").click()
    page.wait_for_url(re.compile("/connexion$"))
    assert "Votre compte est activé" in page.content()
    journey.check("compte-active")

    page.get_by_label("Adresse e-mail").fill("claire@example.fr")
    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_role("button", name="Se connecter").click()
    page.wait_for_url(re.compile("/mon-espace/$"))
    assert page.get_by_role("link", name="Espace Famille").count() == 0
    journey.check("mon-espace")

    page.get_by_role("link", name="Mes abonnements").click()
    journey.check("mes-abonnements")
    page.get_by_role("link", name="M'abonner").first.click()
    journey.check("m-abonner")
    page.get_by_label("Code abonné Famille").fill(live_server.demo_code)
    page.get_by_label("Date de naissance d'un enfant").fill("2019-09-02")
    page.get_by_role("button", name="Rechercher").click()
    page.get_by_text("Famille trouvée : Famille MARTIN").wait_for()
    assert re.search("/abonnements/nouveau$", page.url), "the search result is swapped in place by htmx"
    journey.check("famille-trouvee")
    page.get_by_role("button", name="Confirmer l'abonnement").click()
    page.wait_for_url(re.compile("/mon-espace/abonnements$"))
    nav = page.get_by_role("navigation", name="Menu principal")
    assert nav.get_by_role("link", name="Espace Famille").is_visible()
    assert nav.get_by_role("link", name="Espace Facturation").is_visible()
    journey.check("abonne")
    nav.get_by_role("link", name="Espace Famille").click()
    page.get_by_role("heading", name=re.compile("Famille MARTIN")).wait_for()
    assert "Léa" in page.content() and "Tom" in page.content()
    journey.check("espace-famille")
    assert errors == [], errors


def test_subscription_works_without_javascript(browser, live_server):
    with live_server.app_context():
        make_user(email="sansjs@example.fr")
        db.session.commit()
    page = new_page(browser, javascript=False)
    base = live_server.base_url
    page.goto(base + "/connexion")
    page.get_by_label("Adresse e-mail").fill("sansjs@example.fr")
    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_role("button", name="Se connecter").click()
    page.goto(base + "/mon-espace/abonnements/nouveau")
    page.get_by_label("Code abonné Famille").fill("ZZZZZZZZZZ")
    page.get_by_label("Date de naissance d'un enfant").fill("2019-09-02")
    page.get_by_role("button", name="Rechercher").click()
    assert "Aucune famille ne correspond" in page.content()
    page.get_by_label("Code abonné Famille").fill(live_server.demo_code)
    page.get_by_label("Date de naissance d'un enfant").fill("2019-09-02")
    page.get_by_role("button", name="Rechercher").click()
    page.get_by_role("button", name="Confirmer l'abonnement").click()
    page.wait_for_url(re.compile("/mon-espace/abonnements$"))
    assert "Famille MARTIN" in page.content()
    page.get_by_role("button", name="Se déconnecter").click()
    page.wait_for_url(base + "/")


def test_agent_journey_search_create_family_and_print_letter(browser, live_server):
    page = new_page(browser, width=1280)
    journey = Journey(page, "agent")
    base = live_server.base_url
    page.goto(base + "/connexion")
    page.get_by_label("Adresse e-mail").fill("agent@example.fr")
    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_role("button", name="Se connecter").click()
    page.wait_for_url(re.compile("/gestion/$"))
    journey.check("tableau-de-bord")
    page.get_by_role("link", name="Familles", exact=True).click()
    journey.check("familles")
    page.get_by_label("Rechercher une famille").fill("léa")
    page.wait_for_url(re.compile(r"q=l"))
    page.locator("#familles").get_by_text("1 famille").wait_for()
    page.get_by_role("link", name="Créer une famille").click()
    page.get_by_role("button", name="Enregistrer").click()
    assert page.locator(".error-summary").is_visible()
    journey.check("famille-erreurs")
    page.get_by_label("Nom de la famille").fill("Famille LEROY")
    page.locator("#guardian1-last_name").fill("LEROY")
    page.locator("#guardian1-first_name").fill("Anne")
    page.locator("#children-0-last_name").fill("LEROY")
    page.locator("#children-0-first_name").fill("Paul")
    page.locator("#children-0-birth_date").fill("2017-06-01")
    page.get_by_role("button", name="Enregistrer").click()
    page.get_by_role("heading", name="Famille LEROY").wait_for()
    journey.check("famille-creee")
    page.get_by_role("link", name="Courrier du code abonné").click()
    code = page.locator(".letter-code").inner_text()
    assert re.fullmatch(r"[A-Z2-9]{5}-[A-Z2-9]{5}", code)
    journey.check("courrier")
