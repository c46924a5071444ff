"""gunicorn settings of the web process: `gunicorn -c gunicorn.conf.py app:app` (README, deploy/systemd).

Worker model measured on the 2-core machine with bench/profile_hot_paths.py (demo town on
PostgreSQL, redis-server, wrk at 16 connections, 5-6 s per run, pairs alternated; the machine was
shared and loaded, so figures vary by run): two processes of four threads (gthread) served the
planning page at 78-221 req/s for 3.1-7.3 ms of worker CPU per page, against 28-47 req/s and
11.6-12.8 ms for the four sync workers used before (and 45-90 req/s for three sync workers); login
POSTs were on a par (11-13 a second each, ~35 ms of CPU, the argon2 verification). One process per
core keeps the processes from competing for the two cores, and a thread waiting on PostgreSQL or
Redis lets another run; two threads per process did worse, eight no better than four within the
noise. Command-line options and GUNICORN_* variables override these.
"""

import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
worker_class = "gthread"
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
# The waiting room measures how busy a process is against the requests it can serve at once: a
# process runs Python on one core at a time (the GIL), so with the waits on PostgreSQL and Redis
# about two requests in flight keep it busy, and more only queue. Measured with bench/peak.py at
# 2,500 parents: slots = 2 gave admitted pages p95 645 ms and waiting pages p95 129 ms, against
# 1,230 ms and 249 ms with slots = the 4 threads (the busy signal then never rose before the p95).
os.environ.setdefault("WAITING_ROOM_PROCESS_SLOTS", str(min(threads, 2)))

# The app is imported once in the master, then forked: workers start at once, share its memory
# copy-on-write (app.py freezes the long-lived objects out of the garbage collector first) and no
# request pays for a lazy import. A code update needs `systemctl reload portail-web` as before.
preload_app = True

# A worker whose main loop has not reported for this long is stuck: it is killed and replaced.
# (gthread: a single slow request does not stop that loop; nginx's proxy_read_timeout bounds what a
# parent waits, and requests that waited too long before a thread took them are dropped by
# portail/middleware.py.) Billing runs and mails run in the RQ worker, never here.
timeout = 30
# On stop or reload, requests in progress get this long to finish.
graceful_timeout = 30
# Behind nginx: a connection it keeps open waits in the worker's poller, not in a thread.
keepalive = 2
# No recycling of workers by default (GUNICORN_MAX_REQUESTS=N turns it on, with a jitter of N/5):
# measured in bench/peak.py, a gthread worker that retires resets the connections it had accepted
# and not yet answered — 45 "connection closed" failures at 1,000 parents with recycling every
# ~2,000 requests, 15 without, and behind nginx 502s on the hello route. Memory stays flat without
# it (the app keeps no per-request state); the systemd unit's MemoryMax bounds it anyway.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "0"))
max_requests_jitter = max_requests // 5

# The heartbeat file in memory, not on a disk that may stall under load.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None

# No access log here (nginx writes one): a line per request is CPU a peak has no spare of.
accesslog = None
errorlog = "-"
loglevel = "info"


def post_fork(server, worker):
    """Each worker opens its own database connections (none shared with the master across fork)."""
    from app import app
    from portail.extensions import db

    with app.app_context():
        db.engine.dispose(close=False)
