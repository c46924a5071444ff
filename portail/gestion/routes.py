"""Back-office views: dashboard, families, staff accounts."""

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from portail.access import admin_required
from portail.extensions import db
from portail.forms import form_page
from portail.gestion.forms import FamilyForm, SearchForm, StaffForm
from portail.htmx import is_htmx
from portail.models import (
    Civility,
    Family,
    OutboxStatus,
    Role,
    User,
    utcnow,
)
from portail.services import audit, billing, families
from portail.services import dashboard as dashboard_service
from portail.services import staff as staff_service
from portail.services.families import PersonData
from portail.services.outbox import commit
from portail.urls import public_url

bp = Blueprint("gestion", __name__, url_prefix="/gestion")


@bp.get("/")
def dashboard():
    """Tableau de bord: figures, mail status and the latest recorded actions."""
    return render_template(
        "gestion/dashboard.html",
        figures=dashboard_service.figures(billing.today_in_paris(utcnow())),
        outbox=dashboard_service.outbox_counts(),
        statuses=OutboxStatus,
        events=audit.events(limit=15),
    )


@bp.get("/familles")
def families_list():
    """Familles: search by name, code, responsable or child, paginated."""
    form = SearchForm(request.args)
    page = request.args.get("page", 1, type=int)
    pagination = families.search(form.q.data or "", page=max(page, 1))
    template = "gestion/_families_table.html" if is_htmx() else "gestion/families.html"
    return render_template(template, form=form, pagination=pagination, q=form.q.data or "")


def saved(message: str, url: str):
    """After a write: commit, say it is done, and go to the page that shows it."""
    commit()
    flash(message, "success")
    return redirect(url)


def _person(form, with_birth_date: bool = False) -> PersonData:
    data = PersonData(
        last_name=form.last_name.data,
        first_name=form.first_name.data,
    )
    if with_birth_date:
        data.birth_date = form.birth_date.data
        data.id = int(form.id.data) if (form.id.data or "").isdigit() else None
        data.remove = form.remove.data
    else:
        data.civility = Civility(form.civility.data) if form.civility.data else None
        data.email = form.email.data
        data.phone = form.phone.data
    return data


def _save(form: FamilyForm, family: Family | None) -> Family:
    guardian2 = form.guardian2.form
    children = [
        _person(entry.form, with_birth_date=True)
        for entry in form.children
        if not entry.form.is_blank() or entry.form.id.data
    ]
    return families.save_family(
        family,
        name=form.name.data,
        guardians=[_person(form.guardian1.form), None if guardian2.is_blank() else _person(guardian2)],
        children=children,
        actor=current_user,
    )


def _family_form_page(form: FamilyForm, family: Family | None):
    if "add_child" in request.form:
        form.children.append_entry()
        for entry in form.children:
            entry.form.errors  # noqa: B018
        return render_template("gestion/family_form.html", form=form, family=family, adding=True)
    if form.validate_on_submit():
        family = _save(form, family)
        return saved(
            f"Le dossier {family.name} est enregistré.", url_for("gestion.family_show", family_id=family.id)
        )
    return form_page("gestion/family_form.html", form=form, family=family)


@bp.route("/familles/nouvelle", methods=["GET", "POST"])
def family_new():
    """Créer une famille; its code abonné is generated."""
    return _family_form_page(FamilyForm(), None)


@bp.route("/familles/<int:family_id>/modifier", methods=["GET", "POST"])
def family_edit(family_id: int):
    """Modifier une famille, its responsables and children."""
    family = db.get_or_404(Family, family_id)
    form = FamilyForm()
    if request.method == "GET":
        form.name.data = family.name
        for key, position in (("guardian1", 1), ("guardian2", 2)):
            guardian = next((g for g in family.guardians if g.position == position), None)
            if guardian:
                sub = getattr(form, key).form
                sub.civility.data = guardian.civility.value if guardian.civility else ""
                sub.last_name.data = guardian.last_name
                sub.first_name.data = guardian.first_name
                sub.email.data = guardian.email
                sub.phone.data = guardian.phone
        while len(form.children):
            form.children.pop_entry()
        for child in family.children:
            form.children.append_entry(
                {
                    "id": str(child.id),
                    "last_name": child.last_name,
                    "first_name": child.first_name,
                    "birth_date": child.birth_date,
                }
            )
        form.children.append_entry()
    return _family_form_page(form, family)


@bp.get("/familles/<int:family_id>")
def family_show(family_id: int):
    """A family's file: code abonné, responsables, children, linked accounts, history."""
    family = families.family_file(family_id)
    if family is None:
        abort(404)
    accounts = families.subscriptions(family)
    events = audit.events("family", family.id)
    from portail.services import dossier

    authorizations = dossier.active_authorizations()

    def blocks(members, names):
        sections = [dossier.SECTIONS[name] for name in names]
        return [
            (member, [(s, dossier.rows(s, dossier.snapshot(s, member), authorizations)) for s in sections])
            for member in members
        ]

    return render_template(
        "gestion/family_show.html",
        family=family,
        accounts=accounts,
        events=events,
        guardian_blocks=blocks(family.guardians, dossier.GUARDIAN_SECTIONS),
        child_blocks=blocks(family.children, dossier.CHILD_SECTIONS),
        pending_count=len(dossier.pending_by_key(family)),
    )


@bp.get("/familles/<int:family_id>/courrier")
def family_letter(family_id: int):
    """Printable letter giving the family its code abonné."""
    return render_template(
        "gestion/family_letter.html",
        family=db.get_or_404(Family, family_id),
        portal_url=public_url("main.home"),
    )


@bp.post("/familles/<int:family_id>/nouveau-code")
def family_new_code(family_id: int):
    """Replace a family's code abonné (e.g. after a leak); existing subscriptions stay."""
    family = db.get_or_404(Family, family_id)
    families.regenerate_code(family, current_user)
    return saved(
        "Un nouveau code abonné a été généré. L'ancien ne fonctionne plus.",
        url_for("gestion.family_show", family_id=family.id),
    )


@bp.route("/agents", methods=["GET", "POST"])
@admin_required
def staff():
    """Comptes du personnel (admin): list and create; the new agent sets a password by mail."""
    form = StaffForm()
    if form.validate_on_submit():
        civility = Civility(form.civility.data) if form.civility.data else None
        try:
            user, created = staff_service.create(
                current_user,
                civility,
                form.last_name.data,
                form.first_name.data,
                form.email.data,
                Role(form.role.data),
            )
        except staff_service.EmailTaken:
            form.email.errors.append("Un compte existe déjà avec cette adresse e-mail.")
        else:
            commit()
            name = user.full_name if created else user.email
            flash(f"Le compte de {name} est créé ; un e-mail lui a été envoyé.", "success")
            return redirect(url_for("gestion.staff"))
    members = staff_service.members()
    return form_page("gestion/staff.html", form=form, members=members)


@bp.post("/agents/<int:user_id>/acces")
@admin_required
def staff_toggle(user_id: int):
    """Disable or re-enable a staff account (never one's own).

    The form says which (`actif`): the same click sent twice disables it once, instead of twice."""
    user = db.session.get(User, user_id)
    if user is None or user.role is Role.PARENT:
        abort(404)
    if user.id == current_user.id:
        flash("Vous ne pouvez pas désactiver votre propre compte.", "error")
        return redirect(url_for("gestion.staff"))
    wanted = request.form.get("actif")
    enable = (wanted == "1") if wanted in ("0", "1") else user.disabled_at is not None
    if enable:
        message = f"Le compte de {user.full_name} est réactivé."
    else:
        message = f"Le compte de {user.full_name} est désactivé."
    staff_service.set_enabled(user, enable, current_user)
    return saved(message, url_for("gestion.staff"))
