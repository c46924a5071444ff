"""Reminders (relances) of late invoices: one mail per parent account at each step after the due
date, listing its families' late invoices with a link to pay each; sent once per step whatever runs
twice or at the same time; never for an invoice paid, credited, cancelled or in a direct debit in
force; the day's job at its time; what was sent on the staff's invoice page."""

import email
import email.policy
import threading
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta

import pytest
import sqlalchemy as sa

from portail.extensions import db
from portail.formatting import PARIS
from portail.models import (
    DebitBatch,
    DirectDebit,
    Invoice,
    InvoiceKind,
    OnlinePayment,
    OnlinePaymentItem,
    OutboxMessage,
    Payment,
    PaymentMethod,
    Reminder,
    Role,
    SepaMandate,
)
from portail.services.billing import reminders
from portail.services.outbox import commit, render
from tests.factories import make_family, make_user, subscribe
from tests.support import count_queries, mails_settled, start, wait_for

pytestmark = pytest.mark.both_dbs

DUE = date(2026, 11, 30)  # the October invoices' due date
NOVEMBER_DUE = date(2026, 12, 31)
_numbers = iter(range(1, 10_000))


def paris(day: date, clock: time = time(10, 0)) -> datetime:
    return datetime.combine(day, clock, PARIS).astimezone(UTC)


def late(days: int, clock: time = time(10, 0)) -> datetime:
    """The moment `days` days after the October invoices' due date, at `clock` in Paris."""
    return paris(DUE + timedelta(days=days), clock)


def family(name: str, *parents: str):
    """A family and its activated parent accounts (subscribed)."""
    made = make_family(name=f"Famille {name}", guardians=((f"Parent{name}", name),))
    for address in parents:
        subscribe(make_user(email=address, first_name=address.split("@")[0].title()), made)
    return made


def invoice(owner, total: int = 4200, month: date = date(2026, 10, 1), due: date = DUE, **values) -> Invoice:
    """An invoice of `owner` issued on the 1st of the following month."""
    item = Invoice(
        number=f"FA2026-{next(_numbers):06d}",
        kind=InvoiceKind.INVOICE,
        family_id=owner.id,
        month=month,
        due_date=due,
        total_cents=total,
        family_name=owner.name,
        **values,
    )
    db.session.add(item)
    db.session.flush()
    return item


def pay(item: Invoice, cents: int, method=PaymentMethod.CHEQUE, **values) -> Payment:
    payment = Payment(invoice_id=item.id, paid_on=DUE, amount_cents=cents, method=method, **values)
    db.session.add(payment)
    db.session.flush()
    return payment


def credit(item: Invoice) -> Invoice:
    """The credit note cancelling `item`."""
    note = Invoice(
        number=f"AV2026-{next(_numbers):06d}",
        kind=InvoiceKind.CREDIT_NOTE,
        family_id=item.family_id,
        month=item.month,
        due_date=item.due_date,
        total_cents=-item.total_cents,
        family_name=item.family_name,
        corrects_id=item.id,
    )
    db.session.add(note)
    db.session.flush()
    item.credited_by_id = note.id
    db.session.flush()
    return note


def sent() -> list[OutboxMessage]:
    return db.session.scalars(
        sa.select(OutboxMessage)
        .where(OutboxMessage.template == "invoice_reminder")
        .order_by(OutboxMessage.id)
    ).all()


def rows() -> set[tuple[int, int, str]]:
    return {(r.invoice_id, r.step, r.email) for r in db.session.scalars(sa.select(Reminder))}


def numbers(message: OutboxMessage) -> list[str]:
    return [item["number"] for entry in message.context["families"] for item in entry["invoices"]]


@pytest.fixture
def town(app):
    """MARTIN: two parents, two late invoices (October and September); PETIT: one parent, one late
    invoice; ROUX: no account. The November invoices are not due yet."""
    app.config.update(REMINDER_STEPS=(7, 30), REMINDER_MAIL_AT=time(10, 0))
    martin = family("MARTIN", "claire@example.fr", "julien@example.fr")
    petit = family("PETIT", "paul@example.fr")
    roux = family("ROUX")
    items = {
        "martin": invoice(martin),
        "martin_sept": invoice(martin, 1500, date(2026, 9, 1), date(2026, 10, 31)),
        "martin_nov": invoice(martin, 3000, date(2026, 11, 1), NOVEMBER_DUE),
        "petit": invoice(petit, 2550),
        "roux": invoice(roux, 990),
    }
    # The September invoice was reminded at both steps already, in its time.
    for step in (7, 30):
        db.session.add(Reminder(invoice_id=items["martin_sept"].id, step=step, email="claire@example.fr"))
    commit()
    return items


def test_nothing_before_the_first_step(town):
    assert reminders.send_due(late(6, time(23, 59))) == 0
    assert sent() == [] and len(rows()) == 2  # (September's)


def test_first_step_one_mail_per_parent_listing_its_familys_late_invoices(app, town):
    assert reminders.send_due(late(7)) == 3
    by_recipient = {message.recipient: message for message in sent()}
    assert sorted(by_recipient) == ["claire@example.fr", "julien@example.fr", "paul@example.fr"]
    claire = by_recipient["claire@example.fr"].context
    assert (claire["step"], claire["final"], claire["count"]) == (7, False, 2)
    [martin] = claire["families"]
    # Every late invoice of the family, oldest first; November's is not due yet.
    assert [(item["number"], item["left"], item["days_late"]) for item in martin["invoices"]] == [
        (town["martin_sept"].number, "15,00\u00a0€", 37),
        (town["martin"].number, "42,00\u00a0€", 7),
    ]
    assert martin["total"] == "57,00\u00a0€" and martin["credit"] is None
    assert martin["invoices"][1]["link"] == (
        f"{app.config['PUBLIC_URL']}/facturation/{town['martin'].family_id}/factures/{town['martin'].id}"
    )
    assert by_recipient["paul@example.fr"].context["families"][0]["total"] == "25,50\u00a0€"
    assert rows() - {
        (town["martin_sept"].id, 7, "claire@example.fr"),
        (town["martin_sept"].id, 30, "claire@example.fr"),
    } == {
        (town["martin"].id, 7, "claire@example.fr, julien@example.fr"),
        (town["petit"].id, 7, "paul@example.fr"),
        (town["roux"].id, 7, ""),  # nobody to tell by mail: the agents see it
    }


def test_running_again_sends_nothing(town):
    assert reminders.send_due(late(7)) == 3
    assert reminders.send_due(late(7, time(18, 0))) == 0
    assert reminders.send_due(late(12)) == 0
    assert len(sent()) == 3


def test_second_step_is_worded_as_the_last_one(town):
    reminders.send_due(late(7))
    assert reminders.send_due(late(29)) == 0
    assert reminders.send_due(late(30)) == 3
    last = [message for message in sent() if message.context["step"] == 30]
    assert len(last) == 3 and all(message.context["final"] for message in last)
    assert {(invoice_id, step) for invoice_id, step, _email in rows()} >= {
        (town["martin"].id, 7),
        (town["martin"].id, 30),
    }
    assert reminders.send_due(late(31)) == 0


def test_several_steps_due_at_once_send_the_highest_only(town):
    """The job did not run for weeks: one mail, worded as the last step; the first is passed."""
    assert reminders.send_due(late(45)) == 3
    assert all(message.context["step"] == 30 and message.context["final"] for message in sent())
    assert (town["martin"].id, 7) not in {(invoice_id, step) for invoice_id, step, _e in rows()}
    assert reminders.send_due(late(46)) == 0


def test_a_paid_invoice_is_never_reminded_and_payment_between_steps_stops_them(town):
    pay(town["petit"], 2550)
    commit()
    reminders.send_due(late(7))
    assert "paul@example.fr" not in {message.recipient for message in sent()}
    pay(town["martin"], 4200, PaymentMethod.CARD)
    pay(town["martin_sept"], 1500, PaymentMethod.CARD)
    commit()
    reminders.send_due(late(30))
    assert {message.context["step"] for message in sent()} == {7}  # only ROUX is left, without a mail
    assert {(invoice_id, step) for invoice_id, step, _e in rows()} == {
        (town["martin"].id, 7),
        (town["martin_sept"].id, 7),
        (town["martin_sept"].id, 30),
        (town["roux"].id, 7),
        (town["roux"].id, 30),
    }


def test_a_partial_payment_leaves_the_rest_to_pay(town):
    pay(town["petit"], 1000)
    commit()
    reminders.send_due(late(7))
    [paul] = [message for message in sent() if message.recipient == "paul@example.fr"]
    [entry] = paul.context["families"]
    assert entry["invoices"][0]["left"] == "15,50\u00a0€" and entry["total"] == "15,50\u00a0€"


def test_credit_notes_and_cancelled_invoices_are_never_reminded(town):
    note = credit(town["petit"])
    commit()
    reminders.send_due(late(45))
    assert "paul@example.fr" not in {message.recipient for message in sent()}
    assert {town["petit"].id, note.id}.isdisjoint({invoice_id for invoice_id, _s, _e in rows()})


def test_a_credit_in_the_familys_favour_is_deducted_and_a_family_that_owes_nothing_is_left_alone(town):
    """PETIT paid October, which was then cancelled and issued again a little higher: 1,00 € is due."""
    pay(town["petit"], 2550)
    credit(town["petit"])
    again = invoice(town["petit"].family, 2650)
    # ROUX has a credit note of a correction larger than its late invoice.
    roux_old = invoice(town["roux"].family, 2000, date(2026, 8, 1))
    pay(roux_old, 2000)
    credit(roux_old)
    commit()
    reminders.send_due(late(7))
    [paul] = [message for message in sent() if message.recipient == "paul@example.fr"]
    [entry] = paul.context["families"]
    assert [item["number"] for item in entry["invoices"]] == [again.number]
    assert (entry["credit"], entry["total"]) == ("25,50\u00a0€", "1,00\u00a0€")
    assert town["roux"].id not in {invoice_id for invoice_id, _s, _e in rows()}


def test_an_invoice_in_a_direct_debit_in_force_is_not_reminded_until_its_reject(town):
    agent = make_user(email="agent@example.fr", role=Role.AGENT)
    petit = town["petit"]
    mandate = SepaMandate(
        family_id=petit.family_id,
        reference="RUM-PETIT-1",
        holder="Paul PETIT",
        iban="FR7630001007941234567890185",
        bic="BDFEFRPPCCT",
        signed_on=date(2026, 9, 1),
        signed_by_id=agent.id,
    )
    batch = DebitBatch(
        month=petit.month, collection_date=DUE, message_id="PRLV-2026-10", xml=b"", created_by_id=agent.id
    )
    db.session.add_all([mandate, batch])
    db.session.flush()
    # A debit in force whose payment has not been recorded (a partial amount, or the file's own timing).
    debit = DirectDebit(
        batch_id=batch.id,
        invoice_id=petit.id,
        mandate_id=mandate.id,
        amount_cents=2550,
        sequence="FRST",
        end_to_end_id="E2E-PETIT-1",
    )
    db.session.add(debit)
    commit()
    reminders.send_due(late(7))
    assert "paul@example.fr" not in {message.recipient for message in sent()}
    debit.rejected_at, debit.reject_code = late(10), "AM04"
    commit()
    assert reminders.send_due(late(10)) == 1
    assert sent()[-1].recipient == "paul@example.fr"


def test_an_invoice_being_paid_online_waits_an_hour(town):
    petit = town["petit"]
    paying = OnlinePayment(
        reference="REFPETIT1",
        provider="test",
        family_id=petit.family_id,
        email="paul@example.fr",
        amount_cents=2550,
        created_at=late(7, time(9, 30)),
        items=[OnlinePaymentItem(invoice_id=petit.id, amount_cents=2550)],
    )
    db.session.add(paying)
    commit()
    reminders.send_due(late(7))
    assert "paul@example.fr" not in {message.recipient for message in sent()}
    assert reminders.send_due(late(7, time(10, 31))) == 1  # abandoned at the bank's page


def test_two_runs_at_the_same_moment_send_each_reminder_once(app, town):
    """Both runs read the same late invoices and reach the insert together; the unique (invoice,
    step) lets one through, the other sends nothing."""
    at_insert = threading.Barrier(2)
    held = threading.local()
    results: list = []

    def hold(_connection, _cursor, statement, *_args):
        if getattr(held, "armed", False) and statement.lstrip().upper().startswith("INSERT INTO REMINDER"):
            held.armed = False
            at_insert.wait(timeout=10)

    def run() -> None:
        with app.app_context():
            held.armed = True
            try:
                results.append(reminders.send_due(late(7)))
            except Exception as error:  # noqa: BLE001  (reported by the assertion below)
                results.append(error)
            finally:
                db.session.remove()

    sa.event.listen(db.engine, "before_cursor_execute", hold)
    try:
        threads = [threading.Thread(target=run) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", hold)
    assert sorted(results, key=str) == [0, 3]
    assert Counter(message.recipient for message in sent()) == Counter(
        ["claire@example.fr", "julien@example.fr", "paul@example.fr"]
    )


def test_a_batch_costs_the_same_queries_whatever_its_families(app, monkeypatch):
    app.config.update(REMINDER_STEPS=(7, 30), RQ_SYNC=False)  # (the mails stay in the outbox)
    monkeypatch.setattr(reminders, "BATCH", 3)

    def queries(count: int) -> int:
        for index in range(count):
            owner = family(
                f"F{count}X{index}", f"p{count}x{index}@example.fr", f"q{count}x{index}@example.fr"
            )
            invoice(owner)
            invoice(owner, 1000, date(2026, 9, 1), date(2026, 10, 31))
        commit()
        with count_queries() as counter:
            assert reminders.send_due(late(7)) == 2 * count
        db.session.execute(sa.delete(Reminder))
        db.session.execute(sa.delete(Invoice))
        commit()
        return counter["n"]

    one_batch, three_batches = queries(3), queries(9)
    assert one_batch == 1 + 6  # the families to remind, then six statements per batch
    assert three_batches == 1 + 3 * 6


# --- the job ------------------------------------------------------------------------------------


def test_the_job_runs_at_its_time_once_a_day_and_catches_up(town):
    with count_queries() as counter:
        assert reminders.run_daily(late(7, time(9, 59, 59))) is None
    assert counter["n"] == 0 and sent() == []
    assert reminders.run_daily(late(7, time(14, 12))) == 3  # the scheduler was down at 10:00
    with count_queries() as counter:
        assert reminders.run_daily(late(7, time(14, 13))) is None
    assert counter["n"] == 1  # one look at the day's DailyMail row
    assert reminders.run_daily(late(8)) == 0  # the next day: nothing new is due
    assert len(sent()) == 3


def test_the_scheduler_runs_the_reminders_job_every_minute(app):
    import worker
    from portail import jobs
    from portail.models import utcnow

    assert ("portail.jobs.invoice_reminders", 60) in worker.RECURRING
    app.config.update(REMINDER_STEPS=(7, 30), REMINDER_MAIL_AT=time(0, 0))  # (due whatever the time)
    today = utcnow().astimezone(PARIS).date()
    invoice(family("PETIT", "paul@example.fr"), due=today - timedelta(days=8))
    commit()
    assert jobs.invoice_reminders() == 1
    assert jobs.invoice_reminders() is None
    assert [message.context["step"] for message in sent()] == [7]


# --- the mail -----------------------------------------------------------------------------------


def test_the_first_reminder_says_what_is_late_how_much_and_how_to_pay(app, town):
    app.config.update(
        PAYMENT_PROVIDER="test", TOWN_ADDRESS="Hôtel de ville, 1 place de la Mairie, 99999 Démo"
    )
    reminders.send_due(late(7))
    [message] = [message for message in sent() if message.recipient == "paul@example.fr"]
    with app.test_request_context():
        mail = render(message)
    base = app.config["PUBLIC_URL"]
    link = f"{base}/facturation/{town['petit'].family_id}/factures/{town['petit'].id}"
    assert mail.subject == "Ville de Démo — Relance : facture en attente de paiement"
    assert mail.body == (
        "Bonjour Paul,\n\n"
        "Sauf erreur de notre part, la facture suivante n'est pas encore réglée alors que sa date "
        "d'échéance est passée :\n"
        f"- Facture n° {town['petit'].number} (octobre 2026) : 25,50\u00a0€ restant à payer, échéance le "
        "30 novembre 2026 (7 jours de retard)\n"
        f"  Payer ou consulter cette facture : {link}\n"
        "Total à régler : 25,50\u00a0€\n\n"
        "Pour régler : par carte bancaire en ligne depuis la page de la facture (lien ci-dessus), ou "
        "auprès de la régie de la mairie (Hôtel de ville, 1 place de la Mairie, 99999 Démo), par chèque, "
        "espèces ou carte bancaire.\n\n"
        "Si vous avez réglé entre-temps, merci de ne pas tenir compte de ce message. Si vous rencontrez "
        "des difficultés pour payer, contactez le service enfance de la mairie : un échéancier ou une "
        "aide peuvent être étudiés avec vous.\n\n"
        f"Votre Espace Facturation : {base}/facturation/\n"
        "\n--\nVille de Démo — Portail Famille\nCet e-mail a été envoyé automatiquement, merci de ne pas "
        "y répondre."
    )
    assert link in mail.html and "25,50" in mail.html and "Trésor public" not in mail.html


def test_the_last_reminder_warns_of_the_recovery_by_the_public_accountant(app, town):
    app.config["PAYMENT_PROVIDER"] = ""
    reminders.send_due(late(30))
    [message] = [message for message in sent() if message.recipient == "claire@example.fr"]
    with app.test_request_context():
        mail = render(message)
    assert (
        "Sauf erreur de notre part, les factures suivantes restent impayées alors que leur date "
        "d'échéance est passée, depuis au moins 30 jours pour la plus ancienne :\n"
    ) in mail.body
    assert "Consulter cette facture" in mail.body and "Payer ou consulter" not in mail.body
    assert "Total à régler : 57,00\u00a0€\n" in mail.body
    assert (
        "Sans règlement de votre part, la mairie émettra un titre de recettes et le recouvrement de ces "
        "sommes sera confié au comptable public (Trésor public)."
    ) in mail.body
    assert "comptable public (Trésor public)" in mail.html


def test_the_last_reminder_says_nothing_untrue_of_an_invoice_only_a_few_days_late(app, town):
    """Claire's last reminder also lists an invoice 5 days late: the 30 days are said of the oldest
    only, and each invoice says its own delay; PETIT's single invoice is 30 days late."""
    recent = invoice(town["martin"].family, 1200, date(2026, 8, 1), DUE + timedelta(days=25))
    commit()
    reminders.send_due(late(30))
    [claire] = [message for message in sent() if message.recipient == "claire@example.fr"]
    [paul] = [message for message in sent() if message.recipient == "paul@example.fr"]
    with app.test_request_context():
        mail, single = render(claire), render(paul)
    assert "impayées plus de 30 jours" not in mail.body
    assert "est passée, depuis au moins 30 jours pour la plus ancienne :" in mail.body
    assert f"Facture n° {recent.number} (août 2026) : 12,00\u00a0€ restant à payer" in mail.body
    assert "(5 jours de retard)" in mail.body and "(30 jours de retard)" in mail.body
    assert "depuis au moins 30 jours pour la plus ancienne" in mail.html
    assert (
        "Sauf erreur de notre part, la facture suivante reste impayée alors que sa date d'échéance est "
        "passée depuis au moins 30 jours :\n"
    ) in single.body


# --- the staff's pages --------------------------------------------------------------------------


def test_the_staff_invoice_page_shows_each_reminder_sent_and_to_whom(app, client, logged_in_agent, town):
    reminders.send_due(late(7))
    reminders.send_due(late(30))
    page = client.get(f"/gestion/facturation/factures/{town['martin'].id}").get_data(as_text=True)
    assert "Relances" in page
    assert "J+7" in page and "J+30" in page and "7 décembre 2026" in page and "30 décembre 2026" in page
    assert "claire@example.fr, julien@example.fr" in page
    roux = client.get(f"/gestion/facturation/factures/{town['roux'].id}").get_data(as_text=True)
    assert "aucun compte parent" in roux
    listing = client.get("/gestion/facturation/factures?mois=2026-10").get_data(as_text=True)
    assert "Relance J+30" in listing
    fresh = client.get(f"/gestion/facturation/factures/{town['martin_nov'].id}").get_data(as_text=True)
    assert "Aucune relance envoyée." in fresh


# --- the demo -----------------------------------------------------------------------------------


def test_the_demo_late_invoice_shows_its_reminders_sent_in_their_time(app, client, auth):
    from portail import demo
    from portail.demo import reminders as demo_reminders
    from portail.models import utcnow
    from portail.services import billing

    demo.load()
    commit()
    everything = db.session.scalars(sa.select(Invoice)).all()
    [overdue] = [
        item for item, _paid, state in billing.with_states(everything, utcnow()) if state == "En retard"
    ]
    now = paris(overdue.due_date + timedelta(days=30), time(12))
    assert demo_reminders.load(now) >= 2  # the late family's parents, at both steps
    commit()
    mine = db.session.scalars(sa.select(Reminder).where(Reminder.invoice_id == overdue.id)).all()
    assert [(reminder.step, reminder.sent_at) for reminder in mine] == [
        (7, paris(overdue.due_date + timedelta(days=7))),
        (30, paris(overdue.due_date + timedelta(days=30))),
    ]
    assert {message.status.name for message in sent()} == {"SENT"}
    auth.login("agent@demo.fr", demo.DEMO_PASSWORD)
    page = client.get(f"/gestion/facturation/factures/{overdue.id}").get_data(as_text=True)
    assert mine[0].email and "J+7" in page and "J+30" in page and mine[0].email in page


# --- through the real scheduler, worker and SMTP --------------------------------------------------


@pytest.mark.integration
def test_two_schedulers_send_each_reminder_once_through_the_worker(live, redis_server, smtp):
    """Two schedulers start at once after the day's time (a restart, a second node): each parent
    gets one mail, with the link to the invoice on the public address."""
    from portail.models import utcnow

    live.process_env["PORTAIL_REMINDER_MAIL_AT"] = "00:00"
    today = utcnow().astimezone(PARIS).date()
    emails = [f"parent{index}@example.fr" for index in range(4)]
    items = [
        invoice(family(f"F{index}", email), due=today - timedelta(days=8))
        for index, email in enumerate(emails)
    ]
    commit()
    redis_server.start()
    start(live, "worker")
    start(live, "scheduler")
    start(live, "scheduler")
    wait_for(lambda: len(smtp.messages) >= len(emails) and mails_settled(live), timeout=60)
    recipients = Counter(address for envelope in smtp.messages for address in envelope.rcpt_tos)
    assert recipients == Counter(emails)
    message = email.message_from_bytes(smtp.messages[0].content, policy=email.policy.default)
    body = message.get_body(("plain",)).get_content()
    assert "Relance" in message["Subject"] and "http://portail.test/facturation/" in body
    db.session.expire_all()
    assert {(r.invoice_id, r.step) for r in db.session.scalars(sa.select(Reminder))} == {
        (item.id, 7) for item in items
    }
