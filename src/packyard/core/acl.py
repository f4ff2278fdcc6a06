"""Who may do what (devpi-protocol.md §2.5). Pure functions over principals and configs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

ANONYMOUS = ":ANONYMOUS:"
AUTHENTICATED = ":AUTHENTICATED:"
ROOT = "root"
# The settings of an index that name users.
ACL_KEYS = ("acl_read", "acl_upload", "acl_toxresult_upload")


def normalize_principal(value: str) -> str:
    """ACL entries: the two special principals are case-insensitive and stored upper-case."""
    value = value.strip()
    if value.upper() in (ANONYMOUS, AUTHENTICATED):
        return value.upper()
    return value


def principals(user: str | None) -> frozenset[str]:
    """Every principal the caller holds."""
    if user is None:
        return frozenset({ANONYMOUS})
    return frozenset({ANONYMOUS, AUTHENTICATED, user})


def acl_allows(acl: Iterable[str], user: str | None) -> bool:
    return not principals(user).isdisjoint(acl)


def _restricted(restrict_modify: Sequence[str]) -> bool:
    return bool(restrict_modify)


def may_create_user(user: str | None, restrict_modify: Sequence[str]) -> bool:
    """Self-registration is open unless the server restricts modifications."""
    if _restricted(restrict_modify):
        return acl_allows(restrict_modify, user)
    return True


def may_modify_user(
    user: str | None, target: str, restrict_modify: Sequence[str], password_only: bool = False
) -> bool:
    if user is None:
        return False
    if password_only and user == target:
        return True
    if _restricted(restrict_modify):
        return acl_allows(restrict_modify, user)
    return user in (ROOT, target)


def may_delete_user(user: str | None, target: str, restrict_modify: Sequence[str]) -> bool:
    if target == ROOT:
        return False
    return may_modify_user(user, target, restrict_modify)


def may_see_private_user_info(user: str | None, target: str) -> bool:
    """A user's e-mail and custom data: for the user themself and root only."""
    return user is not None and user in (ROOT, target)


def may_manage_index(user: str | None, owner: str, restrict_modify: Sequence[str]) -> bool:
    """Create, modify or delete an index owned by `owner`."""
    if user is None:
        return False
    if _restricted(restrict_modify):
        return acl_allows(restrict_modify, user)
    return user in (ROOT, owner)


def may_read_index(
    user: str | None, owner: str, acl_read: Iterable[str], restrict_modify: Sequence[str]
) -> bool:
    """See an index's content (pages, files, JSON, docs, search hits): those its `acl_read`
    names, and always its owner, root and whoever may manage it (they could grant it)."""
    if user is not None and user in (ROOT, owner):
        return True
    return acl_allows(acl_read, user) or may_manage_index(user, owner, restrict_modify)


def may_upload(user: str | None, acl_upload: Iterable[str]) -> bool:
    return acl_allows(acl_upload, user)


def may_delete_entries(user: str | None, owner: str, acl_upload: Iterable[str]) -> bool:
    """Delete files, versions or projects: uploaders, root and the owner."""
    return user is not None and (user in (ROOT, owner) or acl_allows(acl_upload, user))


def may_force_delete(user: str | None, owner: str) -> bool:
    """Removing released files from a non-volatile index (`?force`): its owner and root only,
    not every uploader (an uploader could otherwise delete a release and upload another)."""
    return user in (ROOT, owner)


def may_upload_toxresult(
    user: str | None, acl_toxresult_upload: Iterable[str], acl_upload: Iterable[str]
) -> bool:
    """Attach tox results: never anonymously. devpi's default `:ANONYMOUS:` entry stands for
    those who may upload to the index; other entries (users, `:AUTHENTICATED:`) mean what they
    say."""
    if user is None:
        return False
    allowed = set(acl_toxresult_upload)
    if ANONYMOUS in allowed and may_upload(user, acl_upload):
        return True
    return acl_allows(allowed - {ANONYMOUS}, user)


def without_user(config: Mapping[str, Any], user: str) -> dict[str, Any] | None:
    """`config` with `user` gone from its ACLs, or None when they name `user` nowhere.

    A deleted user's name must grant nothing: whoever registers it next is someone else."""
    changed = {
        key: [entry for entry in config[key] if entry != user]
        for key in ACL_KEYS
        if isinstance(config.get(key), list) and user in config[key]
    }
    return {**config, **changed} if changed else None
