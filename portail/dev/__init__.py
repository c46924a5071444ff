"""Development tools: the dev mailbox (404 outside development)."""

from portail.dev.routes import bp  # noqa: F401  (defined with the main routes; the app registers it)
