"""Request processing: staff decisions, history, unread flags, receipts and the 13:00/18:00 digests."""

from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa

from portail import bookings
from portail.bookings.history import add_message
from portail.extensions import db
from portail.models import (
    Booking,
    BookingState,
    Digest,
    DigestRun,
    DigestWindow,
    EventKind,
    LineState,
    OutboxMessage,
    RequestEvent,
    RequestKind,
    RequestLine,
    Role,
)
from portail.services import digests, request_desk
from portail.services.outbox import commit
from tests.factories import (
    THURSDAY,
    at_utc,
    canteen,
    enrolled_child,
    make_user,
    next_weekday,
    pending_request,
    school_year_activity,
    submit_request,
    subscribe,
)
from tests.support import queries_for

pytestmark = pytest.mark.both_dbs

NOW = datetime(2026, 10, 1, 8, tzinfo=UTC)
NOON, EVENING = DigestWindow.NOON, DigestWindow.EVENING
LATER = datetime(2027, 2, 1, tzinfo=UTC)  # the test windows are over


def paris(year, month, day, hour, minute=0, second=0):
    from portail.formatting import PARIS

    return datetime(year, month, day, hour, minute, second, tzinfo=PARIS).astimezone(UTC)


# --- windows, to the second, in Paris time ------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        ((2027, 1, 12, 12, 59, 59), ((2027, 1, 12), NOON)),
        ((2027, 1, 12, 13, 0, 0), ((2027, 1, 12), NOON)),
        ((2027, 1, 12, 13, 0, 1), ((2027, 1, 12), EVENING)),
        ((2027, 1, 12, 17, 59, 59), ((2027, 1, 12), EVENING)),
        ((2027, 1, 12, 18, 0, 0), ((2027, 1, 12), EVENING)),
        ((2027, 1, 12, 18, 0, 1), ((2027, 1, 13), NOON)),
        (
            (2027, 1, 12, 20, 0, 0),
            ((2027, 1, 13), NOON),
        ),  # a decision at 20:00 goes into the next day's 13:00 mail
        ((2027, 1, 13, 0, 30, 0), ((2027, 1, 13), NOON)),
        ((2027, 7, 12, 13, 0, 0), ((2027, 7, 12), NOON)),  # summer time
        ((2027, 7, 12, 13, 0, 1), ((2027, 7, 12), EVENING)),
    ],
)
def test_a_decision_goes_into_the_window_of_its_paris_time(moment, expected):
    day, window = digests.window_of(paris(*moment))
    assert (day, window) == (date(*expected[0]), expected[1])


def test_window_bounds_on_both_daylight_saving_days():
    # 28 March 2027: 02:00 CET → 03:00 CEST. The 13:00 window runs from Saturday 18:00 CET (17:00 UTC)
    # to Sunday 13:00 CEST (11:00 UTC): 18 hours, not 19.
    assert digests.bounds(date(2027, 3, 28), NOON) == (at_utc(2027, 3, 27, 17), at_utc(2027, 3, 28, 11))
    assert digests.bounds(date(2027, 3, 28), EVENING) == (at_utc(2027, 3, 28, 11), at_utc(2027, 3, 28, 16))
    # 31 October 2027: 03:00 CEST → 02:00 CET. Saturday 18:00 CEST (16:00 UTC) to Sunday 13:00 CET (12:00 UTC): 20 hours.
    assert digests.bounds(date(2027, 10, 31), NOON) == (at_utc(2027, 10, 30, 16), at_utc(2027, 10, 31, 12))
    assert digests.bounds(date(2027, 10, 31), EVENING) == (at_utc(2027, 10, 31, 12), at_utc(2027, 10, 31, 17))
    # The night's decisions are in the 13:00 mail, whatever the clock change.
    assert digests.window_of(at_utc(2027, 3, 28, 0, 30)) == (date(2027, 3, 28), NOON)
    assert digests.window_of(at_utc(2027, 10, 31, 1, 30)) == (date(2027, 10, 31), NOON)


# --- decisions --------------------------------------------------------------------------------


@pytest.fixture
def agent(app):
    return make_user(email="agent@example.fr", role=Role.AGENT, first_name="Agnès")


def state_of(child, activity, day=THURSDAY):
    return db.session.scalar(
        sa.select(Booking.state).where(
            Booking.child_id == child.id, Booking.activity_id == activity.id, Booking.day == day
        )
    )


def test_accepting_reservations_never_exceeds_the_capacity(app, agent):
    activity = canteen(capacity=1)
    db.session.add(activity)
    first, lea, _ = pending_request(activity)
    second, tom, _ = pending_request(activity, name="Tom", email="tom@example.fr")
    assert bookings.decide([line.id for line in first.lines + second.lines], True, agent, NOW) == {
        "accepted": 1,
        "refused": 1,
    }
    commit()
    assert {state_of(lea, activity), state_of(tom, activity)} == {BookingState.RESERVED, BookingState.REFUSED}
    refused = db.session.scalar(sa.select(Booking).where(Booking.state == BookingState.REFUSED))
    assert refused.reason == "Complet"


def test_refusing_an_absence_keeps_the_day_reserved_and_records_who_why_and_the_message(app, agent):
    activity = canteen()
    db.session.add(activity)
    request, child, _ = pending_request(activity, RequestKind.ABSENCE)
    assert state_of(child, activity) is BookingState.ABSENCE_REQUESTED
    bookings.decide(
        [request.lines[0].id], False, agent, NOW, reason="Hors délai", message="Le repas est déjà commandé."
    )
    commit()
    assert state_of(child, activity) is BookingState.RESERVED
    line = request.lines[0]
    assert (line.state, line.reason, line.decided_by_id, line.message) == (
        LineState.REFUSED,
        "Hors délai",
        agent.id,
        "Le repas est déjà commandé.",
    )
    event = db.session.scalar(sa.select(RequestEvent).where(RequestEvent.kind == EventKind.DECISION))
    assert (
        event.by_town
        and event.author_id == agent.id
        and event.reason == "Hors délai"
        and "Refusée" in event.summary
    )


def test_a_refusal_needs_a_reason_and_autre_needs_a_message_and_nothing_changes(app, agent):
    activity = canteen()
    db.session.add(activity)
    request, child, _ = pending_request(activity)
    for reason, message, error in [(None, None, "motif"), ("Autre", "  ", "message")]:
        with pytest.raises(bookings.DecisionError, match=error):
            bookings.decide([request.lines[0].id], False, agent, NOW, reason=reason, message=message)
        db.session.rollback()
    assert state_of(child, activity) is BookingState.RESERVATION_REQUESTED
    assert request.lines[0].state is LineState.PENDING and request.lines[0].decided_at is None


def test_a_line_is_decided_once(app, agent):
    activity = canteen()
    db.session.add(activity)
    request, _child, _ = pending_request(activity)
    bookings.decide([request.lines[0].id], True, agent, NOW)
    commit()
    with pytest.raises(bookings.DecisionError, match="déjà été traitée"):
        bookings.decide([request.lines[0].id], False, agent, NOW, reason="Complet")


def test_unread_flags_are_per_parent_and_cleared_by_opening(app, agent):
    activity = canteen()
    db.session.add(activity)
    request, child, claire = pending_request(activity)
    julien = make_user(email="julien@example.fr", first_name="Julien")
    subscribe(julien, child.family)
    commit()
    assert request_desk.unread_counts(claire, [request.id]) == {}  # the parent's own creation is not new
    bookings.decide([request.lines[0].id], False, agent, NOW, reason="Complet")
    add_message(
        request, agent, "Une place se libère peut-être lundi.", by_town=True, now=NOW + timedelta(minutes=1)
    )
    commit()
    assert request_desk.unread_counts(claire, [request.id]) == {request.id: 2}
    request_desk.mark_read(request, claire, NOW + timedelta(minutes=2))
    commit()
    assert request_desk.unread_counts(claire, [request.id]) == {}
    assert request_desk.unread_counts(julien, [request.id]) == {request.id: 2}
    add_message(request, claire, "Merci", by_town=False, now=NOW + timedelta(minutes=3))
    commit()
    assert request_desk.unread_counts(claire, [request.id]) == {}


# --- receipts -----------------------------------------------------------------------------------


def rendered(template):
    from portail.services.outbox import render

    message = db.session.scalar(
        sa.select(OutboxMessage).where(OutboxMessage.template == template).order_by(OutboxMessage.id.desc())
    )
    return render(message)


def test_receipt_for_a_single_slot(app):
    activity = canteen()
    db.session.add(activity)
    pending_request(activity)
    mail = rendered("booking_receipt")
    assert mail.recipients == ["parent@example.fr"] and "Accusé de réception" in mail.subject
    for text in (mail.body, mail.html):
        assert "Nous avons bien reçu votre demande de réservation" in text
        assert "Léa" in text and "Restauration scolaire" in text and "4 mars 2027" in text
        assert "Période" not in text


def test_receipt_for_a_period(app):
    activity = canteen()
    db.session.add(activity)
    family, child = enrolled_child(activity)
    user = make_user()
    days = [date(2027, 3, 1), date(2027, 3, 4), date(2027, 3, 8), date(2027, 3, 11)]
    bookings.submit(
        family.id,
        user,
        child,
        activity,
        RequestKind.RESERVATION,
        days,
        NOW,
        "C",
        period=(date(2027, 3, 1), date(2027, 3, 12), "14"),
    )
    commit()
    mail = rendered("booking_receipt")
    for text in (mail.body, mail.html):
        assert "Période : du 1er mars 2027 au 12 mars 2027" in text
        assert "lundi, jeudi" in text and "Nombre de jours demandés : 4" in text


# --- digests ------------------------------------------------------------------------------------


def test_digest_lists_accepted_and_refused_lines_once_per_account_and_window(app, agent):
    activity = canteen()
    db.session.add(activity)
    first, _lea, claire = pending_request(activity, days=(THURSDAY, THURSDAY + timedelta(days=1)))
    other, _tom, sophie = pending_request(activity, name="Tom", email="sophie@example.fr")
    bookings.decide([first.lines[0].id], True, agent, paris(2027, 1, 12, 9))
    bookings.decide(
        [first.lines[1].id],
        False,
        agent,
        paris(2027, 1, 12, 12, 59, 59),
        reason="Complet",
        message="Plus de place ce vendredi.",
    )
    bookings.decide([other.lines[0].id], True, agent, paris(2027, 1, 12, 13, 0, 1))  # the 18:00 window
    commit()
    with pytest.raises(digests.WindowNotOver):
        # decisions may still come
        digests.send_window(date(2027, 1, 12), NOON, now=paris(2027, 1, 12, 12, 59, 59))
    assert digests.send_window(date(2027, 1, 12), NOON, now=paris(2027, 1, 12, 13)) == 1
    assert digests.send_window(date(2027, 1, 12), NOON, now=LATER) == 0  # again: nothing more
    mail = rendered("decision_digest")
    assert mail.recipients == [claire.email] and "Accusé de traitement" in mail.subject
    for text in (mail.body, mail.html):
        assert "Léa — Restauration scolaire" in text and "4 mars 2027" in text and "5 mars 2027" in text
        assert "Motif : Complet" in text and "Message : Plus de place ce vendredi." in text
    assert "ACCEPTÉE" in mail.body and "REFUSÉE" in mail.body
    assert "Tom" not in mail.body and sophie.email not in mail.recipients
    assert digests.send_window(date(2027, 1, 12), EVENING, now=LATER) == 1
    assert db.session.scalar(sa.select(sa.func.count(Digest.id))) == 2


def test_dispatch_sends_each_due_window_once_and_catches_up_a_missed_one(app, agent):
    activity = canteen()
    db.session.add(activity)
    request, _child, _claire = pending_request(activity)
    bookings.decide([request.lines[0].id], True, agent, paris(2027, 1, 11, 20))  # → 12 January, 13:00 mail
    commit()
    assert digests.dispatch_due(paris(2027, 1, 12, 12, 59, 59)) == 0  # not yet due
    # The scheduler was down from 12:50 to 14:10: the 13:00 window is sent when it comes back.
    assert digests.dispatch_due(paris(2027, 1, 12, 14, 10)) == 1
    assert digests.dispatch_due(paris(2027, 1, 12, 14, 11)) == 0
    assert digests.dispatch_due(paris(2027, 1, 12, 18, 0, 59)) == 0  # within the grace minute: not read yet
    assert not db.session.scalar(
        sa.select(DigestRun).where(DigestRun.day == date(2027, 1, 12), DigestRun.window == EVENING)
    )
    assert digests.dispatch_due(paris(2027, 1, 12, 18, 1, 0)) == 0  # the 18:00 window has no decision
    runs = db.session.execute(
        sa.select(DigestRun.day, DigestRun.window).where(DigestRun.day == date(2027, 1, 12))
    ).all()
    assert set(runs) == {(date(2027, 1, 12), NOON), (date(2027, 1, 12), EVENING)}
    assert (
        db.session.scalar(
            sa.select(sa.func.count(OutboxMessage.id)).where(OutboxMessage.template == "decision_digest")
        )
        == 1
    )


def test_automatic_decisions_are_in_the_digest_but_not_new_messages(app):
    from portail.models import ValidationMode

    activity = canteen(validation_mode=ValidationMode.AUTOMATIC)
    db.session.add(activity)
    family, child = enrolled_child(activity)
    user = make_user()
    request = submit_request(
        family, user, child, activity, RequestKind.RESERVATION, [THURSDAY], paris(2027, 1, 12, 9)
    )
    commit()
    assert request_desk.unread_counts(user, [request.id]) == {}
    assert digests.send_window(date(2027, 1, 12), NOON, now=LATER) == 1


# --- pages: the staff queue, Mes demandes, histories ----------------------------------------------


@pytest.fixture
def pending(app, agent):
    """Two families, each with a pending request; returns (claire's request, sophie's request)."""
    activity = canteen(capacity=30)
    db.session.add(activity)
    first, _lea, _claire = pending_request(activity, days=(THURSDAY, THURSDAY + timedelta(days=1)))
    second, _tom, _sophie = pending_request(activity, name="Tom", email="sophie@example.fr")
    return first, second


def test_staff_queue_filters_and_shows_places(client, auth, pending):
    first, second = pending
    auth.login("agent@example.fr")
    page = client.get("/gestion/demandes").get_data(as_text=True)
    assert (
        "3 jours demandés en attente" in page and "Léa" in page and "Tom" in page and "0 / 30 réservé" in page
    )
    only_tom = client.get("/gestion/demandes", query_string={"famille": "tom"}).get_data(as_text=True)
    assert "Tom" in only_tom and "Léa MARTIN" not in only_tom
    friday = client.get(
        "/gestion/demandes", query_string={"jour": (THURSDAY + timedelta(days=1)).isoformat()}
    ).get_data(as_text=True)
    assert "1 jour demandé en attente" in friday
    assert "0 jour demandé" in client.get("/gestion/demandes", query_string={"etat": "accepted"}).get_data(
        as_text=True
    )


def test_staff_bulk_accept_then_refuse_one_line_with_reason_and_message(client, auth, pending):
    first, second = pending
    auth.login("agent@example.fr")
    response = client.post(
        "/gestion/demandes/decision",
        data={"decision": "accepter", "ligne": [first.lines[0].id, second.lines[0].id]},
    )
    assert response.status_code == 302
    refused = client.post(
        "/gestion/demandes/decision",
        data={"une": f"{first.lines[1].id}:refuser", "motif": "Complet", "message": "Désolé"},
        follow_redirects=True,
    ).get_data(as_text=True)
    assert "1 jour refusé" in refused
    db.session.expire_all()
    assert [line.state for line in first.lines] == [LineState.ACCEPTED, LineState.REFUSED]
    assert first.lines[1].reason == "Complet" and first.lines[1].message == "Désolé"
    history = client.get(f"/gestion/demandes/{first.id}").get_data(as_text=True)
    assert "Acceptée : 04/03/2027" in history and "Refusée : 05/03/2027" in history and "Agnès" in history


def test_staff_refusal_without_reason_changes_nothing(client, auth, pending):
    first, _second = pending
    auth.login("agent@example.fr")
    page = client.post(
        "/gestion/demandes/decision", data={"une": f"{first.lines[0].id}:refuser"}, follow_redirects=True
    ).get_data(as_text=True)
    assert "Choisissez le motif du refus" in page
    db.session.expire_all()
    assert first.lines[0].state is LineState.PENDING


def test_parents_cannot_reach_the_staff_queue(client, auth, pending):
    auth.login("parent@example.fr")
    assert client.get("/gestion/demandes").status_code == 403
    assert (
        client.post("/gestion/demandes/decision", data={"decision": "accepter", "ligne": [1]}).status_code
        == 403
    )


def test_mes_demandes_shows_own_requests_and_new_messages_until_the_history_is_opened(
    client, auth, pending, agent
):
    first, second = pending
    add_message(first, agent, "Pensez au certificat.", by_town=True, now=NOW)
    commit()
    auth.login("parent@example.fr")
    listing = client.get("/mon-espace/demandes").get_data(as_text=True)
    assert (
        "Restauration scolaire" in listing
        and "1 nouveau(x) message(s)" in listing
        and "— Tom," not in listing
    )
    history = client.get(f"/mon-espace/demandes/{first.id}").get_data(as_text=True)
    assert "Pensez au certificat." in history and "Demande de réservation : 2 jours" in history
    assert "nouveau(x) message(s)" not in client.get("/mon-espace/demandes").get_data(as_text=True)
    sent = client.post(
        f"/mon-espace/demandes/{first.id}/message", data={"message": "Envoyé hier."}, follow_redirects=True
    ).get_data(as_text=True)
    assert "Envoyé hier." in sent
    empty = client.post(
        f"/mon-espace/demandes/{first.id}/message", data={"message": "   "}, follow_redirects=True
    ).get_data(as_text=True)
    assert "Écrivez votre message" in empty


def test_another_familys_request_gives_404(client, auth, pending):
    _first, second = pending
    auth.login("parent@example.fr")
    assert client.get(f"/mon-espace/demandes/{second.id}").status_code == 404
    assert client.post(f"/mon-espace/demandes/{second.id}/message", data={"message": "x"}).status_code == 404
    assert (
        db.session.scalar(
            sa.select(sa.func.count(RequestEvent.id)).where(RequestEvent.kind == EventKind.MESSAGE)
        )
        == 0
    )


def test_mes_demandes_also_lists_the_dossier_changes_newest_first(client, auth, pending):
    from portail.services import dossier

    first, _second = pending
    family = first.child.family
    from portail.models import User

    parent = db.session.scalar(sa.select(User).where(User.email == "parent@example.fr"))
    dossier.request_change(
        family,
        parent,
        "address",
        family.guardians[0],
        {"address_line1": "1 rue A", "postcode": "75001", "city": "Paris"},
    )
    commit()
    auth.login("parent@example.fr")
    listing = client.get("/mon-espace/demandes").get_data(as_text=True)
    assert "Modification du dossier" in listing and "En attente de validation" in listing
    assert listing.index("Modification du dossier") < listing.index("Restauration scolaire")


def test_with_smtp_down_requests_and_decisions_succeed_and_their_mails_go_out_once_it_is_back(
    client, auth, app, agent, mails, monkeypatch
):
    from portail.extensions import mail
    from portail.models import OpenPeriod, OutboxStatus
    from portail.services import outbox

    today = datetime.now(UTC).date()
    activity = canteen(
        capacity=30,
        open_period=OpenPeriod.ALL,
        closed_on_public_holidays=False,
        weekdays="12345",
        start_date=today,
        end_date=today + timedelta(days=300),
    )
    db.session.add(activity)
    family, child = enrolled_child(activity)
    subscribe(make_user(), family)
    commit()
    original = mail.send

    def broken(_message):
        raise ConnectionRefusedError("SMTP down")

    monkeypatch.setattr(mail, "send", broken)
    auth.login("parent@example.fr")
    day = today + timedelta(days=14)
    while day.isoweekday() > 5:
        day += timedelta(days=1)
    response = client.post(
        f"/famille/{family.id}/planning/cellule",
        data={"enfant": child.id, "activite": activity.id, "jour": day.isoformat(), "action": "reserve"},
    )
    assert response.status_code == 302
    auth.logout()
    auth.login("agent@example.fr")
    line_id = db.session.scalar(sa.select(RequestLine.id))
    assert client.post("/gestion/demandes/decision", data={"une": f"{line_id}:accepter"}).status_code == 302
    db.session.expire_all()
    assert state_of(child, activity, day) is BookingState.RESERVED
    pending = db.session.scalars(
        sa.select(OutboxMessage).where(OutboxMessage.status == OutboxStatus.PENDING)
    ).all()
    assert [row.template for row in pending] == ["booking_receipt"] and mails == []
    monkeypatch.setattr(mail, "send", original)
    app.config["OUTBOX_RELAY_AFTER"] = timedelta(0)
    outbox.relay()
    outbox.relay()
    assert [m.subject for m in mails].count("Ville de Démo — Accusé de réception de votre demande") == 1


def test_a_click_on_the_planning_never_waits_for_redis_its_receipt_goes_with_the_relay(
    client, auth, app, mails, monkeypatch
):
    """The one-click request hands nothing to Redis; the relay (every few seconds) hands its receipt
    to the worker at once, however recent, and once."""
    from portail.models import OutboxMessage, OutboxStatus, ValidationMode
    from portail.services import outbox

    activity = school_year_activity(validation_mode=ValidationMode.AUTOMATIC)
    db.session.add(activity)
    family, child = enrolled_child(activity)
    subscribe(make_user(), family)
    commit()
    handed_over = []
    original = outbox.enqueue_many

    def recording(job, calls):
        handed_over.append([args[0] for args, _job_id in calls])
        return original(job, calls)

    monkeypatch.setattr(outbox, "enqueue_many", recording)
    auth.login("parent@example.fr")
    handed_over.clear()  # (the login's own mails, if any)
    day = next_weekday(2)
    response = client.post(
        f"/famille/{family.id}/planning/cellule",
        data={"enfant": child.id, "activite": activity.id, "jour": day.isoformat(), "action": "reserve"},
        headers={"HX-Request": "true"},
    )
    assert "Réservé" in response.get_data(as_text=True)
    receipt = db.session.scalar(sa.select(OutboxMessage).where(OutboxMessage.template == "booking_receipt"))
    assert handed_over == [] and receipt.status is OutboxStatus.PENDING and mails == []
    assert outbox.relay() == 1, "a receipt is relayed at once, however recent"
    assert handed_over == [[receipt.id]]
    assert [m.subject for m in mails] == ["Ville de Démo — Accusé de réception de votre demande"]
    assert outbox.relay() == 0 and len(mails) == 1


def test_receipt_links_to_the_history_of_the_request(app):
    activity = canteen()
    db.session.add(activity)
    request, _child, _user = pending_request(activity)
    mail = rendered("booking_receipt")
    assert f"http://localhost:5000/mon-espace/demandes/{request.id}" in mail.body
    assert f'href="http://localhost:5000/mon-espace/demandes/{request.id}"' in mail.html


def test_the_request_pages_cost_the_same_queries_for_one_request_as_for_ten(client, auth, app, agent):
    from portail.models import OpenPeriod

    activity = canteen(capacity=30, open_period=OpenPeriod.ALL, closed_on_public_holidays=False)
    db.session.add(activity)
    first, child, claire = pending_request(activity)
    family = child.family
    from portail.services import dossier

    dossier.request_change(
        family,
        claire,
        "address",
        family.guardians[0],
        {"address_line1": "1 rue A", "postcode": "75001", "city": "Paris"},
    )
    commit()
    auth.login("agent@example.fr")
    staff_one = queries_for(client, "/gestion/demandes")
    auth.logout()
    auth.login("parent@example.fr")
    parent_one = queries_for(client, "/mon-espace/demandes")
    auth.logout()
    for index in range(9):
        day = THURSDAY + timedelta(weeks=index + 1)
        request = submit_request(family, claire, child, activity, RequestKind.RESERVATION, [day])
        add_message(request, agent, f"Message {index}", by_town=True, now=NOW)
    other, _tom, _sophie = pending_request(activity, name="Tom", email="sophie@example.fr")
    dossier.request_change(family, claire, "health", child, {"allergies": "Kiwi"})
    dossier.request_change(family, claire, "tax", family.guardians[0], {"allocataire_number": "1234567"})
    commit()
    auth.login("agent@example.fr")
    assert queries_for(client, "/gestion/demandes") == staff_one
    auth.logout()
    auth.login("parent@example.fr")
    assert queries_for(client, "/mon-espace/demandes") == parent_one


def test_a_parents_message_is_flagged_to_staff_until_the_town_answers(client, auth, pending, agent):
    first, _second = pending
    auth.login("parent@example.fr")
    client.post(
        f"/mon-espace/demandes/{first.id}/message", data={"message": "Léa mangera finalement le jeudi."}
    )
    auth.logout()
    auth.login("agent@example.fr")
    flag = "Message de la famille à lire"
    queue = client.get("/gestion/demandes").get_data(as_text=True)
    assert queue.count(flag) == 2  # the two days of that request, not the other family's
    assert "La famille a écrit" in client.get(f"/gestion/demandes/{first.id}").get_data(as_text=True)
    client.post(f"/gestion/demandes/{first.id}/message", data={"message": "C'est noté."})
    assert flag not in client.get("/gestion/demandes").get_data(as_text=True)
    assert "La famille a écrit" not in client.get(f"/gestion/demandes/{first.id}").get_data(as_text=True)
