"""Browser journeys in Debian's chromium (Playwright), with an axe check on every page."""

import re

import pytest

from portail.extensions import db
from tests.browser_support import Journey, new_page
from tests.factories import PASSWORD, make_user

pytestmark = pytest.mark.browser


def test_newcomer_journey_signup_activation_login_subscription(browser, live_server):
    page = new_page(browser)
    journey = Journey(page, "newcomer")
    errors = []
    page.on(
        "console",
        lambda message: message.type == "error"
        and errors.append(f"{page.url} step {journey.step}: {message.text[:80]} {message.location}"),
    )
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
