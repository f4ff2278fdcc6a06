"""Hiding secrets that ride inside values: the password part of a URL (a mirror_url may carry
credentials for its upstream). Pure."""

from __future__ import annotations

import urllib.parse

MASK = "***"


def url_without_password(text: str) -> str:
    """`text` with the password of its URL replaced by `***` (unchanged if it has none, or is
    no URL)."""
    try:
        parts = urllib.parse.urlsplit(text)
        password = parts.password
    except ValueError:
        return text
    if not password:
        return text
    host = parts.netloc.rsplit("@", 1)[1]
    netloc = f"{parts.username}:{MASK}@{host}" if parts.username else f"{MASK}@{host}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))
