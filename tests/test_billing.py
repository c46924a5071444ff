"""Billing: prices by quotient, absences and surcharge, idempotent runs, credit notes, gapless numbers,
payments and states, Espace Facturation, PDF, exports, access."""

import csv
import html
import io
import re
import threading
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa
from openpyxl import load_workbook
from pypdf import PdfReader

from portail.bookings import rules as booking_rules
from portail.extensions import db
from portail.models import (
    BillingRun,
    Booking,
    BookingState,
    Invoice,
    InvoiceKind,
    InvoiceLine,
    LineState,
    OutboxMessage,
    Payment,
    PaymentMethod,
    Request,
    RequestKind,
    Role,
    RunState,
    Tariff,
    TariffBracket,
)
from portail.services import billing
from portail.services.outbox import commit
from tests.factories import (
    OCTOBER,
    add_tariff,
    book,
    canteen,
    enrol,
    make_family,
    make_request,
    make_user,
    priced,
    run_month,
    subscribe,
)
from tests.support import count_queries, queries_for

pytestmark = pytest.mark.both_dbs

# Canteen days of October 2026 before the Toussaint holidays (zone C): Mon, Tue, Thu, Fri.
DAYS = [date(2026, 10, d) for d in (1, 2, 5, 6, 8, 9, 12, 13, 15, 16)]


def family_with(name, quotient=None, valid_until=date(2027, 1, 31), children=("Léa",)):
    family = make_family(
        name=f"Famille {name}", children=tuple((child, date(2016, 3, 14)) for child in children)
    )
    guardian = family.guardians[0]
    guardian.quotient, guardian.quotient_valid_until = quotient, valid_until if quotient is not None else None
    guardian.address_line1, guardian.postcode, guardian.city = "3 allée des Frênes", "75012", "Paris"
    db.session.flush()
    return family


def asked(family, child, activity, kind, day, at):
    """An accepted request for one day, made at `at`."""
    make_request(family, child, activity, kind, [day], LineState.ACCEPTED, at)


def invoices_of(family, kind=InvoiceKind.INVOICE):
    return db.session.scalars(
        sa.select(Invoice).where(Invoice.family_id == family.id, Invoice.kind == kind).order_by(Invoice.id)
    ).all()


@pytest.fixture
def activity(app):
    activity = priced(canteen())
    commit()
    return activity


# --- amounts --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quotient", "valid_until", "price"),
    [
        (0, date(2027, 1, 31), 100),
        (622, date(2027, 1, 31), 100),
        (623, date(2027, 1, 31), 330),
        (1000, date(2027, 1, 31), 330),
        (1001, date(2027, 1, 31), 420),
        (1501, date(2027, 1, 31), 510),
        (99999, date(2027, 1, 31), 510),
        (None, None, 510),  # no quotient: the highest bracket
        (400, date(2026, 9, 30), 510),  # expired before the month: as if none
    ],
)
def test_each_bracket_and_a_missing_or_expired_quotient(activity, quotient, valid_until, price):
    family = family_with("TEST", quotient, valid_until)
    book(family.children[0], activity, DAYS[:3])
    commit()
    run = run_month()
    assert (run.state, run.invoices) == (RunState.DONE, 1)
    (invoice,) = invoices_of(family)
    assert [(line.label, line.days, line.unit_price_cents, line.amount_cents) for line in invoice.lines] == [
        ("Jours réservés", 3, price, 3 * price)
    ]
    assert invoice.total_cents == 3 * price and isinstance(invoice.total_cents, int)
    # printed on the invoice
    assert invoice.quotient == (quotient if valid_until and valid_until >= OCTOBER else None)


def test_absences_in_time_are_free_and_late_ones_billed_unless_the_activity_says_not(activity):
    family = family_with("MARTIN", 850, children=("Léa", "Tom"))
    lea, tom = family.children
    book(lea, activity, DAYS[:4])
    book(tom, activity, DAYS[:4])
    for child in (lea, tom):
        db.session.execute(
            sa.update(Booking)
            .where(Booking.child_id == child.id, Booking.day == DAYS[1])
            .values(state=BookingState.ABSENT)
        )
    limit = booking_rules.absence_deadline(activity, DAYS[1])
    # in time, to the second
    asked(family, lea, activity, RequestKind.ABSENCE, DAYS[1], limit - timedelta(seconds=1))
    # one second late
    asked(family, tom, activity, RequestKind.ABSENCE, DAYS[1], limit + timedelta(seconds=1))
    commit()
    run_month()
    (invoice,) = invoices_of(family)
    lines = [(line.child_name, line.label, line.days, line.amount_cents) for line in invoice.lines]
    assert lines == [
        ("Léa MARTIN", "Jours réservés", 3, 990),
        ("Tom MARTIN", "Jours réservés", 3, 990),
        ("Tom MARTIN", "Absences hors délai", 1, 330),
    ]
    assert invoice.total_cents == 2310
    # The activity no longer bills late absences: a correction (credit note + new invoice).
    db.session.execute(sa.update(Tariff).values(bill_late_absences=False))
    commit()
    run = run_month()
    assert (run.invoices, run.credit_notes) == (1, 1)
    assert invoices_of(family)[-1].total_cents == 1980


def test_surcharge_for_a_reservation_asked_after_the_booking_deadline(app):
    activity = priced(canteen(), surcharge=150)
    family = family_with("RETARD", 500)
    child = family.children[0]
    book(child, activity, DAYS[:2])
    limit = booking_rules.booking_deadline(activity, DAYS[0])
    asked(family, child, activity, RequestKind.RESERVATION, DAYS[0], limit + timedelta(seconds=1))
    # at the deadline: in time
    asked(
        family,
        child,
        activity,
        RequestKind.RESERVATION,
        DAYS[1],
        booking_rules.booking_deadline(activity, DAYS[1]),
    )
    commit()
    run_month()
    (invoice,) = invoices_of(family)
    assert [(line.label, line.days, line.unit_price_cents) for line in invoice.lines] == [
        ("Jours réservés", 2, 100),
        ("Majoration réservation hors délai", 1, 150),
    ]
    assert invoice.total_cents == 350


def test_requested_refused_and_other_months_days_are_not_billed_and_days_without_tariff_are_counted(app):
    activity = canteen()
    free = canteen(name="Étude surveillée")
    db.session.add_all([activity, free])
    db.session.flush()
    add_tariff(activity)
    family = family_with("MIX", 700)
    child = family.children[0]
    book(child, activity, [DAYS[0]])
    book(child, activity, [DAYS[1]], BookingState.RESERVATION_REQUESTED)
    book(child, activity, [DAYS[2]], BookingState.REFUSED)
    book(child, activity, [date(2026, 11, 5)])
    book(child, free, DAYS[:2])
    commit()
    run = run_month()
    (invoice,) = invoices_of(family)
    assert [(line.activity_name, line.days) for line in invoice.lines] == [("Restauration scolaire", 1)]
    assert run.unpriced_days == 2


# --- idempotence, corrections, numbers --------------------------------------------------------


def test_a_run_repeated_changes_nothing_and_a_correction_is_a_credit_note_then_a_new_invoice(activity, mails):
    family = family_with("DUPONT", 850)
    parent = make_user(email="parent@example.fr", first_name="Claire")
    subscribe(parent, family)
    book(family.children[0], activity, DAYS[:5])
    commit()
    first = run_month()
    assert (first.invoices, first.credit_notes, first.families_total, first.families_done) == (1, 0, 1, 1)
    (invoice,) = invoices_of(family)
    number, total = invoice.number, invoice.total_cents
    assert number == f"FA{datetime.now(UTC).year}-000001" and total == 1650
    assert (
        len(mails) == 1
        and number in mails[0].body
        and "16,50" in mails[0].body
        and mails[0].recipients == ["parent@example.fr"]
    )
    again = run_month()
    assert (again.invoices, again.credit_notes) == (0, 0)
    assert db.session.scalar(sa.select(sa.func.count(Invoice.id))) == 1 and len(mails) == 1
    # A day is added after the billing: the invoice is never edited; an avoir cancels it, a new invoice replaces it.
    book(family.children[0], activity, [DAYS[5]])
    commit()
    corrected = run_month()
    assert (corrected.invoices, corrected.credit_notes) == (1, 1)
    old, new = invoices_of(family)
    (credit,) = invoices_of(family, InvoiceKind.CREDIT_NOTE)
    assert (old.number, old.total_cents) == (number, 1650)  # untouched
    assert old.credited_by_id == credit.id and credit.corrects_id == old.id and credit.total_cents == -1650
    assert sum(line.amount_cents for line in credit.lines) == -1650
    assert new.total_cents == 1980 and new.credited_by_id is None
    assert credit.number.startswith("AV") and new.number.endswith("000002")
    assert (
        billing.state_of(old, 0, date(2026, 11, 2)) == "Annulée"
        and billing.state_of(credit, 0, date(2026, 11, 2)) == "Avoir"
    )
    assert len(mails) == 2 and credit.number in mails[1].body and new.number in mails[1].body
    assert run_month().invoices == 0
    # Everything cancelled (the day was not due after all): a credit note and no new invoice.
    db.session.execute(sa.delete(Booking))
    commit()
    emptied = run_month()
    assert (emptied.invoices, emptied.credit_notes) == (0, 1)
    assert billing.balance_cents(family.id) == 0


def test_numbers_have_no_gaps_under_concurrent_runs(app):
    activity = priced(canteen())
    families = [family_with(f"F{n:02d}", 500 + n) for n in range(24)]
    for family in families:
        book(family.children[0], activity, DAYS[:2] + [date(2026, 9, 14), date(2026, 9, 15)])
    runs = [
        BillingRun(month=OCTOBER),
        BillingRun(month=OCTOBER),
        BillingRun(month=date(2026, 9, 1)),
        BillingRun(month=date(2026, 9, 1)),
    ]
    db.session.add_all(runs)
    commit()
    ids, errors = [run.id for run in runs], []

    def work(run_id):
        try:
            with app.app_context():
                billing.run(run_id, batch=5)
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(run_id,)) for run_id in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    numbers = sorted(db.session.scalars(sa.select(Invoice.number)).all())
    year = datetime.now(UTC).year
    assert numbers == [
        f"FA{year}-{n:06d}" for n in range(1, 49)
    ]  # 24 families × 2 months, 1..48, no gap, no duplicate
    assert (
        db.session.scalar(sa.select(sa.func.count(Invoice.id)).where(Invoice.kind == InvoiceKind.CREDIT_NOTE))
        == 0
    )
    states = db.session.scalars(sa.select(BillingRun.state)).all()
    assert states == [RunState.DONE] * 4


def test_a_run_costs_queries_per_batch_not_per_day(activity):
    def run_queries(days):
        families = [family_with(f"Q{len(days)}{n}", 700) for n in range(3)]
        for family in families:
            book(family.children[0], activity, days)
        commit()
        with count_queries() as count:
            run_month()
        db.session.execute(sa.delete(InvoiceLine))
        db.session.execute(sa.delete(Invoice))
        db.session.execute(sa.delete(Booking))
        commit()
        return count["n"]

    assert run_queries(DAYS[:1]) == run_queries(DAYS)


# --- payments and states ------------------------------------------------------------------------


def test_payment_states_partial_full_direct_debit_and_late(activity):
    family = family_with("PAYE", 850)
    book(family.children[0], activity, DAYS[:5])
    commit()
    run_month()
    (invoice,) = invoices_of(family)
    agent = make_user(email="agent@example.fr", role=Role.AGENT)
    before, after = invoice.due_date, invoice.due_date + timedelta(days=1)
    assert billing.state_of(invoice, 0, before) == "À payer"
    assert billing.state_of(invoice, 0, after) == "En retard"
    billing.record_payment(invoice, date(2026, 11, 3), 1000, PaymentMethod.CHEQUE, agent)
    commit()
    paid = billing.paid_cents([invoice])[invoice.id]
    assert (
        paid == 1000
        and billing.state_of(invoice, paid, before) == "À payer"
        and billing.state_of(invoice, paid, after) == "En retard"
    )
    billing.record_payment(invoice, date(2026, 11, 4), 650, PaymentMethod.CASH, agent)
    commit()
    assert billing.state_of(invoice, billing.paid_cents([invoice])[invoice.id], after) == "Payée"
    assert billing.balance_cents(family.id) == 0


def test_direct_debit_shows_prelevee(activity):
    family = family_with("PRELEV", 850)
    book(family.children[0], activity, DAYS[:2])
    commit()
    run_month()
    (invoice,) = invoices_of(family)
    billing.record_payment(
        invoice,
        date(2026, 11, 3),
        invoice.total_cents,
        PaymentMethod.DIRECT_DEBIT,
        make_user(email="agent@example.fr", role=Role.AGENT),
    )
    commit()
    assert billing.direct_debited([invoice]) == {invoice.id}
    assert billing.state_of(invoice, invoice.total_cents, date(2026, 11, 4), True) == "Prélevée"


@pytest.fixture
def billed(activity):
    """Two families billed for October; the parent sees the first; an agent."""
    mine = family_with("MARTIN", 850, children=("Léa", "Élodie"))
    other = family_with("AUTRE", 300)
    book(mine.children[0], activity, DAYS[:4])
    book(mine.children[1], activity, DAYS[:2])
    book(other.children[0], activity, DAYS[:3])
    subscribe(make_user(email="parent@example.fr", first_name="Claire"), mine)
    subscribe(make_user(email="autre@example.fr"), other)
    make_user(email="agent@example.fr", role=Role.AGENT)
    commit()
    run_month()
    return invoices_of(mine)[0], invoices_of(other)[0]


def test_agent_records_payments_and_bad_input_saves_nothing(client, auth, billed):
    invoice, _other = billed
    auth.login("agent@example.fr")
    url = f"/gestion/facturation/factures/{invoice.id}"
    page = client.get(url)
    assert page.status_code == 200 and invoice.number in page.get_data(as_text=True)
    key = re.search(r'name="key" type="hidden" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    tomorrow = (billing.today_in_paris(datetime.now(UTC)) + timedelta(days=1)).isoformat()
    for data, message in (
        ({"paid_on": "2026-11-03", "amount": "douze", "method": "CHEQUE"}, "Saisissez un montant en euros"),
        ({"paid_on": "2026-11-03", "amount": "-5", "method": "CHEQUE"}, "Saisissez un montant en euros"),
        ({"paid_on": "2026-11-03", "amount": "0", "method": "CHEQUE"}, "supérieur à zéro"),
        ({"paid_on": "2026-11-03", "amount": "5,123", "method": "CHEQUE"}, "Saisissez un montant en euros"),
        ({"paid_on": tomorrow, "amount": "5", "method": "CHEQUE"}, "ne peut pas être dans le futur"),
        ({"paid_on": "2026-11-03", "amount": "5", "method": ""}, "Choisissez le moyen de paiement"),
        ({"paid_on": "", "amount": "5", "method": "CASH"}, "Saisissez la date du paiement"),
    ):
        response = client.post(url, data={**data, "key": key})
        assert response.status_code == 422, data
        body = response.get_data(as_text=True)
        assert message in body and "erreur" in body, data
    assert db.session.scalar(sa.select(sa.func.count(Payment.id))) == 0
    response = client.post(
        url,
        data={"paid_on": "2026-11-03", "amount": "12,00", "method": "CARD", "key": key},
        follow_redirects=True,
    )
    assert "Le paiement de 12,00" in response.get_data(as_text=True)
    payment = db.session.scalar(sa.select(Payment))
    assert (payment.amount_cents, payment.method, payment.paid_on) == (
        1200,
        PaymentMethod.CARD,
        date(2026, 11, 3),
    )
    assert payment.recorded_by_id is not None


def test_no_payment_on_a_credit_note_or_cancelled_invoice(activity):
    family = family_with("AVOIR", 850)
    book(family.children[0], activity, DAYS[:2])
    commit()
    run_month()
    db.session.execute(sa.delete(Booking))
    commit()
    run_month()
    old = invoices_of(family)[0]
    credit = invoices_of(family, InvoiceKind.CREDIT_NOTE)[0]
    agent = make_user(email="agent@example.fr", role=Role.AGENT)
    for target in (old, credit):
        with pytest.raises(billing.BillingError):
            billing.record_payment(target, date(2026, 11, 3), 100, PaymentMethod.CASH, agent)


# --- Espace Facturation, PDF, access --------------------------------------------------------------


def test_parent_sees_own_invoices_and_balance_and_downloads_a_pdf_with_accents_and_euro(client, auth, billed):
    invoice, other = billed
    auth.login("parent@example.fr")
    page = client.get("/facturation/").get_data(as_text=True)
    assert invoice.number in page and other.number not in page
    assert "Solde restant dû" in page and "19,80" in page and "À payer" in page
    detail = client.get(f"/facturation/{invoice.family_id}/factures/{invoice.id}").get_data(as_text=True)
    assert "Élodie MARTIN" in detail and "Restauration scolaire" in detail and "19,80" in detail
    response = client.get(f"/facturation/{invoice.family_id}/factures/{invoice.id}/pdf")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    assert (
        "attachment" in response.headers["Content-Disposition"]
        and "no-store" in response.headers["Cache-Control"]
    )
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(response.data)).pages).replace(
        "\xa0", " "
    )
    for expected in (
        "Famille MARTIN",
        invoice.number,
        "Élodie MARTIN",
        "Léa MARTIN",
        "Restauration scolaire",
        "Jours réservés",
        "19,80 €",
        "13,20 €",
        "3,30 €",
        "Quotient familial appliqué : 850",
        "octobre 2026",
    ):
        assert expected in text, expected


def test_another_familys_invoice_or_pdf_is_404_and_the_staff_pages_403_for_parents(client, auth, billed):
    mine, other = billed
    auth.login("parent@example.fr")
    for url in (
        f"/facturation/{other.family_id}/factures/{other.id}",
        f"/facturation/{other.family_id}/factures/{other.id}/pdf",
        f"/facturation/{mine.family_id}/factures/{other.id}",  # own family, someone else's invoice
        f"/facturation/{mine.family_id}/factures/{other.id}/pdf",
        f"/facturation/{other.family_id}/factures/{mine.id}",
        f"/facturation/{mine.family_id}/factures/999999",
    ):
        assert client.get(url).status_code == 404, url
    for url in (
        "/gestion/facturation",
        f"/gestion/facturation/factures/{mine.id}",
        "/gestion/facturation/export.csv?mois=2026-10",
        "/gestion/facturation/tarifs",
    ):
        assert client.get(url).status_code == 403, url
    assert client.post("/gestion/facturation/lancer", data={"mois": "2026-10"}).status_code == 403
    assert db.session.scalar(sa.select(sa.func.count(BillingRun.id))) == 1


def test_an_ended_subscription_hides_the_invoices(client, auth, billed):
    invoice, _other = billed
    from portail.models import Subscription

    db.session.execute(sa.update(Subscription).values(ended_at=datetime.now(UTC)))
    commit()
    auth.login("parent@example.fr")
    assert invoice.number not in client.get("/facturation/").get_data(as_text=True)
    assert client.get(f"/facturation/{invoice.family_id}/factures/{invoice.id}/pdf").status_code == 404


# --- back-office: run through the page, exports, tariffs ------------------------------------------


def test_agent_runs_a_month_from_the_page_and_sees_its_progress(client, auth, activity):
    family = family_with("PAGE", 850)
    book(family.children[0], activity, DAYS[:3])
    make_user(email="agent@example.fr", role=Role.AGENT)
    commit()
    auth.login("agent@example.fr")
    response = client.post("/gestion/facturation/lancer", data={"mois": "2026-10"})
    assert response.status_code == 302 and "/gestion/facturation/executions/" in response.headers["Location"]
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Terminée" in page and "1 facture émise" in page and "Familles traitées : 1 sur 1" in page
    fragment = client.get(response.headers["Location"], headers={"HX-Request": "true"}).get_data(as_text=True)
    # finished: polling stops
    assert "<html" not in fragment and "Terminée" in fragment and "every 1s" not in fragment
    current = billing.today_in_paris(datetime.now(UTC)).strftime("%Y-%m")
    refused = client.post(
        "/gestion/facturation/lancer", data={"mois": current}, follow_redirects=True
    ).get_data(as_text=True)
    assert "Seul un mois terminé peut être facturé." in refused
    assert (
        client.post(
            "/gestion/facturation/lancer", data={"mois": "pas-un-mois"}, follow_redirects=True
        ).status_code
        == 200
    )
    assert db.session.scalar(sa.select(sa.func.count(BillingRun.id))) == 1


def test_a_queued_run_polls_until_done(client, auth, app):
    make_user(email="agent@example.fr", role=Role.AGENT)
    run = BillingRun(month=OCTOBER, state=RunState.RUNNING, families_total=10, families_done=4)
    db.session.add(run)
    commit()
    auth.login("agent@example.fr")
    fragment = client.get(
        f"/gestion/facturation/executions/{run.id}", headers={"HX-Request": "true"}
    ).get_data(as_text=True)
    assert 'hx-trigger="every 1s"' in fragment and 'value="4"' in fragment and "En cours" in fragment
    assert client.get("/gestion/facturation/executions/999999").status_code == 404


def test_exports_csv_and_xlsx_for_the_treasury(client, auth, billed):
    mine, other = billed
    auth.login("agent@example.fr")
    response = client.get("/gestion/facturation/export.csv?mois=2026-10")
    assert (
        response.status_code == 200
        and response.mimetype == "text/csv"
        and "factures-2026-10.csv" in response.headers["Content-Disposition"]
    )
    rows = list(csv.reader(io.StringIO(response.data.decode("utf-8-sig")), delimiter=";"))
    assert rows[0][0] == "Numéro" and len(rows) == 3
    by_number = {row[0]: row for row in rows[1:]}
    assert (
        by_number[mine.number][3] == "Famille MARTIN"
        and by_number[mine.number][7] == "19,80"
        and by_number[mine.number][9] == "À payer"
    )
    assert by_number[other.number][7] == "3,00"
    response = client.get("/gestion/facturation/export.xlsx?mois=2026-10")
    sheet = load_workbook(io.BytesIO(response.data)).active
    values = [[cell.value for cell in row] for row in sheet.iter_rows()]
    assert values[0][0] == "Numéro" and len(values) == 3 and {row[7] for row in values[1:]} == {19.8, 3.0}
    assert client.get("/gestion/facturation/export.pdf?mois=2026-10").status_code == 404
    assert client.get("/gestion/facturation/export.csv").status_code == 404


def test_tariff_form_checks_brackets_and_saves_nothing_on_bad_input(client, auth, activity):
    make_user(email="agent@example.fr", role=Role.AGENT)
    commit()
    auth.login("agent@example.fr")
    base = {
        "activity": str(activity.id),
        "valid_from": "2027-01-01",
        "valid_until": "",
        "surcharge": "",
        "bill_late_absences": "y",
        "bill_unexcused_absences": "y",
        "unbooked_price": "",
        "unbooked_surcharge": "",
        "sick_days_billed": "1",
        "sick_certificate_days": "3",
    }

    def rows(*pairs):
        data = {}
        for index in range(6):
            upper, price = pairs[index] if index < len(pairs) else ("", "")
            data[f"brackets-{index}-upper"], data[f"brackets-{index}-price"] = upper, price
        return data

    for data, message in (
        (base | rows(("622", "1,00"), ("500", "2,00"), ("", "3,00")), "le plafond doit être au moins 623"),
        (base | rows(("", "1,00"), ("1000", "2,00")), "seule la dernière tranche peut être sans plafond"),
        (base | rows(("622", ""), ("", "3,00")), "Chaque tranche saisie doit avoir un prix"),
        (base | rows(("622", "un euro"), ("", "3,00")), "Saisissez un montant en euros"),
        (base | rows(("six cents", "1,00"), ("", "3,00")), "Saisissez un quotient entier"),
        (base | rows(), "Saisissez au moins une tranche"),
        (
            base | {"valid_until": "2026-12-31"} | rows(("", "1,00")),
            "La date de fin doit suivre la date de début",
        ),
        (base | {"activity": "0"} | rows(("", "1,00")), "Choisissez l'activité"),
        (base | {"unbooked_price": "gratuit"} | rows(("", "1,00")), "Saisissez un montant en euros"),
        (base | {"sick_days_billed": "-1"} | rows(("", "1,00")), "Entre 0 et 30."),
        (base | {"sick_certificate_days": ""} | rows(("", "1,00")), "Saisissez le délai."),
    ):
        response = client.post("/gestion/facturation/tarifs/nouveau", data=data)
        assert response.status_code == 422, data
        assert message in html.unescape(response.get_data(as_text=True)), message
    assert db.session.scalar(sa.select(sa.func.count(Tariff.id))) == 1
    response = client.post(
        "/gestion/facturation/tarifs/nouveau",
        data=base
        | {"surcharge": "1,50", "unbooked_price": "6,00", "unbooked_surcharge": "2", "sick_days_billed": "2"}
        | {"bill_unexcused_absences": ""}
        | rows(("622", "1,10"), ("1000", "3,40"), ("", "5,20")),
        follow_redirects=True,
    )
    assert "Le tarif est enregistré." in response.get_data(as_text=True)
    tariff = db.session.scalar(sa.select(Tariff).order_by(Tariff.id.desc()))
    assert [(b.quotient_min, b.quotient_max, b.price_cents) for b in tariff.brackets] == [
        (0, 622, 110),
        (623, 1000, 340),
        (1001, None, 520),
    ]
    assert tariff.late_surcharge_cents == 150 and tariff.bill_late_absences is True
    assert (
        tariff.bill_unexcused_absences,
        tariff.unbooked_price_cents,
        tariff.unbooked_surcharge_cents,
        tariff.sick_days_billed,
        tariff.sick_certificate_days,
    ) == (False, 600, 200, 2, 3)
    page = client.get("/gestion/facturation/tarifs").get_data(as_text=True)
    assert "1001 et plus" in page and "5,20" in page


def test_euros_are_parsed_and_printed_in_cents():
    assert [billing.parse_euros(text) for text in ("3,30", "3.3", "3", "1 234,56 €", "0,05")] == [
        330,
        330,
        300,
        123456,
        5,
    ]
    for bad in ("", "3,300", "trois", "-1", "1,2,3", "€"):
        with pytest.raises(ValueError):
            billing.parse_euros(bad)
    assert (
        billing.euros(123456) == "1\u202f234,56\u00a0€"
        and billing.euros(-1650) == "-16,50\u00a0€"
        and billing.euros(5) == "0,05\u00a0€"
    )


def test_the_invoice_mail_goes_through_the_outbox(activity):
    family = family_with("MAIL", 850)
    subscribe(make_user(email="parent@example.fr"), family)
    subscribe(make_user(email="ancien@example.fr"), family).ended_at = datetime.now(UTC)
    book(family.children[0], activity, DAYS[:1])
    commit()
    run_month()
    rows = db.session.scalars(
        sa.select(OutboxMessage).where(OutboxMessage.template == "invoice_issued")
    ).all()
    assert [row.recipient for row in rows] == ["parent@example.fr"]


def test_espace_facturation_costs_the_same_queries_for_one_invoice_as_for_many(client, auth, app):
    from portail.models import Subscription

    activity = priced(canteen())
    parent = make_user(email="parent@example.fr")
    first = family_with("UNE", 850)
    subscribe(parent, first)
    book(first.children[0], activity, DAYS[:1])
    commit()
    run_month()
    auth.login("parent@example.fr")

    one = queries_for(client, "/facturation/")
    for name in ("DEUX", "TROIS"):
        family = family_with(name, 400)
        db.session.add(Subscription(user_id=parent.id, family_id=family.id))
        book(family.children[0], activity, DAYS[:2])
        book(family.children[0], activity, [date(2026, 9, 14)])
    commit()
    run_month()
    run_month(date(2026, 9, 1))
    assert db.session.scalar(sa.select(sa.func.count(Invoice.id))) == 5
    assert queries_for(client, "/facturation/") == one


def test_the_dashboard_counts_overdue_invoices(client, auth, billed):
    mine, other = billed
    db.session.execute(sa.update(Invoice).where(Invoice.id == mine.id).values(due_date=date(2026, 11, 1)))
    db.session.execute(sa.update(Invoice).where(Invoice.id == other.id).values(due_date=date(2026, 11, 1)))
    commit()
    billing.record_payment(
        db.session.get(Invoice, other.id),
        date(2026, 10, 30),
        other.total_cents,
        PaymentMethod.CHEQUE,
        make_user(email="compta@example.fr", role=Role.AGENT),
    )
    commit()
    assert billing.overdue_count(date(2026, 11, 2)) == 1 and billing.overdue_count(date(2026, 11, 1)) == 0
    auth.login("agent@example.fr")
    page = client.get("/gestion/").get_data(as_text=True)
    assert "Factures en retard de paiement" in page
    listing = client.get("/gestion/facturation/factures?etat=En+retard").get_data(as_text=True)
    assert mine.number in listing and other.number not in listing


def test_an_agent_deletes_a_tariff_and_issued_invoices_keep_their_prices(client, auth, billed):
    mine, _other = billed
    tariff = db.session.scalar(sa.select(Tariff))
    auth.login("agent@example.fr")
    response = client.post(f"/gestion/facturation/tarifs/{tariff.id}/supprimer", follow_redirects=True)
    assert "Le tarif est supprimé." in response.get_data(as_text=True)
    assert db.session.scalar(sa.select(sa.func.count(Tariff.id))) == 0
    assert db.session.scalar(sa.select(sa.func.count(TariffBracket.id))) == 0
    assert db.session.get(Invoice, mine.id).total_cents == 1980
    assert client.post("/gestion/facturation/tarifs/999999/supprimer").status_code == 404


def test_starting_a_month_twice_while_queued_hands_it_to_the_worker_once(client, auth, app, activity):
    from portail.queue import get_queue

    make_user(email="agent@example.fr", role=Role.AGENT)
    commit()
    app.config["RQ_SYNC"] = False  # jobs stay in (fake) Redis: no worker here
    auth.login("agent@example.fr")
    first = client.post("/gestion/facturation/lancer", data={"mois": "2026-10"})
    second = client.post("/gestion/facturation/lancer", data={"mois": "2026-10"})
    assert first.headers["Location"] == second.headers["Location"]
    assert db.session.scalar(sa.select(sa.func.count(BillingRun.id))) == 1
    assert get_queue().count == 1
    assert "En attente" in client.get(first.headers["Location"]).get_data(as_text=True)


def test_with_redis_down_the_run_fails_with_a_french_message(client, auth, app, activity):
    make_user(email="agent@example.fr", role=Role.AGENT)
    commit()
    app.config.update(RQ_SYNC=False, REDIS_URL="redis://127.0.0.1:1/0")
    app.extensions.pop("portail_redis", None)
    auth.login("agent@example.fr")
    page = client.post(
        "/gestion/facturation/lancer", data={"mois": "2026-10"}, follow_redirects=True
    ).get_data(as_text=True)
    assert "Échec" in page and "Le service des tâches est indisponible" in page
    assert db.session.scalar(sa.select(BillingRun.state)) is RunState.FAILED


# --- days entered by the service: what makes a reservation or an absence late ---------------------


@pytest.fixture
def enrolled(app):
    activity = priced(canteen(), surcharge=150)
    family = family_with("TEL", 500)
    child = family.children[0]
    enrol(child, activity)
    parent = make_user(email="parent@example.fr")
    subscribe(parent, family)
    make_user(email="agent@example.fr", role=Role.AGENT)
    commit()
    return family, child, activity


def test_an_agent_enters_a_late_reservation_and_a_late_absence_and_billing_sees_both(
    client, auth, enrolled, monkeypatch
):
    from portail.gestion import activity_routes

    family, child, activity = enrolled
    auth.login("agent@example.fr")
    url = f"/gestion/familles/{family.id}/saisie"
    # 6 October: reserved by phone the same morning (after the J-2 deadline): late.
    monkeypatch.setattr(activity_routes, "utcnow", lambda: datetime(2026, 10, 6, 7, tzinfo=UTC))
    response = client.post(
        url,
        data={"child": child.id, "activity": activity.id, "day": "2026-10-06", "kind": "reservation"},
        follow_redirects=True,
    )
    told = response.get_data(as_text=True).replace("\xa0", " ")
    assert "Réservation du mardi 6 octobre enregistrée pour Léa" in told
    # what billing will add, told at once (the invoice below bills exactly this)
    assert "Saisie après le délai : ce jour sera facturé 1,00 € + majoration de 1,50 €." in told
    assert "Restauration scolaire 1,50 €" in client.get(url).get_data(as_text=True).replace("\xa0", " ")
    # 8 October: reserved well in time, then an absence phoned in on the day itself (late).
    monkeypatch.setattr(activity_routes, "utcnow", lambda: datetime(2026, 10, 1, 7, tzinfo=UTC))
    client.post(
        url, data={"child": child.id, "activity": activity.id, "day": "2026-10-08", "kind": "reservation"}
    )
    monkeypatch.setattr(activity_routes, "utcnow", lambda: datetime(2026, 10, 8, 6, tzinfo=UTC))
    late = client.post(
        url,
        data={"child": child.id, "activity": activity.id, "day": "2026-10-08", "kind": "absence"},
        follow_redirects=True,
    )
    assert "Absence saisie après le délai : ce jour reste facturé 1,00" in late.get_data(as_text=True)
    states = dict(db.session.execute(sa.select(Booking.day, Booking.state)).all())
    assert states == {date(2026, 10, 6): BookingState.RESERVED, date(2026, 10, 8): BookingState.ABSENT}
    history = db.session.scalars(sa.select(Request).order_by(Request.id)).all()
    assert [r.created_by_id for r in history] == [
        None,
        None,
        None,
    ]  # the town's entries: no parent receipt, no digest
    assert db.session.scalar(sa.select(sa.func.count(OutboxMessage.id))) == 0
    auth.logout()
    auth.login("parent@example.fr")  # the family sees them in Mes demandes, with who entered them
    listing = client.get("/mon-espace/demandes").get_data(as_text=True)
    assert listing.count("Acceptée") >= 3
    page = client.get(f"/mon-espace/demandes/{history[0].id}").get_data(as_text=True)
    assert "Saisie par le service : réservation du 06/10/2026 (hors délai)" in page
    run_month()
    (invoice,) = invoices_of(family)
    assert [(line.label, line.days, line.unit_price_cents) for line in invoice.lines] == [
        ("Jours réservés", 1, 100),
        ("Absences hors délai", 1, 100),
        ("Majoration réservation hors délai", 1, 150),
    ]


def test_a_day_entry_checks_enrolment_opening_state_and_capacity_and_saves_nothing_otherwise(
    client, auth, enrolled
):
    family, child, activity = enrolled
    other = family_with("AUTRE", 500)
    commit()
    auth.login("agent@example.fr")
    url = f"/gestion/familles/{family.id}/saisie"
    base = {"child": child.id, "activity": activity.id, "kind": "reservation"}
    for data, message in (
        (base | {"day": "2026-10-07"}, "Fermé le mercredi"),
        (base | {"day": "2026-10-20"}, "Fermé — Vacances de la Toussaint"),
        (base | {"day": "2026-12-25"}, "Fermé — jour férié (Noël)"),
        (base | {"day": "2027-08-02"}, "L'enfant n'est pas inscrit à cette activité ce jour-là."),
        (
            base | {"day": "2026-10-06", "kind": "absence"},
            "Une absence ne peut être saisie que sur un jour réservé.",
        ),
        (base | {"day": ""}, "Saisissez le jour."),
        (base | {"day": "2026-10-06", "child": "0"}, "Choisissez l'enfant."),
        (base | {"day": "2026-10-06", "child": str(other.children[0].id)}, "Choisissez l'enfant."),
        (base | {"day": "2026-10-06", "kind": ""}, "Choisissez réservation ou absence."),
    ):
        response = client.post(url, data=data)
        assert response.status_code == 422, (data, response.headers.get("Location"))
        assert message in html.unescape(response.get_data(as_text=True)), message
    assert db.session.scalar(sa.select(sa.func.count(Booking.id))) == 0
    assert db.session.scalar(sa.select(sa.func.count(Request.id))) == 0
    db.session.execute(sa.update(type(activity)).values(capacity=0))
    commit()
    response = client.post(url, data=base | {"day": "2026-10-06"})
    assert response.status_code == 422 and "Complet" in response.get_data(as_text=True)
    assert client.get(f"/gestion/familles/{other.id + 999}/saisie").status_code == 404
