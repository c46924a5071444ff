"""The HTML of a register's rows.

A register may list 300 children: a Jinja include per row cost ten times the rest of the page, so
the rows are built here with each value escaped (markupsafe's C `escape`), as the planning's cells
are (family/cell_html.py). The row sent back after a tap is built by the same function, so a row
looks the same everywhere. Who may collect a child is read when asked (a link in the row, swapped
in by htmx, or its own page without JavaScript): it keeps the register light.
"""

from flask import url_for
from markupsafe import Markup, escape

from portail.models import EXCUSE_REASONS, Presence
from portail.services.registers import Register, Row

PRESSED = {True: ' aria-pressed="true"', False: ' aria-pressed="false"'}


class RowWriter:
    """Writes the rows of one register (its URLs, token and reasons computed once)."""

    def __init__(self, sheet: Register, csrf: str, refusal: str | None):
        self.base = url_for("gestion.register", activity_id=sheet.activity.id, day=sheet.day.isoformat())
        self.token = escape(csrf)
        self.disabled = " disabled" if refusal else ""
        self.editable = not refusal

    def row(self, row: Row, swapped: bool = False, error: str | None = None) -> Markup:
        child_url = f"{self.base}/enfants/{row.child_id:d}"
        first, last = escape(row.first_name), escape(row.last_name)
        name = f"{first} {last}"
        if row.photo:
            picture = f'<img class="register-photo" src="{child_url}/photo" alt="" width="56" height="56" loading="lazy">'
        else:
            picture = f'<span class="register-photo register-initials" aria-hidden="true">{escape(row.first_name[:1])}{escape(row.last_name[:1])}</span>'
        about = f"{escape(row.school_class)} · " if row.school_class else ""
        about += f"{row.age:d} ans"
        if row.diet:
            about += f" · repas : {escape(row.diet)}"
        if row.booking is None:
            about += " · <strong>sans réservation</strong>"
        alerts = ""
        if row.alerts:
            items = "".join(
                f'<li><span aria-hidden="true">⚠</span> {escape(alert)}</li>' for alert in row.alerts
            )
            alerts = f'<ul class="register-alerts" aria-label="Alertes santé">{items}</ul>'
        present = row.presence is Presence.PRESENT
        absent = row.presence is not None and not present
        focus_present = " autofocus" if swapped and present else ""
        focus_absent = " autofocus" if swapped and absent else ""
        reason = ""
        if absent and self.editable:
            options = "".join(
                f"<option{' selected' if row.reason == choice else ''}>{escape(choice)}</option>"
                for choice in EXCUSE_REASONS
            )
            reason = (
                f'<span class="register-reason"><label for="motif-{row.child_id:d}">Motif</label>'
                f'<select id="motif-{row.child_id:d}" name="reason"><option value="">Non justifiée</option>{options}</select>'
                '<button type="submit" name="presence" value="excused" class="button-secondary button-small">Justifier</button></span>'
            )
        if error:
            state = f'<strong class="error-message">{escape(error)}</strong>'
        elif row.presence is not None:
            state = f"<strong>{row.presence.label}</strong>" + (
                f" ({escape(row.reason)})" if row.reason else ""
            )
        elif row.expected or row.booking is None:
            state = "Non pointé"
        else:
            state = ""
        if row.sick_declared:
            state += ' <span class="badge-new">Malade (déclaré par la famille)</span>'
        elif row.booking is not None and not row.expected:
            state += f' <span class="badge-new">{row.booking.label}</span>'
        return Markup(
            f'<li class="register-row{" has-alert" if row.alerts else ""}" id="enfant-{row.child_id:d}">'
            f'<div class="register-who">{picture}<div><h3 class="register-name">{name}</h3>'
            f'<p class="hint">{about}</p>{alerts}'
            f'<p class="register-contacts"><a href="{child_url}/contacts" hx-get="{child_url}/contacts" hx-target="closest p"'
            f' hx-swap="outerHTML">Qui peut venir le chercher<span class="visually-hidden"> : {name}</span></a></p></div></div>'
            f'<form method="post" action="{child_url}" hx-post="{child_url}" class="register-mark">'
            f'<input type="hidden" name="csrf_token" value="{self.token}"><input type="hidden" name="tapped" value="">'
            f'<button type="submit" name="presence" value="present" class="mark mark-present"{PRESSED[present]}{self.disabled}{focus_present}>'
            f'<span aria-hidden="true">✓</span> Présent<span class="visually-hidden"> : {name}</span></button>'
            f'<button type="submit" name="presence" value="unexcused" class="mark mark-absent"{PRESSED[absent]}{self.disabled}{focus_absent}>'
            f'<span aria-hidden="true">✗</span> Absent<span class="visually-hidden"> : {name}</span></button>{reason}</form>'
            f'<p class="register-state">{state}<span class="register-sync" hidden></span></p></li>'
        )

    def rows(self, rows: list[Row]) -> Markup:
        return Markup("\n".join(self.row(row) for row in rows))
