"""The RQ worker's cost per mail: N outbox mails sent by one `python worker.py worker` through
redis-server and an SMTP sink (aiosmtpd); prints the wall time to drain them and the CPU the
worker spent per mail (its own and its work horses', from /proc).

    .venv/bin/python bench/profile_mail_worker.py --mails 200
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from portail import create_app  # noqa: E402
from portail.extensions import db  # noqa: E402
from portail.models import OutboxMessage, OutboxStatus  # noqa: E402
from portail.services.outbox import commit, queue_mail  # noqa: E402
from tests.support import RedisServer, SmtpSink, process_env, start_process, stop_process  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """The process's CPU, its waited-for children's included (a forking worker's horses)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(value) for value in fields[11:15]) / TICKS  # utime, stime, cutime, cstime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mails", type=int, default=200)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="portail-mails-"))
    redis, smtp = RedisServer(work), SmtpSink()
    redis.start()
    smtp.start()
    db_url = f"sqlite:///{work / 'mails.sqlite'}"
    app = create_app(
        "testing",
        {
            "SQLALCHEMY_DATABASE_URI": db_url,
            "REDIS_URL": redis.url,
            "RQ_SYNC": False,
            "UPLOAD_DIR": str(work),
        },
    )
    worker = None
    try:
        with app.app_context():
            db.create_all()
            worker = start_process("worker", process_env(db_url, redis.url, smtp.port), work / "worker.log")
            time.sleep(3)  # the worker's start-up (imports, app) is not a mail's cost
            before, started = cpu_seconds(worker.pid), time.monotonic()
            for n in range(args.mails):
                queue_mail("password_changed", f"parent{n}@example.fr", first_name=f"Parent {n}")
            commit()
            while len(smtp.messages) < args.mails:
                if time.monotonic() - started > 300:
                    raise SystemExit(f"only {len(smtp.messages)} of {args.mails} mails sent in 5 minutes")
                time.sleep(0.05)
            elapsed = time.monotonic() - started
            cpu = cpu_seconds(worker.pid) - before
            sent = db.session.scalar(
                db.select(db.func.count()).where(OutboxMessage.status == OutboxStatus.SENT)
            )
        print(
            f"{args.mails} mails: drained in {elapsed:.1f} s ({args.mails / elapsed:.0f} mails/s), "
            f"worker CPU {1000 * cpu / args.mails:.1f} ms per mail; outbox rows sent: {sent}; "
            f"SMTP messages: {len(smtp.messages)}"
        )
    finally:
        if worker is not None:
            stop_process(worker)
        smtp.stop()
        redis.stop()
        subprocess.run(["rm", "-rf", str(work)], check=False)


if __name__ == "__main__":
    main()
