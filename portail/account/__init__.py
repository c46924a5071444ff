"""Mon espace citoyen: home, Mes abonnements, Mon compte."""

from portail.account import calendar_routes, notification_routes  # noqa: F401  (their views register on bp)
from portail.account.calendar_routes import feed_bp  # noqa: F401  (the app registers it)
from portail.account.routes import bp  # noqa: F401  (defined with the main routes; the app registers it)
