"""deploy/nginx/portail.conf run on this machine, as it is: for tests/test_two_nodes.py (two
nodes) and bench/peak.py (the opening-day benchmark behind the proxy production has).

Only addresses, names, paths and the certificate are substituted, each exactly as often as
expected, so that what runs has the example's shape (a change of the example that breaks a
substitution fails here, not silently)."""

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "deploy" / "nginx" / "portail.conf"
NODE_LINES = ("server 10.0.0.11:8000", "server 10.0.0.12:8000")
ROOM_LINES = ("server 10.0.0.11:8001", "server 10.0.0.12:8001")


def site_config(
    nodes: list[int], tls_port: int, http_port: int, cert: Path, key: Path, rooms: list[int] | None = None
) -> str:
    """The site with its app nodes on 127.0.0.1:`nodes` (one or two) and the waiting room's
    processes on `rooms` (by default the nodes themselves: any app process answers the status
    polls), listening on 127.0.0.1."""
    text = SITE.read_text(encoding="utf-8")
    rooms = rooms or nodes
    assert 1 <= len(nodes) <= len(NODE_LINES) and len(rooms) == len(nodes)
    substitutions = [
        (NODE_LINES[0], f"server 127.0.0.1:{nodes[0]}", 1),
        (ROOM_LINES[0], f"server 127.0.0.1:{rooms[0]}", 1),
        (
            "return 301 https://famille.ville.fr$request_uri",
            f"return 301 https://127.0.0.1:{tls_port}$request_uri",
            1,
        ),
        ("server_name famille.ville.fr;", "server_name 127.0.0.1;", 2),
        ("listen 80;", f"listen 127.0.0.1:{http_port};", 1),
        ("listen [::]:80;", "", 1),
        ("listen 443 ssl http2;", f"listen 127.0.0.1:{tls_port} ssl http2;", 1),
        ("listen [::]:443 ssl http2;", "", 1),
        ("/etc/letsencrypt/live/famille.ville.fr/fullchain.pem", str(cert), 1),
        ("/etc/letsencrypt/live/famille.ville.fr/privkey.pem", str(key), 1),
        ("alias /srv/portail/portail/static/;", f"alias {ROOT / 'portail' / 'static'}/;", 1),
    ]
    if len(nodes) == 2:
        substitutions.append((NODE_LINES[1], f"server 127.0.0.1:{nodes[1]}", 1))
        substitutions.append((ROOM_LINES[1], f"server 127.0.0.1:{rooms[1]}", 1))
    for old, new, count in substitutions:
        assert text.count(old) == count, f"{SITE.name}: expected {old!r} {count} time(s)"
        text = text.replace(old, new)
    if len(nodes) == 1:  # one node: the second lines go
        lines = text.splitlines(keepends=True)
        for second in (NODE_LINES[1], ROOM_LINES[1]):
            assert sum(second in line for line in lines) == 1
        text = "".join(line for line in lines if NODE_LINES[1] not in line and ROOM_LINES[1] not in line)
    return text


# when, status, seconds in nginx (first byte of the request to last byte of the answer) and in the
# app node, method, path, the answer's X-Waiting-Room ("-" when it has none: not a waiting page)
TIMED = (
    "$msec $status $request_time $upstream_response_time $request_method $uri $upstream_http_x_waiting_room"
)


def nginx_config(
    directory: Path, site: str, extra: str = "", connections: int = 256, log_format: str | None = None
) -> str:
    """A main nginx.conf around the site: in the foreground, every path in `directory`; the access
    log in nginx's combined format, or `log_format` (e.g. TIMED)."""
    log = f"    access_log {directory / 'access.log'};"
    if log_format:
        log = f"    log_format timed '{log_format}';\n    access_log {directory / 'access.log'} timed;"
    temp = "\n".join(
        f"    {kind}_temp_path {directory / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    # Run as root (CI), nginx's workers would switch to `nobody`, who cannot read the test's files.
    user = "user root;\n" if os.geteuid() == 0 else ""
    return f"""{user}daemon off;
worker_processes 1;
worker_rlimit_nofile {connections * 2 + 64};
pid {directory / "nginx.pid"};
error_log {directory / "error.log"} warn;
events {{ worker_connections {connections}; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
{log}
{temp}
{extra}
{site}
}}
"""


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1, valid a day, and its key."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        + ["-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1"]
        + ["-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )
    return cert, key


def command(nginx: str, directory: Path, conf: Path) -> list[str]:
    """nginx in the foreground with everything under `directory`."""
    return [nginx, "-p", str(directory), "-e", str(directory / "error.log"), "-c", str(conf)]
