"""Two app nodes behind nginx (issue 15, point 4): whichever node answers, sessions, CSRF, rate
limits, uploads, exactly-once mails and the waiting room's line hold.

On this machine: two gunicorn nodes in the production configuration, each on its own port, behind
nginx running `deploy/nginx/portail.conf` itself (ports, paths and names substituted), sharing one
PostgreSQL database, one redis-server and one UPLOAD_DIR, with an RQ worker, two schedulers (as when
each machine runs the same units: README says two are harmless) and an SMTP sink.

nginx terminates TLS with a throwaway certificate, as in production, so the app sees HTTPS through
X-Forwarded-Proto (TRUSTED_PROXIES=1) and the client is an ordinary HTTPS client: its cookie jar keeps
and sends the Secure cookies, and its forms carry the Referer that Flask-WTF checks on HTTPS. No
cookie policy is bent and no header is faked to make it work. The test's nginx adds `X-Upstream: $upstream_addr` to
each answer, so the test knows which node answered (nginx's word, not the app's). The nodes take
turns (no stickiness); `Browser.on` makes the next request land on the node the check needs and
asserts that it did.
"""

import email
import email.policy
import html
import http.cookiejar
import re
import secrets
import shutil
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa
from flask import Flask
from flask.sessions import SecureCookieSessionInterface

from deploy.nginx.local import command as nginx_command
from deploy.nginx.local import nginx_config, self_signed, site_config
from portail.extensions import db
from portail.models import Document, DocumentScope, DocumentType, OutboxMessage, Request, Role, User, Validity
from portail.services import openings
from portail.waiting_room import admissions, gate
from tests.conftest import make_app, missing_service, tables
from tests.factories import (
    PASSWORD,
    PDF,
    VALID,
    cell_form,
    enrolled_child,
    make_activity,
    make_user,
    next_weekday,
    subscribe,
)
from tests.support import (
    ROOT,
    RedisServer,
    SmtpSink,
    free_port,
    mails_settled,
    process_env,
    start_process,
    stop_process,
    wait_for,
)

pytestmark = pytest.mark.integration

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
NODES = ("A", "B")


# --- the cluster ---------------------------------------------------------------------------------


@dataclass
class Cluster:
    base: str  # https://127.0.0.1:<port>, nginx
    http_base: str  # the plain-HTTP server, which only redirects
    tls: ssl.SSLContext
    nodes: dict  # "127.0.0.1:<port>" (nginx's $upstream_addr) -> "A" or "B"
    app: object  # a testing app on the same database, for setting up and reading back rows
    secret_key: str  # the nodes'
    smtp: SmtpSink

    def browser(self) -> "Browser":
        return Browser(self)


def answers(url: str, context: ssl.SSLContext | None = None) -> bool:
    try:
        urllib.request.urlopen(url, timeout=2, context=context).close()
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False
    return True


def started(process: subprocess.Popen, url: str, log: Path, context=None) -> bool:
    if process.poll() is not None:
        raise RuntimeError(f"{log.name} exited:\n{log.read_text(errors='replace')[-3000:]}")
    return answers(url, context)


def start_node(port: int, env: dict, log: Path) -> subprocess.Popen:
    """gunicorn serving app:app with the repository's gunicorn.conf.py (read from the working
    directory), fewer workers, on `port`. Like a node on a machine of its own, it trusts no proxy
    header itself (--forwarded-allow-ips: not nginx's address): only the app's ProxyFix does."""
    command = [sys.executable, "-m", "gunicorn", "--workers", "2", "--bind", f"127.0.0.1:{port}"]
    command += ["--forwarded-allow-ips", "192.0.2.1", "app:app"]
    with open(log, "wb") as output:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, pg_url):
    """nginx, two gunicorn nodes, an RQ worker, two schedulers, redis-server, an SMTP sink, one
    shared database."""
    if not Path(NGINX).exists():
        missing_service("nginx (Debian package nginx)")
    if not shutil.which("redis-server"):
        missing_service("redis-server (Debian package redis-server)")
    if not shutil.which("openssl"):
        missing_service("openssl (Debian package openssl)")
    try:
        import gunicorn  # noqa: F401
    except ImportError:
        missing_service("gunicorn (requirements.txt)")
    directory = tmp_path_factory.mktemp("two-nodes")
    logs = directory / "logs"
    logs.mkdir()
    uploads = directory / "uploads"  # the shared volume (NFS, CephFS) of a real deployment
    ports = {"A": free_port(), "B": free_port(), "tls": free_port(), "http": free_port()}
    with ExitStack() as stack:
        redis = RedisServer(directory)
        redis.start()
        stack.callback(redis.stop)
        smtp = SmtpSink()
        smtp.start()
        stack.callback(smtp.stop)
        app = make_app(pg_url, REDIS_URL=redis.url)
        stack.enter_context(tables(app, drop=True))
        env = process_env(
            pg_url,
            redis.url,
            smtp.port,
            PUBLIC_URL=f"https://127.0.0.1:{ports['tls']}",
            TRUSTED_PROXIES="1",
            UPLOAD_DIR=str(uploads),
        )
        processes = []
        stack.callback(lambda: [stop_process(process) for process in reversed(processes)])
        processes += [start_node(ports[node], env, logs / f"node-{node}.log") for node in NODES]
        processes.append(start_process("worker", env, logs / "worker.log"))
        for n in (1, 2):
            processes.append(start_process("scheduler", env, logs / f"scheduler-{n}.log"))
        cert, key = self_signed(directory)
        conf = directory / "nginx.conf"
        site = site_config([ports["A"], ports["B"]], ports["tls"], ports["http"], cert, key)
        # Test only: which node answered.
        extra = "    add_header X-Upstream $upstream_addr always;"
        conf.write_text(nginx_config(directory, site, extra), encoding="utf-8")
        nginx = nginx_command(NGINX, directory, conf)
        checked = subprocess.run([*nginx, "-t"], capture_output=True, text=True)
        assert checked.returncode == 0, checked.stderr
        with open(logs / "nginx.log", "wb") as output:
            processes.append(subprocess.Popen(nginx, stdout=output, stderr=subprocess.STDOUT))
        tls = ssl.create_default_context(cafile=str(cert))
        base = f"https://127.0.0.1:{ports['tls']}"
        for node, process in zip(NODES, processes, strict=False):
            url = f"http://127.0.0.1:{ports[node]}/"
            wait_for(lambda p=process, u=url, n=node: started(p, u, logs / f"node-{n}.log"), timeout=30)
        wait_for(lambda: started(processes[-1], base + "/static/", logs / "nginx.log", tls), timeout=10)
        yield Cluster(
            base=base,
            http_base=f"http://127.0.0.1:{ports['http']}",
            tls=tls,
            nodes={f"127.0.0.1:{ports[node]}": node for node in NODES},
            app=app,
            secret_key=env["SECRET_KEY"],
            smtp=smtp,
        )
        for log in logs.glob("node-*.log"):
            assert "Traceback" not in log.read_text(errors="replace"), (
                f"{log.name}:\n{log.read_text()[-3000:]}"
            )


# --- an HTTPS client -----------------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    headers: object
    body: bytes
    node: str | None  # "A", "B", or None when nginx answered itself

    @property
    def text(self) -> str:
        return html.unescape(self.body.decode("utf-8", "replace"))

    @property
    def location(self) -> str:
        return self.headers.get("Location", "")

    def csrf_token(self) -> str:
        match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', self.body.decode())
        assert match, "no CSRF token on the page"
        return match.group(1)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # each hop is checked by the test (which node answered it)


class Browser:
    """A browser's share of HTTP over TLS: a cookie jar (Secure cookies kept and sent, over HTTPS),
    the Referer of the page a form was on, no redirect followed."""

    def __init__(self, cluster: Cluster, jar: http.cookiejar.CookieJar | None = None):
        self.cluster = cluster
        self.jar = jar or http.cookiejar.CookieJar()
        self.page = cluster.base + "/"

    def tab(self) -> "Browser":
        """Another tab of the same browser (the same cookies)."""
        return Browser(self.cluster, self.jar)

    def copy(self) -> "Browser":
        """Another browser holding a copy of this one's cookies, as they are now (a stolen cookie)."""
        jar = http.cookiejar.CookieJar()
        for cookie in self.jar:
            jar.set_cookie(cookie)
        return Browser(self.cluster, jar)

    def request(self, method: str, path: str, data=None, files=None, headers=None) -> Answer:
        url = path if path.startswith("http") else self.cluster.base + path
        body, content_type = None, None
        if files:
            body, content_type = multipart(data or {}, files)
        elif data is not None:
            body = urllib.parse.urlencode(data, doseq=True).encode()
            content_type = "application/x-www-form-urlencoded"
        request = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
        if content_type:
            request.add_header("Content-Type", content_type)
        if method == "POST":
            request.add_header("Referer", self.page)
        opener = urllib.request.build_opener(
            urllib.request.HTTPSHandler(context=self.cluster.tls),
            urllib.request.HTTPCookieProcessor(self.jar),
            _NoRedirects(),
        )
        try:
            with opener.open(request, timeout=30) as response:
                answer = Answer(response.status, response.headers, response.read(), None)
        except urllib.error.HTTPError as error:
            answer = Answer(error.code, error.headers, error.read(), None)
        upstream = answer.headers.get("X-Upstream")
        answer.node = self.cluster.nodes[upstream] if upstream else None
        if method == "GET" and answer.status == 200:
            self.page = url
        return answer

    def get(self, path: str, **kwargs) -> Answer:
        return self.request("GET", path, **kwargs)

    def on(self, node: str, method: str, path: str, **kwargs) -> Answer:
        """The request, answered by `node`: nginx gives the nodes turns, so after an answer from the
        other node the next request goes to this one (checked). The turns are taken by a visitor
        without cookies, so that they change nothing in this browser's session (its flashes)."""
        for _ in range(4):
            if Browser(self.cluster).get("/").node != node:
                break
        answer = self.request(method, path, **kwargs)
        assert answer.node == node, f"{method} {path} answered by {answer.node}, not {node}"
        return answer


def multipart(fields: dict, files: dict) -> tuple[bytes, str]:
    """A multipart/form-data body: `files` maps a field to (file name, content type, bytes)."""
    boundary = secrets.token_hex(16)
    parts = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        )
    for name, (filename, content_type, data) in files.items():
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n"
        )
        parts.append(head.encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


# --- the checks ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def town(cluster):
    """A parent of a family with a child enrolled in the canteen, a document asked of families, a
    second account that strangers try passwords on, four parents of other families (the waiting
    room's line) and an agent."""
    with cluster.app.app_context():
        activity = make_activity()
        family, child = enrolled_child(activity)
        parent = make_user(email="parent@example.fr", first_name="Camille")
        subscribe(parent, family)
        make_user(email="voisin@example.fr", first_name="Paul")
        line = []
        for n in range(1, 5):
            other, _child = enrolled_child(activity, name=f"Enfant{n}")
            subscribe(make_user(email=f"parent{n}@example.fr"), other)
            line.append((f"parent{n}@example.fr", other.id))
        make_user(email="agent@example.fr", role=Role.AGENT)
        kind = DocumentType(name="Attestation CAF", scope=DocumentScope.FAMILY, validity=Validity.ONE_YEAR)
        db.session.add(kind)
        db.session.commit()
        return {
            "family": family.id,
            "click": cell_form(child, activity, next_weekday(2, 3), "reserve"),
            "type": kind.id,
            "activity": activity.id,
            "line": line,
        }


def count(cluster, model, *where) -> int:
    with cluster.app.app_context(), db.engine.connect() as connection:
        return connection.scalar(sa.select(sa.func.count()).select_from(model).where(*where))


def login(
    browser: Browser, email: str, password: str = PASSWORD, form_on="A", post_on="B", **kwargs
) -> Answer:
    """The login form shown by one node and sent to the other."""
    token = browser.on(form_on, "GET", "/connexion").csrf_token()
    data = {"csrf_token": token, "email": email, "password": password}
    return browser.on(post_on, "POST", "/connexion", data=data, **kwargs)


def test_any_node_answers_any_request(cluster, town):
    started_at = time.monotonic()
    browser = cluster.browser()
    check_proxy_and_static_files(cluster, browser)
    check_session_and_csrf_across_nodes(cluster, browser)
    check_upload_on_one_node_read_on_the_other(cluster, browser, town)
    check_one_mail_for_a_click_sent_to_both_nodes(cluster, browser, town)
    check_logout_on_one_node_ends_the_session_on_the_other(browser)
    check_mail_links_ignore_the_host_header(cluster)
    check_one_waiting_line_across_nodes(cluster, town)
    check_failed_logins_counted_across_nodes(cluster)
    assert time.monotonic() - started_at < 45


def check_proxy_and_static_files(cluster, browser):
    """nginx forwards to both nodes, serves the static files itself with far-future caching for the
    hashed URLs, redirects plain HTTP, and the app believes it is behind TLS (HSTS, Secure cookies)."""
    pages = [browser.get("/connexion") for _ in range(4)]
    assert [page.status for page in pages] == [200] * 4
    assert {page.node for page in pages} == set(NODES), "round robin over both nodes"
    assert pages[0].headers["Strict-Transport-Security"].startswith("max-age=")
    assert browser.jar and all(cookie.secure for cookie in browser.jar), "production cookies are Secure"
    stylesheet = re.search(r'href="(/static/[^"]+\.css\?v=[0-9a-f]+)"', pages[0].body.decode()).group(1)
    css = browser.get(stylesheet)
    assert css.status == 200 and css.node is None, "served by nginx, not by a node"
    assert css.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert css.headers["X-Content-Type-Options"] == "nosniff"
    unversioned = browser.get(stylesheet.split("?")[0])
    assert unversioned.status == 200 and unversioned.headers["Cache-Control"] == "no-cache"
    redirect = browser.request("GET", cluster.http_base + "/connexion?next=/mon-espace/")
    assert redirect.status == 301 and redirect.location == cluster.base + "/connexion?next=/mon-espace/"


def check_session_and_csrf_across_nodes(cluster, browser):
    """A login form from A sent to B logs in; the next pages, on either node, know the parent; a
    token of another session, or none, is refused by either node."""
    answer = login(browser, "parent@example.fr", form_on="A", post_on="B")
    assert answer.status == 302 and answer.location.endswith("/mon-espace/"), answer.text
    home = browser.on("A", "GET", "/mon-espace/")
    assert home.status == 200 and "Bienvenue Camille !" in home.text, "B's flash shown by A"
    assert browser.on("B", "GET", "/mon-espace/").status == 200

    neighbour = cluster.browser()
    own = neighbour.on("A", "GET", "/connexion").csrf_token()
    foreign = cluster.browser().on("B", "GET", "/connexion").csrf_token()
    credentials = {"email": "voisin@example.fr", "password": PASSWORD}
    for node, token in (("A", foreign), ("B", None)):
        refused = neighbour.on(
            node, "POST", "/connexion", data=credentials | ({"csrf_token": token} if token else {})
        )
        assert refused.status == 400 and "Le formulaire a expiré" in refused.text
    assert neighbour.on("B", "POST", "/connexion", data=credentials | {"csrf_token": own}).status == 302


def check_upload_on_one_node_read_on_the_other(cluster, browser, town):
    """A file sent through one node is downloaded through the other (one shared UPLOAD_DIR); a body
    over the app's limit gets its French 413 page, a far bigger one nginx's own."""
    family = town["family"]
    token = browser.on("A", "GET", f"/famille/{family}/pieces").csrf_token()
    fields = {"csrf_token": token, "type": town["type"]}
    sent = browser.on(
        "B",
        "POST",
        f"/famille/{family}/pieces",
        data=fields,
        files={"fichier": ("attestation.pdf", "application/pdf", PDF)},
    )
    assert sent.status == 302, sent.text
    with cluster.app.app_context():
        document = db.session.scalar(sa.select(Document.id).where(Document.family_id == family))
    download = browser.on("A", "GET", f"/famille/{family}/pieces/{document}/fichier")
    assert download.status == 200 and download.body == PDF
    assert download.headers["Content-Disposition"].startswith("attachment")

    big = {"fichier": ("gros.pdf", "application/pdf", b"%PDF-1.4\n" + b"0" * (6_500_000))}
    too_big = browser.on("A", "POST", f"/famille/{family}/pieces", data=fields, files=big)
    assert too_big.status == 413 and "Fichier trop volumineux" in too_big.text
    huge = {"fichier": ("enorme.pdf", "application/pdf", b"0" * 8_000_000)}
    stopped = browser.request("POST", f"/famille/{family}/pieces", data=fields, files=huge)
    assert stopped.status == 413 and stopped.node is None, "nginx refused it before any node"


def check_one_mail_for_a_click_sent_to_both_nodes(cluster, browser, town):
    """The same click sent at once to both nodes, and again later, is one request and one receipt
    (relayed by one of two schedulers)."""
    family = town["family"]
    planning = browser.get(f"/famille/{family}/planning")
    assert planning.status == 200
    form = town["click"] | {"csrf_token": planning.csrf_token()}
    url = f"/famille/{family}/planning/cellule"
    results = {}
    tabs = [browser.tab() for _ in range(2)]
    gate = threading.Barrier(2)

    def click(n):
        gate.wait()
        results[n] = tabs[n].request("POST", url, data=form)

    threads = [threading.Thread(target=click, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {answer.node for answer in results.values()} == set(NODES), "one copy on each node"
    assert [answer.status for answer in results.values()] == [302, 302], [a.text for a in results.values()]
    again = browser.on("A", "POST", url, data=form)
    assert again.status == 302
    assert count(cluster, Request) == 1
    wait_for(lambda: cluster.smtp.messages, timeout=20)
    with cluster.app.app_context():
        wait_for(lambda: mails_settled(cluster.app), timeout=20)
    assert [envelope.rcpt_tos for envelope in cluster.smtp.messages] == [["parent@example.fr"]], "one receipt"
    assert count(cluster, OutboxMessage, OutboxMessage.template == "booking_receipt") == 1


def check_logout_on_one_node_ends_the_session_on_the_other(browser):
    """A logout on A ends the session everywhere: a copy of the cookie taken before is refused by B."""
    before = browser.copy()
    token = browser.on("B", "GET", "/mon-espace/").csrf_token()
    assert browser.on("A", "POST", "/deconnexion", data={"csrf_token": token}).status == 302
    replayed = before.on("B", "GET", "/mon-espace/")
    assert replayed.status == 302 and "/connexion" in replayed.location


def check_failed_logins_counted_across_nodes(cluster):
    """Five wrong passwords for one account, spread over both nodes (three on B, two on A), each with
    a made-up X-Forwarded-For, trip the limit on both nodes: the counts are in Redis, and the client's
    address is the one nginx saw."""
    stranger = cluster.browser()
    for n in range(5):
        node = NODES[(n + 1) % 2]
        answer = login(
            stranger,
            "voisin@example.fr",
            "pas-le-bon-mot-de-passe",
            form_on=NODES[n % 2],
            post_on=node,
            headers={"X-Forwarded-For": f"203.0.113.{n}"},
        )
        assert answer.status == 200 and "Adresse e-mail ou mot de passe incorrect." in answer.text
    for node, password in (("A", "pas-le-bon-mot-de-passe"), ("B", PASSWORD)):
        held = login(
            stranger, "voisin@example.fr", password, form_on="A" if node == "B" else "B", post_on=node
        )
        assert held.status == 429 and "Trop de tentatives de connexion sur ce compte" in held.text


def check_mail_links_ignore_the_host_header(cluster):
    """A sign-up sent with a forged Host header (and a Referer to match it, or the real one) never
    gets a mail linking to that host: nginx hands the app its own server name, not the client's Host."""
    forger = cluster.browser()
    token = forger.get("/inscription").csrf_token()
    forged = "evil.example:" + cluster.base.rsplit(":", 1)[1]
    for referer in (f"https://{forged}/inscription", cluster.base + "/inscription"):
        forger.page = referer
        forger.request("POST", "/inscription", data=VALID | {"csrf_token": token}, headers={"Host": forged})
    wait_for(lambda: mails_to(cluster, "alice.durand@example.fr"), timeout=20)
    with cluster.app.app_context():
        wait_for(lambda: mails_settled(cluster.app), timeout=20)
    for text in mails_to(cluster, "alice.durand@example.fr"):
        links = re.findall(r"https?://[^\s<>\"']+", text)
        assert links and all(link.startswith(cluster.base + "/") for link in links), links


def mails_to(cluster, recipient: str) -> list[str]:
    """The text of every mail the sink received for `recipient`."""
    return [
        email.message_from_bytes(envelope.content, policy=email.policy.default)
        .get_body(preferencelist=("plain",))
        .get_content()
        for envelope in cluster.smtp.messages
        if envelope.rcpt_tos == [recipient]
    ]


def check_one_waiting_line_across_nodes(cluster, town):
    """During an opening, parents who reach the planning through either node take tickets in one
    order (their order of arrival), keep them when they reload on the other node, and are admitted
    in that order."""
    line = []
    for n, (address, family) in enumerate(town["line"]):
        parent = cluster.browser()
        assert login(parent, address, form_on=NODES[n % 2], post_on=NODES[(n + 1) % 2]).status == 302
        line.append((parent, f"/famille/{family}/planning"))
    now = datetime.now(UTC)
    with cluster.app.app_context():
        agent = db.session.scalar(sa.select(User).where(User.email == "agent@example.fr"))
        opening = openings.announce(
            agent, [town["activity"]], now + timedelta(seconds=5), now - timedelta(minutes=5)
        )
        db.session.commit()  # publishes the schedule in Redis
        opening_id = opening.id
    time.sleep(gate.SCHEDULE_REFRESH)  # each web process keeps the schedule it read that long

    for n, (parent, planning) in enumerate(line):
        waiting = parent.on(NODES[n % 2], "GET", planning)
        assert waiting.status == 200 and "Salle d'attente des réservations" in waiting.text
        assert waiting.headers["X-Waiting-Room"] == str(n + 1), "place in line = order of arrival"
    tickets = [session_of(cluster, parent)["waiting_room"] for parent, _ in line]
    assert tickets == [{"o": opening_id, "t": n} for n in range(1, 5)]
    first, first_planning = line[0]
    reloaded = first.on("B", "GET", first_planning)  # (they took their ticket on A)
    assert reloaded.headers["X-Waiting-Room"] == "1"
    assert session_of(cluster, first)["waiting_room"] == tickets[0]

    def admitted(parent, planning) -> bool:
        page = parent.get(planning)
        return page.status == 200 and "X-Waiting-Room" not in page.headers

    for parent, planning in line:
        wait_for(lambda p=parent, u=planning: admitted(p, u), timeout=20, interval=0.2)
    client = redis.Redis.from_url(cluster.app.config["REDIS_URL"])
    try:
        assert [ticket for ticket, _at in admissions(client, opening_id)] == [1, 2, 3, 4]
    finally:
        client.close()


def session_of(cluster, browser: Browser) -> dict:
    """The session a browser holds (Flask's signed cookie, read with the nodes' key)."""
    reader = Flask(__name__)
    reader.secret_key = cluster.secret_key
    cookie = next(cookie.value for cookie in browser.jar if cookie.name == "session")
    return SecureCookieSessionInterface().get_signing_serializer(reader).loads(cookie)
