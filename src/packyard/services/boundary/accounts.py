"""Logging in, sessions and users as the devpi API shows them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from packyard.core import acl
from packyard.core.models import IndexRecord, User
from packyard.core.redact import url_without_password
from packyard.errors import Unauthenticated
from packyard.services._threads import in_thread
from packyard.services.accounts import LoginToken, UserUpdate

if TYPE_CHECKING:
    from packyard.services import Services

# Shown only to the user themselves and root.
PRIVATE_USER_KEYS = ("email", "custom_data")


def index_config_view(record: IndexRecord, viewer: str | None) -> dict[str, Any]:
    """An index's config as devpi shows it; a mirror_url's password only to root and the
    owner (readers of the index need not hold the upstream's credentials)."""
    # Stored before `acl_read` existed: shown with what it means (everyone may read).
    view = {"acl_read": list(record.index_config.acl_read), **record.config}
    if isinstance(view.get("mirror_url"), str) and viewer not in (acl.ROOT, record.user):
        view["mirror_url"] = url_without_password(view["mirror_url"])
    return view


class AccountUseCases:
    def __init__(self, services: Services) -> None:
        self._services = services
        self._accounts = services.accounts

    async def authenticate(self, name: str, secret: str, address: str) -> str:
        """The user behind credentials; a token of an unchanged user is settled on the event
        loop, a password (a slow KDF) in a thread."""
        user = self._accounts.authenticate_quickly(name, secret)
        if user is None:
            user = await in_thread(self._accounts.authenticate, name, secret, address)
        return user

    async def session_user(self, name: str, token: str) -> str | None:
        return await in_thread(self._accounts.authenticate_token, name, token)

    async def login(self, name: str, password: str, address: str) -> LoginToken:
        return await in_thread(self._accounts.login, name, password, address)

    async def logout(self, actor: str | None) -> None:
        await in_thread(self._accounts.revoke_tokens, actor)

    async def users_view(self, viewer: str | None) -> dict[str, Any]:
        self.check_users_visible(viewer)

        def gather() -> dict[str, Any]:
            return {user.name: self._view(user, viewer) for user in self._accounts.list()}

        return await in_thread(gather)

    async def user_view(self, name: str, viewer: str | None) -> dict[str, Any]:
        self.check_users_visible(viewer)
        return await in_thread(lambda: self._view(self._accounts.get(name), viewer))

    def check_users_visible(self, viewer: str | None) -> None:
        """The setting hide_users_from_anonymous: who has an account is for members only."""
        if viewer is None and self._services.settings.hide_users_from_anonymous:
            raise Unauthenticated("log in to see the users of this server")

    async def create(self, actor: str | None, name: str, body: dict[str, Any]) -> dict[str, Any]:
        user = await in_thread(self._accounts.create, actor, name, body)
        return await in_thread(self._view, user, user.name)

    async def modify(self, actor: str | None, name: str, body: dict[str, Any]) -> UserUpdate:
        return await in_thread(self._accounts.modify, actor, name, body)

    async def delete(self, actor: str | None, name: str) -> None:
        await in_thread(self._accounts.delete, actor, name)

    def _view(self, user: User, viewer: str | None) -> dict[str, Any]:
        """A user's config as devpi shows it; e-mail and custom data only to them and root."""
        info = dict(user.info)
        if not acl.may_see_private_user_info(viewer, user.name):
            for key in PRIVATE_USER_KEYS:
                info.pop(key, None)
        view: dict[str, Any] = {"username": user.name, "created": user.created, **info}
        if user.modified:
            view["modified"] = user.modified
        indexes = self._services.indexes.readable_of_user(user.name, viewer)
        view["indexes"] = {r.name: index_config_view(r, viewer) for r in indexes}
        return view
