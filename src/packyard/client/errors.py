"""The client library's one error root: a caller catches `ClientError` to handle any failure.

ClientError              something the client could not do; `message` and `hint` are for
 │                       people, `status` is the server's HTTP status (0: none was answered)
 ├── StateError          the saved client state cannot be read
 ├── InstallerError      an installer or a virtualenv is missing
 ├── BundleError         a bundle is damaged or does not match its manifest
 └── ClosureError        some requirement of some target cannot be met
"""

from __future__ import annotations


class ClientError(Exception):
    """A request or a client-side step failed; `message` says what, `hint` what to do."""

    def __init__(self, message: str, status: int = 0, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.hint = hint


class StateError(ClientError):
    """The saved client state cannot be read; the message says which file and what to do."""


class InstallerError(ClientError):
    """An installer or a virtualenv is missing; the message says what to do."""


class BundleError(ClientError):
    """A bundle is damaged or does not match its manifest."""


class ClosureError(ClientError):
    """Some requirement of some target cannot be met; nothing was downloaded."""
