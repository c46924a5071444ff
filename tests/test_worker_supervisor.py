"""worker.py's supervisor: an RQ loop that ends on a Redis error is started again after a growing,
capped delay, until a stop is requested; other errors end the process."""

import logging
import signal

import pytest
import redis

from worker import Supervisor


@pytest.fixture(autouse=True)
def _supervisor_in_the_test_process(monkeypatch):
    """The supervisor installs its SIGINT/SIGTERM handlers: not in the test process. Its logger
    may have been disabled by an earlier test (Alembic's logging setup disables existing loggers)."""
    monkeypatch.setattr(signal, "signal", lambda signum, handler: None)
    monkeypatch.setattr(logging.getLogger("portail.worker"), "disabled", False)


def supervised(failures: list[BaseException | None], role="worker", first_delay=1.0, max_delay=4.0):
    """A supervisor whose loop fails as listed (None: it returns), then asks to stop; the delays it
    waited are in `.waited`."""
    supervisor = Supervisor(role, first_delay=first_delay, max_delay=max_delay)
    supervisor.waited = []
    supervisor.stopping.wait = lambda delay: supervisor.waited.append(delay)
    supervisor.runs = 0

    def loop():
        supervisor.runs += 1
        if supervisor.runs > len(failures):
            supervisor.request_stop()
            return
        if failures[supervisor.runs - 1] is not None:
            raise failures[supervisor.runs - 1]

    supervisor.loop = loop
    return supervisor


def test_a_loop_ended_by_redis_errors_is_started_again_with_a_growing_capped_delay(caplog):
    errors = [
        redis.exceptions.TimeoutError("Timeout reading from socket"),
        redis.exceptions.ConnectionError("Connection refused"),
        redis.exceptions.BusyLoadingError("Redis is loading the dataset in memory"),
        None,  # RQ's worker returns, without raising, after a Redis timeout
        redis.exceptions.ConnectionError("Connection refused"),
    ]
    supervisor = supervised(errors)
    with caplog.at_level(logging.WARNING, logger="portail.worker"):
        supervisor.run(supervisor.loop)
    assert supervisor.runs == len(errors) + 1
    assert supervisor.waited == [1.0, 2.0, 4.0, 4.0, 4.0]
    warnings = [record.getMessage() for record in caplog.records]
    assert len(warnings) == len(errors)
    assert (
        warnings[0]
        == "worker: Redis unreachable, TimeoutError: Timeout reading from socket; starting again in 1 s"
    )
    assert warnings[3] == "worker: its RQ loop ended, see the error above; starting again in 4 s"


def test_a_stop_requested_during_the_loop_is_not_followed_by_a_restart(caplog):
    supervisor = supervised([], role="scheduler")
    runs = []

    def loop():
        runs.append(1)
        supervisor.request_stop()  # SIGTERM; RQ's own handler then fails on the stalled Redis
        raise redis.exceptions.TimeoutError("Timeout reading from socket")

    with caplog.at_level(logging.INFO, logger="portail.worker"):
        supervisor.run(loop)
    assert runs == [1]
    assert supervisor.waited == []
    assert [record.getMessage() for record in caplog.records] == ["scheduler stopped"]


def test_an_error_that_is_not_redis_s_ends_the_process():
    supervisor = supervised([ImportError("no module named portail.jobs")])
    with pytest.raises(ImportError):
        supervisor.run(supervisor.loop)
    assert supervisor.waited == []
