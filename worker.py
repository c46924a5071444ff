"""Background processes: `python worker.py worker` (RQ jobs) or `python worker.py scheduler`.

Both run inside an app context so jobs can use the database, templates and mail.
"""

import gc
import logging
import sys

from rq import Worker
from rq.cron import CronScheduler

from portail import create_app
from portail.queue import get_redis
from portail.services.outbox import RELAY_EVERY

log = logging.getLogger("portail.worker")

# Recurring jobs: (dotted job name, interval in seconds).
RECURRING = [
    ("portail.jobs.relay_outbox", RELAY_EVERY),  # the planning's receipts, and any mail left behind
    ("portail.jobs.dispatch_digests", 60),
    ("portail.jobs.purge_unactivated_accounts", 3600),
    ("portail.jobs.documents_expiry", 3600),
]


def run_worker(app) -> None:
    """Process jobs until stopped; retries are scheduled by the worker's own scheduler."""
    worker = Worker([app.config["RQ_QUEUE"]], connection=get_redis())
    worker.work(with_scheduler=True)


def run_scheduler(app) -> None:
    """Enqueue the recurring jobs at their intervals."""
    from importlib import import_module

    scheduler = CronScheduler(connection=get_redis())
    for dotted, interval in RECURRING:
        module, _, name = dotted.rpartition(".")
        scheduler.register(
            getattr(import_module(module), name), queue_name=app.config["RQ_QUEUE"], interval=interval
        )
    scheduler.start()


def main(argv: list[str]) -> None:
    role = argv[1] if len(argv) > 1 else "worker"
    if role not in {"worker", "scheduler"}:
        sys.exit("usage: python worker.py [worker|scheduler]")
    app = create_app()
    # RQ reports every job at INFO: with the relay every 5 seconds, a dozen lines a minute of
    # routine. Its warnings and errors (a failed job, with its traceback) still show.
    for name in ("rq.worker", "rq.cron", "rq.scheduler"):
        logging.getLogger(name).setLevel(logging.WARNING)
    log.info("%s started on queue %s", role, app.config["RQ_QUEUE"])
    gc.freeze()  # long-lived objects out of the collector's scans (see app.py)
    with app.app_context():
        (run_worker if role == "worker" else run_scheduler)(app)


if __name__ == "__main__":
    main(sys.argv)
