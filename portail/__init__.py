"""Portail Famille: the application factory."""

import hmac
import logging
from pathlib import Path
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import IntegerConverter

from config import config_for
from portail.extensions import babel, compress, csrf, db, limiter, login_manager, mail, migrate
from portail.middleware import QueueTimeout
from portail.models.types import MAX_ID


class DatabaseId(IntegerConverter):
    """`<int:…>` in a URL: an id the database can hold (a 64-bit integer), else the route does not
    match (404): a huge number never reaches a query (SQLite: "Python int too large")."""

    def __init__(self, map, *args, **kwargs) -> None:
        kwargs.setdefault("max", MAX_ID)
        super().__init__(map, *args, **kwargs)


def create_app(config_name: str | None = None, overrides: dict | None = None) -> Flask:
    """Build the app for `config_name` (or PORTAIL_ENV), with optional config overrides."""
    app = Flask(__name__, instance_relative_config=False)
    app.url_map.converters["int"] = DatabaseId  # (before any route is added)
    config = config_for(config_name)
    app.config.from_object(config)
    if overrides:
        app.config.update(overrides)
    if hasattr(config, "check") and not app.testing:
        config.check()
    _derive_limiter_storage(app)
    if app.config["TRUSTED_PROXIES"]:
        count = app.config["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=count, x_proto=count, x_host=count)
    app.wsgi_app = QueueTimeout(
        app.wsgi_app, app.config["REQUEST_QUEUE_TIMEOUT"], app.config["LOGIN_QUEUE_TIMEOUT"]
    )

    db.init_app(app)
    migrate.init_app(app, db, directory=str(app.root_path + "/../migrations"))
    login_manager.init_app(app)
    csrf.init_app(app)
    mail.init_app(app)
    babel.init_app(app, locale_selector=lambda: "fr", timezone_selector=lambda: "Europe/Paris")
    limiter.init_app(app)
    compress.init_app(app)
    _configure_login(app)
    _configure_sqlite(app)

    from portail import access, cli, conflicts, static_assets, templating, waiting_room
    from portail.account import bp as account_bp
    from portail.account import feed_bp as calendar_feed_bp
    from portail.auth import bp as auth_bp
    from portail.billing import bp as billing_bp
    from portail.billing import notify_bp as payment_notify_bp
    from portail.dev import bp as dev_bp
    from portail.errors import register_error_handlers
    from portail.family import bp as family_bp
    from portail.gestion import bp as gestion_bp
    from portail.main import bp as main_bp

    for blueprint in (
        main_bp,
        auth_bp,
        account_bp,
        calendar_feed_bp,
        family_bp,
        billing_bp,
        payment_notify_bp,
        gestion_bp,
        dev_bp,
    ):
        app.register_blueprint(blueprint)
    waiting_room.init_app(app)  # before the login check, which reads the database
    access.init_app(app)
    conflicts.init_app(app)
    templating.init_app(app)
    static_assets.init_app(app)
    register_error_handlers(app)
    cli.init_app(app)
    logging.basicConfig(level=logging.INFO)
    return app


def _derive_limiter_storage(app: Flask) -> None:
    """Rate limits live in the app's Redis unless set explicitly (memory when there is none)."""
    if app.config.get("RATELIMIT_STORAGE_URI"):
        return
    url = app.config.get("REDIS_URL") or ""
    if url.startswith("unix://"):
        url = "redis+unix://" + url.removeprefix("unix://")
    app.config["RATELIMIT_STORAGE_URI"] = url or "memory://"


def _configure_login(app: Flask) -> None:
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Connectez-vous pour accéder à cette page."
    login_manager.login_message_category = "info"
    login_manager.session_protection = "basic"

    @login_manager.user_loader
    def load_user(session_id: str):
        """Accept a session only while its token matches the account's current one."""
        from portail.models import User

        user_id, _, token = session_id.partition(":")
        if not user_id.isdigit() or not token:
            return None
        user = db.session.get(User, int(user_id))
        if user is None or not user.is_active:
            return None
        if not hmac.compare_digest(user.session_token, token):
            return None
        return user

    @login_manager.unauthorized_handler
    def unauthorized():
        """To the login page, then back. An htmx request (a page that polls, a cell) is told to load
        the login page as a whole page (HX-Redirect), back to the page it came from: the login form is
        never swapped into a fragment of a page."""
        from flask import flash, make_response, redirect, request
        from flask_login.utils import login_url

        from portail.htmx import is_htmx
        from portail.urls import safe_next

        flash(login_manager.login_message, login_manager.login_message_category)
        if not is_htmx():
            return redirect(login_url(login_manager.login_view, next_url=request.url))
        current = urlsplit(request.headers.get("HX-Current-URL", ""))
        back = safe_next(current.path + (f"?{current.query}" if current.query else "")) or "/"
        response = make_response("", 401)
        response.headers["HX-Redirect"] = login_url(login_manager.login_view, next_url=back)
        return response


def _configure_sqlite(app: Flask) -> None:
    """WAL, a 5 s busy timeout and foreign keys on every SQLite connection."""
    uri = app.config["SQLALCHEMY_DATABASE_URI"]
    if not uri.startswith("sqlite"):
        return
    if uri.startswith("sqlite:///") and len(uri) > len("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    with app.app_context():

        @sa.event.listens_for(db.engine, "connect")
        def set_pragmas(dbapi_connection, _record):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=5000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()
