"""The domain error tree; only the web layer maps these to HTTP status codes.

PackyardError
 ├── InvalidInput         bad request data (400)
 ├── Unauthenticated      credentials needed, or the ones sent are wrong (401)
 │    └── LoginExpired    a login token that expired or was revoked (401, log in again)
 ├── Forbidden            credentials not sufficient (403)
 ├── NotFound             no such user, index, project, version or file (404)
 ├── NotAcceptable        no representation matches the request's Accept (406)
 ├── Conflict             exists already / would clash (409)
 ├── Gone                 was there, is deleted (410)
 ├── TooLarge             over a configured size limit (413)
 ├── UpstreamUnavailable  a mirror's upstream failed and nothing cached helps (502)
 ├── Damaged              stored data is missing or not what its row says (500)
 ├── StorageFull          the disk (or the database's) has no room left (507)
 ├── TryLater             refused for now; `retry_after` says when to retry
 │    ├── TooManyAttempts too many failed logins for a user or from an address (429)
 │    └── Busy            the server is saturated, e.g. with password checks (503)
 └── ConfigError          bad settings at start-up (not an HTTP error)

The status codes live in one table, `packyard.web.responses.STATUS`, which has an entry for
every class here (a test checks it).
"""


class PackyardError(Exception):
    """Base of every error packyard raises on purpose; `message` is for people."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(PackyardError):
    """The request's data is wrong."""


class Unauthenticated(PackyardError):
    """The caller must identify itself first."""


class LoginExpired(Unauthenticated):
    """A login token that is no longer valid: expired, logged out, or its user changed."""


class Forbidden(PackyardError):
    """The caller is known but not allowed."""


class NotFound(PackyardError):
    """The thing asked for does not exist."""


class NotAcceptable(PackyardError):
    """None of the representations the resource offers matches what the client accepts."""


class Conflict(PackyardError):
    """The thing exists already, or the change would clash with what is stored."""


class Gone(PackyardError):
    """The thing existed and was deleted."""


class TooLarge(PackyardError):
    """The request body is over a configured limit."""


class UpstreamUnavailable(PackyardError):
    """A mirror's upstream failed and nothing cached can answer."""


class Damaged(PackyardError):
    """Stored data is missing or does not match its row: the server's fault, never served."""


class StorageFull(PackyardError):
    """Nothing could be written: the file system or the database ran out of space."""


class TryLater(PackyardError):
    """Refused for now; the same request may succeed after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TooManyAttempts(TryLater):
    """Too many failed logins for one user name or from one address."""


class Busy(TryLater):
    """The server is saturated (e.g. with password checks); retry shortly."""


class StorageUnavailable(TryLater):
    """The object store cannot be reached now; nothing was changed."""

    def __init__(self, message: str, retry_after: int = 5) -> None:
        super().__init__(message, retry_after)


class DatabaseUnavailable(TryLater):
    """The database cannot be reached now (stopped, restarting, the network between)."""

    def __init__(self, message: str, retry_after: int = 5) -> None:
        super().__init__(message, retry_after)


class ConfigError(PackyardError):
    """Settings are missing, unknown or mistyped."""
