"""Billing from what happened: a closed register's marks (absence injustifiée, présence sans
réservation, an excused absence), a register still open (the bookings), sick days (carence, with and
without a certificate in time), and the credit note when a billed month changes."""

from datetime import UTC, date, datetime

import pytest
import sqlalchemy as sa

from portail.extensions import db
from portail.models import (
    Attendance,
    BookingState,
    Document,
    DocumentScope,
    DocumentState,
    DocumentType,
    Invoice,
    InvoiceKind,
    Presence,
    RegisterClosing,
    SickDeclaration,
    Tariff,
    Validity,
)
from portail.services.billing import sick_days
from portail.services.outbox import commit
from tests.factories import book, canteen, enrol, make_family, priced, run_month

pytestmark = pytest.mark.both_dbs

# October 2026: the canteen's days (Mon, Tue, Thu, Fri); quotient 850 → 3,30 € a day
DAYS = [date(2026, 10, d) for d in (1, 2, 5, 6, 8, 9, 12, 13, 15, 16)]
PRICE = 330
MARKED_AT = datetime(2026, 10, 20, 12, 0, tzinfo=UTC)


@pytest.fixture
def activity(app):
    activity = priced(canteen())
    commit()
    return activity


@pytest.fixture
def lea(activity):
    family = make_family(name="Famille MARTIN", children=(("Léa", date(2016, 3, 14)),))
    guardian = family.guardians[0]
    guardian.quotient, guardian.quotient_valid_until = 850, date(2027, 1, 31)
    child = family.children[0]
    enrol(child, activity)
    commit()
    return child


def tariff_of(activity) -> Tariff:
    return db.session.scalar(sa.select(Tariff).where(Tariff.activity_id == activity.id))


def register(activity, day, marks: dict, closed=True):
    for child, presence in marks.items():
        db.session.add(
            Attendance(
                child_id=child.id, activity_id=activity.id, day=day, presence=presence, marked_at=MARKED_AT
            )
        )
    if closed:
        db.session.add(RegisterClosing(activity_id=activity.id, day=day, closed_at=MARKED_AT))
    db.session.flush()


def lines(child):
    invoice = db.session.scalar(
        sa.select(Invoice).where(
            Invoice.family_id == child.family_id,
            Invoice.kind == InvoiceKind.INVOICE,
            Invoice.credited_by_id.is_(None),
        )
    )
    if invoice is None:
        return []
    return [(line.label, line.days, line.unit_price_cents) for line in invoice.lines]


def test_a_closed_register_bills_an_unexcused_absence_and_not_an_excused_one(activity, lea):
    book(lea, activity, DAYS[:4])
    register(activity, DAYS[0], {lea: Presence.PRESENT})
    register(activity, DAYS[1], {lea: Presence.UNEXCUSED})
    register(activity, DAYS[2], {lea: Presence.EXCUSED})
    register(activity, DAYS[3], {lea: Presence.UNEXCUSED}, closed=False)  # open: the booking bills
    commit()
    run_month()
    assert lines(lea) == [("Jours réservés", 2, PRICE), ("Absences injustifiées", 1, PRICE)]


def test_a_tariff_may_not_bill_unexcused_absences(activity, lea):
    tariff_of(activity).bill_unexcused_absences = False
    book(lea, activity, DAYS[:2])
    register(activity, DAYS[1], {lea: Presence.UNEXCUSED})
    commit()
    run_month()
    assert lines(lea) == [("Jours réservés", 1, PRICE)]


def test_a_presence_without_booking_is_billed_at_its_price_and_surcharge(activity, lea):
    tariff = tariff_of(activity)
    tariff.unbooked_price_cents, tariff.unbooked_surcharge_cents = 450, 200
    register(activity, DAYS[0], {lea: Presence.PRESENT})
    register(activity, DAYS[1], {lea: Presence.PRESENT}, closed=False)  # not closed: nothing yet
    commit()
    run_month()
    assert lines(lea) == [
        ("Présences sans réservation", 1, 450),
        ("Majoration présence sans réservation", 1, 200),
    ]
    # without its own price, the day's price
    tariff_of(activity).unbooked_price_cents = None
    commit()
    run_month()
    assert lines(lea)[0] == ("Présences sans réservation", 1, PRICE)


def test_an_absence_declared_then_present_is_billed_once_as_a_presence(activity, lea):
    book(lea, activity, [DAYS[0]], state=BookingState.ABSENT)
    register(activity, DAYS[0], {lea: Presence.PRESENT})
    commit()
    run_month()
    assert lines(lea) == [("Présences sans réservation", 1, PRICE)]


def test_a_register_closed_after_billing_corrects_the_month_with_a_credit_note(activity, lea):
    book(lea, activity, DAYS[:3])
    commit()
    run_month()
    assert lines(lea) == [("Jours réservés", 3, PRICE)]
    register(activity, DAYS[2], {lea: Presence.UNEXCUSED})
    register(activity, DAYS[4], {lea: Presence.PRESENT})
    tariff_of(activity).bill_unexcused_absences = False
    commit()
    corrected = run_month()
    assert (corrected.invoices, corrected.credit_notes) == (1, 1)
    assert lines(lea) == [("Jours réservés", 2, PRICE), ("Présences sans réservation", 1, PRICE)]
    (credit,) = db.session.scalars(sa.select(Invoice).where(Invoice.kind == InvoiceKind.CREDIT_NOTE)).all()
    assert credit.total_cents == -3 * PRICE


def test_cancelled_and_refused_days_are_never_billed(activity, lea):
    book(lea, activity, DAYS[:1])
    book(lea, activity, DAYS[1:2], state=BookingState.CANCELLED)
    book(lea, activity, DAYS[2:3], state=BookingState.REFUSED)
    register(activity, DAYS[1], {lea: Presence.UNEXCUSED})
    commit()
    run_month()
    assert lines(lea) == [("Jours réservés", 1, PRICE)]


def certificate(child, uploaded_at):
    kind = db.session.scalar(sa.select(DocumentType).where(DocumentType.name == "Certificat médical"))
    if kind is None:
        kind = DocumentType(
            name="Certificat médical", scope=DocumentScope.CHILD, required=False, validity=Validity.NONE
        )
        db.session.add(kind)
        db.session.flush()
    document = Document(
        type_id=kind.id,
        family_id=child.family_id,
        child_id=child.id,
        stored_name=f"cert-{uploaded_at.timestamp()}",
        original_name="certificat.pdf",
        mimetype="application/pdf",
        size=100,
        state=DocumentState.PENDING,
        uploaded_at=uploaded_at,
    )
    db.session.add(document)
    db.session.flush()
    return document


def sick(child, activity, days, document=None):
    book(child, activity, days, state=BookingState.SICK)
    for day in days:
        db.session.add(
            SickDeclaration(
                family_id=child.family_id,
                child_id=child.id,
                day=day,
                declared_at=MARKED_AT,
                document_id=document.id if document else None,
            )
        )
    db.session.flush()


@pytest.mark.parametrize(
    ("sent", "expected"),
    [
        (None, [("Absence maladie (carence)", 1, PRICE), ("Absence maladie sans certificat", 2, PRICE)]),
        (datetime(2026, 10, 6, 9, 0, tzinfo=UTC), [("Absence maladie (carence)", 1, PRICE)]),  # in time
        (  # the certificate sent after the delay (3 days after the first day): billed
            datetime(2026, 10, 9, 9, 0, tzinfo=UTC),
            [("Absence maladie (carence)", 1, PRICE), ("Absence maladie sans certificat", 2, PRICE)],
        ),
    ],
)
def test_sick_days_bill_the_carence_and_the_rest_without_a_certificate_in_time(activity, lea, sent, expected):
    document = certificate(lea, sent) if sent else None
    sick(lea, activity, [DAYS[2], DAYS[3], DAYS[4]], document)  # Mon 5, Tue 6, Thu 8 October
    commit()
    run_month()
    assert lines(lea) == expected


def test_a_refused_certificate_does_not_count(activity, lea):
    document = certificate(lea, datetime(2026, 10, 5, 9, 0, tzinfo=UTC))
    document.state = DocumentState.REFUSED
    sick(lea, activity, [DAYS[2], DAYS[3]], document)
    commit()
    run_month()
    assert lines(lea) == [
        ("Absence maladie (carence)", 1, PRICE),
        ("Absence maladie sans certificat", 1, PRICE),
    ]


def test_a_sickness_begun_the_month_before_keeps_its_carence_there(activity, lea):
    september_30 = date(2026, 9, 30)
    sick(lea, activity, [september_30, DAYS[0]])  # Wed 30 September (not billed in October), Thu 1
    commit()
    run_month()
    assert lines(lea) == [("Absence maladie sans certificat", 1, PRICE)]


def test_the_rule_of_sick_days():
    d = date
    rules = sick_days.sick_days(
        {d(2026, 12, 4): None, d(2026, 12, 7): d(2026, 12, 7), d(2026, 12, 8): None, d(2026, 12, 20): None},
        billed=1,
        certificate_days=3,
    )
    assert rules == {
        d(2026, 12, 4): sick_days.CARENCE,  # Friday, then Monday: one sickness
        d(2026, 12, 7): sick_days.CERTIFIED,
        d(2026, 12, 8): sick_days.CERTIFIED,
        d(2026, 12, 20): sick_days.CARENCE,  # a new one
    }
    assert sick_days.sick_days({d(2026, 12, 4): None, d(2026, 12, 7): None}, 0, 3) == {
        d(2026, 12, 4): sick_days.UNCERTIFIED,
        d(2026, 12, 7): sick_days.UNCERTIFIED,
    }


def test_a_register_closed_or_reopened_after_its_month_was_billed_queues_the_correction(
    client, auth, activity, lea
):
    from portail.models import Role
    from tests.factories import make_user

    book(lea, activity, DAYS[:2])
    make_user(email="agent@example.fr", role=Role.AGENT)
    commit()
    run_month()
    assert lines(lea) == [("Jours réservés", 2, PRICE)]
    auth.login("agent@example.fr")
    url = f"/gestion/pointage/{activity.id}/{DAYS[1].isoformat()}"
    assert client.post(f"{url}/enfants/{lea.id}", data={"presence": "unexcused"}).status_code == 302
    assert lines(lea) == [("Jours réservés", 2, PRICE)]  # an open register changes nothing
    tariff_of(activity).bill_unexcused_absences = False
    commit()
    assert client.post(f"{url}/cloturer").status_code == 302  # (the tests run the queued job at once)
    db.session.expire_all()
    assert lines(lea) == [("Jours réservés", 1, PRICE)]
    assert client.post(f"{url}/rouvrir").status_code == 302
    db.session.expire_all()
    assert lines(lea) == [("Jours réservés", 2, PRICE)]
    credits = db.session.scalar(sa.select(sa.func.count()).where(Invoice.kind == InvoiceKind.CREDIT_NOTE))
    assert credits == 2


def test_a_cancelled_day_is_not_billed_even_with_children_marked_present(activity, lea):
    book(lea, activity, DAYS[:1], state=BookingState.CANCELLED)
    register(activity, DAYS[0], {lea: Presence.PRESENT})
    commit()
    run_month()
    assert lines(lea) == []


def test_a_certificate_sent_after_the_month_was_billed_corrects_it(app, activity, lea):
    from portail.models import Family, Role
    from portail.services import sickness
    from portail.services.billing import runs
    from tests.factories import PDF, make_user

    thursday, friday = date(2026, 10, 29), date(2026, 10, 30)
    sick(lea, activity, [thursday, friday])
    parent = make_user(email="parent@example.fr", role=Role.PARENT)
    commit()
    run_month()
    assert lines(lea) == [
        ("Absence maladie (carence)", 1, PRICE),
        ("Absence maladie sans certificat", 1, PRICE),
    ]
    declaration = db.session.scalar(sa.select(SickDeclaration).where(SickDeclaration.day == friday))
    family = db.session.get(Family, lea.family_id)
    sent = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)  # within 3 days of the sickness's first day
    sickness.attach_certificate(family, parent, declaration, (PDF, "certificat.pdf"), sent)
    commit()
    runs.hand_over_queued()  # (the tests run the job at once)
    db.session.expire_all()
    assert lines(lea) == [("Absence maladie (carence)", 1, PRICE)]
    assert db.session.scalar(sa.select(sa.func.count()).where(Invoice.kind == InvoiceKind.CREDIT_NOTE)) == 1
