"""The billing run: an agent queues a month, the worker bills it family batch by family batch.

Each batch commits with the run's progress. A partial unique index keeps one invoice in force per
family and month even when two runs overlap: the loser rolls its batch back, retries it, and finds
nothing left to do.
"""

import logging
import random
import time
from datetime import date, datetime

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.exc import IntegrityError, OperationalError

from portail.extensions import db
from portail.formatting import month_label, today_in_paris
from portail.models import Activity, BillingRun, Child, Invoice, InvoiceKind, RunState, User, utcnow
from portail.queue import enqueue
from portail.services.audit import record
from portail.services.billing.invoicing import ConcurrentRun, bill_families, families_to_bill
from portail.services.billing.money import BillingError, month_bounds
from portail.services.billing.tariffs import tariffs_for
from portail.services.outbox import commit, rollback
from portail.services.transactions import claim

log = logging.getLogger(__name__)

BATCH = 500


def start(month: date, agent: User | None) -> tuple[BillingRun, bool]:
    """Queue the billing of a month (audited); the run already queued or running for that month, if any
    (then False: it must not be handed to the worker twice). `agent` None: started by the portal itself
    (a parent's certificate changed a billed month)."""
    first = month.replace(day=1)
    if first >= today_in_paris(utcnow()).replace(day=1):
        raise BillingError("Seul un mois terminé peut être facturé.")
    if agent is not None:
        claim(agent)  # an agent's starts take turns (a double click): the second finds the first's run
    current = db.session.scalar(
        sa.select(BillingRun)
        .where(BillingRun.month == first, BillingRun.state.in_([RunState.QUEUED, RunState.RUNNING]))
        .order_by(BillingRun.id.desc())
    )
    if current is not None:
        return current, False
    run = BillingRun(month=first, started_by_id=agent.id if agent else None, state=RunState.QUEUED)
    db.session.add(run)
    db.session.flush()
    record(agent, "billing.started", "billing_run", run.id, month_label(first))
    return run, True


def not_queued(run: BillingRun) -> None:
    """Mark a run the job queue refused as failed, with what the agent should do."""
    run.state, run.error, run.finished_at = (
        RunState.FAILED,
        "Le service des tâches est indisponible : relancez dans quelques minutes.",
        utcnow(),
    )


def rebill(child_ids: set[int], days: list[date], agent: User | None, now: datetime) -> list[BillingRun]:
    """After a change of what these children's days bill (a service cancelled or restored, a register
    closed or corrected), a run queued for each past month of these days already billed for their
    families (it issues the credit note and the new invoice); those to hand to the worker once
    committed.

    The current month and those ahead need nothing: they are billed once finished, from the days as
    they are then. (A run of that month already running may have billed the families before this
    change: it is then started again by hand.)"""
    this_month = today_in_paris(now).replace(day=1)
    months = sorted({day.replace(day=1) for day in days if day < this_month})
    if not months or not child_ids:
        return []
    billed = db.session.scalars(
        sa.select(Invoice.month)
        .distinct()
        .where(
            Invoice.month.in_(months),
            Invoice.kind == InvoiceKind.INVOICE,
            Invoice.credited_by_id.is_(None),
            Invoice.family_id.in_(sa.select(Child.family_id).where(Child.id.in_(child_ids))),
        )
    ).all()
    queued = []
    for month in sorted(billed):
        billing_run, fresh = start(month, agent)
        if fresh:
            queued.append(billing_run)
    return queued


_QUEUED = "billing_runs_after_commit"


def queue_after_commit(queued: list[BillingRun]) -> None:
    """Runs started deep in a unit of work (a certificate sent), to hand over once it is committed
    (`hand_over_queued`), whatever the caller."""
    db.session.info.setdefault(_QUEUED, []).extend(queued)


def hand_over_queued() -> None:
    """Hand over the runs `queue_after_commit` kept (after the commit)."""
    for billing_run in db.session.info.pop(_QUEUED, []):
        hand_over(billing_run)


def hand_over(billing_run: BillingRun) -> None:
    """Hand a run just queued, and committed, to the worker; one the job queue refuses is marked failed
    (committed). A long month may take minutes on a large town: no retry (a run is started again by
    hand), 1 h at most."""
    if not enqueue(
        "portail.jobs.billing_run",
        billing_run.id,
        job_id=f"billing-run-{billing_run.id}",
        timeout=3600,
        retry=None,
    ):
        not_queued(billing_run)
        commit()


def recent_runs(limit: int = 12) -> list[BillingRun]:
    """The latest runs, newest first, with the agent who started each (one query)."""
    return db.session.scalars(
        sa.select(BillingRun)
        .options(sa.orm.joinedload(BillingRun.started_by))
        .order_by(BillingRun.id.desc())
        .limit(limit)
    ).all()


def run(run_id: int, batch: int | None = None) -> BillingRun:
    """The job: bill the month family batch by family batch, committing the progress after each."""
    batch = batch or current_app.config.get("BILLING_BATCH", BATCH)
    billing_run = db.session.get(BillingRun, run_id)
    if billing_run is None or billing_run.state is RunState.DONE:
        return billing_run
    month = billing_run.month
    try:
        family_ids = families_to_bill(month)
        billing_run.state, billing_run.families_total, billing_run.families_done = (
            RunState.RUNNING,
            len(family_ids),
            0,
        )
        billing_run.invoices = billing_run.credit_notes = billing_run.unpriced_days = 0
        commit()
        first, last = month_bounds(month)
        for start_at in range(0, len(family_ids), batch):
            chunk = family_ids[start_at : start_at + batch]
            for attempt in range(10):
                tariffs = tariffs_for(first, last)
                activities = {a.id: a for a in db.session.scalars(sa.select(Activity))}
                try:
                    invoices, credits, unpriced = bill_families(chunk, month, utcnow(), tariffs, activities)
                    db.session.execute(
                        sa.update(BillingRun.__table__)
                        .where(BillingRun.id == run_id)
                        .values(
                            families_done=BillingRun.families_done + len(chunk),
                            invoices=BillingRun.invoices + invoices,
                            credit_notes=BillingRun.credit_notes + credits,
                            unpriced_days=BillingRun.unpriced_days + unpriced,
                        )
                    )
                    commit()
                    break
                except (
                    IntegrityError,
                    OperationalError,
                    ConcurrentRun,
                ) as error:  # another run billed these families meanwhile, or a lock
                    rollback()
                    if attempt == 9:
                        raise
                    log.info("billing batch retried (%s)", error.__class__.__name__)
                    time.sleep(0.05 * (attempt + 1) + random.random() * 0.05)
        billing_run = db.session.get(BillingRun, run_id)
        billing_run.state, billing_run.finished_at = RunState.DONE, utcnow()
        commit()
    except Exception as error:
        rollback()
        billing_run = db.session.get(BillingRun, run_id)
        billing_run.state, billing_run.error, billing_run.finished_at = (
            RunState.FAILED,
            f"{error.__class__.__name__}: {error}"[:500],
            utcnow(),
        )
        commit()
        raise
    return billing_run
