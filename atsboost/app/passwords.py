"""Password hashing: argon2id through argon2-cffi, with its RFC 9106 default parameters.

Only hashes are stored. ``verify`` never raises for a wrong password; it answers
False, so callers cannot leak which check failed.
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    """Return the argon2id hash of ``password`` (salted; a new hash every call)."""
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Tell whether ``password`` matches ``password_hash``."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """Tell whether a stored hash was made with older parameters and should be replaced at login."""
    return _hasher.check_needs_rehash(password_hash)
