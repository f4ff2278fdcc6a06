"""The simple repository API, in-process: the standards checklist (standards.md, Appendix)."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import re
import zipfile
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.builders import build_sdist, build_wheel
from tests.conftest import JSON
from tests.inprocess import (
    ENGINES,
    PIP_ACCEPT,
    SIMPLE_HTML,
    SIMPLE_JSON,
    SIMPLE_JSON_ACCEPT,
    UV_ACCEPT,
    create_index,
    create_user,
    engine_url,
    resolve,
    running_client,
    simple_json,
    upload_ok,
)

INDEX = "alice/dev"
PAGE = f"/{INDEX}/+simple/demo-pkg/"
UPLOAD_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z$")
PIP_UA = {"User-Agent": "pip/24.2 {}"}
UV_UA = {"User-Agent": "uv/0.5.0"}
BROWSER_UA = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64)"}


@dataclasses.dataclass
class Anchor:
    href: str
    text: str
    attrs: dict[str, str | None]


class _Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.anchors: list[Anchor] = []
        self.meta: dict[str, str | None] = {}
        self._open: Anchor | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "meta" and values.get("name"):
            self.meta[str(values["name"])] = values.get("content")
        if tag == "a":
            self._open = Anchor(str(values.get("href")), "", values)

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._open.text += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._open is not None:
            self.anchors.append(self._open)
            self._open = None


def parse_html(text: str) -> _Anchors:
    parser = _Anchors()
    parser.feed(text)
    return parser


def anchors(client: TestClient, url: str) -> dict[str, Anchor]:
    """The page's links by link text (the filename)."""
    response = client.get(url, headers=SIMPLE_HTML)
    assert response.status_code == 200, response.text
    return {anchor.text: anchor for anchor in parse_html(response.text).anchors}


@dataclasses.dataclass
class Published:
    """alice/dev holding demo-pkg 1.0 (wheel + sdist) and 2.0 (wheel)."""

    auth: dict[str, str]
    wheel: Path
    sdist: Path
    wheel2: Path

    @property
    def by_name(self) -> dict[str, Path]:
        return {path.name: path for path in (self.wheel, self.sdist, self.wheel2)}


def publish(client: TestClient, directory: Path) -> Published:
    auth = create_user(client, "alice")
    create_index(client, "alice", "dev", auth)
    wheel = build_wheel(directory, "Demo_Pkg", "1.0", requires_python=">=3.8")
    sdist = build_sdist(directory, "demo-pkg", "1.0")
    wheel2 = build_wheel(directory, "demo-pkg", "2.0")
    for path in (wheel, sdist, wheel2):
        upload_ok(client, INDEX, path, auth)
    return Published(auth, wheel, sdist, wheel2)


@dataclasses.dataclass
class Site:
    """A server shared by the read-only tests of a module.

    alice/dev as in `Published`; bob/base holds other-pkg 1.0; alice/prod (bases alice/dev,
    bob/base) holds its own rebuild of demo-pkg 2.0's wheel and only-prod 9.0.
    """

    client: TestClient
    published: Published
    rebuilt: Path


@pytest.fixture(scope="module", params=ENGINES)
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    directory = tmp_path_factory.mktemp("site")
    with running_client(directory / "server", engine_url(request)) as client:
        published = publish(client, directory / "dists")
        bob = create_user(client, "bob")
        create_index(client, "bob", "base", bob)
        upload_ok(client, "bob/base", build_wheel(directory / "bob", "other-pkg", "1.0"), bob)
        create_index(client, "alice", "prod", published.auth, bases="alice/dev,bob/base")
        rebuilt = build_wheel(directory / "prod", "demo-pkg", "2.0", payload="# rebuilt\n")
        upload_ok(client, "alice/prod", rebuilt, published.auth)
        only = build_wheel(directory / "prod", "only-prod", "9.0")
        upload_ok(client, "alice/prod", only, published.auth)
        yield Site(client, published, rebuilt)


@pytest.fixture(params=ENGINES)
def client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TestClient]:
    """A fresh server per test, as conftest's `client` but without hashing root's password."""
    with running_client(tmp_path / "server", engine_url(request)) as client:
        yield client


@pytest.fixture
def published(client: TestClient, tmp_path: Path) -> Published:
    """A fresh server with alice/dev as in `Published`, for tests that change things."""
    return publish(client, tmp_path / "dists")


def file_url(client: TestClient, filename: str) -> str:
    """Absolute path of a file, as linked from the HTML project page."""
    href = anchors(client, PAGE)[filename].href
    return resolve(PAGE, href.split("#")[0])


def wheel_metadata(wheel: Path) -> bytes:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return archive.read(name)


# --- URLs: normalisation, slashes, 404, HEAD -------------------------------------------------


@pytest.mark.parametrize(
    ("path", "location"),
    [
        ("/alice/dev/+simple/Demo_Pkg/", "/alice/dev/+simple/demo-pkg/"),
        ("/alice/dev/+simple/demo.pkg/?a=1&b=2", "/alice/dev/+simple/demo-pkg/?a=1&b=2"),
        ("/alice/dev/+simple/demo-pkg", "/alice/dev/+simple/demo-pkg/"),
        (
            "/alice/dev/+simple/demo-pkg?format=text/html",
            "/alice/dev/+simple/demo-pkg/?format=text/html",
        ),
        ("/alice/dev/+simple", "/alice/dev/+simple/"),
    ],
)
def test_browser_is_redirected_permanently(site: Site, path: str, location: str) -> None:
    response = site.client.get(path, headers=BROWSER_UA, follow_redirects=False)
    assert response.status_code == 301
    assert response.headers["location"] == location


@pytest.mark.parametrize("user_agent", [PIP_UA, UV_UA], ids=["pip", "uv"])
@pytest.mark.parametrize("path", ["/alice/dev/+simple/demo-pkg", "/alice/dev/+simple"])
def test_installers_are_served_without_trailing_slash(
    site: Site, path: str, user_agent: dict[str, str]
) -> None:
    response = site.client.get(path, headers=user_agent | SIMPLE_HTML, follow_redirects=False)
    assert response.status_code == 200
    assert "demo-pkg" in response.text


@pytest.mark.parametrize("page", [PAGE, PAGE.rstrip("/")], ids=["slash", "no-slash"])
def test_links_resolve_to_the_files(site: Site, page: str) -> None:
    client, published = site.client, site.published
    response = client.get(page, headers=PIP_UA | SIMPLE_HTML)
    for anchor in parse_html(response.text).anchors:
        url = resolve(page, anchor.href.split("#")[0])
        assert client.get(url).content == published.by_name[anchor.text].read_bytes()
    for entry in client.get(page, headers=PIP_UA | SIMPLE_JSON_ACCEPT).json()["files"]:
        url = resolve(page, entry["url"])
        assert client.get(url).content == published.by_name[entry["filename"]].read_bytes()


@pytest.mark.parametrize("accept", [SIMPLE_HTML, SIMPLE_JSON_ACCEPT], ids=["html", "json"])
@pytest.mark.parametrize(
    "path",
    ["/alice/dev/+simple/no-such-thing/", "/alice/nope/+simple/demo-pkg/", "/alice/nope/+simple/"],
)
def test_unknown_project_or_index_is_404(site: Site, path: str, accept: dict[str, str]) -> None:
    response = site.client.get(path, headers=accept)
    assert response.status_code == 404
    assert "demo-pkg" not in response.text


@pytest.mark.parametrize("path", [PAGE, "/alice/dev/+simple/"])
def test_head_answers_like_get_without_a_body(site: Site, path: str) -> None:
    got = site.client.get(path, headers=SIMPLE_HTML)
    head = site.client.head(path, headers=SIMPLE_HTML)
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"] == got.headers["content-type"]
    assert head.headers["etag"] == got.headers["etag"]


def test_head_on_a_file_and_its_metadata(site: Site) -> None:
    wheel = site.published.wheel
    url = file_url(site.client, wheel.name)
    head = site.client.head(url)
    assert head.status_code == 200
    assert head.content == b""
    assert int(head.headers["content-length"]) == wheel.stat().st_size
    head = site.client.head(url + ".metadata")
    assert head.status_code == 200
    assert int(head.headers["content-length"]) == len(wheel_metadata(wheel))


# --- HTML ------------------------------------------------------------------------------------


def test_html_page_declares_api_version_and_hashes_every_link(site: Site) -> None:
    response = site.client.get(PAGE, headers=SIMPLE_HTML)
    assert response.headers["content-type"].startswith("text/html")
    page = parse_html(response.text)
    assert page.meta["pypi:repository-version"] == "1.4"
    paths = site.published.by_name
    assert sorted(a.text for a in page.anchors) == sorted(paths)
    for anchor in page.anchors:
        url, _, fragment = anchor.href.partition("#")
        assert url.rsplit("/", 1)[-1] == anchor.text
        assert re.fullmatch(r"sha256=[0-9a-f]{64}", fragment), anchor.href
        digest = hashlib.sha256(paths[anchor.text].read_bytes()).hexdigest()
        assert fragment == f"sha256={digest}"


def test_html_escapes_requires_python(site: Site) -> None:
    raw = site.client.get(PAGE, headers=SIMPLE_HTML).text
    assert 'data-requires-python="&gt;=3.8"' in raw
    links = anchors(site.client, PAGE)
    assert links[site.published.wheel.name].attrs["data-requires-python"] == ">=3.8"
    assert "data-requires-python" not in links[site.published.wheel2.name].attrs


def test_html_advertises_core_metadata_on_wheels_only(site: Site) -> None:
    links = anchors(site.client, PAGE)
    for wheel in (site.published.wheel, site.published.wheel2):
        expected = f"sha256={hashlib.sha256(wheel_metadata(wheel)).hexdigest()}"
        assert links[wheel.name].attrs["data-core-metadata"] == expected
        assert links[wheel.name].attrs["data-dist-info-metadata"] == expected
    sdist = links[site.published.sdist.name].attrs
    assert "data-core-metadata" not in sdist
    assert "data-dist-info-metadata" not in sdist


def test_project_list_html(site: Site) -> None:
    response = site.client.get("/alice/dev/+simple/", headers=SIMPLE_HTML)
    page = parse_html(response.text)
    assert page.meta["pypi:repository-version"] == "1.4"
    assert [(a.text, a.href) for a in page.anchors] == [("demo-pkg", "demo-pkg/")]


# --- JSON and content negotiation ------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (SIMPLE_JSON, SIMPLE_JSON),
        ("application/vnd.pypi.simple.latest+json", SIMPLE_JSON),
        ("application/vnd.pypi.simple.latest+html", "application/vnd.pypi.simple.v1+html"),
        ("application/vnd.pypi.simple.v1+json;q=0.2, text/html;q=0.9", "text/html"),
        ("text/html;q=0.5, application/vnd.pypi.simple.v1+json;q=0.6", SIMPLE_JSON),
        (PIP_ACCEPT, SIMPLE_JSON),
        (UV_ACCEPT, SIMPLE_JSON),
        ("text/html", "text/html"),
        ("application/vnd.pypi.simple.v1+html", "application/vnd.pypi.simple.v1+html"),
    ],
    ids=["v1", "latest-json", "latest-html", "q-html", "q-json", "pip", "uv", "html", "v1-html"],
)
@pytest.mark.parametrize("path", [PAGE, "/alice/dev/+simple/"], ids=["project", "list"])
def test_accept_header_picks_the_content_type(
    site: Site, path: str, accept: str, expected: str
) -> None:
    response = site.client.get(path, headers={"Accept": accept})
    assert response.status_code == 200
    content_type = response.headers["content-type"]
    if expected == SIMPLE_JSON:
        assert content_type == SIMPLE_JSON
        assert response.json()["meta"]["api-version"] == "1.4"
    else:
        assert content_type.split(";")[0] == expected
        assert parse_html(response.text).meta["pypi:repository-version"] == "1.4"
    assert "Accept" in [v.strip() for v in response.headers["vary"].split(",")]


@pytest.mark.parametrize("path", [PAGE, "/alice/dev/+simple/"], ids=["project", "list"])
@pytest.mark.parametrize("plus", ["+", "%2B"], ids=["literal", "encoded"])
def test_format_parameter_overrides_accept(site: Site, path: str, plus: str) -> None:
    url = f"{path}?format=application/vnd.pypi.simple.v1{plus}json"
    response = site.client.get(url, headers=SIMPLE_HTML)
    assert response.status_code == 200
    assert response.headers["content-type"] == SIMPLE_JSON
    assert response.json()["meta"]["api-version"] == "1.4"
    response = site.client.get(f"{path}?format=text/html", headers=SIMPLE_JSON_ACCEPT)
    assert response.headers["content-type"].startswith("text/html")


@pytest.mark.parametrize("path", [PAGE, "/alice/dev/+simple/"], ids=["project", "list"])
def test_unacceptable_type_is_406(site: Site, path: str) -> None:
    assert site.client.get(path, headers={"Accept": "application/xml"}).status_code == 406
    assert site.client.get(f"{path}?format=application/xml").status_code == 406


def test_json_page_carries_pep_700_fields(site: Site) -> None:
    document = simple_json(site.client, INDEX, "demo-pkg")
    assert document["name"] == "demo-pkg"
    assert document["versions"] == ["1.0", "2.0"]
    paths = site.published.by_name
    assert sorted(f["filename"] for f in document["files"]) == sorted(paths)
    for entry in document["files"]:
        data = paths[entry["filename"]].read_bytes()
        assert entry["size"] == len(data)
        assert entry["hashes"] == {"sha256": hashlib.sha256(data).hexdigest()}
        assert UPLOAD_TIME.match(entry["upload-time"]), entry["upload-time"]
        assert entry["url"].rsplit("/", 1)[-1] == entry["filename"]
        assert "yanked" not in entry
    by_name = {entry["filename"]: entry for entry in document["files"]}
    assert by_name[site.published.wheel.name]["requires-python"] == ">=3.8"
    assert "requires-python" not in by_name[site.published.wheel2.name]
    assert "core-metadata" not in by_name[site.published.sdist.name]


def test_project_list_json(site: Site) -> None:
    response = site.client.get("/alice/dev/+simple/", headers=SIMPLE_JSON_ACCEPT)
    assert response.headers["content-type"] == SIMPLE_JSON
    assert response.json()["projects"] == [{"name": "demo-pkg"}]


# --- core metadata and files -----------------------------------------------------------------


@pytest.mark.parametrize("attribute", ["wheel", "wheel2"])
def test_metadata_file_is_the_wheels_metadata(site: Site, attribute: str) -> None:
    wheel: Path = getattr(site.published, attribute)
    document = simple_json(site.client, INDEX, "demo-pkg")
    (entry,) = [f for f in document["files"] if f["filename"] == wheel.name]
    response = site.client.get(resolve(PAGE, entry["url"]) + ".metadata")
    assert response.status_code == 200
    assert response.content == wheel_metadata(wheel)
    digest = hashlib.sha256(response.content).hexdigest()
    assert entry["core-metadata"] == {"sha256": digest}
    assert entry["dist-info-metadata"] == {"sha256": digest}


def test_sdist_has_no_metadata_file(site: Site) -> None:
    url = file_url(site.client, site.published.sdist.name) + ".metadata"
    assert site.client.get(url).status_code == 404


@pytest.mark.parametrize("attribute", ["wheel", "sdist"])
def test_file_honours_range(site: Site, attribute: str) -> None:
    path: Path = getattr(site.published, attribute)
    url = file_url(site.client, path.name)
    response = site.client.get(url, headers={"Range": "bytes=0-99"})
    assert response.status_code == 206
    assert response.content == path.read_bytes()[:100]
    assert response.headers["content-range"] == f"bytes 0-99/{path.stat().st_size}"


def test_range_past_the_end_is_416(site: Site) -> None:
    url = file_url(site.client, site.published.wheel.name)
    response = site.client.get(url, headers={"Range": "bytes=999999-"})
    assert response.status_code == 416


@pytest.mark.parametrize("suffix", ["", ".metadata"], ids=["wheel", "metadata"])
def test_file_is_cached_immutably_and_revalidates(site: Site, suffix: str) -> None:
    url = file_url(site.client, site.published.wheel.name) + suffix
    response = site.client.get(url)
    assert response.status_code == 200
    assert "immutable" in response.headers["cache-control"]
    etag = response.headers["etag"]
    again = site.client.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert site.client.get(url, headers={"If-None-Match": '"other"'}).status_code == 200


@pytest.mark.parametrize("accept", [SIMPLE_HTML, SIMPLE_JSON_ACCEPT], ids=["html", "json"])
@pytest.mark.parametrize("path", [PAGE, "/alice/dev/+simple/"], ids=["project", "list"])
def test_page_etag_gives_304(site: Site, path: str, accept: dict[str, str]) -> None:
    first = site.client.get(path, headers=accept)
    assert "max-age=0" in first.headers["cache-control"]
    second = site.client.get(path, headers=accept | {"If-None-Match": first.headers["etag"]})
    assert second.status_code == 304
    assert second.content == b""
    assert second.headers["etag"] == first.headers["etag"]


def test_page_etag_differs_per_representation(site: Site) -> None:
    html = site.client.get(PAGE, headers=SIMPLE_HTML)
    as_json = site.client.get(
        PAGE, headers=SIMPLE_JSON_ACCEPT | {"If-None-Match": html.headers["etag"]}
    )
    assert as_json.status_code == 200
    assert as_json.headers["etag"] != html.headers["etag"]


@pytest.mark.parametrize("accept", [SIMPLE_HTML, SIMPLE_JSON_ACCEPT], ids=["html", "json"])
def test_large_pages_are_gzipped_when_accepted(site: Site, accept: dict[str, str]) -> None:
    plain = site.client.get(PAGE, headers=accept | {"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert len(plain.content) >= 1024
    with site.client.stream("GET", PAGE, headers=accept | {"Accept-Encoding": "gzip"}) as zipped:
        body = b"".join(zipped.iter_raw())
    assert zipped.headers["content-encoding"] == "gzip"
    assert "Accept-Encoding" in zipped.headers["vary"]
    assert len(body) < len(plain.content)
    assert gzip.decompress(body) == plain.content


# --- inheritance -----------------------------------------------------------------------------


def test_inherited_files_point_under_the_owning_index(site: Site) -> None:
    page = "/alice/prod/+simple/demo-pkg/"
    links = anchors(site.client, page)
    published = site.published
    assert set(links) == {published.wheel.name, published.sdist.name, published.wheel2.name}
    for name in (published.wheel.name, published.sdist.name):
        url = resolve(page, links[name].href.split("#")[0])
        assert url.startswith("/alice/dev/+f/")
        assert site.client.get(url).content == published.by_name[name].read_bytes()
    document = simple_json(site.client, "alice/prod", "demo-pkg")
    owners = {f["filename"]: resolve(page, f["url"]).split("/+f/")[0] for f in document["files"]}
    assert owners == {
        published.wheel.name: "/alice/dev",
        published.sdist.name: "/alice/dev",
        published.wheel2.name: "/alice/prod",
    }
    assert document["versions"] == ["1.0", "2.0"]


def test_own_file_shadows_a_base_file_of_the_same_name(site: Site) -> None:
    page = "/alice/prod/+simple/demo-pkg/"
    response = site.client.get(page, headers=SIMPLE_HTML)
    links = parse_html(response.text).anchors
    assert [a.text for a in links].count(site.rebuilt.name) == 1
    (anchor,) = [a for a in links if a.text == site.rebuilt.name]
    url = resolve(page, anchor.href.split("#")[0])
    assert url.startswith("/alice/prod/+f/")
    assert site.client.get(url).content == site.rebuilt.read_bytes()
    assert site.rebuilt.read_bytes() != site.published.wheel2.read_bytes()


def test_project_list_merges_own_and_bases_without_duplicates(site: Site) -> None:
    response = site.client.get("/alice/prod/+simple/", headers=SIMPLE_JSON_ACCEPT)
    names = [p["name"] for p in response.json()["projects"]]
    assert sorted(names) == ["demo-pkg", "only-prod", "other-pkg"]
    html = parse_html(site.client.get("/alice/prod/+simple/", headers=SIMPLE_HTML).text)
    assert sorted(a.text for a in html.anchors) == ["demo-pkg", "only-prod", "other-pkg"]
    own = site.client.get("/bob/base/+simple/", headers=SIMPLE_JSON_ACCEPT).json()["projects"]
    assert own == [{"name": "other-pkg"}]


def test_a_project_in_one_stage_hides_nothing_from_another(site: Site) -> None:
    links = anchors(site.client, "/alice/prod/+simple/other-pkg/")
    assert list(links) == ["other_pkg-1.0-py3-none-any.whl"]
    assert resolve(
        "/alice/prod/+simple/other-pkg/", links["other_pkg-1.0-py3-none-any.whl"].href
    ).startswith("/bob/base/+f/")
    assert site.client.get("/bob/base/+simple/demo-pkg/", headers=SIMPLE_HTML).status_code == 404


# --- changes: yanking, uploads and deletes show at once --------------------------------------


def _yank(client: TestClient, auth: dict[str, str], value: Any) -> None:
    response = client.patch("/alice/dev/demo-pkg/1.0", json={"yanked": value}, headers=JSON | auth)
    assert response.status_code == 200, response.text


def _json_files(client: TestClient) -> dict[str, dict[str, Any]]:
    return {f["filename"]: f for f in simple_json(client, INDEX, "demo-pkg")["files"]}


def test_yank_and_unyank_round_trip(client: TestClient, published: Published) -> None:
    _yank(client, published.auth, "broken build")
    links = anchors(client, PAGE)
    assert links[published.wheel.name].attrs["data-yanked"] == "broken build"
    assert links[published.sdist.name].attrs["data-yanked"] == "broken build"
    assert "data-yanked" not in links[published.wheel2.name].attrs
    files = _json_files(client)
    assert files[published.wheel.name]["yanked"] == "broken build"
    assert "yanked" not in files[published.wheel2.name]

    _yank(client, published.auth, False)
    assert "data-yanked" not in anchors(client, PAGE)[published.wheel.name].attrs
    assert "yanked" not in _json_files(client)[published.wheel.name]

    _yank(client, published.auth, True)
    assert anchors(client, PAGE)[published.wheel.name].attrs["data-yanked"] in ("", None)
    assert _json_files(client)[published.wheel.name]["yanked"] is True


@pytest.mark.parametrize("target", ["project", "version", "file"])
def test_yank_a_project_a_version_or_one_file(
    client: TestClient, published: Published, target: str
) -> None:
    files = _json_files(client)
    paths = {
        "project": "/alice/dev/demo-pkg",
        "version": "/alice/dev/Demo_Pkg/1.0",
        "file": resolve(PAGE, files[published.sdist.name]["url"]),
    }
    response = client.patch(paths[target], json={"yanked": "old"}, headers=JSON | published.auth)
    assert response.status_code == 200, response.text
    expected = {
        "project": {published.wheel.name, published.sdist.name, published.wheel2.name},
        "version": {published.wheel.name, published.sdist.name},
        "file": {published.sdist.name},
    }[target]
    files = _json_files(client)
    assert {name for name, entry in files.items() if entry.get("yanked") == "old"} == expected
    assert {a.text for a in anchors(client, PAGE).values() if "data-yanked" in a.attrs} == expected
    version = client.get("/alice/dev/demo-pkg/1.0", headers=JSON).json()["result"]
    yanked = {link["href"].rsplit("/", 1)[-1] for link in version["+links"] if "yanked" in link}
    assert yanked == expected - {published.wheel2.name}


def test_yank_needs_permission(client: TestClient, published: Published) -> None:
    anonymous = client.patch("/alice/dev/demo-pkg/1.0", json={"yanked": "x"}, headers=JSON)
    assert anonymous.status_code == 401
    bob = create_user(client, "bob")
    other = client.patch("/alice/dev/demo-pkg/1.0", json={"yanked": "x"}, headers=JSON | bob)
    assert other.status_code == 403
    assert "data-yanked" not in client.get(PAGE, headers=SIMPLE_HTML).text


def test_pages_change_right_after_upload_and_delete(
    client: TestClient, published: Published
) -> None:
    etags = {}
    for accept in (SIMPLE_HTML, SIMPLE_JSON_ACCEPT):
        etags[accept["Accept"]] = client.get(PAGE, headers=accept).headers["etag"]
        client.get("/alice/dev/+simple/", headers=accept)
    upload_ok(client, INDEX, build_wheel(published.wheel.parent, "demo-pkg", "3.0"), published.auth)
    upload_ok(
        client, INDEX, build_wheel(published.wheel.parent, "fresh-pkg", "0.1"), published.auth
    )
    for accept in (SIMPLE_HTML, SIMPLE_JSON_ACCEPT):
        response = client.get(PAGE, headers=accept | {"If-None-Match": etags[accept["Accept"]]})
        assert response.status_code == 200
        assert "demo_pkg-3.0-py3-none-any.whl" in response.text
    assert "fresh-pkg" in client.get("/alice/dev/+simple/", headers=SIMPLE_HTML).text
    listed = client.get("/alice/dev/+simple/", headers=SIMPLE_JSON_ACCEPT).json()["projects"]
    assert {"name": "fresh-pkg"} in listed

    response = client.delete("/alice/dev/demo-pkg/2.0", headers=JSON | published.auth)
    assert response.status_code == 200, response.text
    assert published.wheel2.name not in anchors(client, PAGE)
    assert simple_json(client, INDEX, "demo-pkg")["versions"] == ["1.0", "3.0"]

    response = client.delete("/alice/dev/demo-pkg", headers=JSON | published.auth)
    assert response.status_code == 200, response.text
    assert client.get(PAGE, headers=SIMPLE_HTML).status_code == 404
    listed = client.get("/alice/dev/+simple/", headers=SIMPLE_JSON_ACCEPT).json()["projects"]
    assert listed == [{"name": "fresh-pkg"}]
