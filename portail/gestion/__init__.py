"""Back-office of the children's service (agents and admins only)."""

from portail.gestion import (  # noqa: F401  (their views register on bp)
    activity_routes,
    attestation_routes,
    billing_routes,
    cancellation_routes,
    debit_routes,
    document_routes,
    dossier_routes,
    headcount_routes,
    online_payment_routes,
    opening_routes,
    register_routes,
    request_routes,
    waiting_routes,
)
from portail.gestion.routes import bp  # noqa: F401  (defined with the main routes; the app registers it)
