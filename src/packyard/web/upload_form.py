"""The legacy upload API's multipart form (devpi-protocol.md §9: twine, uv publish, devpi
upload) read into an `UploadCommand`: the one place that knows the form's field names."""

from __future__ import annotations

from collections.abc import Iterable

from starlette.datastructures import UploadFile

from packyard.core.uploads import (
    UploadAction,
    UploadCommand,
    declared_digests,
    first_value,
    form_metadata,
)
from packyard.errors import InvalidInput

FILE_FIELD = "content"  # the part carrying the file; other file parts are ignored
FormItem = tuple[str, str | UploadFile]


def upload_command(items: Iterable[FormItem]) -> UploadCommand:
    """The command a form's parts say. Text fields may repeat (the first value counts, list
    metadata keeps them all; empty ones count as not sent); the file part may not."""
    fields: dict[str, list[str]] = {}
    files: list[UploadFile] = []
    for key, value in items:
        if isinstance(value, str):
            if value:
                fields.setdefault(key, []).append(value)
        elif key == FILE_FIELD:
            files.append(value)
    if len(files) > 1:
        raise InvalidInput(f"an upload carries one file: the form has {len(files)} content parts")
    file = files[0] if files else None
    return UploadCommand(
        action=_action(first_value(fields, ":action")),
        project=first_value(fields, "name"),
        version=first_value(fields, "version"),
        dist_type=first_value(fields, "filetype"),
        python_version=first_value(fields, "pyversion"),
        filename=file.filename if file is not None else None,
        content=file.file if file is not None else None,
        digests=declared_digests(fields),
        metadata=form_metadata(fields),
    )


def _action(text: str) -> UploadAction:
    try:
        return UploadAction(text)
    except ValueError:
        raise InvalidInput(f"action {text!r} not supported") from None
