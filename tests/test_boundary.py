"""Services are the async boundary; one endpoint per (route, method), representation chosen
at routing (issue 15). The shape is checked in the source; the behaviour on a real server."""

from __future__ import annotations

import ast
import time
from collections import Counter
from pathlib import Path

import httpx
from starlette.routing import Route

from packyard.web.app import routes
from tests.conftest import JSON, ServerProcess, basic_auth
from tests.e2e_support import PASSWORD, create_index, create_user

WEB = Path(__file__).parent.parent / "src" / "packyard" / "web"
SERVICES = WEB.parent / "services"
HANDLER_MODULES = ("api", "ui", "simple", "files", "docs", "lookup")


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), str(path))


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.ImportFrom) and node.module:
            found |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return found


def test_the_web_layer_never_decides_what_may_block() -> None:
    """No thread hop in web/: services own them (there were 57 run_in_threadpool calls)."""
    hops = {
        path.name: text.count("run_in_threadpool") + text.count("to_thread")
        for path in sorted(WEB.glob("*.py"))
        if (text := path.read_text())
    }
    assert sum(hops.values()) == 0, hops


def test_no_service_imports_starlette() -> None:
    offenders = [
        path.relative_to(SERVICES).as_posix()
        for path in sorted(SERVICES.rglob("*.py"))
        if any(name.split(".")[0] == "starlette" for name in _imports(path))
    ]
    assert offenders == []


def test_no_handler_branches_on_the_method_and_api_does_not_import_ui() -> None:
    branching = [
        f"{name}.py:{node.lineno}"
        for name in HANDLER_MODULES
        for node in ast.walk(_tree(WEB / f"{name}.py"))
        if isinstance(node, ast.Attribute) and node.attr == "method"
    ]
    assert branching == []
    assert not {"packyard.web.ui", "packyard.web.ui.*"} & _imports(WEB / "api.py")
    assert "packyard.web.ui" not in {n.rsplit(".", 1)[0] for n in _imports(WEB / "api.py")}


def test_one_endpoint_per_route_and_method() -> None:
    pairs = Counter(
        (route.path, method)
        for route in routes()
        if isinstance(route, Route)
        for method in (route.methods or ())
        if method != "HEAD"
    )
    assert pairs, "the router was walked"
    assert [pair for pair, count in pairs.items() if count > 1] == []
    per_path = Counter(path for path, _method in pairs)
    assert per_path["/{user}/{index}"] == 6  # GET PUT PATCH DELETE POST PUSH, one endpoint each


def test_routing_picks_the_representation_and_a_config_write_is_seen_at_once(
    live_server: ServerProcess,
) -> None:
    """The index URL answers JSON, a web page or (to pip) the simple page, each by its own
    endpoint; after a config write the next read (config reloaded through the boundary, off
    the event loop) already shows it."""
    with httpx.Client(base_url=live_server.url, timeout=10) as client:
        create_user(client, "alice")
        create_index(client, "alice", "dev", title="before")
        auth = JSON | basic_auth("alice", PASSWORD)
        as_json = client.get("/alice/dev", headers={"Accept": "application/json"})
        as_page = client.get("/alice/dev", headers={"Accept": "text/html,*/*"})
        as_pip = client.get("/alice/dev/", headers={"User-Agent": "pip/24.0", "Accept": "*/*"})
        started = time.monotonic()
        patched = client.patch("/alice/dev", json={"title": "after"}, headers=auth)
        seen = client.get("/alice/dev", headers={"Accept": "application/json"})
        elapsed = time.monotonic() - started
        push_form = client.post("/alice/dev", json={"name": "nothing"}, headers=auth)
    assert as_json.status_code == 200 and as_json.json()["result"]["title"] == "before"
    assert as_page.status_code == 200 and as_page.headers["content-type"].startswith("text/html")
    assert "<html" in as_page.text.lower()
    assert as_pip.status_code == 200, as_pip.text  # the project list, not a redirect
    assert as_pip.headers["content-type"].startswith("application/vnd.pypi.simple.v1+json")
    assert as_pip.json()["projects"] == []
    assert patched.status_code == 200, patched.text
    assert seen.json()["result"]["title"] == "after"
    assert elapsed < 5
    # POST with a JSON body is devpi push (its own endpoint), answered in devpi's JSON.
    assert push_form.status_code == 400
    assert push_form.headers["content-type"] == "application/json"
