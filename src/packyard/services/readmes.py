"""Long descriptions as safe HTML, at bounded cost whatever an uploader wrote.

A description over the size cap is shown as plain text, truncated, with a note. One under it is
rendered in a worker process (services/readme_worker.py) with a deadline: a render that runs
too long is abandoned (its process killed) and the plain text shown. Results, fallbacks
included, are cached by content, so a page view costs a dictionary lookup after the first.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import os
import select
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any

from packyard.config import Settings

CACHE_CHARACTERS = 64 * 1024 * 1024  # rendered text kept, summed over entries
STARTUP_TIMEOUT = 30  # seconds for a new worker to import its renderers, before its deadline
FRAME = struct.Struct(">Q")  # a message's length, before its UTF-8 JSON (both directions)
MAX_WORKERS = 2  # renders at once per server process; more wait, then fall back to plain text


@dataclasses.dataclass(frozen=True)
class Description:
    """What a page shows: rendered HTML, or escaped plain text with a note saying why."""

    html: str = ""
    text: str = ""
    note: str = ""

    @property
    def size(self) -> int:
        return len(self.html) + len(self.text)


class Readmes:
    """Renders descriptions through a small pool of worker processes, caching by content."""

    def __init__(self, settings: Settings) -> None:
        self._max_size = settings.max_description_render_size
        self._timeout = settings.description_render_timeout
        self._cache: collections.OrderedDict[str, Description] = collections.OrderedDict()
        self._cached = 0
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._slots = threading.BoundedSemaphore(MAX_WORKERS)
        self._closed = False

    def describe(self, metadata: Mapping[str, Any]) -> Description | None:
        """The version's long description ready to show, or None if it has none."""
        text = str(metadata.get("description") or "")
        if not text.strip():
            return None
        content_type = str(metadata.get("description_content_type") or "")
        key = hashlib.sha256(f"{content_type}\0{text}".encode()).hexdigest()
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        described, keep = self._describe(text, content_type)
        if keep:
            self._remember(key, described)
        return described

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.stop()

    def _describe(self, text: str, content_type: str) -> tuple[Description, bool]:
        """The description, and whether it may be cached (not when the server was just busy)."""
        if len(text) > self._max_size:
            note = (
                f"This description is {len(text)} characters long; only the first"
                f" {self._max_size} are shown, as plain text."
            )
            return Description(text=text[: self._max_size], note=note), True
        if not self._slots.acquire(timeout=self._timeout):
            return Description(text=text, note="The server is busy: shown as plain text."), False
        try:
            html = self._render(text, content_type)
        finally:
            self._slots.release()
        if html is None:
            note = "This description took too long to render: shown as plain text."
            return Description(text=text, note=note), True
        return Description(html=html), True

    def _render(self, text: str, content_type: str) -> str | None:
        """HTML from a worker, or None when the deadline passed (the worker is then killed)."""
        worker = self._take_worker()
        request = {"text": text, "content_type": content_type, "deadline": self._timeout}
        html = worker.render(json.dumps(request).encode(), self._timeout)
        if html is None:
            worker.stop()
            return None
        with self._lock:
            if self._closed:
                worker.stop()
            else:
                self._idle.append(worker)
        return html

    def _take_worker(self) -> _Worker:
        with self._lock:
            while self._idle:
                worker = self._idle.pop()
                if worker.alive:
                    return worker
                worker.stop()
        return _Worker()

    def _remember(self, key: str, described: Description) -> None:
        with self._lock:
            if key in self._cache:
                return
            self._cache[key] = described
            self._cached += described.size
            while self._cached > CACHE_CHARACTERS and len(self._cache) > 1:
                _, dropped = self._cache.popitem(last=False)
                self._cached -= dropped.size


class _Worker:
    """One `readme_worker` process, talked to through its stdin and stdout."""

    def __init__(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "packyard.services.readme_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self._started: bytes | None = None  # its "ready" message, once read

    @property
    def alive(self) -> bool:
        return self._process.poll() is None

    def render(self, request: bytes, timeout: float) -> str | None:
        """The HTML, or None if the worker failed or overran `timeout` seconds of rendering
        (a new worker's start-up, which is importing its renderers, does not count)."""
        assert self._process.stdin is not None
        try:
            if not self._started:
                self._started = self._read(FRAME.size, time.monotonic() + STARTUP_TIMEOUT)
                if not self._started:
                    return None
            deadline = time.monotonic() + timeout
            self._process.stdin.write(FRAME.pack(len(request)) + request)
            self._process.stdin.flush()
            header = self._read(FRAME.size, deadline)
            body = self._read(FRAME.unpack(header)[0], deadline) if header else None
        except OSError:  # the worker died (its own alarm, or out of memory)
            return None
        if body is None:
            return None
        html: str = json.loads(body)["html"]
        return html

    def _read(self, size: int, deadline: float) -> bytes | None:
        """Exactly `size` bytes of the answer, or None if the deadline passes first."""
        assert self._process.stdout is not None
        stream, data = self._process.stdout.fileno(), bytearray()
        while len(data) < size:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([stream], [], [], remaining)[0]:
                return None
            chunk = _read_some(stream, size - len(data))
            if not chunk:
                return None
            data += chunk
        return bytes(data)

    def stop(self) -> None:
        self._process.kill()
        self._process.wait()
        for pipe in (self._process.stdin, self._process.stdout):
            if pipe is not None:
                pipe.close()


def _read_some(fd: int, size: int) -> bytes:
    return os.read(fd, min(size, 1024 * 1024))
