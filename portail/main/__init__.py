"""Public pages: home."""

from portail.main.routes import bp  # noqa: F401  (defined with the main routes; the app registers it)
