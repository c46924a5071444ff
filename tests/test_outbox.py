"""The e-mail outbox: same transaction, sent once, retried, relayed when Redis was down."""

from datetime import timedelta

import fakeredis
import pytest
import sqlalchemy as sa

from portail.extensions import db, mail
from portail.models import OutboxMessage, OutboxStatus, utcnow
from portail.services import outbox
from tests.conftest import make_app
from tests.factories import VALID

pytestmark = pytest.mark.both_dbs


def rows(status=None):
    statement = sa.select(OutboxMessage)
    if status:
        statement = statement.where(OutboxMessage.status == status)
    return db.session.scalars(statement).all()


def test_rolled_back_change_leaves_no_mail(app, mails):
    with app.test_request_context():
        outbox.queue_mail(
            "activation", "a@example.fr", first_name="A", link="http://x/activation/t", hours=48
        )
        outbox.rollback()
    assert rows() == [] and mails == []


def test_deliver_sends_once_even_when_called_twice(app, mails):
    with app.test_request_context():
        message_id = outbox.queue_mail(
            "activation", "a@example.fr", first_name="A", link="http://x/a", hours=48
        )
        db.session.commit()
    assert outbox.deliver(message_id) is True
    assert outbox.deliver(message_id) is False
    assert len(mails) == 1
    assert mails[0].body.startswith("Bonjour A,") and '<a href="http://x/a">' in mails[0].html
    db.session.expire_all()
    assert rows()[0].status is OutboxStatus.SENT


def test_smtp_failure_keeps_the_mail_pending_for_a_retry(app, mails, monkeypatch):
    with app.test_request_context():
        message_id = outbox.queue_mail(
            "activation", "a@example.fr", first_name="A", link="http://x/a", hours=48
        )
        db.session.commit()
    original = mail.send

    def broken(_message):
        raise ConnectionRefusedError("SMTP down")

    monkeypatch.setattr(mail, "send", broken)
    with pytest.raises(ConnectionRefusedError):
        outbox.deliver(message_id)
    db.session.expire_all()
    row = rows()[0]
    assert (row.status, row.attempts) == (OutboxStatus.PENDING, 1)
    assert "SMTP down" in row.last_error
    monkeypatch.setattr(mail, "send", original)
    assert outbox.deliver(message_id) is True
    assert len(mails) == 1


def test_relay_resets_mails_stuck_in_sending_after_a_worker_died(app, mails):
    with app.test_request_context():
        message_id = outbox.queue_mail(
            "activation", "a@example.fr", first_name="A", link="http://x/a", hours=48
        )
        db.session.commit()
    message = db.session.get(OutboxMessage, message_id)
    message.status = OutboxStatus.SENDING
    message.claimed_at = utcnow() - timedelta(minutes=11)
    db.session.commit()
    assert outbox.relay(now=utcnow() + timedelta(minutes=3)) == 1
    assert len(mails) == 1


def test_signup_succeeds_with_redis_down_and_its_mail_is_sent_once_redis_is_back(db_url, mails):
    app = make_app(
        db_url,
        REDIS_URL="redis://127.0.0.1:9/0",
        RQ_SYNC=False,
        RATELIMIT_STORAGE_URI="redis://127.0.0.1:9/0",
    )
    with app.app_context():
        db.create_all()
        try:
            with mail.record_messages() as sent:
                response = app.test_client().post("/inscription", data=VALID)
                assert response.status_code == 302
                pending = rows(OutboxStatus.PENDING)
                assert len(pending) == 1 and sent == []
                # Redis is back: the relay hands the mail to the (inline) worker, once.
                app.extensions["portail_redis"] = fakeredis.FakeRedis()
                app.config["RQ_SYNC"] = True
                assert outbox.relay(now=utcnow()) == 0, "too recent: the normal enqueue may still happen"
                assert outbox.relay(now=utcnow() + timedelta(minutes=3)) == 1
                assert outbox.relay(now=utcnow() + timedelta(minutes=6)) == 0
                assert len(sent) == 1 and sent[0].recipients == ["alice.durand@example.fr"]
        finally:
            db.session.remove()
            db.drop_all()
            db.engine.dispose()
