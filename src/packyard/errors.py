"""The domain error tree; only the web layer maps these to HTTP status codes.

PackyardError
 ├── InvalidInput         bad request data (400)
 ├── Unauthenticated      credentials needed (401)
 ├── Forbidden            credentials not sufficient (403)
 ├── NotFound             no such user, index, project, version or file (404)
 ├── Conflict             exists already / would clash (409)
 ├── Gone                 was there, is deleted (410)
 ├── TooLarge             over a configured size limit (413)
 ├── UpstreamUnavailable  a mirror's upstream failed and nothing cached helps (502)
 ├── Damaged              stored data is missing or not what its row says (500)
 ├── StorageFull          the disk (or the database's) has no room left (507)
 └── ConfigError          bad settings at start-up (not an HTTP error)
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


class Forbidden(PackyardError):
    """The caller is known but not allowed."""


class NotFound(PackyardError):
    """The thing asked for does not exist."""


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


class ConfigError(PackyardError):
    """Settings are missing, unknown or mistyped."""
