"""The README's demo tour is true: `flask demo load`, then every claim of its "Demo logins" section
(the table of accounts and the paragraph), read from the README itself so the two cannot drift; and
the demo's past is one story (a request's date, its history and its digest window agree).

`make run` may load the demo on any day of the year, so the tour is checked with the clock moved
(time-machine) to dates spread over a school year: school days, each school holidays, the summer,
the rentrée and the first days of a month."""

import io
import re
import time
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
import time_machine

from portail import bookings, demo
from portail.bookings import history
from portail.bookings import rules as booking_rules
from portail.extensions import db
from portail.formatting import PARIS
from portail.models import (
    Activity,
    BillingRun,
    BookingState,
    ChangeAction,
    ChangeRequest,
    ChangeStatus,
    Child,
    Document,
    DocumentState,
    EventKind,
    Family,
    Invoice,
    InvoiceKind,
    LineState,
    OutboxMessage,
    OutboxStatus,
    Request,
    RequestEvent,
    RequestKind,
    RequestLine,
    Role,
    RunState,
    Subscription,
    Tariff,
    User,
    utcnow,
)
from portail.models import Booking as BookingRow
from portail.services import billing, digests, request_desk, subscriptions
from portail.services.outbox import render

README = Path(__file__).resolve().parent.parent / "README.md"

# Paris wall-clock moments at which the demo is loaded and its tour checked (within the years the
# school holiday calendar covers, zone C): the school days, each school holidays, the summer, the
# rentrée just after midnight (still the day before in UTC) and the first days after a short month.
TOUR_MOMENTS = [
    datetime(2026, 12, 2, 10, 0, tzinfo=PARIS),  # a Wednesday of school
    datetime(2026, 12, 21, 9, 0, tzinfo=PARIS),  # Monday of the Christmas holidays
    datetime(2027, 1, 5, 8, 15, tzinfo=PARIS),
    datetime(2027, 2, 15, 14, 0, tzinfo=PARIS),  # winter holidays
    datetime(2027, 3, 2, 11, 0, tzinfo=PARIS),  # January's invoices are not due yet (February is short)
    datetime(2027, 4, 15, 16, 0, tzinfo=PARIS),  # spring holidays
    datetime(2027, 6, 28, 10, 0, tzinfo=PARIS),  # the last school week
    datetime(2027, 7, 14, 12, 0, tzinfo=PARIS),  # summer, a public holiday
    datetime(2027, 8, 20, 10, 0, tzinfo=PARIS),
    datetime(2027, 9, 1, 0, 30, tzinfo=PARIS),  # the rentrée
    datetime(2027, 10, 25, 10, 0, tzinfo=PARIS),  # October (Toussaint) holidays
]
# The moment of the checks that do not depend on the season.
A_SCHOOL_DAY = TOUR_MOMENTS[2]
# (moment, the town's school holiday zone): zone C, and a town of zone A whose winter holidays
# (13 February to 1 March 2027) are not zone C's (6 to 22 February).
TOUR = [(moment, "C") for moment in TOUR_MOMENTS] + [(datetime(2027, 2, 17, 10, 0, tzinfo=PARIS), "A")]


def demo_section() -> str:
    text = README.read_text()
    return text.split("### Demo logins", 1)[1].split("\n### ", 1)[0]


def tour_paragraph() -> str:
    """The paragraph after the table, on one line."""
    section = demo_section()
    after_table = section.rsplit("|\n", 1)[1]
    return " ".join(after_table.split())


def load_demo(app) -> None:
    result = app.test_cli_runner().invoke(args=["demo", "load"])
    assert result.exit_code == 0, result.output


@pytest.fixture
def loaded(app):
    with time_machine.travel(A_SCHOOL_DAY):
        load_demo(app)
        yield app


def user(email: str) -> User:
    return db.session.scalar(sa.select(User).where(User.email == email))


def family(name: str) -> Family:
    return db.session.scalar(sa.select(Family).where(Family.name == name))


def child(name: str) -> Child:
    return db.session.scalar(sa.select(Child).where(Child.first_name == name))


def login(app, email: str, password: str):
    client = app.test_client()
    answer = client.post("/connexion", data={"email": email, "password": password})
    assert answer.status_code == 302 and "/connexion" not in answer.headers["Location"], email
    return client


def today() -> date:
    return utcnow().astimezone(PARIS).date()


# --- the table of accounts ------------------------------------------------------------------------


def test_every_demo_login_of_the_readme_works_with_its_role(loaded):
    section = demo_section()
    password = re.search(r"Password for every demo account: `([^`]+)`", section).group(1)
    assert password == demo.DEMO_PASSWORD
    rows = re.findall(r"^\| `([^`]+)` \| ([^|]+?) \|$", section, flags=re.M)
    assert len(rows) == 6
    for email, role in rows:
        account = user(email)
        client = login(loaded, email, password)
        families = {
            f.name
            for f in db.session.scalars(
                sa.select(Family).join(Subscription).where(Subscription.user_id == account.id)
            )
        }
        if role.startswith("parent") or role.startswith("second parent"):
            named = re.search(r"Famille [A-Z]+", role).group(0)
            assert account.role is Role.PARENT and families == {named}, email
            assert client.get("/gestion/").status_code == 403
        elif role.startswith("animateur"):
            assert account.role is Role.ANIMATOR and client.get("/gestion/pointage").status_code == 200
            assert client.get("/gestion/").status_code == 403
        elif role.startswith("gestionnaire"):
            assert account.role is Role.AGENT and client.get("/gestion/").status_code == 200
            assert client.get("/gestion/agents").status_code == 403
        else:
            assert role.startswith("administrateur") and account.role is Role.ADMIN
            assert client.get("/gestion/agents").status_code == 200
    assert {"second parent of Famille MARTIN"} <= {role for _e, role in rows}
    assert len(user("julien.martin@demo.fr").first_name) and len(family("Famille MARTIN").guardians) == 2


# --- the paragraph: each claim and its check --------------------------------------------------------


def check_subscription_code(app, paragraph):
    code, born = re.search(
        r"code abonné \*\*([A-Z0-9-]+)\*\* with the verification date \*\*([\d/]+)\*\*", paragraph
    ).groups()
    day, month, year = (int(part) for part in born.split("/"))
    found = subscriptions.find_family(code, date(year, month, day))
    assert found is not None and found.name == "Famille DUBOIS"
    assert any(
        kid.first_name == "Hugo" and kid.birth_date == date(year, month, day) for kid in found.children
    )


def check_martin_file_and_changes(app, paragraph):
    martin = family("Famille MARTIN")
    claire = martin.guardians[0]
    assert claire.iban and claire.quotient and claire.city and all(kid.school for kid in martin.children)
    pending = db.session.scalars(
        sa.select(ChangeRequest).where(
            ChangeRequest.family_id == martin.id, ChangeRequest.status == ChangeStatus.PENDING
        )
    ).all()
    assert sorted(change.section for change in pending) == ["address", "contact", "health"]
    health = next(change for change in pending if change.section == "health")
    assert health.target_id == child("Tom").id and health.new_values["allergies"] != health.old_values.get(
        "allergies"
    )
    contact = next(change for change in pending if change.section == "contact")
    assert contact.action is ChangeAction.CREATE


def check_every_booking_state(app, paragraph):
    martin = family("Famille MARTIN")
    zone = app.config["SCHOOL_ZONE"]
    rows = db.session.execute(
        sa.select(BookingRow.state, BookingRow.day, Child.first_name, Activity.name, Activity)
        .join(Child, Child.id == BookingRow.child_id)
        .join(Activity, Activity.id == BookingRow.activity_id)
        .where(Child.family_id == martin.id, BookingRow.day >= today())
    ).all()
    shown = {row.state for row in rows}
    # every state; a sick day when the canteen opens today (Tom's, declared this morning), the strike's
    # day when next week has one (check_strike_next_week)
    assert shown >= set(BookingState) - {BookingState.SICK, BookingState.CANCELLED}
    canteen = db.session.scalar(sa.select(Activity).where(Activity.name == "Restauration scolaire"))
    assert (BookingState.SICK in shown) == (booking_rules.closure(canteen, today(), zone) is None)
    # on days the town's planning shows open (its school holiday zone)
    assert [row for row in rows if booking_rules.closure(row.Activity, row.day, zone)] == []
    lea_canteen = {
        row.day.isocalendar()[1]
        for row in rows
        if row.first_name == "Léa"
        and row.name == "Restauration scolaire"
        and row.state is BookingState.RESERVED
    }
    assert len(lea_canteen) >= 3  # booked for the coming school weeks
    canteen = db.session.scalar(sa.select(Activity).where(Activity.name == "Restauration scolaire"))
    first_open = today()
    while booking_rules.closure(canteen, first_open, zone):
        first_open += timedelta(days=1)
        assert first_open < today() + timedelta(days=80), "no school day ahead"
    booked = min(
        row.day
        for row in rows
        if row.first_name == "Léa"
        and row.name == "Restauration scolaire"
        and row.state is BookingState.RESERVED
    )
    assert booked - first_open < timedelta(days=7)  # from the next school days on (after the holidays)
    client = login(app, "claire.martin@demo.fr", demo.DEMO_PASSWORD)
    page = client.get(f"/famille/{martin.id}/planning?vue=mois").get_data(as_text=True)
    assert "Léa" in page


def pending_requests() -> dict[tuple[str, RequestKind], list[Request]]:
    found: dict = {}
    for request in db.session.scalars(
        sa.select(Request).join(RequestLine).where(RequestLine.state == LineState.PENDING).distinct()
    ):
        found.setdefault((request.child.first_name, request.kind), []).append(request)
    return found


def check_requests_waiting(app, paragraph):
    waiting = pending_requests()
    assert set(waiting) == {
        ("Tom", RequestKind.RESERVATION),
        ("Léa", RequestKind.ABSENCE),
        ("Inès", RequestKind.RESERVATION),
    }
    assert [len(r.lines) for r in waiting[("Tom", RequestKind.RESERVATION)]] == [1]  # Tom's day
    (period,) = waiting[("Inès", RequestKind.RESERVATION)]
    assert period.period_start.isoweekday() == 1 and period.period_end - period.period_start == timedelta(
        days=11
    )
    assert period.period_start > today() and len(period.lines) >= 2  # a two-week period, school days only
    client = login(app, "agent@demo.fr", demo.DEMO_PASSWORD)
    queue = client.get("/gestion/demandes").get_data(as_text=True)
    assert "Tom" in queue and "Léa" in queue and "Inès" in queue


def check_claire_unread_refusal(app, paragraph):
    claire = user("claire.martin@demo.fr")
    client = login(app, claire.email, demo.DEMO_PASSWORD)
    page = client.get("/mon-espace/demandes").get_data(as_text=True)
    own = db.session.scalars(sa.select(Request.id).where(Request.created_by_id == claire.id)).all()
    unread = request_desk.unread_counts(claire, own)
    assert page.count("1 nouveau(x) message(s)") == len(unread)
    # the refused day; and the place offered to Léa from the waiting list (check_waiting_list)
    lines = {
        request_id: [line.state for line in db.session.get(Request, request_id).lines]
        for request_id in unread
    }
    assert sorted(lines.values(), key=str) == [[LineState.REFUSED], [LineState.WAITING]]
    assert list(unread.values()) == [1, 1]


def check_documents(app, paragraph):
    martin, bernard = family("Famille MARTIN"), family("Famille BERNARD")
    docs = db.session.scalars(sa.select(Document).where(Document.family_id == martin.id)).all()
    validated = [d for d in docs if d.state is DocumentState.VALIDATED]
    assert any(d.valid_until > today() + timedelta(days=30) for d in validated)
    assert any(today() <= d.valid_until <= today() + timedelta(days=30) for d in validated)  # expiring soon
    assert any(d.state is DocumentState.REFUSED and d.reason for d in docs)
    queue = db.session.scalars(sa.select(Document).where(Document.state == DocumentState.PENDING)).all()
    assert sorted(d.family_id for d in queue) == sorted([martin.id, bernard.id])
    photo = next(d for d in queue if d.family_id == martin.id)
    assert photo.mimetype.startswith("image/")
    client = login(app, "agent@demo.fr", demo.DEMO_PASSWORD)
    page = client.get("/gestion/pieces").get_data(as_text=True)
    assert "Famille MARTIN" in page and "Famille BERNARD" in page


def check_billing(app, paragraph):
    activities = db.session.scalars(sa.select(Activity)).all()
    assert len(activities) == 6
    assert {tariff.activity_id for tariff in db.session.scalars(sa.select(Tariff))} == {
        a.id for a in activities
    }
    runs = db.session.scalars(sa.select(BillingRun).order_by(BillingRun.month)).all()
    assert [run.state for run in runs] == [RunState.DONE, RunState.DONE]
    older, last = (run.month for run in runs)
    assert older == billing.previous_month(last)  # two past months, the latest ones whose older is due:
    before = billing.previous_month(today())
    assert last == before or (last == billing.previous_month(before) and today().day <= 3)
    invoices = db.session.scalars(sa.select(Invoice).where(Invoice.kind == InvoiceKind.INVOICE)).all()
    states = {
        (invoice.family_name, invoice.month): state
        for invoice, _paid, state in billing.with_states(invoices, utcnow())
    }
    assert states[("Famille MARTIN", older)] == "Prélevée"
    assert states[("Famille BERNARD", older)] == "En retard"
    assert states[("Famille MARTIN", last)] == "Prélèvement prévu"  # in the newer month's file
    assert states[("Famille BERNARD", last)] == "À payer"
    martin_last = next(i for i in invoices if i.family_name == "Famille MARTIN" and i.month == last)
    late = [line for line in martin_last.lines if "Absences" in line.label]
    assert {line.child_name.split()[0] for line in late} == {"Tom"}  # Léa's absence in time is not billed
    client = login(app, "agent@demo.fr", demo.DEMO_PASSWORD)
    page = client.get("/gestion/facturation").get_data(as_text=True)
    assert "Aucune facturation lancée" not in page and "Aucun mois" not in page
    dashboard = client.get("/gestion/").get_data(as_text=True)
    assert "Facturation lancée" in dashboard and "billing.started" not in dashboard


def check_todays_register(app, paragraph):
    from portail.bookings import rules as booking_rules
    from portail.demo import activities as demo_activities
    from portail.models import Activity

    canteen = db.session.scalar(sa.select(Activity).where(Activity.name == "Restauration scolaire"))
    day = today()
    if booking_rules.closure(canteen, day, demo_activities.zone()) is not None:
        return  # not a school day: no register of the day
    client = login(app, "animateur@demo.fr", demo.DEMO_PASSWORD)
    page = client.get(f"/gestion/pointage/{canteen.id}/{day.isoformat()}").get_data(as_text=True)
    for name in ("Léa MARTIN", "Tom MARTIN", "Inès BERNARD"):
        assert name in page, name
    assert "Allergies : Arachides" in page and "PAI" in page


def check_unexcused_absence_billed(app, paragraph):
    from portail.models import InvoiceKind

    invoice = db.session.scalar(
        sa.select(Invoice)
        .where(
            Invoice.family_name == "Famille MARTIN",
            Invoice.kind == InvoiceKind.INVOICE,
            Invoice.credited_by_id.is_(None),
        )
        .order_by(Invoice.month.desc())
    )
    unexcused = [line for line in invoice.lines if line.label == "Absences injustifiées"]
    assert [(line.child_name, line.days) for line in unexcused] == [("Tom MARTIN", 1)]


def check_tom_sick_today(app, paragraph):
    from portail.bookings import rules as booking_rules
    from portail.demo import activities as demo_activities
    from portail.models import SickDeclaration

    canteen = db.session.scalar(sa.select(Activity).where(Activity.name == "Restauration scolaire"))
    declared = db.session.scalars(sa.select(SickDeclaration)).all()
    if booking_rules.closure(canteen, today(), demo_activities.zone()) is not None:
        assert declared == []
        return
    (sick,) = declared
    assert (sick.child.first_name, sick.day) == ("Tom", today())
    client = login(app, "animateur@demo.fr", demo.DEMO_PASSWORD)
    page = client.get(f"/gestion/pointage/{canteen.id}/{today().isoformat()}").get_data(as_text=True)
    assert "Malade (déclaré par la famille)" in page.split("Absences prévues")[1]


def check_strike_next_week(app, paragraph):
    from portail.demo.activities import open_days
    from portail.models import OutboxMessage, ServiceCancellation

    canteen = db.session.scalar(sa.select(Activity).where(Activity.name == "Restauration scolaire"))
    monday = today() + timedelta(days=7 - today().weekday())
    days = [day for day in open_days(canteen, monday, 5) if day < monday + timedelta(days=5)]
    strikes = db.session.scalars(sa.select(ServiceCancellation)).all()
    if not days:  # a holiday week: no strike
        assert strikes == []
        return
    (strike,) = strikes
    assert (strike.activity_id, strike.first_day, strike.last_day, strike.reason) == (
        canteen.id,
        days[0],
        days[0],
        "Grève",
    )
    assert (strike.created_at.astimezone(PARIS).date() - today()).days == -1  # declared yesterday
    mailed = db.session.scalars(
        sa.select(OutboxMessage.recipient).where(OutboxMessage.template == "service_cancelled")
    ).all()
    assert sorted(mailed) == ["claire.martin@demo.fr", "julien.martin@demo.fr"]
    lea_day = db.session.scalar(
        sa.select(BookingRow.state).where(
            BookingRow.child_id == child("Léa").id,
            BookingRow.activity_id == canteen.id,
            BookingRow.day == days[0],
        )
    )
    assert lea_day is BookingState.CANCELLED


def check_direct_debit(app, paragraph):
    from portail.models import DebitBatch, DirectDebit, SepaMandate

    (mandate,) = db.session.scalars(sa.select(SepaMandate).where(SepaMandate.revoked_at.is_(None))).all()
    assert (mandate.family.name, mandate.guardian.first_name) == ("Famille MARTIN", "Claire")
    (batch,) = db.session.scalars(sa.select(DebitBatch)).all()
    last = max(db.session.scalars(sa.select(BillingRun.month)).all())
    assert batch.month == last
    (debit,) = db.session.scalars(sa.select(DirectDebit)).all()
    assert (debit.invoice.family_name, debit.invoice.month, debit.sequence) == (
        "Famille MARTIN",
        last,
        "FRST",
    )
    client = login(app, "claire.martin@demo.fr", demo.DEMO_PASSWORD)
    home = client.get("/facturation/").get_data(as_text=True)
    assert "Prélèvement automatique" in home and mandate.reference in home
    page = client.get(f"/facturation/{debit.invoice.family_id}/factures/{debit.invoice_id}").get_data(
        as_text=True
    )
    assert "Prélèvement prévu le" in page or "Prélevée le" in page
    agent = login(app, "agent@demo.fr", demo.DEMO_PASSWORD)
    assert debit.invoice.number in agent.get(f"/gestion/facturation/prelevements/{batch.id}").get_data(
        as_text=True
    )


def check_online_payment(app, paragraph):
    from portail.models import OnlinePayment, OnlineState

    bernard = db.session.scalar(sa.select(Family).where(Family.name == "Famille BERNARD"))
    client = login(app, "sophie.bernard@demo.fr", demo.DEMO_PASSWORD)
    assert "Payer en ligne" in client.get("/facturation/").get_data(as_text=True)
    bank = client.post(f"/facturation/{bernard.id}/payer", data={})
    assert bank.status_code == 302 and "/facturation/banque-test/" in bank.location
    back = client.post(bank.location, data={"resultat": "P"})  # the test bank notifies, then returns
    assert "Paiement accepté" in client.get(back.location).get_data(as_text=True)
    (payment,) = db.session.scalars(sa.select(OnlinePayment)).all()
    assert payment.state is OnlineState.PAID and len(payment.items) == 2  # the late one and the newer one


def check_attestation(app, paragraph):
    from pypdf import PdfReader

    from portail.demo.attestation import year_shown

    martin = db.session.scalar(sa.select(Family).where(Family.name == "Famille MARTIN"))
    year = year_shown(child("Tom").birth_date, today())
    client = login(app, "claire.martin@demo.fr", demo.DEMO_PASSWORD)
    assert f"Année {year}" in client.get("/facturation/").get_data(as_text=True)
    response = client.get(f"/facturation/{martin.id}/attestation-fiscale.pdf?annee={year}")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(response.data)).pages)
    assert "Tom MARTIN" in text and "Léa" not in text and str(year) in text


def check_waiting_list(app, paragraph):
    from portail.bookings import rules as booking_rules
    from portail.demo import activities as demo_activities
    from portail.models import OutboxMessage, WaitingEntry

    theatre = db.session.scalar(sa.select(Activity).where(Activity.name == "Atelier théâtre du mercredi"))
    assert theatre.waiting_list and theatre.capacity == 2
    now = utcnow()
    days = [
        day
        for day in demo_activities.open_days(theatre, today() + timedelta(days=2), 20)
        if booking_rules.booking_deadline(theatre, day) > now
    ][:2]
    first, second = days
    states = {
        (row.first_name, row.day): row.state
        for row in db.session.execute(
            sa.select(Child.first_name, BookingRow.day, BookingRow.state)
            .join(Child, Child.id == BookingRow.child_id)
            .where(BookingRow.activity_id == theatre.id)
        )
    }
    assert states[("Tom", first)] is states[("Inès", first)] is BookingState.RESERVED
    assert states[("Léa", first)] is BookingState.WAITING
    assert states[("Léa", second)] is BookingState.OFFERED and states[("Inès", second)] is BookingState.ABSENT
    offer = db.session.scalars(
        sa.select(WaitingEntry).where(WaitingEntry.day == second, WaitingEntry.offered_at.is_not(None))
    ).one()
    assert offer.offer_expires_at > now and offer.ended_at is None
    mailed = db.session.scalars(
        sa.select(OutboxMessage.recipient).where(OutboxMessage.template == "waiting_offer")
    )
    assert sorted(mailed) == ["claire.martin@demo.fr", "julien.martin@demo.fr"]
    martin = family("Famille MARTIN")
    lea = child("Léa")
    client = login(app, "claire.martin@demo.fr", demo.DEMO_PASSWORD)
    cell = client.get(
        f"/famille/{martin.id}/planning/cellule",
        query_string={"enfant": lea.id, "activite": theatre.id, "jour": first.isoformat()},
        headers={"HX-Request": "true"},
    )
    assert "Liste d&#39;attente — 1er" in cell.get_data(as_text=True)
    confirmed = client.post(
        f"/famille/{martin.id}/planning/cellule",
        data={"enfant": lea.id, "activite": theatre.id, "jour": second.isoformat(), "action": "confirm"},
        headers={"HX-Request": "true"},
    )
    assert "Réservé" in confirmed.get_data(as_text=True)
    db.session.rollback()
    assert (
        db.session.scalar(
            sa.select(BookingRow.state).where(
                BookingRow.child_id == lea.id, BookingRow.activity_id == theatre.id, BookingRow.day == second
            )
        )
        is BookingState.RESERVED
    )


# (a phrase of the README's paragraph, the check that makes it true)
CLAIMS = [
    ("The canteen's first open day of next week is cancelled for a strike", check_strike_next_week),
    ("On a school day the animator finds the canteen's register", check_todays_register),
    ("Claire declared Tom sick this morning", check_tom_sick_today),
    ("The register of the last open day of the newer billed month", check_unexcused_absence_billed),
    ("To try *M'abonner*, create an account and use the code abonné", check_subscription_code),
    (
        "The MARTIN family has a complete file and three changes waiting for the agent",
        check_martin_file_and_changes,
    ),
    ("its planning shows every booking state", check_every_booking_state),
    ("The agent finds requests waiting in *Demandes*", check_requests_waiting),
    ('Claire has "1 nouveau(x) message(s)" on a refused day', check_claire_unread_refusal),
    ("*Pièces justificatives* show a validated document, one expiring soon", check_documents),
    ("Tariffs are set for the six activities", check_billing),
    ("Léa is first on the waiting list", check_waiting_list),
    ("Claire pays by direct debit", check_direct_debit),
    ("Claire downloads the attestation fiscale", check_attestation),
    ("Sophie can pay BERNARD's invoices online", check_online_payment),  # (last: it pays them)
]


def test_every_sentence_of_the_readme_tour_is_checked():
    paragraph = tour_paragraph()
    sentences = [s for s in re.split(r"(?<=[.)])\s+(?=[A-Z*])", paragraph) if s.strip()]
    assert len(sentences) >= 5
    for sentence in sentences:
        assert any(phrase in sentence for phrase, _check in CLAIMS), (
            f"README claim without a test: {sentence}"
        )


@pytest.mark.parametrize(
    ("moment", "zone"), TOUR, ids=[f"{moment:%Y-%m-%d_%Hh%M}_zone_{zone}" for moment, zone in TOUR]
)
def test_the_readme_tour_is_true_whatever_the_day_the_demo_is_loaded(app, moment, zone):
    app.config["SCHOOL_ZONE"] = zone
    with time_machine.travel(moment):
        # the whole run sees that day: Python's clock, the time module and the models' defaults
        assert abs(utcnow() - moment) < timedelta(minutes=5)
        assert abs(time.time() - moment.timestamp()) < 300
        load_demo(app)
        account = user("agent@demo.fr")
        assert abs(account.created_at - moment) < timedelta(minutes=5)
        paragraph = tour_paragraph()
        for phrase, check in CLAIMS:
            assert phrase in paragraph
            check(app, paragraph)
        check_one_past()


# --- one past: dates, history and digest windows agree ------------------------------------------------


def test_demo_requests_are_dated_as_their_history_says(loaded):
    check_one_past()


def check_one_past():
    """A request's date is its history's, decisions follow it, nothing is in the future, and the
    mails of the past went out then."""
    for request in db.session.scalars(sa.select(Request)):
        events = db.session.scalars(
            sa.select(RequestEvent).where(RequestEvent.request_id == request.id)
        ).all()
        created = [event.at for event in events if event.kind is EventKind.CREATED]
        assert created == [request.created_at], request.id
        decided_at = {event.at for event in events if event.kind is EventKind.DECISION}
        for line in request.lines:
            if line.state in (LineState.ACCEPTED, LineState.REFUSED):
                assert line.decided_at in decided_at, (request.id, line.day)
                assert line.decided_at >= request.created_at
        assert all(event.at <= utcnow() for event in events)
    # the receipts and invoice mails of the past went out then, not when the demo was loaded
    assert (
        db.session.scalar(
            sa.select(sa.func.count(OutboxMessage.id)).where(OutboxMessage.status == OutboxStatus.PENDING)
        )
        == 0
    )


def test_a_decision_is_mailed_in_the_window_of_the_time_its_history_shows(loaded):
    """Tom's day refused yesterday at 12:45 (its history) goes in yesterday's 13:00 accusé de traitement."""
    claire = user("claire.martin@demo.fr")
    refused = db.session.scalar(
        sa.select(Request)
        .join(RequestLine)
        .where(RequestLine.state == LineState.REFUSED, Request.created_by_id == claire.id)
    )
    (decision,) = [e for e in history.events(refused) if e.kind is EventKind.DECISION]
    shown = decision.at.astimezone(PARIS)
    assert (shown.date(), shown.strftime("%H:%M")) == (today() - timedelta(days=1), "12:45")
    day, window = digests.window_of(decision.at)
    assert digests.window_of(refused.lines[0].decided_at) == (day, window)
    digests.send_window(day, window, now=utcnow())
    mails = [
        render(message)
        for message in db.session.scalars(
            sa.select(OutboxMessage).where(
                OutboxMessage.template == "decision_digest", OutboxMessage.recipient == claire.email
            )
        )
    ]
    assert len(mails) == 1 and "Tom — Restauration scolaire — Réservation REFUSÉE" in mails[0].body
    assert f"le {day.day}" in mails[0].body
    # today's windows do not carry it again
    for window_today in digests.ENDS:
        if digests.bounds(today(), window_today)[1] <= utcnow():
            digests.send_window(today(), window_today, now=utcnow())
    bodies = [
        render(message).body
        for message in db.session.scalars(
            sa.select(OutboxMessage).where(
                OutboxMessage.template == "decision_digest", OutboxMessage.recipient == claire.email
            )
        )
    ]
    assert sum("Tom — Restauration scolaire — Réservation REFUSÉE" in body for body in bodies) == 1


def test_the_towns_decisions_write_one_time_for_the_history_and_the_digest(app):
    """bookings.decide (the agent's decision) stamps the line and its history event with the same
    instant, so the window that mails it is the one of the time the parent reads."""
    from tests.factories import enrol, make_activity, make_family, make_user, subscribe

    item = make_activity()
    kin = make_family()
    parent = make_user()
    subscribe(parent, kin)
    enrol(kin.children[0], item)
    agent = make_user(email="agent@example.fr", role=Role.AGENT)
    day = today() + timedelta(days=20)
    while day.isoweekday() > 5:
        day += timedelta(days=1)
    request_id = bookings.submit(
        kin.id, parent, kin.children[0], item, RequestKind.RESERVATION, [day], utcnow(), "C"
    ).request_id
    moment = utcnow().replace(microsecond=0) - timedelta(minutes=3)
    line = db.session.scalar(sa.select(RequestLine).where(RequestLine.request_id == request_id))
    bookings.decide([line.id], False, agent, moment, reason="Complet")
    db.session.flush()
    (event,) = [
        e for e in history.events(db.session.get(Request, request_id)) if e.kind is EventKind.DECISION
    ]
    assert event.at == line.decided_at == moment
    assert digests.window_of(event.at) == digests.window_of(line.decided_at)
