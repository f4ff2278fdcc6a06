"""What an upload must be, as pure rules (devpi-protocol.md §9): the command an upload form
says (`UploadCommand`), who may upload where, the digests a client sent, a register's fields,
a doc zip's version, a tox result's name and body, and which stored files an uploaded version
joins. The file name rules are in `dists`."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum
from typing import Any, BinaryIO

from packaging.utils import canonicalize_version
from packaging.version import InvalidVersion, Version

from packyard.core import acl
from packyard.core.dists import FORM_ALIASES, LIST_KEYS, METADATA_KEYS, parse_version
from packyard.core.models import FileKind, FileRecord, IndexRecord
from packyard.errors import Forbidden, InvalidInput, NotFound, TooLarge, Unauthenticated

Fields = Mapping[str, Sequence[str]]  # a form's text fields, each repeatable
# The form field of each digest a client may declare -> its hashlib algorithm.
DIGEST_FIELDS = {"sha256_digest": "sha256", "md5_digest": "md5", "blake2_256_digest": "blake2b"}
FIELD_OF_DIGEST = {algorithm: field for field, algorithm in DIGEST_FIELDS.items()}


class UploadAction(StrEnum):
    """What a legacy-API POST asks for (its `:action` field)."""

    RELEASE_FILE = "file_upload"
    DOCS = "doc_upload"
    REGISTER = "submit"  # a version's metadata, without files


@dataclasses.dataclass(frozen=True)
class UploadCommand:
    """One upload as services take it: what the client declared, in words with a meaning.
    The web layer reads the wire form into it (web/upload_form.py); '' means "not sent"."""

    action: UploadAction
    project: str = ""  # the project name declared
    version: str = ""
    dist_type: str = ""  # the kind of distribution declared (devpi's `filetype`)
    python_version: str = ""  # declared (`pyversion`); the file name is what counts
    filename: str | None = None  # the file part's, None without a file part
    content: BinaryIO | None = None
    # hashlib algorithm -> the hex digest declared for the file (lower case)
    digests: Mapping[str, str] = dataclasses.field(default_factory=dict)
    # core metadata declared as form fields, in devpi's key names (a register stores them)
    metadata: Mapping[str, Any] = dataclasses.field(default_factory=dict)


def first_value(fields: Fields, key: str) -> str:
    """A field's first value, stripped ('' when absent)."""
    values = fields.get(key) or [""]
    return values[0].strip()


def declared_digests(fields: Fields) -> dict[str, str]:
    """hashlib algorithm -> the digest a form declares (lower case), for those it sends."""
    sent = {algo: first_value(fields, key).lower() for key, algo in DIGEST_FIELDS.items()}
    return {algo: digest for algo, digest in sent.items() if digest}


class SentDigests:
    """The digests a client sent with its upload, computed over the bytes as they arrive."""

    def __init__(self, declared: Mapping[str, str]) -> None:
        self._expected = {algo: declared[algo] for algo in FIELD_OF_DIGEST if algo in declared}
        self._hashers = {
            algo: hashlib.blake2b(digest_size=32) if algo == "blake2b" else hashlib.new(algo)
            for algo in self._expected
        }

    def update(self, chunk: bytes) -> None:
        for hasher in self._hashers.values():
            hasher.update(chunk)

    def check(self) -> None:
        for algo, hasher in self._hashers.items():
            if not hmac.compare_digest(hasher.hexdigest(), self._expected[algo]):
                raise InvalidInput(  # names the field the client sent
                    f"The digest supplied does not match a digest calculated from the"
                    f" uploaded file ({FIELD_OF_DIGEST[algo]})."
                )


def check_may_upload(actor: str | None, record: IndexRecord) -> IndexRecord:
    """`record` if `actor` may upload to it, else NotFound, Unauthenticated or Forbidden."""
    refusal = record.index_config.upload_refusal  # the index kind first, then the caller
    if refusal is not None:
        raise NotFound(refusal)
    if actor is None:
        raise Unauthenticated("authentication required to upload")
    if not acl.may_upload(actor, record.index_config.acl_upload):
        raise Forbidden("no permission to submit")
    return record


def check_may_upload_toxresult(actor: str | None, record: IndexRecord, release: FileRecord) -> None:
    """Who may attach tox results to `release` (a file already looked up: a missing one is
    404 for everyone); devpi's words, which name its client's option to skip the upload."""
    if release.kind != FileKind.RELEASE:
        raise NotFound(f"no release file found at {release.relpath}")
    if actor is None:
        raise Unauthenticated(
            "authentication required to upload tox results; log in, or use the devpi"
            " test --no-upload option to skip the upload."
        )
    config = record.index_config
    if not acl.may_upload_toxresult(actor, config.acl_toxresult_upload, config.acl_upload):
        raise Forbidden(
            "No permission to upload tox results. You can use the devpi test --no-upload"
            " option to skip the upload."
        )


def check_toxresult(body: bytes, limit: int) -> None:
    """A tox result is a JSON document of at most `limit` bytes."""
    if len(body) > limit:
        raise TooLarge(f"tox result too large: the limit is {limit} bytes")
    try:
        json.loads(body)
    except ValueError as exc:
        raise InvalidInput("a tox result must be a JSON document") from exc


def toxresult_name(release: FileRecord, count: int, moment: time.struct_time) -> str:
    """devpi's name: `{release}.toxresult-{YYYYmmddHHMMSS}-{n}`, n counting earlier ones."""
    return f"{release.filename}.toxresult-{time.strftime('%Y%m%d%H%M%S', moment)}-{count}"


def form_metadata(fields: Fields) -> dict[str, Any]:
    """Metadata sent as form fields (for `submit`), in devpi's key names."""
    metadata: dict[str, Any] = {}
    for key, values in fields.items():
        target = FORM_ALIASES.get(key, key)
        if target in METADATA_KEYS:
            metadata[target] = list(values) if target in LIST_KEYS else values[0]
    return metadata


def doc_zip_name(project: str, version: str) -> str:
    """devpi's name of a version's documentation zip."""
    return f"{project}-{version}.doc.zip"


def latest_version(project: str, versions: Iterable[str]) -> str:
    """The version a doc zip without one documents: the project's latest."""
    known = list(versions)
    if not known:  # devpi's words: its client and scripts match on them
        raise InvalidInput(
            f"doczip has no version and {project!r} has no releases to derive one from"
        )
    return max(known, key=parse_version)


def joins_release(version: str, stored: str) -> bool:
    """Does a file stored as version `stored` belong to the release an upload of `version`
    joins? 1.0 and 1.0.0 alike; a local version (1.0+cpu) joins its public version's release
    as well: pip's `==1.0` takes 1.0+cpu, and prefers it, so it must not slip into a released
    1.0."""
    if canonicalize_version(stored) == canonicalize_version(version):
        return True
    public = _public_release(version)
    return public is not None and public == _public_release(stored, local_too=True)


def _public_release(version: str, local_too: bool = False) -> str | None:
    """The canonical public part of a local version (of any version with `local_too`)."""
    try:
        parsed = Version(version)
    except InvalidVersion:
        return None
    return canonicalize_version(parsed.public) if parsed.local or local_too else None
