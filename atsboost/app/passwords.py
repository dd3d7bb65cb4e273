"""Password hashing: argon2id through argon2-cffi, with its RFC 9106 default parameters.

Only hashes are stored. ``verify`` never raises for a wrong password; it answers
False, so callers cannot leak which check failed.
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from zxcvbn import zxcvbn

_hasher = PasswordHasher()
MIN_LENGTH = 12
MIN_SCORE = 3  # zxcvbn's scale, 0 to 4: 3 resists an offline attack on a slow hash


def hash_password(password: str) -> str:
    """Return the argon2id hash of ``password`` (salted; a new hash every call)."""
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Tell whether ``password`` matches ``password_hash``."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def weakness(password: str) -> str | None:
    """Say why ``password`` is too weak for a production account, or None; never quotes it.

    The length rule is checked first, then Dropbox's zxcvbn estimator, which sees
    repeats, sequences, keyboard patterns and common words that a length rule misses.
    """
    if len(password) < MIN_LENGTH:
        return f"it is shorter than {MIN_LENGTH} characters"
    estimate = zxcvbn(password[:100])  # the estimator's cost grows with length; the start decides
    if estimate["score"] < MIN_SCORE:
        hint = estimate["feedback"]["warning"] or "it follows a common pattern"
        return (
            f"it is easy to guess ({hint.rstrip('.')}; strength {estimate['score']} of 4, needed {MIN_SCORE})"
        )
    return None


def needs_rehash(password_hash: str) -> bool:
    """Tell whether a stored hash was made with older parameters and should be replaced at login."""
    return _hasher.check_needs_rehash(password_hash)
