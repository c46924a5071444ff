"""The opening-day scenario, run by locust for bench/peak.py (which writes the configuration file
named by PEAK_CONFIG and reads what this file writes back); not meant to be run alone.

`Parent`: one simulated parent, who goes through the morning once — login page (and the static
files a browser fetches on its first visit), login, Espace Famille, the planning on the month of
the holiday week; at the opening minute books the holiday centre (two parents in three by cell
clicks, confirmation then htmx POST; the third by the Réservations period form), reloads the
planning and opens Mes demandes; 1–3 s of thought between two pages. `Hello`: the cheapest route,
as fast as it answers (the machine's ceiling). With N processes (`peak.py --clients N`: locust
--processes N), each takes every N-th account and the master ends the run once every parent is
through.

A page may be a waiting page (`X-Waiting-Room: <position>`, HTTP 200 in the line of an opening —
the login form's or the booking pages' — or 503 with `Retry-After` when the server sheds load): it
counts as a success under the name "WAIT <page>". In a line, the parent then does what the page's
htmx does in a browser: asks the status fragment (`hx-get`) at the pace the page sets
(`hx-trigger="every N s"`), "WAIT status (htmx)", until it answers with `HX-Redirect`; after a 503,
it waits `Retry-After`. Then it asks the same URL again, with its cookies (a held POST is sent
again: the page said it was not recorded).
"""

import html
import json
import os
import random
import re
import resource
import time
from http.cookiejar import DefaultCookiePolicy
from itertools import count
from urllib.parse import urlencode

import gevent
import gevent.ssl
from locust import FastHttpUser, constant, events, task
from locust.runners import MasterRunner, WorkerRunner

CONFIG = json.loads(open(os.environ["PEAK_CONFIG"], encoding="utf-8").read())
_next_parent = count()
_listening = False
FINISHED = "parent_finished"  # a worker process's message to the master (peak.py --clients N)
# What the parents saw, for the checks against the database (each process writes its own file,
# CONFIG["results"] followed by its process id; peak.py adds them up).
RESULTS = {
    "parents_finished": 0,
    "parents": [],  # the accounts' indexes (each parent once, whichever process ran them)
    "parents_waited": 0,
    "requests_created_seen": 0,  # requests the answers to the booking POSTs said were created
    "cell_posts_ok": 0,
    "period_posts_ok": 0,
    "booking_posts_not_created": 0,
    "logins_refused": 0,
    "times": {"admitted": [], "waiting": []},  # ms, every answer (real pages, waiting pages)
}
CSRF_INPUT = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
CSRF_HEADER = re.compile(r'"X-CSRFToken": "([^"]+)"')
STATIC = re.compile(r'(?:href|src)="(/static/[^"]+)"')
POLL = re.compile(r'hx-get="(/salle-d-attente/etat[^"]*)" hx-trigger="every (\d+)s"')
CREATED = re.compile(r"(\d+) demandes? enregistrées?")
# The states of a cell after a reservation went through (a full day is a request refused "Complet").
BOOKED_CELL = re.compile(r'class="cell state-(reserved|refused|reservation_requested)"')
OK_STATUSES = {200, 302, 303}


class LoopbackSecureCookies(DefaultCookiePolicy):
    """Send `Secure` cookies to 127.0.0.1 and localhost over plain HTTP, as browsers do (they treat
    loopback as a secure context); Python's cookie jar otherwise keeps them for https only, and the
    production session cookie is Secure."""

    def return_ok_secure(self, cookie, request):
        host = request.host.split(":")[0]
        return host in ("127.0.0.1", "localhost") or super().return_ok_secure(cookie, request)


# One TLS context for every simulated browser (nginx's certificate is the bench's throwaway one:
# not verified). Without it, geventhttpclient loads certifi's CA bundle into a new context for each
# user: ~50 ms of the load generator's CPU per parent, 2 minutes of a core at 2,500 parents, which
# delayed their arrival by up to a minute and then sent them in a burst.
_TLS = gevent.ssl._create_unverified_context()


def shared_tls_context(cafile=None):
    return _TLS


def think() -> None:
    gevent.sleep(random.uniform(CONFIG["think_min"], CONFIG["think_max"]))


def header(response, name: str) -> str | None:
    headers = response.headers or {}
    return headers.get(name) or headers.get(name.lower())


def failure(response) -> str:
    """Why an answer failed: its status, or why none came (status 0: a time-out, a reset…)."""
    if response.status_code:
        return f"HTTP {response.status_code}"
    found = re.search(r"original=(.*?)\)?$", str(getattr(response, "error", "")))
    return f"no answer: {found.group(1) if found else response.error!r}"


class Parent(FastHttpUser):
    wait_time = constant(0)
    ssl_context_factory = staticmethod(shared_tls_context)
    network_timeout = CONFIG["timeout"]
    connection_timeout = CONFIG["timeout"]

    def on_start(self) -> None:
        global _listening
        if not _listening:  # (from the module whose users run: locust may import a locustfile twice)
            self.environment.events.quitting.add_listener(write_results)
            _listening = True
        self.client.cookiejar.set_policy(LoopbackSecureCookies())
        # With N processes (peak.py --clients N), the k-th parent of process i is the (k·N + i)-th.
        runner = self.environment.runner
        worker = runner.worker_index if isinstance(runner, WorkerRunner) else 0
        number = next(_next_parent) * CONFIG.get("clients", 1) + worker
        self.parent = CONFIG["parents"][number % len(CONFIG["parents"])]
        self.index = self.parent["index"]
        RESULTS["parents"].append(self.index)
        self.waited = False
        self.cached: set[str] = set()

    def fetch(self, method: str, url: str, name: str, form: dict | None = None, headers=None):
        """One page (or a POST of `form`), asked again after each waiting page; None when it failed."""
        kwargs = {"headers": dict(headers or {})}
        if method == "POST":  # (as browsers do: Flask-WTF checks it on HTTPS)
            kwargs["headers"]["Referer"] = CONFIG["host"] + url
        if form is not None:
            kwargs["data"] = urlencode(form, doseq=True)
            kwargs["headers"]["Content-Type"] = "application/x-www-form-urlencoded"
        while True:
            with self.client.request(
                method, url, name=name, catch_response=True, allow_redirects=False, **kwargs
            ) as response:
                position = header(response, "X-Waiting-Room")
                waiting = position is not None and response.status_code in (200, 503)
                RESULTS["times"]["waiting" if waiting else "admitted"].append(
                    round(response.request_meta["response_time"], 1)
                )
                if waiting:
                    response.request_meta["name"] = f"WAIT {name}"
                    response.success()
                    if not self.waited:
                        self.waited = True
                        RESULTS["parents_waited"] += 1
                    retry = header(response, "Retry-After") or ""
                    delay = float(retry) if retry.isdigit() else CONFIG["waiting_retry"]
                    poll = POLL.search(response.text or "") if response.status_code == 200 else None
                elif response.status_code in OK_STATUSES:
                    response.success()
                    return response
                else:
                    response.failure(failure(response))
                    return None
            if poll:
                self.wait_in_line(html.unescape(poll.group(1)), int(poll.group(2)))
            else:
                gevent.sleep(delay)

    def wait_in_line(self, url: str, every: int) -> None:
        """Poll the waiting page's status fragment as its htmx does, until it sends the parent in."""
        while True:
            gevent.sleep(every)
            with self.client.request(
                "GET",
                url,
                name="WAIT status (htmx)",
                headers={"HX-Request": "true"},
                catch_response=True,
                allow_redirects=False,
            ) as response:
                RESULTS["times"]["waiting"].append(round(response.request_meta["response_time"], 1))
                if response.status_code == 204:  # nothing new: the same poll again
                    response.success()
                    continue
                if response.status_code == 200 and header(response, "HX-Redirect"):
                    response.success()
                    return
                found = POLL.search(response.text or "") if response.status_code == 200 else None
                if not found:
                    response.failure(failure(response))
                    return
                response.success()
                url, every = html.unescape(found.group(1)), int(found.group(2))

    def page(self, url: str, name: str):
        """A GET, following its redirects as a browser does (each step measured on its own)."""
        response = self.fetch("GET", url, name)
        while response is not None and response.status_code in (302, 303):
            location = header(response, "Location")
            url = location.split("://", 1)[-1].split("/", 1)[-1]
            url = "/" + url if location.startswith("http") else location
            response = self.fetch("GET", url, "GET " + re.sub(r"/\d+", "/<id>", url.split("?")[0]))
        return response

    def statics(self, html: str) -> None:
        """The stylesheet and scripts of a page, the first time they are seen (then cached: their
        URLs carry their hash and are immutable)."""
        for path in STATIC.findall(html):
            path = path.replace("&amp;", "&")
            if path not in self.cached:
                self.cached.add(path)
                self.fetch("GET", path, "GET static")

    @task
    def opening_morning(self) -> None:
        parent = self.parent
        family = parent["family_id"]
        login_page = self.page("/connexion", "GET /connexion")
        if login_page is None:
            return self.finish()
        self.statics(login_page.text)
        think()
        token = CSRF_INPUT.search(login_page.text).group(1)
        form = {"email": parent["email"], "password": CONFIG["password"], "csrf_token": token}
        response = self.fetch("POST", "/connexion", "POST /connexion", form=form)
        if response is None or response.status_code != 302:
            RESULTS["logins_refused"] += 1
            return self.finish()
        self.page(header(response, "Location"), "GET /mon-espace/")
        think()
        self.page("/famille/", "GET /famille/ (Espace Famille)")
        think()
        planning_url = f"/famille/{family}/planning?vue=mois&date={CONFIG['days'][0]}"
        planning = self.page(planning_url, "GET planning")
        if planning is None:
            return self.finish()
        gevent.sleep(max(0.0, CONFIG["opens_at"] - time.time()) + random.uniform(0, 2))
        if self.index % 3 == 2:
            self.book_by_period(family)
        else:
            self.book_by_cells(family, planning.text)
        think()
        self.page(planning_url, "GET planning")
        think()
        self.page("/mon-espace/demandes", "GET Mes demandes")
        self.finish()

    def book_by_cells(self, family: int, planning_html: str) -> None:
        """Réserver then Confirmer on each day of the holiday week, for the first child."""
        found = CSRF_HEADER.search(planning_html)
        if not found:
            return
        child, activity = self.parent["child_ids"][0], CONFIG["activity_id"]
        for day in CONFIG["days"]:
            cell = f"enfant={child}&activite={activity}&jour={day}"
            confirm = self.fetch(
                "GET",
                f"/famille/{family}/planning/confirmer?{cell}&action=reserve",
                "GET cell confirm (htmx)",
                headers={"HX-Request": "true"},
            )
            think()
            if confirm is None or 'name="action" value="reserve"' not in confirm.text:
                continue
            response = self.fetch(
                "POST",
                f"/famille/{family}/planning/cellule",
                "POST cell (htmx)",
                form={"enfant": child, "activite": activity, "jour": day, "action": "reserve"},
                headers={"HX-Request": "true", "X-CSRFToken": found.group(1)},
            )
            if response is not None and BOOKED_CELL.search(response.text):
                RESULTS["cell_posts_ok"] += 1
                RESULTS["requests_created_seen"] += 1
            elif response is not None:
                RESULTS["booking_posts_not_created"] += 1

    def book_by_period(self, family: int) -> None:
        """The Réservations form: every child, the holiday week, Monday to Friday."""
        url = f"/famille/{family}/planning/periode"
        form_page = self.page(url, "GET periode")
        if form_page is None:
            return
        think()
        form = {
            "csrf_token": CSRF_INPUT.search(form_page.text).group(1),
            "enfant": [str(child) for child in self.parent["child_ids"]],
            "activite": str(CONFIG["activity_id"]),
            "du": CONFIG["days"][0],
            "au": CONFIG["days"][-1],
            "jours": ["1", "2", "3", "4", "5"],
            "type": "reservation",
        }
        response = self.fetch("POST", url, "POST periode", form=form)
        if response is None:
            return
        if response.status_code != 302:
            RESULTS["booking_posts_not_created"] += 1
            return
        RESULTS["period_posts_ok"] += 1
        landing = self.page(header(response, "Location"), "GET demandes famille (after periode)")
        created = CREATED.search(landing.text) if landing is not None else None
        RESULTS["requests_created_seen"] += int(created.group(1)) if created else 0

    def finish(self) -> None:
        RESULTS["parents_finished"] += 1
        runner = self.environment.runner
        if isinstance(runner, WorkerRunner):
            runner.send_message(FINISHED)  # (the master counts them and ends the run)
        elif RESULTS["parents_finished"] >= CONFIG["parents_count"]:
            gevent.spawn_later(1, runner.quit)
        while True:  # one morning each: stay idle until the run ends
            gevent.sleep(3600)


class Hello(FastHttpUser):
    """The cheapest route of the app, as fast as the server answers."""

    wait_time = constant(0)
    ssl_context_factory = staticmethod(shared_tls_context)

    @task
    def hello(self) -> None:
        self.client.get(CONFIG["hello_path"], name="hello")


def write_results(**_kwargs) -> None:
    """What the parents of this process saw, and the CPU it used, for peak.py."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    RESULTS["cpu"] = usage.ru_utime + usage.ru_stime
    if CONFIG.get("results"):
        with open(f"{CONFIG['results']}.{os.getpid()}", "w", encoding="utf-8") as file:
            json.dump(RESULTS, file)


@events.init.add_listener
def count_finished_parents(environment, **_kwargs) -> None:
    """With worker processes, the master ends the run once every parent went through the morning."""
    runner = environment.runner
    if not isinstance(runner, MasterRunner) or FINISHED in runner.custom_messages:
        return
    finished = count(1)

    def one_more(**_kwargs) -> None:  # (called with environment= and msg=)
        if next(finished) == CONFIG["parents_count"]:
            gevent.spawn_later(1, runner.quit)

    runner.register_message(FINISHED, one_more)
