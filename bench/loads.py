"""The client-side loads: wrk against one simple page, and `pip install` into a fresh venv."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import sys
import time
import venv
from pathlib import Path

from indexapi import PIP_ACCEPT

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
_DURATION = r"([\d.]+)(us|ms|s|m)\b"


@dataclasses.dataclass(frozen=True)
class WrkResult:
    requests_per_s: float
    requests: int
    errors: int  # HTTP status >= 400 plus socket errors (connect, read, write, timeout)
    latency_avg_ms: float
    latency_p50_ms: float
    latency_p99_ms: float
    read_mb_per_s: float


def ensure_wrk() -> str:
    """The wrk binary; installed from Debian's `wrk` package when missing."""
    found = shutil.which("wrk")
    if found:
        return found
    print("wrk is missing: apt-get install wrk", file=sys.stderr)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, env=env)
    found = shutil.which("wrk")
    if not found:
        raise RuntimeError("apt-get install wrk did not provide a wrk binary")
    return found


def _milliseconds(text: str, label: str) -> float:
    match = re.search(rf"^\s*{re.escape(label)}\s+{_DURATION}", text, re.MULTILINE)
    if not match:
        raise ValueError(f"no {label!r} in wrk output:\n{text}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def _number(pattern: str, text: str) -> float:
    match = re.search(pattern, text)
    return float(match.group(1)) if match else 0.0


def _megabytes_per_s(text: str) -> float:
    match = re.search(r"Transfer/sec:\s+([\d.]+)(B|KB|MB|GB)", text)
    if not match:
        return 0.0
    scale = {"B": 1e-6, "KB": 1 / 1024, "MB": 1.0, "GB": 1024.0}[match.group(2)]
    return float(match.group(1)) * scale


def parse_wrk(text: str) -> WrkResult:
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    errors = int(_number(r"Non-2xx or 3xx responses: (\d+)", text))
    errors += sum(int(n) for n in socket_errors.groups()) if socket_errors else 0
    return WrkResult(
        requests_per_s=_number(r"Requests/sec:\s+([\d.]+)", text),
        requests=int(_number(r"(\d+) requests in", text)),
        errors=errors,
        latency_avg_ms=_milliseconds(text, "Latency"),
        latency_p50_ms=_milliseconds(text, "50%"),
        latency_p99_ms=_milliseconds(text, "99%"),
        read_mb_per_s=_megabytes_per_s(text),
    )


@dataclasses.dataclass(frozen=True)
class WrkLoad:
    binary: str
    duration_s: int
    connections: int
    threads: int

    def run(self, url: str, duration_s: int | None = None) -> tuple[WrkResult, str]:
        """GET `url` as fast as the connections allow, with pip's Accept header."""
        seconds = duration_s or self.duration_s
        command = [
            *(self.binary, "--latency", "--timeout", "30s"),
            *("-t", str(self.threads), "-c", str(self.connections), "-d", f"{seconds}s"),
            *("-H", f"Accept: {PIP_ACCEPT}", url),
        ]
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        return parse_wrk(output), output


def _pip_environment() -> dict[str, str]:
    """No PIP_* settings from this machine, and no pip config file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1")
    return env


def pip_version() -> str:
    command = [sys.executable, "-m", "pip", "--version"]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout.split()[1]


def _pip_install(target: Path, index_url: str, requirement: str, log: Path) -> None:
    command = [
        *(sys.executable, "-m", "pip", "--python", str(target / "bin" / "python")),
        *("install", "--no-cache-dir", "--index-url", index_url, requirement),
    ]
    with log.open("a") as output:
        output.write(f"$ {' '.join(command)}\n")
        output.flush()
        result = subprocess.run(
            command, stdout=output, stderr=subprocess.STDOUT, env=_pip_environment(), check=False
        )
    if result.returncode != 0:
        raise RuntimeError(f"pip install failed ({result.returncode}), see {log}")


def _installed(target: Path, prefix: str) -> int:
    site = next((target / "lib").glob("python*/site-packages"))
    return sum(1 for path in site.glob("*.dist-info") if path.name.startswith(prefix))


def pip_install_seconds(
    index_url: str, requirement: str, expected: tuple[str, int], work: Path, log: Path
) -> float:
    """Wall time of `pip install requirement` into a fresh venv (venv creation untimed).

    `expected` is (dist-info name prefix, count) that must be installed afterwards.
    """
    target = work / "pip-target"
    shutil.rmtree(target, ignore_errors=True)
    venv.EnvBuilder(with_pip=False).create(target)
    started = time.perf_counter()
    _pip_install(target, index_url, requirement, log)
    elapsed = time.perf_counter() - started
    prefix, count = expected
    if _installed(target, prefix) != count:
        raise RuntimeError(f"expected {count} {prefix}* installed in {target}")
    return elapsed
