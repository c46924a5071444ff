"""Browser journey of the billing, on the real services: an agent starts the billing of last month
and watches its progress (a real RQ worker on a real redis-server bills it); the parent then opens
Espace Facturation, sees the invoice and downloads its PDF."""

import io
from datetime import date, timedelta

import pytest
from pypdf import PdfReader

from portail.extensions import db
from portail.models import Booking, BookingState, Role, utcnow
from tests.browser_support import logged_in
from tests.conftest import make_app, tables
from tests.factories import canteen, make_family, make_user, priced, subscribe
from tests.support import free_port, process_env, start_process, stop_process

pytestmark = [pytest.mark.browser, pytest.mark.integration]


@pytest.fixture
def served(tmp_path, redis_server):
    """The app on a live port, its jobs going to a real Redis for a worker process."""
    import threading

    from werkzeug.serving import make_server

    redis_server.start()
    db_url = f"sqlite:///{tmp_path / 'billing.sqlite'}"
    app = make_app(
        db_url,
        WTF_CSRF_ENABLED=True,
        REDIS_URL=redis_server.url,
        RQ_SYNC=False,
        RATELIMIT_STORAGE_URI="memory://",
    )
    with tables(app):
        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        app.base_url = f"http://127.0.0.1:{server.server_port}"
        app.worker_env = process_env(db_url, redis_server.url, free_port(), BILLING_BATCH="10")
        try:
            yield app
        finally:
            server.shutdown()


def last_month_days(activity) -> list[date]:
    today = utcnow().date()
    first = (today.replace(day=1) - timedelta(days=1)).replace(day=1)
    days = [first + timedelta(days=n) for n in range(31) if (first + timedelta(days=n)).month == first.month]
    return [day for day in days if day.isoweekday() in (1, 2, 4, 5)][:6]


def test_agent_bills_last_month_and_watches_it_then_the_parent_downloads_the_pdf(browser, served, tmp_path):
    from portail.services.outbox import commit

    with served.app_context():
        today = utcnow().date()
        activity = priced(
            canteen(start_date=today - timedelta(days=120), end_date=today + timedelta(days=200)),
            valid_from=today - timedelta(days=120),
        )
        days = last_month_days(activity)
        families = [
            make_family(name=f"Famille F{n:02d}", children=(("Zoé", date(2017, 1, 1)),)) for n in range(40)
        ]
        mine = make_family(
            name="Famille MARTIN", children=(("Léa", date(2016, 3, 14)), ("Éloïse", date(2018, 5, 2)))
        )
        for family in [*families, mine]:
            for child in family.children:
                db.session.add_all(
                    [
                        Booking(
                            child_id=child.id, activity_id=activity.id, day=day, state=BookingState.RESERVED
                        )
                        for day in days
                    ]
                )
        guardian = mine.guardians[0]
        guardian.quotient, guardian.quotient_valid_until = 850, today + timedelta(days=300)
        subscribe(make_user(email="claire@example.fr", first_name="Claire", last_name="MARTIN"), mine)
        make_user(email="agent@example.fr", role=Role.AGENT, first_name="Nadia", last_name="AGENT")
        commit()
        family_id = mine.id
    base = served.base_url

    agent, staff = logged_in(browser, base, "agent@example.fr", "facturation-agent", width=1280)
    agent.get_by_label("Menu principal").get_by_role("link", name="Facturation").click()
    staff.check("accueil")
    agent.get_by_role("button", name="Lancer la facturation").click()  # last month is the default
    agent.get_by_text("En attente").wait_for()  # no worker yet: the job waits in Redis
    url = agent.url
    staff.check("en-attente")
    worker = start_process("worker", served.worker_env)
    try:
        agent.get_by_text("Terminée").wait_for(timeout=60_000)  # htmx polling, no reload
        assert agent.url == url
        assert "Familles traitées : 41 sur 41" in agent.inner_text("#billing-progress")
        assert "41 factures émises" in agent.inner_text("#billing-progress")
        staff.check("terminee")
    finally:
        stop_process(worker)
    agent.get_by_role("link", name="Voir les factures").click()
    agent.get_by_text("41 documents").wait_for()
    staff.check("factures")
    agent.get_by_label("Famille ou numéro").fill("martin")
    agent.get_by_role("button", name="Filtrer").click()
    agent.get_by_text("1 document.").wait_for()
    agent.locator("table").get_by_role("link").first.click()
    agent.get_by_label("Montant").fill("10")
    agent.get_by_role("button", name="Enregistrer le paiement").click()
    agent.get_by_text("Moyen de paiement : Choisissez le moyen de paiement.").wait_for()  # error summary
    staff.check("paiement-erreur")
    agent.get_by_label("Moyen de paiement").select_option(label="Chèque")
    agent.get_by_role("button", name="Enregistrer le paiement").click()
    agent.get_by_text("Le paiement de 10,00").wait_for()
    staff.check("paiement")
    agent.goto(f"{base}/gestion/facturation/tarifs/nouveau")
    agent.get_by_role("button", name="Enregistrer le tarif").click()
    agent.get_by_text("erreurs à corriger").wait_for()
    staff.check("tarif-erreurs")
    agent.goto(f"{base}/gestion/familles/{family_id}")
    agent.get_by_role("link", name="Saisie d'un jour").click()
    agent.get_by_label("Enfant", exact=True).select_option(label="Léa MARTIN")
    agent.get_by_role("button", name="Enregistrer").click()
    agent.get_by_text("erreurs à corriger").wait_for()
    staff.check("saisie-erreurs")

    parent, journey = logged_in(browser, base, "claire@example.fr", "facturation-parent")
    parent.get_by_role("link", name="Espace Facturation", exact=True).click()
    section = parent.get_by_role("region", name="Famille MARTIN")
    # 12 days × 3,30 €, 10 € paid
    assert "À payer" in section.inner_text() and "39,60" in section.inner_text()
    assert "Solde restant dû : 29,60" in section.inner_text()
    journey.check("liste")
    section.get_by_role("link", name="Facture").first.click()
    parent.get_by_text("Éloïse MARTIN").wait_for()
    journey.check("detail")
    with parent.expect_download() as download:
        parent.get_by_role("link", name="Télécharger le PDF").click()
    path = tmp_path / "facture.pdf"
    download.value.save_as(path)
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(path.read_bytes())).pages).replace(
        "\xa0", " "
    )
    assert "Famille MARTIN" in text and "Éloïse MARTIN" in text and "39,60 €" in text
