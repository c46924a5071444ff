"""Password policy (CNIL 2022-100: length, no composition rules, no common password) and hashing."""

from argon2 import PasswordHasher, Type
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

# argon2id at OWASP's first recommended setting (Password Storage Cheat Sheet: m = 19 MiB, t = 2,
# p = 1): ~20 ms of CPU per login on this project's server, where the library's defaults (64 MiB,
# t = 3, p = 4) cost ~150 ms and capped one core at ~7 logins a second on opening day. Hashes made
# with other parameters still verify, and are rehashed at the next successful login.
MEMORY_KIB = 19 * 1024
TIME_COST = 2
PARALLELISM = 1
_hasher = PasswordHasher(time_cost=TIME_COST, memory_cost=MEMORY_KIB, parallelism=PARALLELISM, type=Type.ID)
# A hash to verify against when the account does not exist, so timing does not reveal it (same
# parameters as the accounts' hashes: the same cost).
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
