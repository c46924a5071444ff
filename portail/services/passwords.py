"""Password policy (CNIL 2022-100: length, no composition rules, no common password) and hashing."""

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from zxcvbn import zxcvbn

MIN_LENGTH = 12
MAX_LENGTH = 128
# zxcvbn scores 0-4; 4 means an estimated 10^10 guesses or more (names, dates, keyboard rows
# and common passwords are refused: the accounts guard children's data).
MIN_SCORE = 4

# zxcvbn's lists are English: add French keyboard rows and the most common French passwords.
FRENCH_COMMON = [
    "azerty",
    "azertyuiop",
    "qsdfghjklm",
    "wxcvbn",
    "azertyuiopqsdfghjklmwxcvbn",
    "motdepasse",
    "soleil",
    "bonjour",
    "doudou",
    "loulou",
    "chouchou",
    "marseille",
    "paris",
    "nicolas",
    "camille",
    "julien",
    "coucou",
    "jetaime",
    "amour",
    "princesse",
    "chocolat",
    "famille",
    "portail",
    "mairie",
    "enfant",
    "bebe",
    "maman",
    "papa",
    "france",
    "olivier",
    "celine",
]

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters
# A hash to verify against when the account does not exist, so timing does not reveal it.
_DUMMY_HASH = _hasher.hash("portail-famille-dummy-password")


def policy_error(password: str, user_inputs: list[str] | None = None) -> str | None:
    """Return the French reason a password is refused, or None when it is acceptable."""
    if len(password) < MIN_LENGTH:
        return f"Le mot de passe doit contenir au moins {MIN_LENGTH} caractères."
    if len(password) > MAX_LENGTH:
        return f"Le mot de passe doit contenir au plus {MAX_LENGTH} caractères."
    inputs = [value for value in (user_inputs or []) if value] + FRENCH_COMMON
    if zxcvbn(password[:72], user_inputs=inputs)["score"] < MIN_SCORE:
        return (
            "Ce mot de passe est trop courant ou trop facile à deviner. "
            "Choisissez par exemple une suite de plusieurs mots."
        )
    return None


def hash_password(password: str) -> str:
    """Hash a password with argon2id."""
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Check a password; costs the same time when there is no account."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """Whether the hash uses outdated parameters."""
    return _hasher.check_needs_rehash(password_hash)
