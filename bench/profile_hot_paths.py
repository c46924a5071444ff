"""The hot paths through the production stack: login POST, planning page, cell POST, a static file.

Starts redis-server and gunicorn (production settings, the repository's gunicorn.conf.py unless
--gunicorn says otherwise) on a database that holds the demo town (`flask demo load`, run with
PORTAIL_ENV=development and DATABASE_URL), logs in as Claire MARTIN, then loads each path with
`wrk` (Debian package wrk) at a fixed concurrency and prints req/s, latencies and the CPU the
gunicorn workers spent per request (from /proc). With --profile DIR, py-spy (bench
dependency) samples every worker during each load; bench/profile_report.py sums the samples.

    DATABASE_URL=postgresql+psycopg://portail:portail@localhost/portail_bench \\
        .venv/bin/python bench/profile_hot_paths.py --seconds 15 --connections 8
    .venv/bin/python bench/profile_hot_paths.py --gunicorn "--workers 4" --paths planning
"""

import argparse
import http.client
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
EMAIL, PASSWORD = "claire.martin@demo.fr", "demo-portail-famille"
TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(port: int, deadline: float = 30) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listens on port {port}")


class Client:
    """A cookie-keeping HTTP client (production cookies are Secure: kept here whatever the scheme)."""

    def __init__(self, port: int):
        self.port = port
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, form: dict | None = None, headers: dict | None = None):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        body = urllib.parse.urlencode(form, doseq=True) if form is not None else None
        sent = {"Cookie": self.cookie_header(), **(headers or {})}
        if body is not None:
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        connection.request(method, path, body=body, headers=sent)
        response = connection.getresponse()
        text = response.read().decode("utf-8", "replace")
        for name, value in response.getheaders():
            if name.lower() == "set-cookie":
                key, _, rest = value.partition("=")
                self.cookies[key] = rest.split(";", 1)[0]
        connection.close()
        return response.status, dict(response.getheaders()), text

    def cookie_header(self) -> str:
        return "; ".join(f"{key}={value}" for key, value in self.cookies.items())


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)


def log_in(client: Client) -> None:
    """Log in as Claire."""
    _, _, page = client.request("GET", "/connexion")
    token = csrf_of(page)
    form = {"csrf_token": token, "email": EMAIL, "password": PASSWORD}
    status, headers, _ = client.request("POST", "/connexion", form)
    assert status == 302, f"login answered {status}"


def targets(client: Client) -> tuple[str, list[str], str, str]:
    """The planning URL, cell forms that can be reserved and then withdrawn, a static file, and the
    session's CSRF token (a login starts a new session)."""
    _, _, home = client.request("GET", "/mon-espace/")
    family = re.search(r"/famille/(\d+)", home)
    if family is None:
        _, _, home = client.request("GET", "/famille/")
        family = re.search(r"/famille/(\d+)", home)
    planning = f"/famille/{family.group(1)}/planning"
    cells = []
    for month in ("", "?date=" + time.strftime("%Y-%m-01", time.localtime(time.time() + 31 * 86400))):
        _, _, page = client.request("GET", planning + month)
        for child, activity, day in re.findall(
            r"confirmer\?enfant=(\d+)&amp;activite=(\d+)&amp;jour=([\d-]+)&amp;action=reserve", page
        ):
            cells.append(f"enfant={child}&activite={activity}&jour={day}")
    static = re.search(r'src="(/static/js/htmx[^"]+)"', page).group(1).replace("&amp;", "&")
    if not cells:
        raise SystemExit("no day left to reserve on Claire's planning: load the demo again")
    return planning, sorted(set(cells))[:40], static, csrf_of(page)


LUA = """
local bodies = {%(bodies)s}
local counter = 0
request = function()
  counter = counter + 1
  local body = bodies[(counter %% #bodies) + 1]
  return wrk.format("%(method)s", "%(path)s", {
    ["Cookie"] = "%(cookie)s",
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["X-CSRFToken"] = "%(token)s",
    ["HX-Request"] = "%(htmx)s",
    ["Accept-Encoding"] = "gzip",
  }, body)
end
"""


def lua_script(
    directory: Path, name: str, method: str, path: str, bodies: list[str], cookie: str, token: str
):
    quoted = ", ".join(f'"{body}"' for body in bodies) or '""'
    script = directory / f"{name}.lua"
    script.write_text(
        LUA
        % {
            "bodies": quoted,
            "method": method,
            "path": path,
            "cookie": cookie,
            "token": token,
            "htmx": "true" if method == "POST" and "cellule" in path else "",
        }
    )
    return script


def worker_pids(master: int) -> list[int]:
    try:
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    except OSError:
        return []
    return [int(pid) for pid in children]


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICKS


def run_wrk(port, script, path, seconds, connections, master, profile: Path | None = None) -> dict:
    pids = worker_pids(master)
    before = cpu_seconds(pids)
    spies = []
    if profile:
        profile.mkdir(parents=True, exist_ok=True)
        spies = [
            subprocess.Popen(
                [
                    str(Path(PYTHON).parent / "py-spy"),
                    "record",
                    "--nonblocking",
                    "-r",
                    "200",
                    "-d",
                    str(seconds),
                    "-f",
                    "raw",
                    "-p",
                    str(pid),
                    "-o",
                    str(profile / f"{script.stem}-{pid}.txt"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for pid in pids
        ]
    result = subprocess.run(
        [
            "wrk",
            f"-t{min(2, connections)}",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}{path}",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    cpu = cpu_seconds(pids) - before
    for spy in spies:
        spy.wait(timeout=60)
    out = result.stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    latency = dict(re.findall(r"^\s+(50|90|99)%\s+(\S+)", out, re.M))
    return {
        "req/s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50": latency.get("50"),
        "p90": latency.get("90"),
        "p99": latency.get("99"),
        "errors": int(non2xx.group(1)) if non2xx else 0,
        "cpu ms/req": round(1000 * cpu / max(requests, 1), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--gunicorn", default="-c gunicorn.conf.py", help="gunicorn options (default: %(default)s)"
    )
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--paths", default="login,planning,cell,static,home")
    parser.add_argument(
        "--profile", help="a folder: py-spy samples each worker during each load (raw stacks)"
    )
    args = parser.parse_args()
    database = os.environ.get("DATABASE_URL")
    if not database or not shutil.which("wrk"):
        raise SystemExit("needs DATABASE_URL (a database with the demo loaded) and wrk (apt-get install wrk)")

    work = Path(tempfile.mkdtemp(prefix="portail-hot-"))
    redis_port, port = free_port(), free_port()
    processes = [
        subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(redis_port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(work),
            ],
            stdout=subprocess.DEVNULL,
        )
    ]
    env = dict(
        os.environ,
        PORTAIL_ENV="production",
        SECRET_KEY="bench-secret",
        REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
        MAIL_SERVER="127.0.0.1",
        MAIL_PORT="1",
        PUBLIC_URL=f"http://127.0.0.1:{port}",
        UPLOAD_DIR=str(work / "uploads"),
    )
    command = [
        str(Path(PYTHON).parent / "gunicorn"),
        *shlex.split(args.gunicorn),
        "--bind",
        f"127.0.0.1:{port}",
        "app:app",
    ]
    try:
        wait_port(redis_port)
        gunicorn = subprocess.Popen(command, cwd=ROOT, env=env)
        processes.append(gunicorn)
        wait_port(port)
        time.sleep(1)
        client = Client(port)
        log_in(client)
        planning, cells, static, token = targets(client)
        cookie = client.cookie_header()
        print(f"gunicorn {args.gunicorn}; {args.connections} connections, {args.seconds} s each", flush=True)
        anonymous = Client(port)
        _, _, login_page = anonymous.request("GET", "/connexion")
        login_token = csrf_of(login_page)
        login_body = urllib.parse.urlencode({"csrf_token": login_token, "email": EMAIL, "password": PASSWORD})
        cell_bodies = []
        for cell in cells:
            cell_bodies += [f"{cell}&action=reserve", f"{cell}&action=withdraw"]
        loads = {
            "login": ("POST", "/connexion", [login_body], anonymous.cookie_header(), login_token),
            "planning": ("GET", planning, [], cookie, token),
            "cell": ("POST", planning + "/cellule", cell_bodies, cookie, token),
            "static": ("GET", static, [], "", ""),
            "home": ("GET", "/", [], "", ""),
        }
        for name in args.paths.split(","):
            method, path, bodies, jar, csrf = loads[name]
            script = lua_script(work, name, method, path, bodies, jar, csrf)
            profile = Path(args.profile) if args.profile else None
            print(
                name,
                run_wrk(port, script, path, args.seconds, args.connections, gunicorn.pid, profile),
                flush=True,
            )
    finally:
        for process in reversed(processes):
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
