"""Service cancellations (issue 17, part 4): a strike, a closure, a teacher absent cancels an activity's
days; the families are mailed once per account, the days are never billed (a credit note when the
month was billed), the planning says it, and an undo gives everything back."""

from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from portail.extensions import db
from portail.models import (
    ActivityDay,
    AuditEvent,
    Booking,
    BookingState,
    ClosingDay,
    Invoice,
    InvoiceKind,
    LineState,
    OutboxMessage,
    RequestKind,
    Role,
    ServiceCancellation,
    User,
    utcnow,
)
from portail.services import billing, cancellations
from portail.services.outbox import commit
from tests.factories import (
    add_tariff,
    book,
    enrol,
    enrolled_child,
    make_activity,
    make_family,
    make_user,
    next_weekday,
    run_month,
    submit_request,
    subscribe,
)
from tests.support import fire, tabs

pytestmark = pytest.mark.both_dbs

MONDAY = next_weekday(1)  # two weeks ahead: before every deadline
TUESDAY = MONDAY + timedelta(days=1)
PAGE = "/gestion/annulations"


def strike_form(activity, first=MONDAY, last=None, reason="Grève", detail="", **extra) -> dict:
    form = {
        "activity": activity.id,
        "first_day": first.isoformat(),
        "last_day": last.isoformat() if last else "",
        "reason": reason,
        "detail": detail,
    }
    return form | extra


def confirmed(activity, **options) -> dict:
    return strike_form(activity, **options) | {"confirmer": "1"}


@pytest.fixture
def town(app):
    """The canteen; the MARTINs (Léa and Tom reserved on Monday and Tuesday, Claire and Julien
    subscribed, and a third account not activated), the BERNARDs (Inès reserved on Monday, Sophie
    subscribed, and an old account whose subscription ended)."""
    canteen = make_activity(site="Groupe scolaire Jules Ferry")
    martin = make_family("Famille MARTIN", children=(("Léa", date(2016, 3, 14)), ("Tom", date(2019, 9, 2))))
    bernard, ines = enrolled_child(canteen, "Inès", "Famille BERNARD")
    lea, tom = martin.children
    for child in (lea, tom):
        enrol(child, canteen)
    for email, family in (
        ("claire@example.fr", martin),
        ("julien@example.fr", martin),
        ("sophie@example.fr", bernard),
    ):
        subscribe(make_user(email=email, first_name=email.split("@")[0].capitalize()), family)
    subscribe(make_user(email="pas-active@example.fr", activated=False), martin)
    gone = subscribe(make_user(email="ancien@example.fr"), bernard)
    gone.ended_at = utcnow()
    book(lea, canteen, [MONDAY, TUESDAY])
    book(tom, canteen, [MONDAY, TUESDAY])
    book(ines, canteen, [MONDAY])
    db.session.add_all(
        [
            ActivityDay(activity_id=canteen.id, day=MONDAY, booked=3),
            ActivityDay(activity_id=canteen.id, day=TUESDAY, booked=2),
        ]
    )
    agent = make_user(email="agent@example.fr", role=Role.AGENT, first_name="Nadia", last_name="AGENT")
    commit()
    return canteen, martin, bernard, agent


def parent(email: str) -> User:
    return db.session.scalar(sa.select(User).where(User.email == email))


def states(activity) -> dict:
    db.session.expire_all()
    return {
        (booking.child_id, booking.day): (
            booking.state,
            booking.reason,
            booking.previous_state,
            booking.cancellation_id,
        )
        for booking in db.session.scalars(sa.select(Booking).where(Booking.activity_id == activity.id))
    }


def mails_of(template: str) -> list[OutboxMessage]:
    return list(
        db.session.scalars(
            sa.select(OutboxMessage)
            .where(OutboxMessage.template == template)
            .order_by(OutboxMessage.recipient)
        )
    )


# --- access and the form ------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.PARENT, Role.ANIMATOR])
def test_only_agents_and_admins_reach_the_cancellations(client, auth, town, role):
    canteen, _martin, _bernard, _agent = town
    make_user(email="other@example.fr", role=role)
    commit()
    auth.login("other@example.fr")
    assert client.get(PAGE).status_code == 403
    assert client.post(PAGE, data=confirmed(canteen)).status_code in (400, 403)
    assert db.session.scalar(sa.select(sa.func.count(ServiceCancellation.id))) == 0


def test_an_agent_sees_the_form_with_labels_and_the_nav_link(client, auth, town):
    auth.login("agent@example.fr")
    page = client.get(PAGE).get_data(as_text=True)
    assert 'aria-current="page">Annulations</a>' in page
    for label in ("Activité", "Premier jour annulé", "Dernier jour annulé", "Motif", "Précision"):
        assert f"{label}</label>" in page or f"<legend>{label}</legend>" in page
    assert "Restauration scolaire — Groupe scolaire Jules Ferry" in page
    assert "Aucune annulation enregistrée." in page


@pytest.mark.parametrize(
    ("form", "message"),
    [
        (
            {"activity": "0", "first_day": "", "last_day": "", "reason": "", "detail": ""},
            "Choisissez l&#39;activité.",
        ),
        ({"first_day": ""}, "Saisissez le premier jour annulé."),
        ({"first_day": "31/02/2027"}, "Date invalide"),
        ({"reason": ""}, "Choisissez le motif."),
        ({"reason": "Autre", "detail": ""}, "Avec le motif « Autre », précisez-le"),
        (
            {"last_day": (MONDAY - timedelta(days=1)).isoformat()},
            "Le dernier jour doit être le même que le premier ou après.",
        ),
        ({"last_day": (MONDAY + timedelta(days=120)).isoformat()}, "Une annulation couvre au plus 92 jours"),
        (  # a Saturday: the canteen does not open, nothing to cancel (and no mail to promise)
            {"first_day": (MONDAY + timedelta(days=5)).isoformat()},
            "aucun jour sur cette période (fermée, vacances ou jour férié) : il n&#39;y a rien à annuler.",
        ),
    ],
)
def test_bad_input_gets_french_errors_in_the_summary_and_saves_nothing(client, auth, town, form, message):
    canteen, *_ = town
    auth.login("agent@example.fr")
    for data in (confirmed(canteen) | form, strike_form(canteen) | form):  # confirmed, and its preview
        response = client.post(PAGE, data=data)
        assert response.status_code == 422
        page = response.get_data(as_text=True)
        assert 'class="error-summary"' in page and message in page
    assert db.session.scalar(sa.select(sa.func.count(ServiceCancellation.id))) == 0
    assert mails_of("service_cancelled") == []


def test_the_preview_counts_days_children_and_families_and_changes_nothing(client, auth, town):
    canteen, *_ = town
    auth.login("agent@example.fr")
    response = client.post(PAGE, data=strike_form(canteen, last=TUESDAY, detail="préavis national"))
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Grève (préavis national)" in page
    assert "2 jours d'ouverture fermés aux demandes" in page
    assert "5 jours d'enfant annulés" in page and "pour 3 enfants de 2 familles" in page
    assert 'name="confirmer"' in page and 'name="modifier"' in page
    assert db.session.scalar(sa.select(sa.func.count(ServiceCancellation.id))) == 0
    assert all(state is BookingState.RESERVED for state, *_ in states(canteen).values())
    again = client.post(PAGE, data=strike_form(canteen, last=TUESDAY) | {"modifier": "1"}).get_data(
        as_text=True
    )
    assert "Voir les jours concernés" in again and f'value="{TUESDAY.isoformat()}"' in again


# --- cancelling -----------------------------------------------------------------------------------


def test_a_strike_cancels_the_reserved_days_closes_them_audits_and_mails_each_account_once(
    client, auth, town
):
    canteen, martin, bernard, _agent = town
    auth.login("agent@example.fr")
    response = client.post(PAGE, data=confirmed(canteen))
    assert response.status_code == 302
    cancellation = db.session.scalar(sa.select(ServiceCancellation))
    assert (cancellation.first_day, cancellation.last_day, cancellation.reason) == (MONDAY, MONDAY, "Grève")
    days = states(canteen)
    lea, tom = martin.children
    ines = bernard.children[0]
    for child in (lea, tom, ines):
        assert days[(child.id, MONDAY)] == (
            BookingState.CANCELLED,
            "Grève",
            BookingState.RESERVED,
            cancellation.id,
        )
    assert days[(lea.id, TUESDAY)][0] is BookingState.RESERVED  # (outside the period)
    closing = db.session.scalars(sa.select(ClosingDay)).all()
    assert [(row.day, row.reason, row.cancellation_id) for row in closing] == [
        (MONDAY, "Grève", cancellation.id)
    ]
    assert db.session.scalar(sa.select(AuditEvent.action).where(AuditEvent.target_id == canteen.id)) == (
        "cancellation.created"
    )
    # The places stay counted: the day is closed, and an undo finds them as they were.
    assert db.session.get(ActivityDay, (canteen.id, MONDAY)).booked == 3
    sent = mails_of("service_cancelled")
    assert [mail.recipient for mail in sent] == [
        "claire@example.fr",
        "julien@example.fr",
        "sophie@example.fr",
    ]
    claire = sent[0].context
    assert [child["name"] for child in claire["children"]] == ["Léa MARTIN", "Tom MARTIN"]
    assert claire["children"][0]["days"] == [MONDAY.isoformat()]
    assert claire["reason"] == "Grève" and claire["credit"] is False
    page = client.get(PAGE).get_data(as_text=True)
    assert "En vigueur" in page and "Annuler l'annulation" in page


def test_the_mail_lists_the_childrens_days_with_the_reason(app, mails, town):
    canteen, _martin, _bernard, agent = town
    cancellations.cancel(canteen, MONDAY, TUESDAY, "Enseignant absent", agent, utcnow(), "C")
    commit()
    claire = next(message for message in mails if message.recipients == ["claire@example.fr"])
    assert claire.subject.endswith("Service annulé par la mairie")
    assert "Restauration scolaire" in claire.body and "Motif : Enseignant absent" in claire.body
    assert "Léa MARTIN : " in claire.body and "Ces jours ne vous seront pas facturés." in claire.body
    assert "<li>Tom MARTIN : " in claire.html


def test_the_same_cancellation_saved_twice_is_one_with_one_mail_per_account(client, auth, town):
    canteen, *_ = town
    auth.login("agent@example.fr")
    client.post(PAGE, data=confirmed(canteen))
    second = client.post(PAGE, data=confirmed(canteen), follow_redirects=True)
    assert second.status_code == 200
    assert "Cette annulation était déjà enregistrée" in second.get_data(as_text=True)
    assert db.session.scalar(sa.select(sa.func.count(ServiceCancellation.id))) == 1
    assert len(mails_of("service_cancelled")) == 3
    assert db.session.scalar(sa.select(sa.func.count(ClosingDay.id))) == 1


def test_the_same_cancellation_from_two_tabs_at_once_is_one_with_one_mail_per_account(
    app, client, auth, town
):
    canteen, *_ = town
    auth.login("agent@example.fr")
    answers = fire(tabs(app, client, 3), PAGE, data=confirmed(canteen))
    assert all(status == 302 for status, _text, _location in answers)
    assert db.session.scalar(sa.select(sa.func.count(ServiceCancellation.id))) == 1
    assert sorted(mail.recipient for mail in mails_of("service_cancelled")) == [
        "claire@example.fr",
        "julien@example.fr",
        "sophie@example.fr",
    ]
    assert db.session.scalar(sa.select(sa.func.count(ClosingDay.id))) == 1


def test_a_cancellation_overlapping_one_in_force_is_refused_calmly(client, auth, town):
    canteen, *_ = town
    auth.login("agent@example.fr")
    client.post(PAGE, data=confirmed(canteen))
    response = client.post(PAGE, data=confirmed(canteen, last=TUESDAY))
    assert response.status_code == 422
    assert "Une annulation est déjà en vigueur pour Restauration scolaire" in response.get_data(as_text=True)
    assert db.session.scalar(sa.select(sa.func.count(ServiceCancellation.id))) == 1


def test_pending_requests_are_decided_a_reservation_refused_and_an_absence_accepted(app, town):
    canteen, martin, bernard, agent = town
    lea, tom = martin.children
    ines = bernard.children[0]
    claire, sophie = parent("claire@example.fr"), parent("sophie@example.fr")
    absence = submit_request(martin, claire, lea, canteen, RequestKind.ABSENCE, [TUESDAY], now=utcnow())
    reservation = submit_request(
        bernard, sophie, ines, canteen, RequestKind.RESERVATION, [TUESDAY], now=utcnow()
    )
    commit()
    cancellations.cancel(canteen, TUESDAY, TUESDAY, "Fermeture exceptionnelle", agent, utcnow(), "C")
    commit()
    db.session.expire_all()
    assert [line.state for line in absence.lines] == [LineState.ACCEPTED]
    assert [(line.state, line.reason) for line in reservation.lines] == [
        (LineState.REFUSED, "Service annulé par la mairie : Fermeture exceptionnelle")
    ]
    days = states(canteen)
    assert days[(lea.id, TUESDAY)][:3] == (
        BookingState.CANCELLED,
        "Fermeture exceptionnelle",
        BookingState.ABSENT,
    )
    assert days[(ines.id, TUESDAY)][:3] == (BookingState.CANCELLED, "Fermeture exceptionnelle", None)
    assert days[(tom.id, TUESDAY)][:3] == (
        BookingState.CANCELLED,
        "Fermeture exceptionnelle",
        BookingState.RESERVED,
    )
    assert db.session.get(ActivityDay, (canteen.id, TUESDAY)).booked == 1  # (Léa's absence frees her place)
    # Inès's parent is told of the day she asked for, Léa's absence is not news.
    contexts = {mail.recipient: mail.context for mail in mails_of("service_cancelled")}
    assert [child["name"] for child in contexts["sophie@example.fr"]["children"]] == ["Inès BERNARD"]
    assert [child["name"] for child in contexts["claire@example.fr"]["children"]] == ["Tom MARTIN"]


# --- undoing ------------------------------------------------------------------------------------


def test_undo_gives_the_days_back_removes_the_closing_days_audits_and_mails(client, auth, town):
    canteen, martin, bernard, agent = town
    lea, tom = martin.children
    ines = bernard.children[0]
    sophie = parent("sophie@example.fr")
    ines_request = submit_request(
        bernard, sophie, ines, canteen, RequestKind.RESERVATION, [TUESDAY], now=utcnow()
    )
    commit()
    before = {key: value[0] for key, value in states(canteen).items()}
    outcome = cancellations.cancel(canteen, MONDAY, TUESDAY, "Grève", agent, utcnow(), "C")
    commit()
    auth.login("agent@example.fr")
    response = client.post(f"{PAGE}/{outcome.cancellation.id}/lever", follow_redirects=True)
    assert "les jours sont rétablis" in response.get_data(as_text=True)
    after = states(canteen)
    assert after[(lea.id, MONDAY)] == (BookingState.RESERVED, None, None, None)
    assert after[(tom.id, TUESDAY)] == (BookingState.RESERVED, None, None, None)
    assert (ines.id, TUESDAY) not in after  # her refused request: the day is as before it, enrolled
    assert {key: value[0] for key, value in after.items()} == {
        key: state for key, state in before.items() if key != (ines.id, TUESDAY)
    }
    db.session.expire_all()
    assert ines_request.lines[0].state is LineState.REFUSED
    assert db.session.scalar(sa.select(sa.func.count(ClosingDay.id))) == 0
    cancellation = db.session.get(ServiceCancellation, outcome.cancellation.id)
    assert cancellation.undone_at is not None and cancellation.undone_by_id == agent.id
    assert (
        db.session.scalar(sa.select(AuditEvent.action).order_by(AuditEvent.id.desc()))
        == "cancellation.undone"
    )
    restored = {mail.recipient: mail.context for mail in mails_of("service_restored")}
    assert sorted(restored) == ["claire@example.fr", "julien@example.fr", "sophie@example.fr"]
    assert restored["sophie@example.fr"]["children"] == [
        {"name": "Inès BERNARD", "days": [MONDAY.isoformat()]}
    ]
    # Undone twice (a double click): the second says so and changes nothing.
    again = client.post(f"{PAGE}/{outcome.cancellation.id}/lever", follow_redirects=True)
    assert "Cette annulation était déjà levée" in again.get_data(as_text=True)
    assert len(mails_of("service_restored")) == 3
    # The same days can be cancelled again once it is undone.
    cancellations.cancel(canteen, MONDAY, TUESDAY, "Grève", agent, utcnow(), "C")
    commit()
    assert states(canteen)[(lea.id, MONDAY)][0] is BookingState.CANCELLED


def test_the_undo_from_two_tabs_at_once_is_one(app, client, auth, town):
    canteen, _martin, _bernard, agent = town
    outcome = cancellations.cancel(canteen, MONDAY, MONDAY, "Grève", agent, utcnow(), "C")
    commit()
    auth.login("agent@example.fr")
    fire(tabs(app, client), f"{PAGE}/{outcome.cancellation.id}/lever")
    assert len(mails_of("service_restored")) == 3
    assert (
        db.session.scalar(
            sa.select(sa.func.count(AuditEvent.id)).where(AuditEvent.action == "cancellation.undone")
        )
        == 1
    )


def test_another_cancellation_id_gives_404(client, auth, town):
    auth.login("agent@example.fr")
    assert client.post(f"{PAGE}/999/lever").status_code == 404


# --- the planning -------------------------------------------------------------------------------


def test_the_parents_planning_shows_the_day_cancelled_by_the_town_with_its_reason(client, auth, town):
    canteen, martin, _bernard, agent = town
    cancellations.cancel(canteen, MONDAY, MONDAY, "Grève", agent, utcnow(), "C")
    commit()
    auth.login("claire@example.fr")
    page = client.get(f"/famille/{martin.id}/planning?vue=semaine&date={MONDAY.isoformat()}").get_data(
        as_text=True
    )
    assert "state-cancelled" in page
    assert '<span class="icon" aria-hidden="true">⊘</span> Annulé par la mairie (Grève)' in page
    assert "<strong>Annulé par la mairie</strong>" in page  # (the legend)
    cells = page.split('class="cell ')
    cancelled = [cell for cell in cells if cell.startswith("state-cancelled")]
    assert len(cancelled) == 2 and not any("Réserver" in cell or "Fermé" in cell for cell in cancelled)


# --- billing ------------------------------------------------------------------------------------


@pytest.fixture
def billed(app, town):
    """The MARTINs' Léa reserved on three days of last month (billed), at the canteen's tariff."""
    canteen, martin, _bernard, agent = town
    month = billing.previous_month(billing.today_in_paris(utcnow()))
    canteen.start_date = month - timedelta(days=60)
    add_tariff(canteen, valid_from=month - timedelta(days=60))
    days = [month + timedelta(days=n) for n in range(14) if (month + timedelta(days=n)).isoweekday() <= 5][:3]
    book(martin.children[0], canteen, days)
    commit()
    return canteen, martin, agent, month, days


def invoices_of(family, kind=InvoiceKind.INVOICE) -> list[Invoice]:
    db.session.expire_all()
    return list(
        db.session.scalars(
            sa.select(Invoice)
            .where(Invoice.family_id == family.id, Invoice.kind == kind)
            .order_by(Invoice.id)
        )
    )


def billed_days(invoice: Invoice) -> int:
    return sum(line.days for line in invoice.lines)


def test_a_cancelled_day_is_never_charged(billed):
    canteen, martin, agent, month, days = billed
    cancellations.cancel(canteen, days[1], days[1], "Grève", agent, utcnow(), "C")
    commit()
    lines, _quotients, _unpriced = billing.compute(
        [martin.id], month, billing.tariffs_for(*billing.month_bounds(month)), {canteen.id: canteen}
    )
    assert sum(line.days for line in lines[martin.id]) == 2


def test_a_billed_month_gets_a_credit_note_after_a_cancellation_and_again_after_its_undo(
    client, auth, billed
):
    canteen, martin, _agent, month, days = billed
    run_month(month)
    [first] = invoices_of(martin)
    assert billed_days(first) == 3
    auth.login("agent@example.fr")
    client.post(PAGE, data=confirmed(canteen, first=days[1]))
    cancellation = db.session.scalar(sa.select(ServiceCancellation))
    claire = next(mail for mail in mails_of("service_cancelled") if mail.recipient == "claire@example.fr")
    assert claire.context["credit"] is True
    # The run queued with the cancellation has billed the month again (jobs run inline in tests).
    [credit] = invoices_of(martin, InvoiceKind.CREDIT_NOTE)
    assert credit.corrects_id == first.id and credit.total_cents == -first.total_cents
    current = [invoice for invoice in invoices_of(martin) if invoice.credited_by_id is None]
    assert len(current) == 1 and billed_days(current[0]) == 2
    client.post(f"{PAGE}/{cancellation.id}/lever")
    assert len(invoices_of(martin, InvoiceKind.CREDIT_NOTE)) == 2
    current = [invoice for invoice in invoices_of(martin) if invoice.credited_by_id is None]
    assert len(current) == 1 and billed_days(current[0]) == 3


def test_a_cancellation_in_a_month_not_billed_queues_no_run(billed):
    canteen, _martin, agent, _month, _days = billed
    outcome = cancellations.cancel(canteen, MONDAY, MONDAY, "Grève", agent, utcnow(), "C")
    assert outcome.runs == []


# --- the demo -----------------------------------------------------------------------------------


def test_the_demo_has_a_strike_next_week_on_the_canteen_with_its_mail(app):
    from portail.formatting import today_in_paris

    assert app.test_cli_runner().invoke(args=["demo", "load", "--if-empty"]).exit_code == 0
    today = today_in_paris(utcnow())
    monday = today + timedelta(days=7 - today.weekday())
    strike = db.session.scalar(sa.select(ServiceCancellation))
    if strike is None:  # (a holiday week: the canteen is closed, no strike)
        pytest.skip("the canteen is closed next week")
    assert monday <= strike.first_day == strike.last_day < monday + timedelta(days=5)
    assert strike.reason == "Grève" and strike.activity.name == "Restauration scolaire"
    cancelled = db.session.scalars(sa.select(Booking).where(Booking.cancellation_id == strike.id)).all()
    assert cancelled and all(booking.state is BookingState.CANCELLED for booking in cancelled)
    assert {"claire.martin@demo.fr", "julien.martin@demo.fr"} <= {
        mail.recipient for mail in mails_of("service_cancelled")
    }
