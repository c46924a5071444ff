"""The HTML of a planning cell.

A month planning shows a hundred cells or more; a Jinja macro call per cell cost more than
everything else on the page, so a cell is built here with each value escaped (markupsafe's C
`escape`). The single-cell fragments (after a click) use the same function, so a cell looks the
same everywhere.
"""

from markupsafe import Markup, escape

from portail.models import BookingState
from portail.services.booking_rules import ABSENCE, RESERVE, WITHDRAW
from portail.services.planning import Cell

ACTION_LABELS = {RESERVE: "Réserver", ABSENCE: "Déclarer une absence", WITHDRAW: "Retirer la demande"}


def cell_html(cell: Cell, colour: int, confirm_base: str) -> Markup:
    """One cell: who, which activity, its state with the legend icon, then the actions or why none."""
    child, verdict = cell.child, cell.verdict
    first_name, activity = escape(child.first_name), escape(cell.activity.name)
    refused = cell.reason and cell.state is BookingState.REFUSED  # a pending request keeps the old reason for a withdrawal
    label = escape(f"{cell.label} ({cell.reason})" if refused else cell.label)
    if verdict.actions:
        base = escape(f"{confirm_base}?enfant={child.id}&activite={cell.activity.id}&jour={cell.day.isoformat()}&action=")
        day = cell.day.strftime("%d/%m")
        actions = "".join(
            f'<a class="cell-action" href="{base}{action}" hx-get="{base}{action}">{ACTION_LABELS[action]}'
            f'<span class="visually-hidden"> : {first_name}, {activity}, {day}</span></a>'
            for action in sorted(verdict.actions)
        )
    else:
        actions = f'<span class="why">{escape(verdict.reason)}</span>' if verdict.reason else ""
    state = cell.state.value if cell.state else "enrolled"
    return Markup(
        f'<div class="cell state-{state}" id="{cell.dom_id}">'
        f'<span class="who child-{colour:d}" title="{escape(child.full_name)}">{escape(child.initials)}<span class="visually-hidden"> {first_name}</span></span> '
        f'<span class="what">{activity}</span> '
        f'<span class="state"><span class="icon" aria-hidden="true">{cell.icon}</span> {label}</span>'
        f"{actions}</div>"
    )
