"""Billing (PRODUCT §9), one module per concern; callers use `from portail.services import billing`.

- `money`: amounts typed in euros to integer cents, the months billed, `BillingError`;
- `tariffs`: brackets by quotient familial, the tariff in force on a day, the price for a quotient;
- `invoicing`: a batch of families' lines for a month, numbering, issuing invoices and credit
  notes, the parents' mail;
- `runs`: the billing run queued by an agent and run by the worker, batch by batch;
- `payments`: payments, paid amounts, states, balances;
- `sepa`: direct debit — families' mandates, the collection date announced, the month's pain.008
  file, the rejects (R-transactions);
- `exports`: the back office's invoice search, totals per month, the treasury's CSV/XLSX export;
- `pdf`: the PDF of an invoice or credit note.
- `reminders`: the reminders (relances) of late invoices at each step, and what each invoice was sent.
"""

from portail.formatting import euros, month_label, today_in_paris  # (callers use billing.euros…)
from portail.services.billing.invoicing import (
    DUE_DAYS,
    ConcurrentRun,
    Line,
    bill_families,
    compute,
    families_to_bill,
    take_numbers,
)
from portail.services.billing.money import (
    BillingError,
    month_bounds,
    parse_euros,
    previous_month,
)
from portail.services.billing.payments import (
    ENTERED_METHODS,
    METHOD_LABELS,
    STATES,
    balance_cents,
    balance_of,
    balances,
    direct_debited,
    enter_payment,
    invoices_by_family,
    overdue_count,
    paid_cents,
    record_payment,
    state_now,
    state_of,
    with_states,
)
from portail.services.billing.runs import BATCH, not_queued, recent_runs, run, start
from portail.services.billing.tariffs import (
    LateEntry,
    activity_choices,
    all_tariffs,
    check_brackets,
    create_tariff,
    delete_tariff,
    family_quotes,
    family_quotient,
    late_entry,
    late_surcharges,
    make_brackets,
    price_for,
    quote,
    tariff_on,
    tariffs_for,
)

__all__ = [
    "BATCH",
    "DUE_DAYS",
    "ENTERED_METHODS",
    "METHOD_LABELS",
    "STATES",
    "BillingError",
    "ConcurrentRun",
    "Line",
    "activity_choices",
    "all_tariffs",
    "balance_cents",
    "balances",
    "balance_of",
    "bill_families",
    "check_brackets",
    "compute",
    "create_tariff",
    "delete_tariff",
    "direct_debited",
    "enter_payment",
    "euros",
    "families_to_bill",
    "LateEntry",
    "family_quotes",
    "family_quotient",
    "invoices_by_family",
    "make_brackets",
    "month_bounds",
    "month_label",
    "not_queued",
    "overdue_count",
    "paid_cents",
    "parse_euros",
    "previous_month",
    "late_entry",
    "late_surcharges",
    "price_for",
    "quote",
    "recent_runs",
    "record_payment",
    "run",
    "start",
    "state_now",
    "state_of",
    "take_numbers",
    "tariff_on",
    "tariffs_for",
    "today_in_paris",
    "with_states",
]
