"""Names of users, indexes and projects (PEP 503 normalisation, devpi's character rules)."""

from __future__ import annotations

import re
import string
import unicodedata

from packaging.utils import canonicalize_name

from packyard.errors import InvalidInput

# devpi: control characters, space and ASCII punctuation other than -.@_ are not allowed.
_FORBIDDEN = set(string.punctuation) - set("-.@_") | {" "} | {chr(i) for i in range(32)} | {"\x7f"}
# PEP 508 names, ASCII only as PyPI allows: re.ASCII, or IGNORECASE would let the Kelvin sign
# and the dotless i pass as K and i; fullmatch, or "$" would accept a trailing newline.
_PROJECT_NAME = re.compile(r"[A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9]", re.IGNORECASE | re.ASCII)
# New user names: ASCII only, so that no two accounts can look alike (Cyrillic "\u0430" for "a",
# zero-width or bidi characters, NFC/NFD twins). devpi's own rule allows more; users imported
# with such names keep them.
_NEW_USER_NAME = re.compile(r"^[A-Za-z0-9._@-]+$")
MAX_USER_NAME = 100


def normalize_project(name: str) -> str:
    """PEP 503 normalised form: lowercase, runs of -_. collapsed to one '-'."""
    return str(canonicalize_name(name))


def is_normalized(name: str) -> bool:
    return normalize_project(name) == name


def check_project_name(name: str) -> str:
    """Return `name` if it is a valid PEP 508 distribution name, else raise InvalidInput.

    Only ASCII: a look-alike such as 'f\u03bf\u03bf' (Greek omicrons) beside 'foo' is refused.
    """
    if not _PROJECT_NAME.fullmatch(name):
        foreign = next((char for char in name if not char.isascii()), None)
        why = f" ({foreign!a} is not ASCII)" if foreign else ""
        raise InvalidInput(
            f"invalid project name {name!a}{why}: use ASCII letters, digits, '.', '-'"
            " and '_', starting and ending with a letter or digit"
        )
    return name


def check_account_name(name: str, kind: str = "username") -> str:
    """Validate a user or index name the way devpi does."""
    if not name or any(char in _FORBIDDEN for char in name) or name.startswith("+"):
        raise InvalidInput(
            f"{kind} {name!r} contains characters that aren't allowed. "
            "Any ascii symbol besides -.@_ is blocked."
        )
    return name


def check_new_user_name(name: str) -> str:
    """Validate the name of an account about to be created (stricter than devpi's rule)."""
    check_account_name(name)
    if len(name) > MAX_USER_NAME or not _NEW_USER_NAME.match(name):
        raise InvalidInput(
            f"username {name!r} is not allowed: use at most {MAX_USER_NAME} ASCII letters,"
            " digits and '.', '_', '@', '-' (so that no two user names look alike)"
        )
    return name


def user_key(name: str) -> str:
    """What makes two user names the same account: case, compatibility forms (NFKC) and
    invisible format characters (zero-width, bidi controls) do not count."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())
    return "".join(char for char in folded if unicodedata.category(char) != "Cf")


def split_index_name(full: str) -> tuple[str, str]:
    """'user/index' -> ('user', 'index'); raise InvalidInput for any other shape."""
    parts = full.strip().strip("/").split("/")
    if len(parts) != 2 or not all(parts):
        raise InvalidInput(f"{full!r} is not in the format user/index")
    return parts[0], parts[1]
