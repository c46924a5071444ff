"""Background processes: `python worker.py worker` (RQ jobs) or `python worker.py scheduler`.

Both run inside an app context so jobs can use the database, templates and mail. The worker runs
each job in its own process, without RQ's fork per job (a fork, the child's start and exit cost
~50 ms of CPU per mail, ten times the mail itself); each job starts with a fresh database session,
as a forked child did. Neither exits
on a Redis outage: RQ's loops give up on some Redis errors (the cron scheduler on any, the
worker on a timeout), so each loop runs under `Supervisor`, which starts it again after a
growing, capped delay until SIGINT or SIGTERM. A job that meets a database outage fails inside
RQ and is retried (the mails) or runs again at its next interval (the recurring jobs).
"""

import gc
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable

import redis
from rq import SimpleWorker
from rq.cron import CronScheduler

from portail import create_app
from portail.extensions import db
from portail.queue import connect
from portail.services.outbox import RELAY_EVERY

log = logging.getLogger("portail.worker")
ROLES = ("worker", "scheduler")  # python worker.py <role>

# Recurring jobs: (dotted job name, interval in seconds).
RECURRING = [
    ("portail.jobs.relay_outbox", RELAY_EVERY),  # the planning's receipts, and any mail left behind
    ("portail.jobs.dispatch_digests", 60),
    ("portail.jobs.purge_unactivated_accounts", 3600),
    ("portail.jobs.documents_expiry", 3600),
    ("portail.jobs.kitchen_headcounts_mail", 60),  # no query before the time, one once sent
    ("portail.jobs.invoice_reminders", 60),  # likewise: the day's reminders at their time
    ("portail.jobs.waiting_lists", 60),  # offers expired passed on, lines closed at their deadline
]
# Redis errors that end an RQ loop and pass (a restart, a stall, a network cut); BusyLoadingError,
# while a restarted Redis reads its dump, is a ConnectionError.
TRANSIENT = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
FIRST_DELAY = 1.0  # seconds before the first restart of a loop
MAX_DELAY = 30.0  # the delay doubles up to this; a loop that ran longer than this starts again at FIRST_DELAY
# The worker's maintenance also restarts RQ's retry scheduler (a child process, which a Redis error
# ends): every minute rather than RQ's ten, so a mail's retry is not held up long after an outage.
MAINTENANCE_INTERVAL = 60


class Supervisor:
    """Run an RQ loop again after it ends on a Redis error, with a growing delay, until stopped."""

    def __init__(self, role: str, first_delay: float = FIRST_DELAY, max_delay: float = MAX_DELAY):
        self.role = role
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.stopping = threading.Event()

    def request_stop(self, signum=None, frame=None) -> None:
        self.stopping.set()

    def run(self, loop: Callable[[], None]) -> None:
        """Call `loop` until a stop is requested; it returns or raises a TRANSIENT error when its
        Redis fails (other errors propagate: the process exits and its own supervisor restarts it)."""
        delay = self.first_delay
        while not self.stopping.is_set():
            started = time.monotonic()
            try:
                loop()
                # (RQ's worker returns after logging a Redis timeout or another error)
                reason = "its RQ loop ended, see the error above"
            except TRANSIENT as error:
                reason = f"Redis unreachable, {type(error).__name__}: {error}"
            # RQ's handlers stay installed after its loop and call Redis: ours only set the flag.
            self.install_signal_handlers()
            if self.stopping.is_set():
                break
            if time.monotonic() - started > self.max_delay:
                delay = self.first_delay  # it had been running: a new outage
            log.warning("%s: %s; starting again in %.0f s", self.role, reason, delay)
            self.stopping.wait(delay)
            delay = min(delay * 2, self.max_delay)
        log.info("%s stopped", self.role)

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGTERM, self.request_stop)


def run_worker(app, supervisor: Supervisor) -> None:
    """Process jobs until stopped; retries are scheduled by the worker's own scheduler."""

    class SupervisedWorker(SimpleWorker):
        def request_stop(self, signum, frame):
            supervisor.request_stop()  # first: RQ's own handler calls Redis, which may be down
            super().request_stop(signum, frame)

        def perform_job(self, job, queue) -> bool:
            try:
                return super().perform_job(job, queue)
            finally:
                # Nothing a job left in the session (objects, a failed transaction) reaches the next.
                db.session.remove()

    def work() -> None:
        # A new worker each time: the last one's registration may still be in Redis. Its own
        # connection: RQ raises the socket timeout to its long blocking pop, and the jobs' enqueues
        # (the app's connection) should keep their short one.
        worker = SupervisedWorker(
            [app.config["RQ_QUEUE"]], connection=connect(app), maintenance_interval=MAINTENANCE_INTERVAL
        )
        try:
            worker.work(with_scheduler=True)
        finally:
            if worker.pubsub_thread:  # left running when RQ's teardown failed on Redis
                worker.pubsub_thread.stop()

    supervisor.run(work)


def run_scheduler(app, supervisor: Supervisor) -> None:
    """Enqueue the recurring jobs at their intervals."""
    from importlib import import_module

    class SupervisedScheduler(CronScheduler):
        def _request_stop(self, signum, frame):
            supervisor.request_stop()
            super()._request_stop(signum, frame)

    # One scheduler for every restart: its jobs keep their last run times (the hourly ones do not
    # run again because Redis stalled).
    scheduler = SupervisedScheduler(connection=connect(app))
    for dotted, interval in RECURRING:
        module, _, name = dotted.rpartition(".")
        scheduler.register(
            getattr(import_module(module), name), queue_name=app.config["RQ_QUEUE"], interval=interval
        )
    supervisor.run(scheduler.start)


def main(argv: list[str]) -> None:
    role = argv[1] if len(argv) > 1 else "worker"
    if role not in ROLES:
        sys.exit(f"usage: python worker.py [{'|'.join(ROLES)}]")
    app = create_app()
    # RQ reports every job at INFO: with the relay every 5 seconds, a dozen lines a minute of
    # routine. Its warnings and errors (a failed job, with its traceback) still show.
    for name in ("rq.worker", "rq.cron", "rq.scheduler"):
        logging.getLogger(name).setLevel(logging.WARNING)
    log.info("%s started on queue %s", role, app.config["RQ_QUEUE"])
    gc.freeze()  # long-lived objects out of the collector's scans (see app.py)
    supervisor = Supervisor(role)
    supervisor.install_signal_handlers()
    with app.app_context():
        (run_worker if role == "worker" else run_scheduler)(app, supervisor)


if __name__ == "__main__":
    main(sys.argv)
