"""Login throttling: guessing stays impossible, yet a stranger cannot keep the owner out."""

import pytest
import sqlalchemy as sa

from portail.extensions import db
from portail.services import login_throttle
from tests.conftest import link_in
from tests.factories import PASSWORD, make_user

WRONG = "mauvais-mot-de-passe-long"
NEW_PASSWORD = "lampadaire-girafe-trombone-nuage"
OWNER_IP = "198.51.100.7"


@pytest.fixture
def owner(app):
    user = make_user(email="parent@example.fr", first_name="Claire")
    db.session.commit()
    return user


def login(client, password: str, ip: str, email: str = "parent@example.fr"):
    return client.post(
        "/connexion", data={"email": email, "password": password}, environ_base={"REMOTE_ADDR": ip}
    )


def attack_from_many_ips(app, count: int, email: str = "parent@example.fr") -> list[int]:
    """Wrong passwords from `count` different clients, each with its own browser (no cookie)."""
    return [
        login(app.test_client(), WRONG, f"203.0.113.{index}", email).status_code for index in range(count)
    ]


def known_device(app, password: str = PASSWORD):
    """The owner's browser, which logged in once (and so holds the known-device cookie), then logged out."""
    browser = app.test_client()
    assert login(browser, password, OWNER_IP).status_code == 302
    browser.post("/deconnexion")
    return browser


def attack_mails(mails) -> list:
    return [message for message in mails if "Tentatives de connexion" in message.subject]


def test_one_client_is_stopped_after_five_wrong_passwords_even_with_the_right_one(client, owner):
    for _ in range(5):
        assert login(client, WRONG, "203.0.113.1").status_code == 200
    blocked = login(client, PASSWORD, "203.0.113.1")
    assert blocked.status_code == 429 and "Trop de tentatives" in blocked.get_data(as_text=True)


def test_one_client_failing_does_not_keep_the_owner_out(app, client, owner):
    for _ in range(6):
        login(client, WRONG, "203.0.113.1")
    assert login(app.test_client(), PASSWORD, OWNER_IP).status_code == 302


def test_many_clients_are_stopped_after_ten_wrong_passwords_on_one_account(app, owner):
    assert attack_from_many_ips(app, 10) == [200] * 10
    assert login(app.test_client(), PASSWORD, "203.0.113.200").status_code == 429
    assert login(app.test_client(), WRONG, "203.0.113.201").status_code == 429


def test_an_unknown_email_is_throttled_exactly_like_an_account(app):
    """429 or not must not tell whether the account exists."""
    assert attack_from_many_ips(app, 10, "personne@example.fr") == [200] * 10
    assert login(app.test_client(), WRONG, "203.0.113.200", "personne@example.fr").status_code == 429


def test_the_owner_gets_in_from_a_known_device_while_the_account_is_attacked(app, owner, mails):
    browser = known_device(app)
    attack_from_many_ips(app, 12)
    assert login(app.test_client(), PASSWORD, "203.0.113.250").status_code == 429, "strangers are held back"
    assert login(browser, PASSWORD, OWNER_IP).status_code == 302
    assert browser.get("/mon-espace/").status_code == 200


def test_a_known_device_gets_five_wrong_passwords_too(app, owner):
    """A stolen device cookie does not open a way to guess the password."""
    browser = known_device(app)
    for _ in range(5):
        assert login(browser, WRONG, OWNER_IP).status_code == 200
    assert login(browser, PASSWORD, OWNER_IP).status_code == 429


def test_the_device_cookie_of_another_account_or_a_forged_one_does_not_help(app, owner):
    make_user(email="voisin@example.fr")
    db.session.commit()
    browser = app.test_client()
    assert login(browser, PASSWORD, OWNER_IP, "voisin@example.fr").status_code == 302
    browser.post("/deconnexion")
    forged = app.test_client()
    forged.set_cookie(login_throttle.DEVICE_COOKIE, "W1sxLCJ4Il1d.forged.signature", path="/connexion")
    attack_from_many_ips(app, 10)
    assert login(browser, PASSWORD, OWNER_IP).status_code == 429
    assert login(forged, PASSWORD, OWNER_IP).status_code == 429


def test_the_device_cookie_is_httponly_long_lived_and_only_sent_to_the_login_page(app, owner):
    browser = app.test_client()
    response = login(browser, PASSWORD, OWNER_IP)
    header = next(
        h for h in response.headers.getlist("Set-Cookie") if h.startswith(login_throttle.DEVICE_COOKIE)
    )
    assert "HttpOnly" in header and "Path=/connexion" in header and "SameSite=Lax" in header
    assert f"Max-Age={365 * 24 * 3600}" in header


def test_a_password_reset_lifts_the_throttle(app, client, owner, mails):
    attack_from_many_ips(app, 10)
    for _ in range(5):
        login(client, WRONG, OWNER_IP)
    blocked = login(client, PASSWORD, OWNER_IP)
    assert blocked.status_code == 429
    page = blocked.get_data(as_text=True)
    # the owner is told the way in at once, on the login form (its error summary)
    assert "Mot de passe oublié" in page and "vous connecter aussitôt" in page and 'name="email"' in page
    client.post("/mot-de-passe-oublie", data={"email": "parent@example.fr"})
    path = link_in(next(m for m in mails if "Réinitialisation" in m.subject), "/mot-de-passe/")
    assert (
        client.post(path, data={"password": NEW_PASSWORD, "password_confirm": NEW_PASSWORD}).status_code
        == 302
    )
    assert login(client, NEW_PASSWORD, OWNER_IP).status_code == 302


def test_the_owner_is_warned_once_by_mail_when_the_account_is_attacked(app, owner, mails):
    attack_from_many_ips(app, 9)
    assert attack_mails(mails) == [], "a few mistakes are no attack"
    attack_from_many_ips(app, 25)
    (warning,) = attack_mails(mails)
    assert warning.recipients == ["parent@example.fr"]
    assert "Bonjour Claire" in warning.body and "/mot-de-passe-oublie" in warning.body


def test_no_warning_is_mailed_for_an_unknown_email(app, mails):
    attack_from_many_ips(app, 12, "personne@example.fr")
    assert attack_mails(mails) == []


class Clock:
    """Stands for the time module of the rate-limit storage (memory:// in tests)."""

    def __init__(self):
        self.now = 1_800_000_000.0

    def time(self) -> float:
        return self.now

    def advance(self, minutes: float) -> None:
        self.now += minutes * 60


@pytest.fixture
def clock(monkeypatch):
    import limits.storage.memory

    fake = Clock()
    monkeypatch.setattr(limits.storage.memory, "time", fake)
    return fake


def test_the_waits_for_strangers_grow_from_a_quarter_of_an_hour_to_a_day(app, owner, clock):
    """At most 100 guesses a day on an account, whatever the number of clients."""
    clients = iter(range(10_000))

    def guesses_until_blocked() -> int:
        for guesses in range(200):
            attempt = login_throttle.Attempt("parent@example.fr", owner, f"ip-{next(clients)}", None)
            if not login_throttle.allowed(attempt):
                return guesses
            login_throttle.failed(attempt)
        raise AssertionError("never blocked")

    assert guesses_until_blocked() == 10
    clock.advance(16)
    assert guesses_until_blocked() == 10
    clock.advance(16)
    assert guesses_until_blocked() == 10
    clock.advance(16)
    assert guesses_until_blocked() == 0, "30 an hour"
    later = []
    for _ in range(5 * 4):  # five more hours, a try every quarter
        clock.advance(15.5)
        later.append(guesses_until_blocked())
    assert 30 + sum(later) == 100, "100 a day"
    clock.advance(6 * 60)
    assert guesses_until_blocked() == 0, "then nothing until the day is over"
    clock.advance(24 * 60)
    assert guesses_until_blocked() == 10
    device = login_throttle.Attempt("parent@example.fr", owner, "ip-owner", "device-id")
    assert login_throttle.allowed(device), "a known device is never held back by strangers"


def test_without_redis_the_warning_is_written_at_once(app, owner, mails, monkeypatch):
    from portail.models import OutboxMessage
    from portail.services import accounts

    monkeypatch.setattr(accounts, "enqueue", lambda *_args, **_kwargs: False)
    attack_from_many_ips(app, 10)
    (row,) = db.session.scalars(sa.select(OutboxMessage).where(OutboxMessage.template == "login_attack"))
    assert row.recipient == "parent@example.fr"
