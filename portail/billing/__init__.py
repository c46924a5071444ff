"""Espace Facturation: the invoices of the families the parent is subscribed to, their detail and PDF;
paying them online (`payment_routes`, with the provider's notification on its own blueprint) and by
direct debit (`debit_routes`); the attestations fiscales (`attestation_routes`)."""

from portail.billing import (  # noqa: F401  (their views register on bp)
    attestation_routes,
    debit_routes,
    payment_routes,
)
from portail.billing.payment_routes import notify_bp  # noqa: F401  (the app registers it)
from portail.billing.routes import bp  # noqa: F401  (defined with the main routes; the app registers it)
