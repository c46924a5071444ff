"""The year's attestations for the town to print and post: one PDF, a page per family with an amount,
by family name, made by the worker (5,000 families take about a minute) and kept in the shared upload
folder, where every web node finds it.

One document rather than a ZIP of one PDF per family: each PDF embeds its own font, so 5,000 files
take ten times as long to make (90 ms each against 8 ms a page, measured) and weigh ten times as much,
and what the town does with them is print and post them. A parent downloads their own from
Espace Facturation.

What the agent sees is a small JSON status beside the PDF (queued, running with pages done, done,
failed): the schema has no table for it, and the file is what the agent wants anyway.
"""

import json
import os
from datetime import date, datetime, timedelta
from pathlib import Path

from flask import current_app

from portail.formatting import today_in_paris
from portail.models import User, utcnow
from portail.queue import enqueue
from portail.services.audit import record
from portail.services.billing import attestation
from portail.services.billing import attestation_pdf as rendering
from portail.services.billing.money import BillingError

# A status older than this while queued or running is a job that died (the job's timeout is 1 h).
STALE_AFTER = timedelta(hours=1, minutes=5)


def folder() -> Path:
    path = Path(current_app.config["UPLOAD_DIR"]) / "attestations"
    path.mkdir(parents=True, exist_ok=True)
    return path


def pdf_path(year: int) -> Path:
    """Where the year's document is kept."""
    return folder() / f"attestations-frais-de-garde-{year}.pdf"


def status(year: int) -> dict | None:
    """The year's generation as the worker last wrote it (state, pages done and total, families,
    total in cents, started and finished at), None if never asked."""
    path = folder() / f"{year}.json"
    try:
        found = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None
    if found["state"] in ("queued", "running") and (
        utcnow() - datetime.fromisoformat(found.get("started_at") or "2000-01-01T00:00+00:00") > STALE_AFTER
    ):
        found |= {"state": "failed", "error": "La génération s'est interrompue."}
    return found


def _write_status(year: int, **values) -> dict:
    """Replace the year's status at once (a reader never sees half of it)."""
    current = status(year) or {}
    current |= values
    temporary = folder() / f".{year}.json.{os.getpid()}"
    temporary.write_text(json.dumps(current))
    temporary.replace(folder() / f"{year}.json")
    return current


def years_offered(today: date) -> list[int]:
    """The years an agent may generate: the finished ones, newest first (five)."""
    return [today.year - back for back in range(1, 6)]


def start(year: int, agent: User, now: datetime) -> bool:
    """Ask for the year's document, audited (the caller commits, then calls `hand_over`); False if a
    generation of that year is already queued or running. BillingError for a year not finished."""
    if year >= today_in_paris(now).year:
        raise BillingError(
            f"L'année {year} n'est pas terminée : ses attestations se font à partir du 1er janvier {year + 1}."
        )
    current = status(year)
    if current is not None and current["state"] in ("queued", "running"):
        return False
    record(agent, "attestation.generated", "attestation", year, f"attestations fiscales {year}")
    return True


def hand_over(year: int, agent: User, now: datetime) -> None:
    """Hand the year's generation to the worker, once its start is committed; a refusal of the job
    queue is written as a failure the agent reads. No retry (an agent asks again), 1 h at most."""
    _write_status(
        year,
        state="queued",
        done=0,
        total=0,
        total_cents=0,
        started_at=now.isoformat(),
        finished_at=None,
        error=None,
        by=f"{agent.first_name} {agent.last_name}",
    )
    if not enqueue(
        "portail.jobs.attestations", year, job_id=f"attestations-{year}", timeout=3600, retry=None
    ):
        _write_status(
            year,
            state="failed",
            error="Le service des tâches est indisponible : relancez dans quelques minutes.",
            finished_at=utcnow().isoformat(),
        )


def run(year: int, now: datetime) -> dict:
    """The job: every family's attestation of the year in one PDF, progress written every 100 pages
    (none when no family paid childcare that year)."""
    try:
        found = attestation.for_year(year)
        holders = attestation.families_of([item.family_id for item in found])
        found.sort(key=lambda item: (holders[item.family_id].name.casefold(), item.family_id))
        started = (status(year) or {}).get(
            "started_at"
        ) or now.isoformat()  # (also when run without hand_over)
        _write_status(year, state="running", done=0, total=len(found), started_at=started)
        pdf_path(year).unlink(missing_ok=True)
        if found:
            body = rendering.render_all(
                found,
                holders,
                rendering.town(current_app.config),
                today_in_paris(now),
                progress=lambda done: _write_status(year, done=done),
            )
            temporary = folder() / f".{year}.pdf.{os.getpid()}"
            temporary.write_bytes(body)
            temporary.replace(pdf_path(year))
    except Exception as error:
        _write_status(
            year,
            state="failed",
            error=f"{error.__class__.__name__}: {error}"[:300],
            finished_at=utcnow().isoformat(),
        )
        raise
    return _write_status(
        year,
        state="done",
        done=len(found),
        total=len(found),
        total_cents=sum(item.total_cents for item in found),
        finished_at=utcnow().isoformat(),
    )
