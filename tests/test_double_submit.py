"""Double submission: identical POSTs at the same moment (a double click, two tabs) give one
request, one row and one mail, and every copy gets a normal answer (the current state), never a 500.

Each test fires the same POST from separate clients sharing one session (two tabs), in real
threads, on SQLite and PostgreSQL. Every copy is held at a barrier just before its first write to
the database, once it has read the state: they all read it before any of them writes, which is the
race a double click makes, every time instead of by chance.
"""

import io
import re
import threading
from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from portail.extensions import db
from portail.models import (
    AccountToken,
    AuditEvent,
    Booking,
    BookingState,
    ChangeRequest,
    ChangeStatus,
    EventKind,
    OutboxMessage,
    Request,
    RequestEvent,
    RequestLine,
    Role,
    Subscription,
    User,
    utcnow,
)
from portail.services import outbox
from tests.factories import (
    PDF,
    VALID,
    book,
    cell_form,
    enrol,
    make_activity,
    make_family,
    make_user,
    next_weekday,
    period_form,
    subscribe,
)
from tests.support import COPIES, fire, tabs

pytestmark = pytest.mark.both_dbs

AHEAD = 3  # weeks: the days asked for are well before their deadlines


@pytest.fixture(autouse=True)
def _mails_stay_in_the_outbox(monkeypatch):
    """The mails stay in the outbox, counted there (their delivery is another test's concern)."""
    monkeypatch.setattr(outbox, "enqueue_many", lambda *args, **kwargs: None)


def pages(clients: list, answers: list) -> list[str]:
    """The page each copy lands on (its redirect, with its flashed message)."""
    return [
        client.get(location).get_data(as_text=True) if status == 302 else text
        for client, (status, text, location) in zip(clients, answers, strict=True)
    ]


def count(model, *where) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(model).where(*where))


@pytest.fixture
def family_setup(app, auth):
    """A parent logged in, subscribed to a family whose child is enrolled in a manual activity."""
    family = make_family(children=(("Léa", date(2016, 3, 14)),))
    parent = make_user()
    subscribe(parent, family)
    activity = make_activity()
    enrol(family.children[0], activity)
    db.session.commit()
    auth.login("parent@example.fr")
    return family, family.children[0], activity


# What a click on a cell shows once asked, and the day's state then (the activity is decided by staff).
CLICKS = {
    "reserve": ("Réservation demandée", BookingState.RESERVATION_REQUESTED),
    "absence": ("Absence demandée", BookingState.ABSENCE_REQUESTED),
}


@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "no-js"])
@pytest.mark.parametrize("action", list(CLICKS))
def test_a_cell_clicked_at_once_in_several_tabs_makes_one_request_and_each_gets_the_cell(
    app, client, family_setup, action, htmx
):
    """One click from four tabs at once is one request and one receipt, every copy shown the cell (or,
    without JavaScript, the page saying so). A pending absence writes no new booking row (the day's
    row only changes state): the copies must still make one request, or the agent sees the day twice and a refusal of one copy after
    the acceptance of another puts the day back to reserved without its place."""
    family, child, activity = family_setup
    label, state = CLICKS[action]
    day = next_weekday(2, AHEAD)
    if action == "absence":
        book(child, activity, [day])
        db.session.commit()
    clients = tabs(app, client, 4)
    answers = fire(
        clients,
        f"/famille/{family.id}/planning/cellule",
        data=cell_form(child, activity, day, action),
        headers={"HX-Request": "true"} if htmx else {},
    )
    if htmx:
        for status, text, _ in answers:
            assert status == 200 and "<html" not in text and label in text, text
    else:
        assert [status for status, _, _ in answers] == [302] * len(clients), answers
        for tab, (_, _, location) in zip(clients, answers, strict=True):
            page = tab.get(location).get_data(as_text=True)
            assert "demande est enregistrée" in page or "demande est déjà enregistrée" in page, page
            assert "Aucun jour" not in page
    assert count(Request) == 1 and count(RequestLine) == 1 and count(Booking) == 1
    assert count(OutboxMessage, OutboxMessage.template == "booking_receipt") == 1
    assert db.session.scalar(sa.select(Booking.state)) is state


@pytest.mark.parametrize("kind", ["reservation", "absence"])
def test_a_period_sent_twice_at_once_makes_one_request_and_both_get_a_page(app, client, family_setup, kind):
    family, child, activity = family_setup
    start = next_weekday(1, AHEAD)
    if kind == "absence":
        book(child, activity, [start + timedelta(days=n) for n in (0, 3, 7, 10)])  # its Mondays and Thursdays
        db.session.commit()
    clients = tabs(app, client)
    answers = fire(
        clients,
        f"/famille/{family.id}/planning/periode",
        data=period_form(child, activity, start, start + timedelta(days=13), kind=kind),
    )
    assert [status for status, _, _ in answers] == [302] * COPIES, answers
    for tab, (_, _, location) in zip(clients, answers, strict=True):
        page = tab.get(location).get_data(as_text=True)
        assert "1 demande enregistrée" in page or "Cette demande est déjà enregistrée" in page, page
    assert count(Request) == 1 and count(RequestLine) == 4
    assert count(OutboxMessage, OutboxMessage.template == "booking_receipt") == 1


def as_agent(app, auth) -> None:
    make_user(email="agent@example.fr", role=Role.AGENT)
    db.session.commit()
    auth.logout()
    auth.login("agent@example.fr")


ADDRESS = {"address_line1": "8 avenue du Parc", "address_line2": "", "postcode": "75014", "city": "Paris"}


def test_a_dossier_change_sent_twice_at_once_is_one_pending_change(app, client, family_setup):
    family, _child, _activity = family_setup
    guardian = family.guardians[0]
    clients = tabs(app, client)
    answers = fire(clients, f"/famille/{family.id}/responsables/{guardian.id}/address", data=ADDRESS)
    assert [status for status, _, _ in answers] == [302] * COPIES
    assert (
        count(ChangeRequest) == 1 and count(ChangeRequest, ChangeRequest.status == ChangeStatus.PENDING) == 1
    )


@pytest.mark.parametrize("what", ["child", "contact"])
def test_a_child_or_a_contact_added_twice_at_once_is_one_request(app, client, family_setup, what):
    family, child, _activity = family_setup
    path, data = {
        "child": (
            f"/famille/{family.id}/enfants/nouveau",
            {"last_name": "DUPONT", "first_name": "Max", "birth_date": "2021-02-02", "sex": "M"},
        ),
        "contact": (
            f"/famille/{family.id}/enfants/{child.id}/contacts/nouveau",
            {
                "last_name": "PETIT",
                "first_name": "Sarah",
                "relationship_label": "Voisine",
                "phone": "0755443322",
                "can_pick_up": "y",
            },
        ),
    }[what]
    answers = fire(tabs(app, client), path, data=data)
    assert [status for status, _, _ in answers] == [302] * COPIES
    assert count(ChangeRequest) == 1


def test_a_dossier_change_withdrawn_twice_at_once_is_withdrawn_once(app, client, family_setup):
    family, _child, _activity = family_setup
    guardian = family.guardians[0]
    client.post(f"/famille/{family.id}/responsables/{guardian.id}/address", data=ADDRESS)
    change = db.session.scalar(sa.select(ChangeRequest))
    clients = tabs(app, client)
    answers = fire(clients, f"/famille/{family.id}/demandes/{change.id}/retirer")
    for page in pages(clients, answers):
        assert "Votre demande de modification a été retirée." in page and "plus en attente" not in page
    assert db.session.get(ChangeRequest, change.id).status is ChangeStatus.WITHDRAWN


@pytest.mark.parametrize("decision", ["accepter", "refuser"])
def test_a_staff_decision_on_a_dossier_change_made_twice_at_once_is_made_once(
    app, client, auth, family_setup, decision
):
    family, _child, _activity = family_setup
    guardian = family.guardians[0]
    client.post(f"/famille/{family.id}/responsables/{guardian.id}/address", data=ADDRESS)
    change = db.session.scalar(sa.select(ChangeRequest))
    as_agent(app, auth)
    answers = fire(
        tabs(app, client),
        f"/gestion/dossiers/{change.id}/{decision}",
        data={"reason": "Justificatif manquant", "detail": ""},
    )
    assert [status for status, _, _ in answers] == [302] * COPIES
    assert db.session.get(ChangeRequest, change.id).status in (ChangeStatus.ACCEPTED, ChangeStatus.REFUSED)
    assert count(OutboxMessage, OutboxMessage.template == "dossier_decision") == 1
    assert count(AuditEvent, AuditEvent.action.like("dossier.%")) == 1


def test_a_document_sent_twice_at_once_is_one_document(app, client, family_setup):
    from portail.models import Document, DocumentScope, DocumentType, Validity

    family, _child, _activity = family_setup
    kind = DocumentType(name="Attestation CAF", scope=DocumentScope.FAMILY, validity=Validity.ONE_YEAR)
    db.session.add(kind)
    db.session.commit()
    pdf, kind_id = PDF, kind.id
    clients = tabs(app, client)
    answers = fire(
        clients,
        f"/famille/{family.id}/pieces",
        data=lambda: {"type": str(kind_id), "fichier": (io.BytesIO(pdf), "caf.pdf")},
        content_type="multipart/form-data",
    )
    assert [status for status, _, _ in answers] == [302] * COPIES
    for page in pages(clients, answers):
        assert "est envoyé" in page
    assert count(Document) == 1


def test_a_staff_decision_on_a_document_made_twice_at_once_is_made_once(app, client, auth, family_setup):
    from portail.models import Document, DocumentScope, DocumentState, DocumentType, Validity

    family, _child, _activity = family_setup
    kind = DocumentType(name="Attestation CAF", scope=DocumentScope.FAMILY, validity=Validity.ONE_YEAR)
    db.session.add(kind)
    db.session.commit()
    client.post(
        f"/famille/{family.id}/pieces",
        data={"type": str(kind.id), "fichier": (io.BytesIO(PDF), "caf.pdf")},
        content_type="multipart/form-data",
    )
    document = db.session.scalar(sa.select(Document))
    as_agent(app, auth)
    fire(tabs(app, client), f"/gestion/pieces/{document.id}/decision", data={"decision": "valider"})
    assert db.session.get(Document, document.id).state is DocumentState.VALIDATED
    assert count(OutboxMessage, OutboxMessage.template == "document_decision") == 1
    assert count(AuditEvent, AuditEvent.action == "document.validated") == 1


def test_a_staff_decision_on_a_request_made_twice_at_once_is_made_once(app, client, auth, family_setup):
    family, child, activity = family_setup
    client.post(
        f"/famille/{family.id}/planning/cellule",
        data=cell_form(child, activity, next_weekday(2, AHEAD), "reserve"),
    )
    line = db.session.scalar(sa.select(RequestLine))
    as_agent(app, auth)
    fire(tabs(app, client), "/gestion/demandes/decision", data={"une": f"{line.id}:accepter"})
    assert count(RequestEvent, RequestEvent.kind == EventKind.DECISION) == 1
    assert db.session.scalar(sa.select(Booking.state)).name == "RESERVED"


@pytest.mark.parametrize("author", ["parent", "agent"])
def test_a_message_sent_twice_at_once_is_written_once(app, client, auth, family_setup, author):
    family, child, activity = family_setup
    client.post(
        f"/famille/{family.id}/planning/cellule",
        data=cell_form(child, activity, next_weekday(2, AHEAD), "reserve"),
    )
    request_id = db.session.scalar(sa.select(Request.id))
    path = f"/mon-espace/demandes/{request_id}/message"
    if author == "agent":
        as_agent(app, auth)
        path = f"/gestion/demandes/{request_id}/message"
    fire(tabs(app, client), path, data={"message": "Léa mangera finalement le jeudi."})
    assert count(RequestEvent, RequestEvent.kind == EventKind.MESSAGE) == 1


def test_a_day_withdrawn_twice_at_once_is_withdrawn_once(app, client, family_setup):
    family, child, activity = family_setup
    day = next_weekday(2, AHEAD)
    client.post(f"/famille/{family.id}/planning/cellule", data=cell_form(child, activity, day, "reserve"))
    answers = fire(
        tabs(app, client),
        f"/famille/{family.id}/planning/cellule",
        data=cell_form(child, activity, day, "withdraw"),
        headers={"HX-Request": "true"},
    )
    for _, text, _ in answers:
        assert "<html" not in text and "Inscrit" in text
    assert count(Booking) == 0
    assert count(RequestEvent, RequestEvent.kind == EventKind.WITHDRAWAL) == 1


def test_a_subscription_confirmed_twice_at_once_is_one_subscription(app, client, auth):
    family = make_family(children=(("Hugo", date(2018, 11, 30)),))
    make_user()
    db.session.commit()
    auth.login("parent@example.fr")
    clients = tabs(app, client)
    answers = fire(
        clients,
        "/mon-espace/abonnements/confirmer",
        data={"subscriber_code": family.subscriber_code, "child_birth_date": "2018-11-30"},
    )
    assert [status for status, _, _ in answers] == [302] * COPIES
    for page in pages(clients, answers):
        assert "maintenant lié" in page
    assert count(Subscription) == 1


@pytest.mark.parametrize("kind", ["reservation", "absence"])
def test_a_day_entered_twice_at_once_by_the_town_is_entered_once(app, client, auth, family_setup, kind):
    family, child, activity = family_setup
    day = next_weekday(2, AHEAD)
    if kind == "absence":
        book(child, activity, [day])
        db.session.commit()
    as_agent(app, auth)
    clients = tabs(app, client)
    answers = fire(
        clients,
        f"/gestion/familles/{family.id}/saisie",
        data={"child": child.id, "activity": activity.id, "kind": kind, "day": day.isoformat()},
    )
    assert [status for status, _, _ in answers] == [302] * COPIES
    assert count(Request) == 1 and count(AuditEvent, AuditEvent.action == "booking.entered") == 1


def _invoice(family):
    from portail.models import Invoice, InvoiceKind

    invoice = Invoice(
        number="FA2026-000001",
        kind=InvoiceKind.INVOICE,
        family_id=family.id,
        month=date(2026, 10, 1),
        due_date=date(2026, 11, 30),
        total_cents=4200,
        family_name=family.name,
    )
    db.session.add(invoice)
    db.session.commit()
    return invoice


def _payment_form(client, invoice) -> tuple[str, str]:
    """The invoice's page as an agent opens it: its URL and the key its payment form carries."""
    url = f"/gestion/facturation/factures/{invoice.id}"
    page = client.get(url).get_data(as_text=True)
    return url, re.search(r'<input id="key" name="key" type="hidden" value="([^"]+)">', page).group(1)


def _payments() -> tuple[int, int]:
    """The payments recorded, and their audit rows."""
    from portail.models import Payment

    return count(Payment), count(AuditEvent, AuditEvent.action == "payment.recorded")


PAYMENT = {"amount": "12,50", "method": "CHEQUE"}


def test_a_payment_form_sent_twice_at_once_is_one_payment(app, client, auth, family_setup):
    family, _child, _activity = family_setup
    invoice = _invoice(family)
    as_agent(app, auth)
    url, key = _payment_form(client, invoice)
    clients = tabs(app, client)
    paid_on = (utcnow().date() - timedelta(days=1)).isoformat()
    answers = fire(clients, url, data={**PAYMENT, "paid_on": paid_on, "key": key})
    assert [status for status, _, _ in answers] == [302] * COPIES
    assert _payments() == (1, 1)
    landed = pages(clients, answers)
    assert sum("Le paiement de 12,50\u00a0€ est enregistré." in page for page in landed) == 1
    assert sum("Le paiement de 12,50\u00a0€ est déjà enregistré." in page for page in landed) == COPIES - 1


def test_two_payment_forms_with_the_same_values_are_two_payments(app, client, auth, family_setup):
    """Two cheques of the same amount for one invoice, entered one after the other (here at once)."""
    family, _child, _activity = family_setup
    invoice = _invoice(family)
    as_agent(app, auth)
    keys = [_payment_form(client, invoice)[1] for _ in range(COPIES)]
    assert len(set(keys)) == COPIES  # every form shown has its own key
    unsent = iter(keys)
    clients = tabs(app, client)
    paid_on = (utcnow().date() - timedelta(days=1)).isoformat()
    lock = threading.Lock()

    def entry() -> dict:
        with lock:
            return {**PAYMENT, "paid_on": paid_on, "key": next(unsent)}

    answers = fire(clients, f"/gestion/facturation/factures/{invoice.id}", data=entry)
    assert [status for status, _, _ in answers] == [302] * COPIES
    assert _payments() == (COPIES, COPIES)
    for page in pages(clients, answers):
        assert "Le paiement de 12,50\u00a0€ est enregistré." in page


def test_a_payment_form_sent_again_later_is_still_one_payment(app, client, auth, family_setup):
    """The browser resends the page (reload, back and submit again) after the payment was recorded."""
    family, _child, _activity = family_setup
    invoice = _invoice(family)
    as_agent(app, auth)
    url, key = _payment_form(client, invoice)
    paid_on = (utcnow().date() - timedelta(days=1)).isoformat()
    data = {**PAYMENT, "paid_on": paid_on, "key": key}
    first = client.post(url, data=data, follow_redirects=True)
    assert first.status_code == 200 and "Le paiement de 12,50\u00a0€ est enregistré." in first.get_data(
        as_text=True
    )
    again = client.post(url, data=data, follow_redirects=True)
    assert again.status_code == 200
    assert "Le paiement de 12,50\u00a0€ est déjà enregistré." in again.get_data(as_text=True)
    assert _payments() == (1, 1)
    # The same key with other values is no copy: refused, nothing recorded, and the form shown
    # again has a new key, so that a second click records that other payment.
    other = client.post(url, data={**data, "amount": "20,00"})
    assert other.status_code == 422 and "ce formulaire a déjà servi" in other.get_data(as_text=True)
    assert _payments() == (1, 1)
    renewed = re.search(r'name="key" type="hidden" value="([^"]+)"', other.get_data(as_text=True)).group(1)
    assert renewed != key
    assert client.post(url, data={**data, "amount": "20,00", "key": renewed}).status_code == 302
    assert _payments() == (2, 2)


def test_a_payment_form_without_its_key_is_refused_and_shown_again_with_one(app, client, auth, family_setup):
    """A page opened before the key existed: nothing is recorded, the agent clicks again."""
    family, _child, _activity = family_setup
    invoice = _invoice(family)
    as_agent(app, auth)
    url = f"/gestion/facturation/factures/{invoice.id}"
    data = {**PAYMENT, "paid_on": (utcnow().date() - timedelta(days=1)).isoformat()}
    for key in ({}, {"key": ""}, {"key": "x" * 65}):
        refused = client.post(url, data={**data, **key})
        text = refused.get_data(as_text=True)
        assert refused.status_code == 422 and "ce formulaire n&#39;était plus à jour" in text
        assert 'value="12,50"' in text  # the values entered are kept
        assert _payments() == (0, 0)
    key = re.search(r'name="key" type="hidden" value="([^"]+)"', text).group(1)
    assert client.post(url, data={**data, "key": key}).status_code == 302
    assert _payments() == (1, 1)


def test_a_billing_run_started_twice_at_once_is_one_run(app, client, auth, family_setup, monkeypatch):
    from portail.gestion import billing_routes
    from portail.models import BillingRun

    monkeypatch.setattr(billing_routes, "enqueue", lambda *args, **kwargs: True)  # (the worker's job)
    as_agent(app, auth)
    month = (utcnow().date().replace(day=1) - timedelta(days=1)).replace(day=1)
    answers = fire(tabs(app, client), "/gestion/facturation/lancer", data={"mois": month.strftime("%Y-%m")})
    assert [status for status, _, _ in answers] == [302] * COPIES
    assert count(BillingRun) == 1 and count(AuditEvent, AuditEvent.action == "billing.started") == 1


def test_a_password_change_sent_twice_at_once_changes_it_once_and_both_tabs_stay_logged_in(
    app, client, family_setup
):
    from tests.factories import PASSWORD

    new = "une-toute-nouvelle-phrase-secrete"
    clients = tabs(app, client)
    answers = fire(
        clients,
        "/mon-espace/compte/mot-de-passe",
        data={"current_password": PASSWORD, "password": new, "password_confirm": new},
    )
    assert [status for status, _, _ in answers] == [302] * COPIES, [text[-1500:] for _, text, _ in answers]
    for page in pages(clients, answers):
        assert "Votre mot de passe a été modifié." in page
    assert count(OutboxMessage, OutboxMessage.template == "password_changed") == 1


def test_an_e_mail_change_sent_twice_at_once_sends_one_link(app, client, family_setup):
    from tests.factories import PASSWORD

    answers = fire(
        tabs(app, client),
        "/mon-espace/compte/adresse",
        data={"new_email": "nouvelle@example.fr", "current_password": PASSWORD},
    )
    assert [status for status, _, _ in answers] == [302] * COPIES
    assert count(OutboxMessage, OutboxMessage.template == "email_change") == 1


def test_an_account_deleted_twice_at_once_is_deleted_and_both_copies_say_so(app, client, family_setup):
    from portail.models import User
    from tests.factories import PASSWORD

    clients = tabs(app, client)
    answers = fire(
        clients, "/mon-espace/compte/supprimer", data={"current_password": PASSWORD, "confirm": "y"}
    )
    assert [status for status, _, _ in answers] == [302] * COPIES
    for page in pages(clients, answers):
        assert "Votre compte a été supprimé." in page
    assert count(User) == 0


ACTIVITY = {
    "name": "Accueil du soir",
    "weekdays": ["1", "2", "4", "5"],
    "start_date": "2026-09-01",
    "end_date": "2027-07-03",
    "capacity": "30",
    "validation_mode": "manuelle",
    "open_period": "school_days",
    "booking_deadline_kind": "days_before",
    "booking_deadline_days": "2",
    "booking_deadline_time": "10:00",
    "absence_deadline_kind": "days_before",
    "absence_deadline_days": "2",
    "absence_deadline_time": "10:00",
}


def staff_forms(family, child, activity) -> dict:
    """What each back-office create form posts, and the model of the one row it must make."""
    from portail.models import (
        Activity,
        Authorization,
        ClosingDay,
        DocumentType,
        Enrolment,
        Family,
        Tariff,
        User,
    )

    day = next_weekday(3, AHEAD).isoformat()
    return {
        "activity": ("/gestion/activites/nouvelle", ACTIVITY, Activity, 2),
        "closing-day": (
            f"/gestion/activites/{activity.id}/fermetures",
            {"day": day, "reason": "Grève"},
            ClosingDay,
            1,
        ),
        "enrolment": (
            f"/gestion/familles/{family.id}/inscriptions",
            {
                "children": [str(child.id)],
                "activity": activity.id,
                "start_date": "2026-09-01",
                "end_date": "2027-07-03",
            },
            Enrolment,
            2,
        ),
        "tariff": (
            "/gestion/facturation/tarifs/nouveau",
            {
                "activity": str(activity.id),
                "valid_from": "2027-01-01",
                "bill_late_absences": "y",
                "sick_days_billed": "1",
                "sick_certificate_days": "3",
                "brackets-0-upper": "",
                "brackets-0-price": "3,50",
            },
            Tariff,
            1,
        ),
        "document-type": (
            "/gestion/pieces/types/nouveau",
            {
                "name": "Attestation CAF",
                "scope": "family",
                "validity": "one_year",
                "formats": ["pdf"],
                "active": "y",
            },
            DocumentType,
            1,
        ),
        "authorization": ("/gestion/autorisations", {"label": "Sortie seul"}, Authorization, 1),
        "family": (
            "/gestion/familles/nouvelle",
            {
                "name": "Famille LEROY",
                "guardian1-civility": "Mme",
                "guardian1-last_name": "LEROY",
                "guardian1-first_name": "Anne",
                "children-0-last_name": "LEROY",
                "children-0-first_name": "Paul",
                "children-0-birth_date": "2017-06-01",
            },
            Family,
            2,
        ),
        "staff": (
            "/gestion/agents",
            {"last_name": "NOUVEL", "first_name": "Jo", "email": "jo@example.fr", "role": "agent"},
            User,
            3,
        ),
    }


@pytest.mark.parametrize(
    "form",
    ["activity", "closing-day", "enrolment", "tariff", "document-type", "authorization", "family", "staff"],
)
def test_a_back_office_form_sent_twice_at_once_makes_one_row(app, client, auth, family_setup, form):
    family, child, activity = family_setup
    path, data, model, expected = staff_forms(family, child, activity)[form]
    make_user(email="admin@example.fr", role=Role.ADMIN)
    db.session.commit()
    auth.logout()
    auth.login("admin@example.fr")
    clients = tabs(app, client)
    answers = fire(clients, path, data=data)
    assert [status for status, _, _ in answers] == [302] * COPIES, [text[-1500:] for _, text, _ in answers]
    for page in pages(clients, answers):
        assert "flash-success" in page and "flash-error" not in page, page[-3000:]
    assert count(model) == expected  # (the fixture's rows, and one more)


@pytest.mark.parametrize("what", ["authorization", "staff"])
def test_a_switch_clicked_twice_at_once_switches_once(app, client, auth, family_setup, what):
    from portail.models import Authorization, User

    make_user(email="admin@example.fr", role=Role.ADMIN)
    if what == "authorization":
        item = Authorization(label="Droit à l'image", position=1)
        db.session.add(item)
        path = "/gestion/autorisations/{id}/basculer"
    else:
        item = make_user(email="agent@example.fr", role=Role.AGENT)
        path = "/gestion/agents/{id}/acces"
    db.session.commit()
    item_id = item.id
    auth.logout()
    auth.login("admin@example.fr")
    fire(tabs(app, client), path.format(id=item_id), data={"actif": "0"})
    if what == "authorization":
        assert db.session.get(Authorization, item_id).active is False
    else:
        assert db.session.get(User, item_id).disabled_at is not None
    assert count(AuditEvent, AuditEvent.action.in_(["authorization.toggled", "staff.disabled"])) == 1


@pytest.mark.parametrize("what", ["closing-day", "enrolment", "tariff"])
def test_a_row_deleted_twice_at_once_is_deleted_once_and_both_get_the_list(
    app, client, auth, family_setup, what
):
    from portail.models import ClosingDay, Enrolment, Tariff, TariffBracket

    family, child, activity = family_setup
    if what == "closing-day":
        row = ClosingDay(activity_id=activity.id, day=next_weekday(3, AHEAD), reason="Grève")
        path = f"/gestion/activites/{activity.id}/fermetures/{{id}}/supprimer"
    elif what == "enrolment":
        row = db.session.scalar(sa.select(Enrolment))
        path = f"/gestion/familles/{family.id}/inscriptions/{{id}}/supprimer"
    else:
        row = Tariff(
            activity_id=activity.id,
            valid_from=date(2027, 1, 1),
            brackets=[TariffBracket(quotient_min=0, price_cents=350)],
        )
        path = "/gestion/facturation/tarifs/{id}/supprimer"
    db.session.add(row)
    db.session.commit()
    model, row_id = type(row), row.id
    as_agent(app, auth)
    clients = tabs(app, client)
    answers = fire(clients, path.format(id=row_id))
    assert [status for status, _, _ in answers] == [302] * COPIES
    for page in pages(clients, answers):
        assert "Page introuvable" not in page
    assert db.session.get(model, row_id) is None
    assert (
        count(AuditEvent, AuditEvent.action.in_(["activity.reopened", "enrolment.deleted", "tariff.deleted"]))
        == 1
    )


def test_a_subscription_ended_twice_at_once_is_ended_once_and_both_get_the_list(app, client, family_setup):
    family, _child, _activity = family_setup
    subscription_id = db.session.scalar(sa.select(Subscription.id))
    clients = tabs(app, client)
    answers = fire(clients, f"/mon-espace/abonnements/{subscription_id}/terminer")
    assert [status for status, _, _ in answers] == [302] * COPIES
    for page in pages(clients, answers):
        assert "est terminé" in page
    assert db.session.get(Subscription, subscription_id).ended_at is not None


def test_a_second_click_after_the_first_ended_or_deleted_gets_the_page_not_a_404(
    app, client, auth, family_setup
):
    from portail.models import ClosingDay

    family, _child, activity = family_setup
    subscription_id = db.session.scalar(sa.select(Subscription.id))
    for _ in range(2):
        ended = client.post(f"/mon-espace/abonnements/{subscription_id}/terminer", follow_redirects=True)
        assert ended.status_code == 200 and "est terminé" in ended.get_data(as_text=True)
    closing = ClosingDay(activity_id=activity.id, day=next_weekday(3, AHEAD), reason="Grève")
    db.session.add(closing)
    db.session.commit()
    as_agent(app, auth)
    for _ in range(2):
        path = f"/gestion/activites/{activity.id}/fermetures/{closing.id}/supprimer"
        assert client.post(path, follow_redirects=True).status_code == 200
    assert (
        client.post(f"/gestion/activites/{activity.id + 99}/fermetures/{closing.id}/supprimer").status_code
        == 404
    )


def test_a_direct_edit_by_an_agent_sent_twice_at_once_is_one_change(app, client, auth, family_setup):
    family, _child, _activity = family_setup
    guardian = family.guardians[0]
    as_agent(app, auth)
    answers = fire(
        tabs(app, client),
        f"/gestion/familles/{family.id}/responsables/{guardian.id}/address/modifier",
        data=ADDRESS,
    )
    assert [status for status, _, _ in answers] == [302] * COPIES
    assert count(ChangeRequest, ChangeRequest.status == ChangeStatus.DIRECT) == 1
    assert count(AuditEvent, AuditEvent.action == "dossier.edited") == 1


def test_an_e_mail_change_confirmed_twice_at_once_is_applied_once_and_both_say_so(app, client, family_setup):
    from urllib.parse import urlsplit

    from tests.factories import PASSWORD

    client.post(
        "/mon-espace/compte/adresse", data={"new_email": "nouvelle@example.fr", "current_password": PASSWORD}
    )
    link = db.session.scalar(
        sa.select(OutboxMessage).where(OutboxMessage.template == "email_change")
    ).context["link"]
    clients = tabs(app, client)
    answers = fire(clients, urlsplit(link).path)
    assert [status for status, _, _ in answers] == [302] * COPIES, [text[-800:] for _, text, _ in answers]
    for page in pages(clients, answers):
        assert "Votre nouvelle adresse e-mail est enregistrée." in page
    assert count(OutboxMessage, OutboxMessage.template == "email_changed") == 1


def test_a_family_edit_adding_a_child_sent_twice_at_once_adds_it_once(app, client, auth, family_setup):
    from portail.models import Child

    family, child, _activity = family_setup
    as_agent(app, auth)
    data = {
        "name": family.name,
        "guardian1-last_name": "DUPONT",
        "guardian1-first_name": "Camille",
        "children-0-id": str(child.id),
        "children-0-last_name": child.last_name,
        "children-0-first_name": "Léa",
        "children-0-birth_date": "2016-03-14",
        "children-1-last_name": child.last_name,
        "children-1-first_name": "Max",
        "children-1-birth_date": "2021-02-02",
    }
    answers = fire(tabs(app, client), f"/gestion/familles/{family.id}/modifier", data=data)
    assert [status for status, _, _ in answers] == [302] * COPIES
    assert count(Child) == 2


def test_a_sign_up_sent_twice_at_once_is_one_account_and_one_working_link(app):
    answers = fire(tabs_of(app, 3), "/inscription", data=VALID)
    assert [status for status, _, _ in answers] == [302] * 3, answers
    # a copy that arrives once the first has committed (a slower tab) finds the new account
    assert app.test_client().post("/inscription", data=VALID).status_code == 302
    assert count(User) == 1
    assert count(OutboxMessage, OutboxMessage.template == "activation") == 1
    assert count(AccountToken, AccountToken.used_at.is_(None)) == 1


def test_a_password_reset_asked_twice_at_once_sends_one_link(app, client):
    make_user()
    db.session.commit()
    answers = fire(tabs_of(app, 2), "/mot-de-passe-oublie", data={"email": "parent@example.fr"})
    assert [status for status, _, _ in answers] == [302] * 2, answers
    assert count(OutboxMessage, OutboxMessage.template == "password_reset") == 1
    assert count(AccountToken, AccountToken.used_at.is_(None)) == 1


def tabs_of(app, count: int) -> list:
    """`count` anonymous browsers."""
    return [app.test_client() for _ in range(count)]
