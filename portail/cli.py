"""Command-line tools: `flask create-admin`, `flask demo`, `flask outbox relay`, `flask accounts purge`,
`flask digests send`, `flask backup create|restore`."""

from pathlib import Path

import click
import sqlalchemy as sa
from flask import Flask, current_app
from flask.cli import AppGroup

from portail.extensions import db
from portail.formatting import french_date
from portail.models import Family, Role, User, utcnow
from portail.services import accounts, backups, digests, outbox, passwords


def init_app(app: Flask) -> None:
    app.cli.add_command(create_admin)
    app.cli.add_command(demo_group)
    app.cli.add_command(outbox_group)
    app.cli.add_command(accounts_group)
    app.cli.add_command(digests_group)
    app.cli.add_command(backup_group)


@click.command("create-admin")
@click.option("--email", prompt="Adresse e-mail")
@click.option("--first-name", prompt="Prénom")
@click.option("--last-name", prompt="Nom")
@click.password_option("--password", prompt="Mot de passe")
def create_admin(email: str, first_name: str, last_name: str, password: str) -> None:
    """Create an activated admin account."""
    error = passwords.policy_error(password, [first_name, last_name, email])
    if error:
        raise click.ClickException(error)
    if accounts.find_by_email(email):
        raise click.ClickException("Un compte existe déjà avec cette adresse e-mail.")
    db.session.add(
        User(
            email=accounts.normalize_email(email),
            first_name=first_name,
            last_name=last_name,
            civility=None,
            role=Role.ADMIN,
            password_hash=passwords.hash_password(password),
            activated_at=utcnow(),
        )
    )
    db.session.commit()
    click.echo(f"Administrateur {email} créé.")


demo_group = AppGroup("demo", help="Demo data of 'Ville de Démo'.")
DEMO_REFUSED = (
    "Données de démonstration refusées hors développement : leurs comptes ont un mot de passe public "
    "(lancez-les avec PORTAIL_ENV=development). / Demo data is refused outside development and "
    "testing: its accounts share a public password."
)


@demo_group.command("load")
@click.option("--if-empty", is_flag=True, help="Do nothing when the database already has families.")
def demo_load(if_empty: bool) -> None:
    """Load the demo town: families, parents, an agent and an admin (development and tests only)."""
    from portail import demo

    # Its staff accounts share a password printed in the README: never on a real portal.
    if not (current_app.config["DEV_TOOLS"] or current_app.testing):
        raise click.ClickException(DEMO_REFUSED)
    if if_empty and db.session.scalar(sa.select(sa.func.count(Family.id))):
        click.echo("Données de démonstration déjà présentes.")
        return
    demo.load()
    db.session.commit()
    click.echo("Données de démonstration chargées.")


outbox_group = AppGroup("outbox", help="The e-mail outbox.")


@outbox_group.command("relay")
def outbox_relay() -> None:
    """Re-enqueue mails still pending."""
    click.echo(f"{outbox.relay()} e-mail(s) remis en file.")


accounts_group = AppGroup("accounts", help="Parent accounts.")


@accounts_group.command("purge")
def accounts_purge() -> None:
    """Delete accounts left unactivated for 7 days."""
    click.echo(f"{accounts.purge_unactivated()} compte(s) non activé(s) supprimé(s).")


digests_group = AppGroup("digests", help="The 13:00 / 18:00 accusés de traitement.")


@digests_group.command("send")
@click.option("--window", type=click.Choice(["13h", "18h"]), required=True, help="13h or 18h")
@click.option(
    "--date",
    "day",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    required=True,
    help="the window's day, YYYY-MM-DD (Paris)",
)
def digests_send(window: str, day) -> None:
    """Send one window's digests by hand (idempotent: mails already written are not sent again)."""
    from portail.models import DigestWindow

    try:
        count = digests.send_window(day.date(), DigestWindow(window))
    except digests.WindowNotOver as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"{count} accusé(s) de traitement mis en file pour le {french_date(day.date())} ({window}).")


backup_group = AppGroup("backup", help="Backups of the database and the uploaded files.")


@backup_group.command("create")
@click.option(
    "--dest",
    envvar="BACKUP_DIR",
    type=click.Path(file_okay=False, path_type=Path),
    help="The folder of the backups (BACKUP_DIR; default instance/backups).",
)
@click.option("--keep", type=click.IntRange(min=1), help="Then keep only the KEEP newest backups.")
def backup_create(dest: Path | None, keep: int | None) -> None:
    """Back up the database and the upload folder into a new dated folder."""
    dest = dest or Path(current_app.instance_path) / "backups"
    try:
        target = backups.create(dest, utcnow())
    except backups.BackupError as error:
        raise click.ClickException(str(error)) from None
    manifest = backups.verify(target)
    rows = sum(manifest["tables"].values())
    click.echo(f"Sauvegarde {target} : {rows} lignes, {manifest['upload_files']} fichiers.")
    for removed in backups.prune(dest, keep) if keep else []:
        click.echo(f"Ancienne sauvegarde supprimée : {removed}")


@backup_group.command("restore")
@click.argument("source", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace a database and an upload folder that hold data.")
def backup_restore(source: Path, force: bool) -> None:
    """Restore a backup folder into this app's database and upload folder, then check it."""
    try:
        manifest = backups.restore(source, force=force)
    except backups.BackupError as error:
        raise click.ClickException(str(error)) from None
    rows = sum(manifest["tables"].values())
    click.echo(f"Restauré depuis {source} : {rows} lignes et {manifest['upload_files']} fichiers, vérifiés.")
