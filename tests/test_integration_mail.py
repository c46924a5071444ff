"""Integration: real redis-server, real RQ worker and scheduler processes, a real SMTP sink."""

import time

import pytest
import sqlalchemy as sa

from portail.extensions import db
from portail.models import OutboxMessage, OutboxStatus, User
from tests.conftest import link_in_text
from tests.factories import VALID
from tests.support import mails_settled, start, wait_for

pytestmark = pytest.mark.integration


def test_worker_process_sends_the_activation_mail_through_smtp(live, redis_server, smtp):
    redis_server.start()
    start(live, "worker")
    client = live.test_client()
    assert client.post("/inscription", data=VALID).status_code == 302
    wait_for(lambda: smtp.messages, timeout=30)
    envelope = smtp.messages[0]
    assert envelope.rcpt_tos == ["alice.durand@example.fr"]
    text = envelope.content.decode("utf-8", "replace")
    assert "Activez votre compte" in text or "=?utf-8?" in text
    path = link_in_text(_decoded_body(envelope.content), "/activation/")
    assert client.post(path).status_code == 302
    db.session.expire_all()
    assert db.session.scalar(sa.select(User)).activated_at is not None
    wait_for(lambda: mails_settled(live), timeout=10)  # marked sent once the SMTP server accepted it
    assert db.session.scalar(sa.select(OutboxMessage)).status is OutboxStatus.SENT


def test_mail_queued_while_redis_is_down_goes_out_once_when_it_is_back(live, redis_server, smtp):
    client = live.test_client()
    assert client.post("/inscription", data=VALID).status_code == 302, "the request succeeds without Redis"
    assert db.session.scalar(sa.select(OutboxMessage)).status is OutboxStatus.PENDING
    redis_server.start()
    start(live, "worker")
    start(live, "scheduler")  # its relay job runs at start, then every 5 seconds
    wait_for(lambda: smtp.messages and mails_settled(live), timeout=40)  # then nothing more can arrive
    assert len(smtp.messages) == 1
    db.session.expire_all()
    assert db.session.scalar(sa.select(OutboxMessage)).status is OutboxStatus.SENT


def _decoded_body(raw: bytes) -> str:
    import email
    from email import policy

    message = email.message_from_bytes(raw, policy=policy.default)
    return message.get_body(preferencelist=("plain",)).get_content()


def test_the_mails_of_one_commit_go_to_the_worker_in_one_round_trip_and_all_go_out(live, redis_server, smtp):
    """A billing batch queues hundreds of mails: they are enqueued together (one Redis pipeline)."""
    from portail.services.outbox import commit, queue_mail

    redis_server.start()
    for n in range(3):
        queue_mail("password_changed", f"parent{n}@example.fr", first_name=f"Parent {n}")
    commit()
    assert len(live.extensions["portail_redis"].lrange("rq:queue:" + live.config["RQ_QUEUE"], 0, -1)) == 3
    start(live, "worker")
    wait_for(lambda: len(smtp.messages) == 3, timeout=30)
    assert sorted(envelope.rcpt_tos[0] for envelope in smtp.messages) == [
        f"parent{n}@example.fr" for n in range(3)
    ]


def test_the_scheduler_relays_a_booking_receipt_within_seconds(live, redis_server, smtp):
    """A request's receipt is not handed to Redis by the request: the scheduler's relay does it."""
    from portail import bookings
    from portail.models import RequestKind
    from portail.queue import get_redis
    from portail.services.outbox import commit
    from tests.factories import NOW, THURSDAY, canteen, enrolled_child, make_user

    redis_server.start()
    activity = canteen()
    db.session.add(activity)
    family, child = enrolled_child(activity)
    parent = make_user()
    commit()
    bookings.submit(family.id, parent, child, activity, RequestKind.RESERVATION, [THURSDAY], NOW, "C")
    commit()
    assert get_redis().llen("rq:queue:" + live.config["RQ_QUEUE"]) == 0, "the request enqueued nothing"
    start(live, "worker")
    start(live, "scheduler")
    began = time.monotonic()
    wait_for(lambda: smtp.messages, timeout=30)
    assert time.monotonic() - began < 20
    assert smtp.messages[0].rcpt_tos == [parent.email]

    def marked_sent() -> bool:  # the worker marks the row once the SMTP server has accepted the mail
        db.session.expire_all()
        return db.session.scalar(sa.select(OutboxMessage)).status is OutboxStatus.SENT

    wait_for(marked_sent, timeout=10)
