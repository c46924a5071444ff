"""Notifications the family chooses (issue 19, part 4): receipts at once or none; decisions one mail
each, in the 13:00/18:00 digests (the default) or in one 18:00 digest a day; over a window with
decisions before and after a change of choice, each decision is mailed once, as the choice in force
when it was made promised; concurrent runs send once; the page's bad input saves nothing."""

import re
import threading
from datetime import date, datetime, timedelta

import pytest
import sqlalchemy as sa

from portail import bookings
from portail.extensions import db
from portail.formatting import PARIS
from portail.models import (
    DecisionNotice,
    DecisionsChoice,
    DigestWindow,
    NotificationChoice,
    OutboxMessage,
    ReceiptsChoice,
    RequestKind,
    Role,
)
from portail.services import digests, notification_choices
from portail.services.outbox import commit
from tests.factories import THURSDAY, canteen, make_user, pending_request

pytestmark = pytest.mark.both_dbs

DAY = date(2027, 1, 12)
CATCH_UP = timedelta(days=2)


def paris(hour, minute=0, day=DAY):
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=PARIS)


@pytest.fixture
def agent(app):
    user = make_user(email="agent@example.fr", role=Role.AGENT)
    commit()
    return user


@pytest.fixture
def claire(app):
    """Claire's request for four days (decided one by one below), and Claire."""
    activity = canteen()
    db.session.add(activity)
    days = tuple(THURSDAY + timedelta(days=n) for n in (0, 1, 7, 8))
    request, _lea, parent = pending_request(activity, days=days)
    return request, parent


def decide(request, index, agent, at):
    bookings.decide([request.lines[index].id], True, agent, at)
    commit()


def mails(template: str, to: str | None = None) -> list[OutboxMessage]:
    query = sa.select(OutboxMessage).where(OutboxMessage.template == template)
    if to:
        query = query.where(OutboxMessage.recipient == to)
    return db.session.scalars(query.order_by(OutboxMessage.id)).all()


def days_in(message: OutboxMessage) -> list[str]:
    return sorted(day for entry in message.context["decisions"] for day in entry["days"])


def choose(user, decisions, at, receipts=ReceiptsChoice.IMMEDIATE):
    notification_choices.choose(user, receipts, decisions, at)
    commit()


def test_receipts_none_sends_no_receipt_and_immediate_one(app, agent):
    activity = canteen()
    db.session.add(activity)
    _request, _child, parent = pending_request(activity)
    assert len(mails("booking_receipt", parent.email)) == 1
    choose(parent, DecisionsChoice.TWICE_DAILY, paris(8), receipts=ReceiptsChoice.NONE)
    bookings.submit(
        parent_family(parent),
        parent,
        _child,
        activity,
        RequestKind.RESERVATION,
        [THURSDAY + timedelta(days=7)],
        datetime(2026, 10, 1, 8, tzinfo=PARIS),
        "C",
    )
    commit()
    assert len(mails("booking_receipt", parent.email)) == 1  # none for the second request


def parent_family(parent):
    return parent.subscriptions[0].family_id


def test_a_mail_per_decision_once_and_not_in_the_digests(app, agent, claire):
    request, parent = claire
    choose(parent, DecisionsChoice.IMMEDIATE, paris(8))
    decide(request, 0, agent, paris(9))
    decide(request, 1, agent, paris(9, 30))
    assert digests.send_immediate(paris(9, 31), CATCH_UP) == 2  # one mail per decision
    assert digests.send_immediate(paris(9, 32), CATCH_UP) == 0  # again: nothing
    notices = mails("decision_notice", parent.email)
    assert [days_in(m) for m in notices] == [
        [request.lines[0].day.isoformat()],
        [request.lines[1].day.isoformat()],
    ]
    assert digests.send_window(DAY, DigestWindow.NOON, now=paris(14)) == 0


def test_one_digest_a_day_at_18(app, agent, claire):
    request, parent = claire
    choose(parent, DecisionsChoice.DAILY, paris(7))
    decide(request, 0, agent, paris(10))
    decide(request, 1, agent, paris(15))
    assert digests.send_window(DAY, DigestWindow.NOON, now=paris(14)) == 0
    assert digests.send_window(DAY, DigestWindow.EVENING, now=paris(19)) == 1
    (digest,) = mails("decision_digest", parent.email)
    assert len(days_in(digest)) == 2 and digest.context["whole_day"] is True
    assert digests.send_window(DAY, DigestWindow.EVENING, now=paris(20)) == 0


def test_a_change_of_choice_in_the_middle_of_windows_sends_each_decision_once_as_promised(app, agent, claire):
    request, parent = claire
    decide(request, 0, agent, paris(10))  # default: the 13:00 digest
    choose(parent, DecisionsChoice.IMMEDIATE, paris(11))
    decide(request, 1, agent, paris(12))  # at once
    choose(parent, DecisionsChoice.DAILY, paris(12, 30))
    decide(request, 2, agent, paris(12, 45))  # the day's 18:00 digest
    choose(parent, DecisionsChoice.TWICE_DAILY, paris(14))
    decide(request, 3, agent, paris(15))  # the 18:00 digest as well (the afternoon's window)
    sent = (
        digests.dispatch_due(paris(13, 1))
        + digests.dispatch_due(paris(18, 1))
        + digests.dispatch_due(paris(19))
    )
    assert sent == 3  # the noon digest, the notice, the evening digest
    lines = [line.day.isoformat() for line in request.lines]
    (noon, evening) = mails("decision_digest", parent.email)
    assert days_in(noon) == [lines[0]] and noon.context["window"] == "13h"
    assert days_in(evening) == sorted([lines[2], lines[3]]) and evening.context["whole_day"] is True
    assert [days_in(m) for m in mails("decision_notice", parent.email)] == [[lines[1]]]
    assert digests.dispatch_due(paris(20)) == 0


def test_two_runs_at_once_send_each_decision_once(app, agent, claire):
    request, parent = claire
    choose(parent, DecisionsChoice.IMMEDIATE, paris(8))
    decide(request, 0, agent, paris(9))
    start, results = threading.Barrier(2), []

    def run():
        with app.app_context():
            start.wait(timeout=10)
            try:
                results.append(digests.send_immediate(paris(9, 1), CATCH_UP))
            finally:
                db.session.remove()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(results) == [0, 1]
    assert db.session.scalar(sa.select(sa.func.count(DecisionNotice.id))) == 1
    assert len(mails("decision_notice", parent.email)) == 1


def test_the_page_shows_the_choices_and_refuses_bad_input(app, client, auth, claire):
    _request, parent = claire
    auth.login(parent.email)
    page = client.get("/mon-espace/compte/notifications").get_data(as_text=True)
    assert "Un récapitulatif à 13 h et à 18 h" in page
    assert re.search(r'<input checked id="decisions-\d" name="decisions"[^>]*value="TWICE_DAILY"', page)
    bad = client.post(
        "/mon-espace/compte/notifications", data={"receipts": "IMMEDIATE", "decisions": "WEEKLY"}
    )
    assert bad.status_code == 422 and "Choisissez l&#39;un des choix proposés" in bad.get_data(as_text=True)
    missing = client.post("/mon-espace/compte/notifications", data={"receipts": "NONE"})
    assert missing.status_code == 422 and "Choisissez comment recevoir" in missing.get_data(as_text=True)
    assert db.session.scalar(sa.select(sa.func.count(NotificationChoice.id))) == 0
    db.session.expire_all()
    assert parent.receipts is ReceiptsChoice.IMMEDIATE
    done = client.post("/mon-espace/compte/notifications", data={"receipts": "NONE", "decisions": "DAILY"})
    assert done.status_code == 302
    db.session.expire_all()
    assert parent.receipts is ReceiptsChoice.NONE
    assert notification_choices.decisions_now(parent.id) is DecisionsChoice.DAILY
    profile = client.get("/mon-espace/compte").get_data(as_text=True)
    assert "Réponses de la mairie : un récapitulatif par jour, à 18 h." in profile


def test_no_mail_per_decision_for_an_activity_that_answers_at_once(app, agent):
    """Its receipt already says the answer (and a parent who chose no receipts chose no mail)."""
    from portail.models import ValidationMode

    activity = canteen(validation_mode=ValidationMode.AUTOMATIC)
    db.session.add(activity)
    request, _child, parent = pending_request(activity, email="claire@example.fr")
    assert request.lines[0].decided_at is not None and request.lines[0].decided_by_id is None
    choose(parent, DecisionsChoice.IMMEDIATE, datetime(2026, 9, 1, tzinfo=PARIS))  # (chosen before)
    assert digests.send_immediate(datetime(2026, 10, 1, 12, tzinfo=PARIS), timedelta(days=60)) == 0
    assert mails("decision_notice") == []
