"""The URL builder: every link under the root users reach the server at (web/urls.py).

Table tests of the builder and of where a request's root comes from, then pages rendered
in-process with a mount path to show no link or redirect leaves it. The real reverse proxy
is in tests/test_reverse_proxy.py.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from starlette.requests import Request
from starlette.testclient import TestClient

from packyard.config import Settings
from packyard.web.urls import Urls, relative_root, urls_of
from tests.builders import build_wheel
from tests.conftest import JSON
from tests.inprocess import create_index, create_user, upload_ok

PAGE = {"Accept": "text/html,application/xhtml+xml"}
MOUNTED = {"X-Outside-Url": "https://proxy.example/pypi"}


@pytest.mark.parametrize(
    ("root", "origin", "prefix"),
    [
        ("http://127.0.0.1:3141", "http://127.0.0.1:3141", ""),
        ("http://127.0.0.1:3141/", "http://127.0.0.1:3141", ""),
        ("https://host/pypi", "https://host", "/pypi"),
        ("https://host/pypi/", "https://host", "/pypi"),
        ("https://host/a/b//", "https://host", "/a/b"),
        ("  https://host:8443/pypi ", "https://host:8443", "/pypi"),
        ("https://host/my pypi", "https://host", "/my%20pypi"),
    ],
)
def test_root_is_split_into_origin_and_prefix(root: str, origin: str, prefix: str) -> None:
    assert Urls.from_root(root) == Urls(origin, prefix)


@pytest.mark.parametrize("root", ["", "/pypi", "host/pypi", "javascript:alert(1)", "ftp://h/"])
def test_a_root_that_is_not_an_http_url_is_refused(root: str) -> None:
    assert Urls.from_root(root) is None


@pytest.mark.parametrize(
    ("root", "parts", "path", "absolute"),
    [
        ("http://h", (), "/", "http://h/"),
        ("http://h/pypi/", (), "/pypi/", "http://h/pypi/"),
        ("http://h", ("alice/dev",), "/alice/dev", "http://h/alice/dev"),
        ("http://h/pypi", ("alice/dev", "demo"), "/pypi/alice/dev/demo", "http://h/pypi/alice/dev/demo"),
        ("http://h/pypi", ("/alice/dev/",), "/pypi/alice/dev", "http://h/pypi/alice/dev"),
        ("http://h/pypi", ("u@x/i", "p", "1.0+local"), "/pypi/u@x/i/p/1.0+local", None),
        ("http://h/pypi", ("a/b", "x?y#z"), "/pypi/a/b/x%3Fy%23z", None),
        ("http://h/pypi", ("ü/dev",), "/pypi/%C3%BC/dev", None),
    ],
)  # fmt: skip
def test_path_and_absolute_forms(
    root: str, parts: tuple[str, ...], path: str, absolute: str | None
) -> None:
    urls = Urls.from_root(root)
    assert urls is not None
    assert urls.path(*parts) == path
    if absolute is not None:
        assert urls.absolute(*parts) == absolute


def test_named_places_under_a_mount() -> None:
    urls = Urls("https://h", "/pypi")
    assert urls.root == "https://h/pypi"
    assert urls.home() == "/pypi/"
    assert urls.login() == "/pypi/+login"
    assert urls.static("style.css") == "/pypi/+static/style.css"
    assert urls.ui_action("yank") == "/pypi/+ui/yank"
    assert urls.version("alice/dev", "demo", "1.0") == "/pypi/alice/dev/demo/1.0"
    assert urls.docs("alice/dev", "demo", "1.0") == "/pypi/alice/dev/demo/1.0/+doc/index.html"
    assert urls.simple_project("alice/dev", "demo") == "/pypi/alice/dev/+simple/demo/"


@pytest.mark.parametrize(
    ("prefix", "target", "inside"),
    [
        ("", "/alice/dev", True),
        ("", "//evil.example/", False),
        ("", "/\\evil.example/", False),
        ("", "https://evil.example/", False),
        ("/pypi", "/pypi/", True),
        ("/pypi", "/pypi/alice/dev", True),
        ("/pypi", "/pypix/alice", False),
        ("/pypi", "/alice/dev", False),
    ],
)
def test_a_login_next_target_must_stay_under_the_root(
    prefix: str, target: str, inside: bool
) -> None:
    assert Urls("http://h", prefix).is_inside(target) is inside


@pytest.mark.parametrize(
    ("path", "to_root"),
    [("/u/i/+simple/", "../../../"), ("/u/i/+simple/p/", "../../../../"), ("/u/i/p/", "../../../")],
)
def test_relative_root_climbs_from_a_page_to_the_root(path: str, to_root: str) -> None:
    assert relative_root(path) == to_root


def _request(setting: str, header: str | None, host: str = "10.0.0.5:3141") -> Request:
    app = SimpleNamespace(state=SimpleNamespace(services=SimpleNamespace(
        settings=Settings(outside_url=setting)
    )))  # fmt: skip
    headers = [(b"host", host.encode())]
    if header is not None:
        headers.append((b"x-outside-url", header.encode()))
    scope = {
        "type": "http", "method": "GET", "scheme": "http", "path": "/", "root_path": "",
        "query_string": b"", "headers": headers, "server": ("10.0.0.5", 3141), "app": app,
    }  # fmt: skip
    return Request(scope)


@pytest.mark.parametrize(
    ("setting", "header", "root"),
    [
        ("", None, "http://10.0.0.5:3141"),
        ("https://pkgs.example/", None, "https://pkgs.example"),
        ("https://pkgs.example/pypi/", None, "https://pkgs.example/pypi"),
        ("https://pkgs.example/pypi", "https://proxy.example/other/", "https://proxy.example/other"),
        ("", "http://127.0.0.1:8080/pypi", "http://127.0.0.1:8080/pypi"),
        # A header that is no http(s) URL is ignored: the next source decides.
        ("https://pkgs.example", "javascript:alert(1)", "https://pkgs.example"),
        ("", "/pypi", "http://10.0.0.5:3141"),
    ],
)  # fmt: skip
def test_the_root_comes_from_the_header_then_the_setting_then_the_request(
    setting: str, header: str | None, root: str
) -> None:
    assert urls_of(_request(setting, header)).root == root


# --- pages rendered under a mount ------------------------------------------------------------


def _links(html: str) -> list[str]:
    """Where the page's links and forms lead (the inline `data:` icon leads nowhere)."""
    found = re.findall(r'(?:href|action)="([^"]*)"', html)
    return [link for link in found if not link.startswith("data:")]


@pytest.fixture
def published(client: TestClient, tmp_path: Path) -> TestClient:
    auth = create_user(client, "alice")
    create_index(client, "alice", "dev", auth)
    upload_ok(client, "alice/dev", build_wheel(tmp_path, "demo", "1.0"), auth)
    return client


@pytest.mark.parametrize(
    "path", ["/", "/alice", "/alice/dev", "/alice/dev/demo", "/alice/dev/demo/1.0", "/+login",
             "/+search?q=demo", "/+status", "/alice/nosuch"],
)  # fmt: skip
def test_every_link_on_a_page_stays_under_the_mount(published: TestClient, path: str) -> None:
    response = published.get(path, headers=PAGE | MOUNTED)
    assert response.headers["content-type"].startswith("text/html")
    links = _links(response.text)
    assert links, response.text
    outside = [link for link in links if not link.startswith("/pypi/")]
    assert outside == [], outside


def test_redirects_and_cookies_stay_under_the_mount(published: TestClient) -> None:
    listing = published.get("/alice/dev/+simple", headers=PAGE | MOUNTED, follow_redirects=False)
    assert (listing.status_code, listing.headers["location"]) == (301, "/pypi/alice/dev/+simple/")
    renamed = published.get("/alice/dev/+simple/Demo/", headers=MOUNTED, follow_redirects=False)
    assert renamed.headers["location"] == "/pypi/alice/dev/+simple/demo/"
    login = published.get("/+login", headers=PAGE | MOUNTED)
    assert "Path=/pypi/+login" in login.headers["set-cookie"]
    assert 'name="next" value="/pypi/"' in login.text


def test_json_links_are_absolute_under_the_mount(published: TestClient) -> None:
    api = published.get("/alice/dev/+api", headers=JSON | MOUNTED).json()["result"]
    assert api["login"] == "https://proxy.example/pypi/+login"
    assert api["simpleindex"] == "https://proxy.example/pypi/alice/dev/+simple/"
    assert api["pypisubmit"] == "https://proxy.example/pypi/alice/dev/"
    project = published.get("/alice/dev/demo", headers=JSON | MOUNTED).json()["result"]
    (link,) = project["1.0"]["+links"]
    assert link["href"].startswith("https://proxy.example/pypi/alice/dev/+f/")
