"""Simple repository API models and content negotiation (PEP 503, 592, 629, 658, 691, 700, 714)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from datetime import datetime

from packyard import errors

API_VERSION = "1.4"  # 1.4: PEP 792 project status (1.2 and 1.3 add only optional keys)
JSON_V1 = "application/vnd.pypi.simple.v1+json"
HTML_V1 = "application/vnd.pypi.simple.v1+html"
TEXT_HTML = "text/html"
_LATEST = {
    "application/vnd.pypi.simple.latest+json": JSON_V1,
    "application/vnd.pypi.simple.latest+html": HTML_V1,
}
# Offers in order of preference on equal quality: JSON is the richer form (PEP 700 fields).
_OFFERS = (JSON_V1, HTML_V1, TEXT_HTML)


class NotAcceptable(errors.NotAcceptable):
    """No simple-API representation matches what the client accepts."""

    def __init__(self) -> None:
        super().__init__(f"Not Acceptable: this page is offered as {', '.join(_OFFERS)}")


def negotiate(accept: str | None, format_param: str | None = None) -> str:
    """Pick the content type to answer with; raise NotAcceptable when nothing fits (406)."""
    if format_param:
        chosen = _LATEST.get(format_param, format_param)
        if chosen not in _OFFERS:
            raise NotAcceptable
        return chosen
    ranges = _parse_accept(accept or "*/*")
    best, best_q = None, 0.0
    for offer in _OFFERS:
        q = _quality(offer, ranges)
        if q > best_q:
            best, best_q = offer, q
    if best is None:
        raise NotAcceptable
    return best


def _parse_accept(header: str) -> list[tuple[str, float]]:
    ranges = []
    for part in header.split(","):
        media, *params = (piece.strip() for piece in part.split(";"))
        if not media:
            continue
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = max(0.0, min(1.0, float(value)))
                except ValueError:
                    q = 0.0
        media = media.lower()
        ranges.append((_LATEST.get(media, media), q))
    return ranges


def _quality(offer: str, ranges: list[tuple[str, float]]) -> float:
    """Quality of `offer`: taken from the most specific matching range (RFC 9110 §12.5.1)."""
    main = offer.split("/")[0]
    best_specificity, q = -1, 0.0
    for media, quality in ranges:
        if media == offer:
            specificity = 2
        elif media == f"{main}/*":
            specificity = 1
        elif media == "*/*":
            specificity = 0
        else:
            continue
        if specificity > best_specificity:
            best_specificity, q = specificity, quality
    return q


def is_json(content_type: str) -> bool:
    return content_type == JSON_V1


@dataclasses.dataclass(frozen=True)
class FileLink:
    """One file on a project page; `url` is relative to the server root (no leading slash)."""

    filename: str
    url: str
    sha256: str  # "" only for a mirrored file whose upstream gave no hash, never fetched yet
    size: int | None  # None only for mirrored files whose upstream did not say
    index: str  # the index that owns the file
    upload_time: datetime | None = None
    requires_python: str | None = None
    yanked: str | None = None  # None: not yanked; "" yanked without a reason
    core_metadata_sha256: str | None = None
    # Mirrored from an upstream that gave no hash: the hash is the first download's.
    trusted_on_first_use: bool = False


@dataclasses.dataclass(frozen=True)
class ProjectPage:
    name: str  # normalised
    index: str
    files: list[FileLink]
    versions: list[str]
    # When what it leaves out (held versions, core/cooldown.py) next changes: its rendering
    # is current until then.
    changes_at: datetime | None = None
    # PEP 792 `project-status`: {"status": ..., "reason": ...} (the reason when there is one).
    status: dict[str, str] = dataclasses.field(default_factory=lambda: {"status": "active"})


def upload_time_text(moment: datetime) -> str:
    """PEP 700 format: yyyy-mm-ddThh:mm:ss.ffffffZ in UTC."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def project_page_json(page: ProjectPage, to_root: str) -> bytes:
    """PEP 691 JSON; `to_root` is the relative path from the page to the server root."""
    files = []
    for link in page.files:
        entry: dict[str, object] = {
            "filename": link.filename,
            "url": f"{to_root}{link.url}",
            # PEP 691: `hashes` is always there, empty when no hash is known.
            "hashes": {"sha256": link.sha256} if link.sha256 else {},
        }
        if link.size is not None:
            entry["size"] = link.size
        if link.requires_python:
            entry["requires-python"] = link.requires_python
        if link.upload_time is not None:
            entry["upload-time"] = upload_time_text(link.upload_time)
        if link.yanked is not None:
            entry["yanked"] = link.yanked or True
        if link.core_metadata_sha256:
            hashes = {"sha256": link.core_metadata_sha256}
            entry["core-metadata"] = hashes
            entry["dist-info-metadata"] = hashes
        files.append(entry)
    document = {
        "meta": {"api-version": API_VERSION},
        "name": page.name,
        "versions": page.versions,
        "files": files,
        "project-status": page.status,
    }
    return json.dumps(document, separators=(",", ":")).encode()


def project_list_json(names: Iterable[str]) -> bytes:
    document = {"meta": {"api-version": API_VERSION}, "projects": [{"name": n} for n in names]}
    return json.dumps(document, separators=(",", ":")).encode()
