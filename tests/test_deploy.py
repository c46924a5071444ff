"""The production supervision (deploy/systemd): every process restarts on failure, hardened, and
runs exactly the commands the README documents, which exist in the repository."""

import ast
import configparser
import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest

from config import Config, ProductionConfig
from tests.conftest import missing_service
from tests.support import ROOT
from worker import ROLES

UNITS = ROOT / "deploy" / "systemd"
SERVICES = [
    "portail-web.service",
    "portail-room.service",
    "portail-worker@.service",
    "portail-scheduler.service",
]
VENV_BIN = "/srv/portail/.venv/bin/"
ENV_FILE = "/etc/portail/portail.env"


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False, delimiters=("=",))
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read_string((UNITS / name).read_text(encoding="utf-8"))
    return parser


def production_section() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    return readme.split("## Running in production", 1)[1].split("\n## ", 1)[0]


def readme_commands() -> set[str]:
    """The commands of the README's production code blocks, without their comments."""
    blocks = re.findall(r"```sh\n(.*?)```", production_section(), re.S)
    return {line.split("  #")[0].strip() for block in blocks for line in block.splitlines() if line.strip()}


def exec_start(name: str) -> list[str]:
    return shlex.split(unit(name)["Service"]["ExecStart"])


def test_the_units_and_the_environment_file_exist():
    assert sorted(path.name for path in UNITS.iterdir()) == sorted([*SERVICES, "portail.target"])
    assert (ROOT / "deploy" / "portail.env.example").is_file()
    assert set(unit("portail.target")["Unit"]["Wants"].split()) == {
        "portail-web.service",
        "portail-room.service",
        "portail-worker@1.service",
        "portail-scheduler.service",
    }


@pytest.mark.parametrize("name", SERVICES)
def test_each_service_restarts_on_failure_and_is_hardened(name):
    parsed = unit(name)
    service, section = parsed["Service"], parsed["Unit"]
    assert service["Restart"] in {"always", "on-failure"}
    assert float(service["RestartSec"]) > 0
    assert section["StartLimitIntervalSec"] == "0", "systemd never stops restarting it"
    assert service["User"] == "portail" and service["Group"] == "portail"
    assert service["EnvironmentFile"] == ENV_FILE
    assert service["WorkingDirectory"] == "/srv/portail"
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert service["ProtectHome"] == "yes"
    assert service["PrivateTmp"] == "yes"
    assert service["CapabilityBoundingSet"] == ""
    assert service["StateDirectory"] == "portail"  # the only writable place: /var/lib/portail
    for dependency in ("postgresql.service", "redis-server.service"):
        assert dependency in section["After"].split()
        assert dependency in section["Wants"].split()
    assert "multi-user.target" in parsed["Install"]["WantedBy"].split()


@pytest.mark.parametrize("name", SERVICES)
def test_each_service_runs_a_command_of_the_readme(name):
    argv = exec_start(name)
    assert argv[0].startswith(VENV_BIN), "the project's virtualenv"
    command = shlex.join([argv[0].removeprefix(VENV_BIN), *argv[1:]])
    assert command in readme_commands()


def test_the_commands_exist_in_the_repository():
    workers = {tuple(exec_start(name)[1:]) for name in SERVICES if exec_start(name)[0].endswith("/python")}
    assert workers == {("worker.py", role) for role in ROLES}
    assert (ROOT / "worker.py").is_file()
    web = exec_start("portail-web.service")
    assert web[0].endswith("/gunicorn") and web[-1] == "app:app"
    assert re.search(r"^gunicorn==", (ROOT / "requirements.txt").read_text(), re.M)
    tree = ast.parse((ROOT / "app.py").read_text(encoding="utf-8"))
    assigned = {target.id for node in tree.body if isinstance(node, ast.Assign) for target in node.targets}
    assert "app" in assigned


def env_example() -> dict[str, str]:
    """The settings of deploy/portail.env.example (what a town copies to /etc/portail/portail.env)."""
    example = (ROOT / "deploy" / "portail.env.example").read_text(encoding="utf-8")
    return dict(
        line.split("=", 1) for line in example.splitlines() if line.strip() and not line.startswith("#")
    )


def test_the_environment_file_lists_every_setting_of_the_readme():
    settings = env_example()
    documented = set()
    for row in re.findall(r"^\| (.+?) \|", production_section(), re.M):
        documented |= set(re.findall(r"`([A-Z][A-Z0-9_]+)`", row))
    assert documented >= set(ProductionConfig.REQUIRED.values())
    assert set(settings) == documented | {"PORTAIL_ENV"}
    assert settings["PORTAIL_ENV"] == "production"
    assert settings["UPLOAD_DIR"].startswith("/var/lib/portail/")


def test_systemd_accepts_the_units(tmp_path):
    """`systemd-analyze verify`: unknown keys, bad values, missing units all fail. The programs
    under /srv/portail only exist on the server: those warnings alone are expected."""
    if not shutil.which("systemd-analyze"):
        missing_service("systemd-analyze (Debian package systemd)")
    for path in UNITS.iterdir():
        shutil.copy(path, tmp_path / path.name)
    result = subprocess.run(
        [
            "systemd-analyze",
            "verify",
            "--man=no",
            *(str(tmp_path / name) for name in [*SERVICES, "portail.target"]),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    expected = re.compile(rf"^portail-[a-z@]+\.service: Command {re.escape(VENV_BIN)}\w+ is not executable")
    unexpected = [
        line for line in (result.stdout + result.stderr).splitlines() if line and not expected.match(line)
    ]
    assert unexpected == []  # (its exit code is 1 for the programs missing here)


def test_nginx_keeps_a_waiting_parent_s_connection_between_two_polls():
    """A parent in line polls every 4 to 36 s (gate.poll_every): nginx keeps the connection longer,
    so no poll pays a new TCP and TLS handshake."""
    from portail.waiting_room.gate import poll_every

    site = (ROOT / "deploy" / "nginx" / "portail.conf").read_text(encoding="utf-8")
    keepalive = int(re.search(r"^\s*keepalive_timeout (\d+)s;", site, re.MULTILINE).group(1))
    slowest = max(
        poll_every(before, wait, ticket)
        for before in (0, 30, 120)
        for wait in (0, 60, 600, 6000)
        for ticket in range(1, 200)
    )
    assert slowest >= 30
    assert keepalive > slowest + 5


def test_nginx_does_not_log_the_calendar_feeds_tokens():
    """A calendar address's token is its secret (the database keeps only its hash): the proxy that
    production has writes no access log line for /calendrier/, whose paths carry it."""
    from portail.account.calendar_routes import feed_bp

    site = (ROOT / "deploy" / "nginx" / "portail.conf").read_text(encoding="utf-8")
    block = re.search(r"location /calendrier/ \{(.*?)\}", site, re.DOTALL)
    assert feed_bp.url_prefix == "/calendrier"
    assert (
        block and "access_log off;" in block.group(1) and "proxy_pass http://portail_nodes;" in block.group(1)
    )


def test_the_environment_file_keeps_the_waiting_room_as_measured():
    """The file a town copies overrides gunicorn.conf.py's setting and the defaults: it must say what
    bench/peak.py measured (it said 1 slot and a 0.4 s target while the measures used 2 and 0.3)."""
    settings = env_example()
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(("WAITING_ROOM_", "GUNICORN_"))
    }
    slots = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os, runpy; runpy.run_path('gunicorn.conf.py');"
            " print(os.environ['WAITING_ROOM_PROCESS_SLOTS'])",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert settings["WAITING_ROOM_PROCESS_SLOTS"] == slots == "2"
    assert float(settings["WAITING_ROOM_TARGET_P95"]) == Config.WAITING_ROOM_TARGET_P95 == 0.3
    assert float(settings["WAITING_ROOM_INITIAL_WINDOW"]) == Config.WAITING_ROOM_INITIAL_WINDOW
    assert float(settings["WAITING_ROOM_MAX_WINDOW"]) == Config.WAITING_ROOM_MAX_WINDOW
