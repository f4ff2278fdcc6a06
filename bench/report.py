"""Ratios against devpi-server, the printed table, and the JSON document."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

BASELINE = "devpi"
# metric -> ((section, key) in one server's results, target ratio packyard/devpi, higher is better)
METRICS: dict[str, tuple[tuple[str, str], float, bool]] = {
    "simple_10_rps": (("simple_10", "requests_per_s"), 10.0, True),
    "simple_2000_rps": (("simple_2000", "requests_per_s"), 10.0, True),
    "upload_files_per_s": (("upload", "files_per_s"), 3.0, True),
    "pip_install_s": (("pip_install", "median_s"), 1.0, False),
}


def labels(plan: dict[str, Any]) -> dict[str, str]:
    return {
        "simple_10_rps": "simple page, 10 files (req/s)",
        "simple_2000_rps": f"simple page, {plan['big_files']:,} files (req/s)",
        "upload_files_per_s": f"upload, {plan['upload_files']} wheels (files/s)",
        "pip_install_s": f"pip install, {plan['chain_length']} projects (s)",
    }


def _value(server: dict[str, Any], metric: str) -> float:
    (section, key), _target, _higher = METRICS[metric]
    return float(server[section][key])


def ratios(servers: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """For each packyard configuration: packyard/devpi per metric, and whether it meets the target.

    For `pip_install_s` the ratio is of times, so the target is <= 1.0 ("no slower").
    """
    if BASELINE not in servers:
        return {}
    result: dict[str, dict[str, Any]] = {}
    for label, server in servers.items():
        if label == BASELINE:
            continue
        result[label] = {}
        for metric, (_path, target, higher) in METRICS.items():
            ratio = _value(server, metric) / _value(servers[BASELINE], metric)
            met = ratio >= target if higher else ratio <= target
            result[label][metric] = {"ratio": round(ratio, 2), "target": target, "met": met}
    return result


def _format(value: float) -> str:
    if value < 10:
        return f"{value:.2f}"
    return f"{value:,.1f}" if value < 1000 else f"{value:,.0f}"


def table(document: dict[str, Any]) -> str:
    """The human-readable report: absolute numbers per server, then ratios against devpi."""
    servers: dict[str, dict[str, Any]] = document["servers"]
    names = labels(document["plan"])
    width = max(len(text) for text in names.values()) + 2
    lines = ["".ljust(width) + "".join(label.rjust(14) for label in servers)]
    for metric, text in names.items():
        cells = "".join(_format(_value(server, metric)).rjust(14) for server in servers.values())
        lines.append(text.ljust(width) + cells)
    for label, metrics in document["ratios"].items():
        lines.append("")
        lines.append(f"{label} / {BASELINE}:")
        for metric, ratio in metrics.items():
            relation = ">=" if METRICS[metric][2] else "<="
            verdict = "met" if ratio["met"] else "NOT met"
            target = f"target {relation} {ratio['target']:g}"
            lines.append(
                f"  {names[metric].ljust(width)}{ratio['ratio']:>8.2f}x  ({target}: {verdict})"
            )
    return "\n".join(lines)


def write_json(document: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")
