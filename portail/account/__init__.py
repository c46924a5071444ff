"""Mon espace citoyen: home, Mes abonnements, Mon compte."""

from portail.account.routes import bp  # noqa: F401  (defined with the main routes; the app registers it)
