"""Espace Facturation: the invoices of the families the parent is subscribed to, their detail and PDF."""

from portail.billing.routes import bp  # noqa: F401  (defined with the main routes; the app registers it)
