"""Mon compte → Notifications: booking receipts at once or none; the decisions one mail each, in the
13:00 and 18:00 digests, or in one 18:00 digest a day (the waiting list's offers, when they come,
are always sent at once)."""

from flask import flash, redirect, render_template, url_for
from flask_login import current_user

from portail.account.forms import NotificationsForm
from portail.account.routes import bp
from portail.models import DecisionsChoice, ReceiptsChoice, utcnow
from portail.services import notification_choices
from portail.services.outbox import commit


@bp.route("/compte/notifications", methods=["GET", "POST"])
def notifications():
    """The parent's choices; a change of the decisions' choice applies to the decisions made from now
    on (those already made are mailed as promised when they were made)."""
    form = NotificationsForm()
    if form.validate_on_submit():
        changed = notification_choices.choose(
            current_user,
            ReceiptsChoice[form.receipts.data],
            DecisionsChoice[form.decisions.data],
            utcnow(),
        )
        commit()

        flash(
            "Vos choix de notification sont enregistrés." if changed else "Vos choix n'ont pas changé.",
            "success",
        )
        return redirect(url_for("account.notifications"))
    if not form.is_submitted():
        form.receipts.data = current_user.receipts.name
        form.decisions.data = notification_choices.decisions_now(current_user.id).name
    status = 422 if form.errors else 200
    return render_template("account/notifications.html", form=form), status
