"""What the client remembers between runs: server, index, logins. Environment wins.

Kept in `$XDG_CONFIG_HOME/packyard/client.json` (or `PACKYARD_CLIENTDIR`), mode 0600
because it holds tokens. CI sets `PACKYARD_URL`, `PACKYARD_INDEX`, `PACKYARD_USER` and
`PACKYARD_PASSWORD` or `PACKYARD_TOKEN` instead.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from packyard.client.errors import StateError


def state_dir(environ: Mapping[str, str]) -> Path:
    if environ.get("PACKYARD_CLIENTDIR"):
        return Path(environ["PACKYARD_CLIENTDIR"])
    base = environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "packyard"


@dataclasses.dataclass
class ClientState:
    """The current server URL, index ('user/name'), and tokens per server and user."""

    path: Path
    url: str = ""
    index: str = ""
    user: str = ""
    tokens: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)
    # When each token stops working (seconds since the epoch), as the server said at login.
    expires: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)
    # Credentials from the environment, never written to disk.
    env_password: str = ""
    env_token: str = ""

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None) -> ClientState:
        environ = os.environ if environ is None else environ
        path = state_dir(environ) / "client.json"
        data: dict[str, Any] = {}
        if path.is_file():
            try:
                data = json.loads(path.read_text())
            except ValueError as exc:
                raise StateError(f"{path} is not valid JSON ({exc}): fix or delete it") from exc
        state = cls(
            path=path,
            url=data.get("url", ""),
            index=data.get("index", ""),
            user=data.get("user", ""),
            tokens=data.get("tokens", {}),
            expires=data.get("expires", {}),
        )
        state.url = environ.get("PACKYARD_URL", state.url).rstrip("/")
        state.index = environ.get("PACKYARD_INDEX", state.index).strip("/")
        state.user = environ.get("PACKYARD_USER", state.user)
        state.env_password = environ.get("PACKYARD_PASSWORD", "")
        state.env_token = environ.get("PACKYARD_TOKEN", "")
        return state

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "url": self.url,
            "index": self.index,
            "user": self.user,
            "tokens": self.tokens,
            "expires": self.expires,
        }
        temp = self.path.with_suffix(".tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # a temp file left by an earlier run keeps its old mode otherwise
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=2)
        os.replace(temp, self.path)

    def secret(self) -> str:
        """The token (or password) to send for the current user on the current server."""
        if self.env_token:
            return self.env_token
        if self.env_password:
            return self.env_password
        if self.login_expired():
            return ""  # sent anyway, it would turn even anonymous reads into 401s
        return self.tokens.get(self.url, {}).get(self.user, "")

    def saved_token(self) -> str:
        """The token `login` saved for the current user, if it is still in date."""
        if self.login_expired():
            return ""
        return self.tokens.get(self.url, {}).get(self.user, "")

    def has_credentials(self) -> bool:
        return bool(self.user and self.secret())

    def login_expired(self) -> bool:
        """The saved login of the current user has run out (environment credentials never do)."""
        if self.env_token or self.env_password or not self.user:
            return False
        expiry = self.expires.get(self.url, {}).get(self.user)
        has_token = self.user in self.tokens.get(self.url, {})
        return has_token and expiry is not None and expiry <= time.time()

    def remember(self, user: str, token: str, valid_for: float | None = None) -> None:
        self.user = user
        self.tokens.setdefault(self.url, {})[user] = token
        if valid_for is not None:
            self.expires.setdefault(self.url, {})[user] = time.time() + valid_for

    def forget(self) -> None:
        self.tokens.get(self.url, {}).pop(self.user, None)
        self.expires.get(self.url, {}).pop(self.user, None)
        self.user = ""
