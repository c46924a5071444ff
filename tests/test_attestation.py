"""Attestation fiscale (frais de garde): the billing run snapshots each line's child and childcare flag;
a year's amounts are the payments of that year on childcare lines of children under six on 1 January,
prorated; the parent's PDF, the 404s, the back office's PDF of every family, the query counts."""

import html
import io
import itertools
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa
from pypdf import PdfReader

from portail.extensions import db
from portail.models import (
    AuditEvent,
    Invoice,
    InvoiceKind,
    InvoiceLine,
    Payment,
    PaymentMethod,
    Role,
    Tariff,
)
from portail.services.billing import attestation, attestation_bulk
from portail.services.billing import attestation_pdf as rendering
from tests.factories import (
    OCTOBER,
    add_tariff,
    book,
    canteen,
    make_family,
    make_user,
    run_month,
    subscribe,
)
from tests.support import count_queries

pytestmark = pytest.mark.both_dbs

YEAR = 2025  # a finished year: children born on or after 1 January 2019 count
NUMBERS = itertools.count(1)


def child_named(family, first_name):
    return next(child for child in family.children if child.first_name == first_name)


def invoice(family, month, lines, payments=(), kind=InvoiceKind.INVOICE):
    """An issued invoice of `family`: lines (child or None, cents, childcare), payments (day, cents)."""
    issued = datetime(month.year, month.month, 28, 9, tzinfo=UTC)
    made = Invoice(
        number=f"FA{month.year}-{next(NUMBERS):06d}",
        kind=kind,
        family_id=family.id,
        month=month,
        issued_at=issued,
        due_date=issued.date() + timedelta(days=30),
        total_cents=sum(cents for _child, cents, _childcare in lines),
        family_name=family.name,
    )
    for position, (child, cents, childcare) in enumerate(lines):
        made.lines.append(
            InvoiceLine(
                position=position,
                child_name=f"{child.first_name} {child.last_name}" if child else "",
                child_id=child.id if child else None,
                childcare=childcare,
                activity_name="Accueil du soir" if childcare else "Restauration scolaire",
                label="Jours réservés",
                days=1,
                unit_price_cents=cents,
                amount_cents=cents,
            )
        )
    db.session.add(made)
    db.session.flush()
    for paid_on, cents in payments:
        db.session.add(
            Payment(invoice_id=made.id, paid_on=paid_on, amount_cents=cents, method=PaymentMethod.CHEQUE)
        )
    db.session.flush()
    return made


@pytest.fixture
def year_paid():
    """The MARTIN family: Tom (born 2020) and Zoé (born 1 January 2019, the first day that counts for
    2025) under six, Léa (31 December 2018) not; its invoices and payments around 2025."""
    family = make_family(
        name="Famille MARTIN",
        children=(("Léa", date(2018, 12, 31)), ("Tom", date(2020, 5, 4)), ("Zoé", date(2019, 1, 1))),
        guardians=(("Claire", "MARTIN"), ("Julien", "MARTIN")),
    )
    guardian = family.guardians[0]
    guardian.address_line1, guardian.postcode, guardian.city = "3 allée des Frênes", "99999", "Démo"
    lea, tom, zoe = (child_named(family, name) for name in ("Léa", "Tom", "Zoé"))
    # March: paid in full in April. Tom's childcare counts; his canteen and Léa's childcare do not.
    invoice(
        family,
        date(2025, 3, 1),
        [(tom, 10000, True), (tom, 5000, False), (lea, 3000, True)],
        [(date(2025, 4, 10), 18000)],
    )
    # November: two children's childcare and a canteen line, 33.33 € paid in December, the rest in
    # January: 3333 over (3000, 3001, 3999) by the largest remainder → Tom 10.00 €, Zoé 10.00 €.
    invoice(
        family,
        date(2025, 11, 1),
        [(tom, 3000, True), (zoe, 3001, True), (tom, 3999, False)],
        [(date(2025, 12, 20), 3333), (date(2026, 1, 10), 6667)],
    )
    # December 2024, paid in January 2025: counts in 2025.
    invoice(family, date(2024, 12, 1), [(tom, 2000, True)], [(date(2025, 1, 5), 2000)])
    # October 2024, paid in 2024: another year.
    invoice(family, date(2024, 10, 1), [(tom, 4000, True)], [(date(2024, 11, 5), 4000)])
    # Unpaid: nothing.
    invoice(family, date(2025, 12, 1), [(tom, 7000, True)])
    return family


def test_the_amounts_are_the_years_payments_of_childcare_for_children_under_six(app, year_paid):
    found = attestation.for_family(year_paid.id, YEAR)
    by_name = {child.name: child.cents for child in found.children}
    # 100.00 (March) + 10.00 (November, prorated) + 20.00 (December 2024 paid in January) for Tom;
    # Léa (six on 31 December 2024) is not there; the canteen and the 2024 payment count for nothing.
    assert by_name == {"Zoé MARTIN": 1000, "Tom MARTIN": 13000}
    assert found.total_cents == 14000
    assert [child.birth_date for child in found.children] == [date(2019, 1, 1), date(2020, 5, 4)]


def test_a_partial_payment_is_prorated_and_the_year_after_gets_the_rest(app, year_paid):
    # January 2026 completes November's invoice: Tom's line is then paid in full (30.00 €, 10.00 of
    # them in 2025); Zoé, born in 2019, no longer counts in 2026.
    following = attestation.for_family(year_paid.id, YEAR + 1)
    assert {child.name: child.cents for child in following.children} == {"Tom MARTIN": 2000}
    assert attestation.for_family(year_paid.id, 2024).total_cents == 4000
    assert attestation.for_family(year_paid.id, 2023) is None


def test_the_split_adds_up_to_the_cents_paid_and_gives_each_line_in_full_once_paid():
    assert attestation.split(3333, {1: 3000, 2: 3001, 0: 3999}) == {0: 1333, 1: 1000, 2: 1000}
    assert attestation.split(1, {1: 1, 2: 2}) == {1: 0, 2: 1}
    assert attestation.split(3, {1: 1, 2: 2}) == {1: 1, 2: 2}
    for paid in range(0, 1001, 7):
        assert sum(attestation.split(paid, {1: 333, 2: 333, 0: 334}).values()) == paid


def test_an_overpayment_a_credit_note_and_a_cancelled_invoice_count_once(app):
    family = make_family(children=(("Tom", date(2021, 2, 2)),))
    tom = family.children[0]
    # Paid 60.00 € on a 50.00 € invoice: 50.00 € count.
    invoice(family, date(2025, 2, 1), [(tom, 5000, True)], [(date(2025, 3, 1), 6000)])
    # Paid, then cancelled by a credit note and replaced by an unpaid invoice: the payment counts for
    # the days it paid; the credit note and the replacing invoice add nothing.
    paid = invoice(family, date(2025, 5, 1), [(tom, 4000, True)], [(date(2025, 6, 1), 4000)])
    credit = invoice(family, date(2025, 5, 1), [(tom, -4000, True)], kind=InvoiceKind.CREDIT_NOTE)
    credit.corrects_id, paid.credited_by_id = paid.id, credit.id
    db.session.flush()
    invoice(family, date(2025, 5, 1), [(tom, 3500, True)])
    db.session.flush()
    assert attestation.for_family(family.id, YEAR).total_cents == 9000


def test_the_billing_run_snapshots_the_child_and_childcare_on_each_line(app):
    family = make_family(children=(("Tom", date(2021, 2, 2)),))
    tom = family.children[0]
    meals = canteen()
    care = canteen(name="Accueil du soir")
    no_tariff = canteen(name="Atelier sans tarif")
    db.session.add_all([meals, care, no_tariff])
    db.session.flush()
    add_tariff(meals)
    add_tariff(care).childcare = True
    days = [date(2026, 10, 1), date(2026, 10, 2)]
    for activity in (meals, care, no_tariff):
        book(tom, activity, days)
    db.session.commit()
    run = run_month(OCTOBER)
    assert run.unpriced_days == 2  # the activity without a tariff bills no line at all
    (issued,) = db.session.scalars(sa.select(Invoice)).all()
    lines = {(line.activity_name, line.label): line for line in issued.lines}
    assert {line.child_id for line in issued.lines} == {tom.id}
    assert lines[("Accueil du soir", "Jours réservés")].childcare
    assert not lines[("Restauration scolaire", "Jours réservés")].childcare
    # A second run changes nothing, flag or no flag (the flag is what the invoice said when issued).
    for tariff in db.session.scalars(sa.select(Tariff)):
        tariff.childcare = not tariff.childcare
    db.session.commit()
    again = run_month(OCTOBER)
    assert (again.invoices, again.credit_notes) == (0, 0)


def test_an_agent_flags_a_tariff_as_childcare_and_the_list_says_so(app, client, auth):
    make_user(email="agent@example.fr", role=Role.AGENT)
    care = canteen(name="Accueil du soir")
    db.session.add(care)
    db.session.commit()
    auth.login("agent@example.fr")
    form = client.get("/gestion/facturation/tarifs/nouveau").get_data(as_text=True)
    assert "Frais de garde (comptent dans l'attestation fiscale)" in html.unescape(form)
    data = {
        "activity": str(care.id),
        "valid_from": "2026-09-01",
        "bill_late_absences": "y",
        "sick_days_billed": "1",
        "sick_certificate_days": "3",
        "childcare": "y",
        "brackets-0-upper": "",
        "brackets-0-price": "1,90",
    }
    assert client.post("/gestion/facturation/tarifs/nouveau", data=data).status_code == 302
    assert db.session.scalar(sa.select(Tariff.childcare))
    page = html.unescape(client.get("/gestion/facturation/tarifs").get_data(as_text=True))
    assert "Frais de garde : oui (comptent dans l'attestation fiscale)" in page


def page_text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages).replace("\xa0", " ")


def test_parent_downloads_the_pdf_with_the_amounts_the_town_and_the_legal_mention(
    app, client, auth, year_paid
):
    subscribe(make_user(), year_paid)
    db.session.commit()
    auth.login("parent@example.fr")
    page = client.get("/facturation/").get_data(as_text=True)
    assert "Attestations fiscales" in page and "Année 2025" in page and "140,00" in page
    url = f"/facturation/{year_paid.id}/attestation-fiscale.pdf?annee={YEAR}"
    assert url in page
    response = client.get(url)
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    assert "no-store" in response.headers["Cache-Control"]
    assert "attachment" in response.headers["Content-Disposition"]
    text = pdf_text(response.data)
    for expected in (
        "Ville de Démo",
        "1 place de la Mairie",
        "SIRET : 21990000000019",
        "Attestation de frais de garde — année 2025",
        "Famille MARTIN",
        "Claire MARTIN",
        "Julien MARTIN",
        "3 allée des Frênes",
        "Tom MARTIN",
        "4 mai 2020",
        "130,00 €",
        "Zoé MARTIN",
        "10,00 €",
        "140,00 €",
        "200 quater B",
        "restauration scolaire",
        "Le régisseur",
    ):
        assert expected in text, expected
    assert "Léa" not in text


def test_another_family_gets_404_and_a_year_without_amount_says_so(app, client, auth, year_paid):
    mine = make_family(name="Famille DURAND", children=(("Noé", date(2022, 1, 1)),))
    subscribe(make_user(), mine)
    db.session.commit()
    auth.login("parent@example.fr")
    assert client.get(f"/facturation/{year_paid.id}/attestation-fiscale.pdf?annee={YEAR}").status_code == 404
    response = client.get(f"/facturation/{mine.id}/attestation-fiscale.pdf?annee={YEAR}")
    assert response.status_code == 404 and response.mimetype == "text/html"
    assert "Aucun frais de garde n'a été payé en 2025" in page_text(response)
    assert "Attestation de frais de garde — Famille DURAND" in page_text(response)
    assert "Les attestations de la famille sont proposées" in page_text(response)
    assert "de Famille DURAND" not in page_text(response)
    this_year = datetime.now(UTC).year
    response = client.get(f"/facturation/{mine.id}/attestation-fiscale.pdf?annee={this_year}")
    assert response.status_code == 404
    assert f"disponible à partir du 1er janvier {this_year + 1}" in page_text(response)
    assert "Attestations fiscales" not in client.get("/facturation/").get_data(as_text=True)


def test_the_current_year_is_not_offered_until_it_is_over(app, client, auth):
    family = make_family(children=(("Tom", date.today().replace(month=1, day=1) - timedelta(days=700)),))
    this_year = datetime.now(UTC).year
    invoice(
        family, date(this_year, 1, 1), [(family.children[0], 5000, True)], [(date(this_year, 1, 2), 5000)]
    )
    subscribe(make_user(), family)
    db.session.commit()
    auth.login("parent@example.fr")
    assert attestation.for_family(family.id, this_year).total_cents == 5000
    assert "Attestations fiscales" not in client.get("/facturation/").get_data(as_text=True)


def test_the_year_for_every_family_costs_one_query_however_many(app, year_paid):
    with count_queries() as few:
        assert len(attestation.for_year(YEAR)) == 1
    for index in range(12):
        family = make_family(
            name=f"Famille F{index:02d}", children=(("Eva", date(2021, 1, 1)), ("Noa", date(2022, 1, 1)))
        )
        for month in (2, 6, 9):
            invoice(
                family,
                date(YEAR, month, 1),
                [(child, 1000 + index, True) for child in family.children],
                [(date(YEAR, month + 1, 3), 500), (date(YEAR, month + 1, 20), 1500 + 2 * index)],
            )
    with count_queries() as many:
        found = attestation.for_year(YEAR)
    assert len(found) == 13 and few["n"] == many["n"] == 1
    with count_queries() as one:
        assert attestation.for_family(year_paid.id, YEAR).total_cents == 14000
    assert one["n"] == 1


def test_staff_generate_every_familys_attestation_in_one_pdf(app, client, auth, year_paid, tmp_path):
    app.config["UPLOAD_DIR"] = str(tmp_path)
    other = make_family(name="Famille ABADIE", children=(("Inès", date(2021, 6, 1)),))
    invoice(other, date(2025, 9, 1), [(other.children[0], 4550, True)], [(date(2025, 10, 1), 4550)])
    make_family(name="Famille SANS")  # no childcare: no page
    make_user(email="agent@example.fr", role=Role.AGENT)
    db.session.commit()
    auth.login("agent@example.fr")
    assert "Attestations fiscales" in client.get("/gestion/facturation").get_data(as_text=True)
    page = client.get("/gestion/facturation/attestations?annee=2025").get_data(as_text=True)
    assert "pas encore été générées" in page
    response = client.post("/gestion/facturation/attestations", data={"annee": "2025"})
    assert response.status_code == 302  # the job ran inline (RQ_SYNC)
    page = client.get(response.location).get_data(as_text=True)
    assert "Terminée" in page and "2 familles" in page and "185,50" in page
    document = client.get("/gestion/facturation/attestations/document.pdf?annee=2025")
    assert document.status_code == 200 and "no-store" in document.headers["Cache-Control"]
    reader = PdfReader(io.BytesIO(document.data))
    assert len(reader.pages) == 2
    first, second = (page.extract_text().replace("\xa0", " ") for page in reader.pages)
    assert "Famille ABADIE" in first and "45,50 €" in first  # by family name
    assert "Famille MARTIN" in second and "140,00 €" in second
    assert db.session.scalar(sa.select(AuditEvent.action).where(AuditEvent.target_type == "attestation")) == (
        "attestation.generated"
    )
    this_year = datetime.now(UTC).year
    refused = client.post("/gestion/facturation/attestations", data={"annee": str(this_year)})
    assert f"L'année {this_year} n'est pas terminée" in page_text(client.get(refused.location))


def test_the_whole_years_pdf_has_a_page_per_family(app):
    town = rendering.Town("Ville de Démo", "Hôtel de ville\n99999 Démo", "21990000000019")
    child = attestation.ChildAmount(1, "Tom MARTIN", date(2020, 5, 4), 12345)
    found = [attestation.Attestation(family_id, YEAR, (child,)) for family_id in range(1, 4)]
    holders = {
        family_id: attestation.Holder(f"Famille N{family_id}", ("Mme Claire MARTIN",), ())
        for family_id in range(1, 4)
    }
    seen = []
    body = rendering.render_all(found, holders, town, date(2026, 1, 5), progress=seen.append)
    assert len(PdfReader(io.BytesIO(body)).pages) == 3 and seen == []
    assert "123,45 €" in pdf_text(body) and "Fait le 5 janvier 2026" in pdf_text(body)


def test_the_bulk_status_says_when_the_job_queue_is_down(app, tmp_path, monkeypatch):
    app.config["UPLOAD_DIR"] = str(tmp_path)
    agent = make_user(email="agent@example.fr", role=Role.AGENT)
    monkeypatch.setattr(attestation_bulk, "enqueue", lambda *args, **kwargs: False)
    now = datetime.now(UTC)
    assert attestation_bulk.start(YEAR, agent, now)
    attestation_bulk.hand_over(YEAR, agent, now)
    current = attestation_bulk.status(YEAR)
    assert current["state"] == "failed" and "indisponible" in current["error"]
