"""The process that renders long descriptions: `python -m packyard.services.readme_worker`.

Rendering untrusted Markdown or reStructuredText can take minutes (deep nesting is quadratic
in the HTML sanitiser), and a renderer running in C or Rust holds the GIL and cannot be
interrupted from another thread. So it runs here, in a process the server can kill. Requests
and answers are frames on stdin/stdout: an 8-byte big-endian length, then UTF-8 JSON.
"""

from __future__ import annotations

import json
import signal
import sys
from typing import BinaryIO

import readme_renderer.markdown
import readme_renderer.rst
import readme_renderer.txt

from packyard.services.readmes import FRAME


def render(text: str, content_type: str) -> str:
    """The long description as safe HTML, rendered the way PyPI renders it."""
    content_type = content_type.lower()
    if content_type.startswith("text/markdown"):
        rendered = readme_renderer.markdown.render(text)
    elif content_type.startswith("text/plain"):
        rendered = readme_renderer.txt.render(text)
    else:
        rendered = readme_renderer.rst.render(text) or readme_renderer.txt.render(text)
    return rendered or ""


def read_frame(stream: BinaryIO) -> bytes | None:
    header = stream.read(FRAME.size)
    if len(header) < FRAME.size:
        return None
    return stream.read(FRAME.unpack(header)[0])


def write_frame(stream: BinaryIO, payload: bytes) -> None:
    stream.write(FRAME.pack(len(payload)) + payload)
    stream.flush()


def serve(requests: BinaryIO, answers: BinaryIO) -> None:
    """Answer render requests until stdin closes.

    Each render runs under an alarm whose default action ends this process: even with the
    server gone (nobody left to kill us), a runaway render stops.
    """
    write_frame(answers, b"")  # ready: the renderers are imported
    while (frame := read_frame(requests)) is not None:
        request = json.loads(frame)
        signal.alarm(int(request["deadline"]) + 1)
        html = render(request["text"], request["content_type"])
        signal.alarm(0)
        write_frame(answers, json.dumps({"html": html}).encode())


if __name__ == "__main__":
    # A Ctrl-C at the terminal is the server's to handle; we end when it closes our stdin.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    serve(sys.stdin.buffer, sys.stdout.buffer)
