"""Temporary passwords for new users.

Entra's cloud password policy: 8-256 characters with three of the four classes (lower case, upper case, digits,
symbols), from A-Z a-z 0-9 and a fixed symbol set. The generated password has 16 characters with all four classes,
comes from :mod:`secrets` (a CSPRNG), and leaves out characters that are easy to misread (0/O, 1/l/I) or that Teams'
Markdown would format. The user must change it at first sign-in (``forceChangePasswordNextSignIn``).

A password is never logged, stored, returned in a result or put in XCom: it exists in memory between
``POST /users`` and the bot message that delivers it to the manager.
"""

from __future__ import annotations

import secrets

__all__ = ["PASSWORD_CLASSES", "temporary_password"]

PASSWORD_CLASSES = (
    "abcdefghijkmnopqrstuvwxyz",  # no l
    "ABCDEFGHJKLMNPQRSTUVWXYZ",  # no I, O
    "23456789",  # no 0, 1
    "!#$%+=?@",  # none of Markdown's * _ ` ~
)


def temporary_password(length: int = 16) -> str:
    """A random password with at least one character of every class."""
    if length < 8 or length > 256:
        raise ValueError("Entra passwords are 8 to 256 characters long")
    rng = secrets.SystemRandom()
    chars = [rng.choice(cls) for cls in PASSWORD_CLASSES]
    alphabet = "".join(PASSWORD_CLASSES)
    chars += [rng.choice(alphabet) for _ in range(length - len(chars))]
    rng.shuffle(chars)
    return "".join(chars)
