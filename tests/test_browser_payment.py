"""Browser journey at 360 px of paying online with the test bank: Claire pays an invoice (the test
bank posts its signed notification to the portal, which alone pays it) and sees it *Payée*; she
then tries the other invoice and the bank refuses: a clear French message, the invoice still to
pay; in January she downloads the year's attestation fiscale with what she paid. axe at every step."""

import io
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa
import time_machine
from pypdf import PdfReader

from portail.extensions import db
from portail.models import Booking, BookingState, Child, Family, Invoice, Tariff, utcnow
from portail.services.outbox import commit
from tests.browser_support import logged_in, login
from tests.factories import canteen, make_user, priced, run_month, subscribe

pytestmark = pytest.mark.browser


def months_back(count: int) -> date:
    first = utcnow().date().replace(day=1)
    for _ in range(count):
        first = (first - timedelta(days=1)).replace(day=1)
    return first


def weekdays_of(month: date, count: int) -> list[date]:
    days = [month + timedelta(days=n) for n in range(31)]
    return [day for day in days if day.month == month.month and day.isoweekday() <= 5][:count]


def evening_care():
    """The evening care, open every weekday of the past year and the months ahead, priced."""
    today = utcnow().date()
    return priced(
        canteen(
            name="Accueil du soir",
            weekdays="12345",
            start_date=today - timedelta(days=400),
            end_date=today + timedelta(days=200),
        ),
        valid_from=today - timedelta(days=400),
    )


def test_a_parent_pays_online_downloads_the_attestation_then_is_refused(browser, live_server, tmp_path):
    with live_server.app_context():
        family = db.session.scalar(sa.select(Family))
        jules = Child(
            family_id=family.id, last_name="MARTIN", first_name="Jules", birth_date=date(2022, 4, 9)
        )
        db.session.add(jules)
        garderie = evening_care()
        db.session.scalar(sa.select(Tariff)).childcare = True
        older, last = months_back(2), months_back(1)
        for month in (older, last):
            db.session.add_all(
                Booking(child_id=jules.id, activity_id=garderie.id, day=day, state=BookingState.RESERVED)
                for day in weekdays_of(month, 4)
            )
        subscribe(make_user(email="claire@example.fr", first_name="Claire", last_name="MARTIN"), family)
        commit()
        run_month(older)
        run_month(last)
        first, second = db.session.scalars(sa.select(Invoice).order_by(Invoice.month)).all()
        numbers = first.number, second.number
    base = live_server.base_url

    page, journey = logged_in(browser, base, "claire@example.fr", "paiement-en-ligne")
    page.get_by_role("link", name="Espace Facturation", exact=True).click()
    journey.check("factures")
    page.get_by_role("button", name=f"Payer 20,40 € en ligne, facture {numbers[1]}").click()
    page.get_by_role("heading", name="Banque de test").wait_for()
    journey.check("banque")
    page.get_by_label("Paiement accepté").check()
    page.get_by_role("button", name="Valider").click()
    page.get_by_text("Paiement accepté").wait_for()
    assert "20,40" in page.inner_text("#payment-status")
    journey.check("accepte")
    page.get_by_role("link", name="Retour à l'Espace Facturation").click()
    row = page.locator("tr", has_text=numbers[1])
    assert "Payée" in row.inner_text()
    assert (
        "À payer" in page.locator("tr", has_text=numbers[0]).inner_text()
        or "En retard" in page.locator("tr", has_text=numbers[0]).inner_text()
    )
    journey.check("payee")

    page.get_by_role("button", name=f"Payer 20,40 € en ligne, facture {numbers[0]}").click()
    page.get_by_label("Paiement refusé par la banque").check()
    page.get_by_role("button", name="Valider").click()
    page.get_by_text("Paiement refusé").wait_for()
    assert "Aucune somme n'a été débitée" in page.inner_text("#payment-status")
    journey.check("refuse")
    page.get_by_role("link", name="Retour à l'Espace Facturation").click()
    assert "Payée" not in page.locator("tr", has_text=numbers[0]).inner_text()
    with live_server.app_context():
        paid = {
            invoice.number: sum(p.amount_cents for p in invoice.payments)
            for invoice in db.session.scalars(sa.select(Invoice))
        }
    assert paid == {numbers[0]: 0, numbers[1]: 2040}

    # In January, the year's attestation fiscale: Jules (under 6) and the 20,40 € paid online.
    year = utcnow().year
    with time_machine.travel(datetime(year + 1, 1, 10, 9, 0, tzinfo=UTC), tick=True):
        login(page, base, "claire@example.fr")  # (the session has expired since)
        page.get_by_role("link", name="Espace Facturation", exact=True).click()
        journey.check("attestation")
        with page.expect_download() as download:
            page.get_by_role("link", name=f"Télécharger l'attestation {year} de Famille MARTIN").click()
    path = tmp_path / "attestation.pdf"
    download.value.save_as(path)
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(path.read_bytes())).pages).replace(
        "\xa0", " "
    )
    assert "Jules MARTIN" in text and "20,40 €" in text and str(year) in text
    assert "Léa" not in text  # 6 or more on January 1st


def test_the_return_page_waits_without_taking_the_focus_then_gives_it_the_answer(browser, live_server):
    from portail.models import OnlinePayment
    from portail.services.billing import providers

    with live_server.app_context():
        family = db.session.scalar(sa.select(Family))
        garderie = evening_care()
        lea = family.children[0]
        db.session.add_all(
            Booking(child_id=lea.id, activity_id=garderie.id, day=day, state=BookingState.RESERVED)
            for day in weekdays_of(months_back(1), 3)
        )
        subscribe(make_user(email="claire@example.fr", first_name="Claire", last_name="MARTIN"), family)
        commit()
        run_month(months_back(1))
        family_id = family.id
    base = live_server.base_url
    page, journey = logged_in(browser, base, "claire@example.fr", "paiement-attente")
    page.goto(base + "/facturation/")
    page.get_by_role("button", name="Payer en ligne la facture due (15,30 €)").click()
    page.get_by_role("heading", name="Banque de test").wait_for()
    reference = page.url.rsplit("/", 1)[-1]
    page.goto(f"{base}/facturation/{family_id}/paiements/{reference}")  # (the bank's page left open)
    page.get_by_text("Paiement en cours").wait_for()
    journey.check("en-attente")
    actualiser = page.get_by_role("link", name="Actualiser")
    actualiser.focus()
    page.wait_for_timeout(4000)  # a poll has come back empty: nothing swapped, the focus stays
    assert page.evaluate("document.activeElement.textContent") == "Actualiser"
    with live_server.app_context():
        payment = db.session.scalar(sa.select(OnlinePayment).where(OnlinePayment.reference == reference))
        bank = providers.TestBank(live_server.config["SECRET_KEY"])
        fields = bank.notification_fields(payment, "P", payment.amount_cents, utcnow())
    assert live_server.test_client().post("/paiement/notification/test", data=fields).status_code == 200
    page.locator("#payment-status").get_by_text("Paiement accepté").wait_for(timeout=10_000)
    page.wait_for_function(
        "() => document.activeElement && document.activeElement.hasAttribute('data-focus-answer')"
    )
    assert page.get_by_role("button", name="Abandonner ce paiement").count() == 0
    assert page.get_by_role("status").inner_text().startswith("Paiement accepté")
    journey.check("accepte")
