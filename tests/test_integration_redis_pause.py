"""Integration: after a stalled Redis made one enqueue wait out its timeout, the process's next
enqueues skip Redis at once for a while (their mails wait in the outbox for the relay), then try
it again — so a stall does not hold every request that sends a mail, nor the web workers."""

import time

import pytest

from portail.queue import enqueue
from tests.conftest import make_app

pytestmark = pytest.mark.integration

PAUSE = 15.0  # REDIS_PAUSE_AFTER_FAILURE for this test: longer than one stalled enqueue (2 × 5 s)


def timed(call):
    began = time.monotonic()
    result = call()
    return result, time.monotonic() - began


def test_after_a_stalled_enqueue_the_next_ones_skip_redis_until_the_pause_ends(tmp_path, redis_server):
    redis_server.start()
    app = make_app(
        f"sqlite:///{tmp_path / 'pause.sqlite'}",
        REDIS_URL=redis_server.url,
        RQ_SYNC=False,
        REDIS_PAUSE_AFTER_FAILURE=PAUSE,
    )
    with app.app_context():
        assert enqueue("portail.jobs.relay_outbox") is True
        redis_server.pause()
        try:
            queued, waited = timed(lambda: enqueue("portail.jobs.relay_outbox"))
            assert queued is False and waited >= 1, "the stalled Redis answered"
            failed_at = time.monotonic()
            for _ in range(5):
                queued, skipped = timed(lambda: enqueue("portail.jobs.relay_outbox"))
                assert queued is False and skipped < 0.1, (
                    f"an enqueue waited {skipped:.1f} s on a stalled Redis"
                )
        finally:
            redis_server.resume()
        assert enqueue("portail.jobs.relay_outbox") is False, "Redis is tried again only after the pause"
        time.sleep(max(0.0, failed_at + PAUSE - time.monotonic()) + 0.1)  # the pause itself is the point
        assert enqueue("portail.jobs.relay_outbox") is True
