"""Template globals and filters, and the security headers of every response."""

from datetime import date, datetime
from zoneinfo import ZoneInfo

from flask import Flask, Response, current_app, g, request
from flask_login import current_user

from portail.services.families import format_code

PARIS = ZoneInfo("Europe/Paris")
MONTHS = "janvier février mars avril mai juin juillet août septembre octobre novembre décembre".split()

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; object-src 'none'"
)
HSTS = "max-age=31536000; includeSubDomains"


def french_date(value: date | datetime | None) -> str:
    """3 mars 2025 (datetimes are shown in Paris time)."""
    if value is None:
        return ""
    if isinstance(value, str):  # an ISO date kept in an outbox row's context
        value = date.fromisoformat(value)
    if isinstance(value, datetime):
        value = value.astimezone(PARIS)
    return f"{value.day} {MONTHS[value.month - 1]} {value.year}"


WEEKDAY_NAMES = ["lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"]


def weekday_names(digits: str) -> str:
    """ "124" → "lundi, mardi, jeudi" (ISO weekday digits)."""
    return (
        ", ".join(WEEKDAY_NAMES[int(d) - 1] for d in digits if d.isdigit() and 1 <= int(d) <= 7)
        or "tous les jours"
    )


def french_datetime(value: datetime | None) -> str:
    """3 mars 2025 à 14:05, in Paris time."""
    if value is None:
        return ""
    local = value.astimezone(PARIS)
    return f"{french_date(local)} à {local:%H:%M}"


def nav_families():
    """The families of the logged-in parent, loaded once per request for the menus."""
    if "nav_families" not in g:
        from portail.services.subscriptions import active_families

        g.nav_families = (
            active_families(current_user)
            if current_user.is_authenticated and not current_user.is_staff
            else []
        )
    return g.nav_families


def init_app(app: Flask) -> None:
    app.jinja_env.add_extension("jinja2.ext.do")
    app.jinja_env.trim_blocks = True
    app.jinja_env.lstrip_blocks = True
    app.jinja_env.filters["french_date"] = french_date
    app.jinja_env.filters["french_datetime"] = french_datetime
    app.jinja_env.filters["code"] = format_code
    app.jinja_env.filters["weekday_names"] = weekday_names
    app.jinja_env.globals["nav_families"] = nav_families
    app.jinja_env.globals["form_errors"] = form_errors

    @app.context_processor
    def town():
        return {"town_name": current_app.config["TOWN_NAME"], "dev_tools": app.config["DEV_TOOLS"]}

    @app.after_request
    def security_headers(response: Response) -> Response:
        headers = response.headers
        headers.setdefault("Content-Security-Policy", CSP)
        headers["X-Content-Type-Options"] = "nosniff"
        headers["X-Frame-Options"] = "DENY"
        headers["Referrer-Policy"] = "same-origin"
        headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"
        headers["Cross-Origin-Opener-Policy"] = "same-origin"
        headers.add("Vary", "HX-Request")
        if current_app.config["SESSION_COOKIE_SECURE"]:
            # Production is HTTPS only (its cookies are Secure): browsers must never try plain HTTP.
            headers["Strict-Transport-Security"] = HSTS
        # Logged-in HTML is never stored; static files are cached (see static_assets).
        if request.endpoint != "static" and current_user.is_authenticated:
            headers["Cache-Control"] = "no-store"
        return response


def form_errors(form) -> list[tuple[str, str, str]]:
    """Every error of a form, nested forms included, as (field id, label, message)."""
    found: list[tuple[str, str, str]] = [("", "", message) for message in getattr(form, "form_errors", [])]

    def walk(fields, prefix: str = "") -> None:
        for field in fields:
            if field.type == "FormField":
                walk(field.form, f"{prefix}{field.label.text} — ")
            elif field.type == "FieldList":
                for index, entry in enumerate(field.entries, start=1):
                    walk(entry.form, f"{prefix}{field.label.text} {index} — ")
            else:
                for message in field.errors if isinstance(field.errors, list | tuple) else []:
                    found.append((field.id, f"{prefix}{field.label.text}", message))

    walk(form)
    return found
