"""Template globals and filters, and the security headers of every response."""

from flask import Flask, Response, current_app, g, request
from flask_login import current_user

from portail import formatting
from portail.services import audit
from portail.services.families import format_code

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; object-src 'none'"
)
HSTS = "max-age=31536000; includeSubDomains"


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
    app.jinja_env.filters.update(formatting.FILTERS)
    app.jinja_env.filters["code"] = format_code
    app.jinja_env.filters["audit_label"] = audit.label
    app.jinja_env.globals["euros"] = formatting.euros
    app.jinja_env.globals["french_day"] = formatting.french_day
    app.jinja_env.globals["month_label"] = formatting.month_label
    app.jinja_env.globals["nav_families"] = nav_families
    app.jinja_env.globals["form_errors"] = form_errors

    @app.context_processor
    def town():
        return {
            "town_name": current_app.config["TOWN_NAME"],
            "service_contact": current_app.config["SERVICE_CONTACT"],
            "dev_tools": app.config["DEV_TOOLS"],
        }

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
