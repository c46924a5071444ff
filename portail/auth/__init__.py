"""Sign-up, activation, login, logout and password reset."""

from portail.auth.routes import bp  # noqa: F401  (defined with the main routes; the app registers it)
