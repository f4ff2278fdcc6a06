"""The web UI in a real browser: Debian's Chromium, headless, driven by Playwright.

One `packyard serve` and one browser per module; each test opens fresh browser contexts
(cookie jars) and works on projects and indexes of its own. Screenshots of the main pages go
to test-artifacts/screenshots/ for people to look at.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Dialog, Page, expect

from tests.browser import BROWSER_ACCEPT, chromium
from tests.builders import build_wheel
from tests.conftest import JSON, ServerProcess, basic_auth
from tests.e2e_support import (
    PASSWORD,
    SIMPLE_JSON,
    create_index,
    create_user,
    print_log_if_failed,
    running_server,
    upload,
)

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parent.parent
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
OWNER = "alice"
PHONE = {"width": 375, "height": 740}
# Other test sessions share this machine's two cores: wait longer than Playwright's 5 s.
expect.set_options(timeout=15_000)

# "okapi" is in the description only: not in the name, the summary or any other project.
README = """\
# Zebra crossing

A library for **testing** how the web UI renders a description; it mentions an okapi.

## Features

- renders Markdown
- survives a phone screen

```python
print("a rather long line of code that does not fit on a phone screen at all" * 3)
```

| column one | column two | column three | column four |
| --- | --- | --- | --- |
| aaaaaaaaaaaaaaaaaaaaaaaa | bbbbbbbbbbbbbbbbbbbbbbbbbbbbbb | cccccccccccccccccccc | dddddd |

A long link: https://example.invalid/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
"""

# Each line tries another way to run script; none may survive rendering.
HOSTILE_README = """\
# Harmless heading

<script>window.__xss = "script"; alert("script")</script>

<img src="/missing.png" onerror="window.__xss = 'onerror'; alert('onerror')">

<svg onload="window.__xss = 'svg'"><circle r="5"></circle></svg>

<iframe src="javascript:alert('iframe')"></iframe>

[a markdown link](javascript:window.__xss='href')

<a href="javascript:alert('raw link')">a raw link</a>

<details open ontoggle="window.__xss = 'toggle'">x</details>
"""
HOSTILE_TEXT = "<script>window.__xss = 'text'</script><img src=x onerror=alert('text')>"


@dataclass
class Site:
    """The running server, an API client for it, and where to build wheels."""

    server: ServerProcess
    api: httpx.Client
    dist: Path

    @property
    def url(self) -> str:
        return self.server.url

    def publish(
        self,
        name: str,
        version: str,
        index: str = "dev",
        description: str = "",
        summary: str = "a test package",
    ) -> None:
        """Upload a wheel to alice/INDEX through the legacy API, as twine does."""
        wheel = build_wheel(
            self.dist / f"{name}-{version}", name, version, summary=summary,
            description=description,
        )  # fmt: skip
        response = upload(
            self.api, f"/{OWNER}/{index}", wheel.name, wheel.read_bytes(),
            basic_auth(OWNER, PASSWORD), {"name": name, "version": version},
        )  # fmt: skip
        assert response.status_code == 200, response.text

    def get_json(self, path: str) -> httpx.Response:
        return self.api.get(path, headers=JSON)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    directory = tmp_path_factory.mktemp("ui")
    with running_server(directory) as server, httpx.Client(base_url=server.url) as api:
        create_user(api, OWNER)
        create_index(api, OWNER, "dev", volatile=True)
        create_index(api, OWNER, "stable", volatile=False)
        site = Site(server, api, directory / "dist")
        site.publish("demo-pkg", "1.0", description=README, summary="A demo package")
        yield site


@pytest.fixture(autouse=True)
def _server_log_on_failure(request: pytest.FixtureRequest, site: Site) -> Iterator[None]:
    yield
    print_log_if_failed(request, site.server)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@dataclass
class Visitor:
    """One browser context (one cookie jar) and its page; dialogs are recorded, then dismissed."""

    context: BrowserContext
    page: Page
    dialogs: list[str]


@pytest.fixture
def visit(browser: Browser, site: Site) -> Iterator[Callable[..., Visitor]]:
    """Open a fresh browser context: `visit()`, `visit(viewport=PHONE)`."""
    contexts: list[BrowserContext] = []

    def open_context(**options: Any) -> Visitor:
        context = browser.new_context(base_url=site.url, **options)
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        dialogs: list[str] = []

        def record(dialog: Dialog) -> None:
            dialogs.append(f"{dialog.type}: {dialog.message}")
            dialog.dismiss()

        page.on("dialog", record)
        return Visitor(context, page, dialogs)

    yield open_context
    for context in contexts:
        context.close()


def log_in(page: Page, user: str = OWNER, password: str = PASSWORD) -> None:
    page.goto("/+login")
    page.get_by_label("User").fill(user)
    page.get_by_label("Password").fill(password)
    page.get_by_role("main").get_by_role("button", name="Log in").click()
    expect(page.get_by_role("navigation")).to_contain_text(f"Logged in as {user}")


@pytest.fixture
def owner(visit: Callable[..., Visitor]) -> Page:
    """A page whose browser context is logged in as alice through the login form."""
    visitor = visit()
    log_in(visitor.page)
    return visitor.page


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)


def csrf_of(page: Page) -> str:
    """The CSRF token the current page's forms carry."""
    return str(page.locator("input[name=csrf]").first.get_attribute("value"))


def simple_files(site: Site, index: str, project: str) -> list[dict[str, Any]]:
    response = site.api.get(f"/{OWNER}/{index}/+simple/{project}/", headers=SIMPLE_JSON)
    assert response.status_code == 200, response.text
    files: list[dict[str, Any]] = response.json()["files"]
    return files


# --- browsing -------------------------------------------------------------------------------


def test_browse_from_the_root_page_to_a_version_with_its_rendered_readme(
    visit: Callable[..., Visitor],
) -> None:
    page = visit().page
    page.goto("/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Users and indexes")
    screenshot(page, "root")
    # The stylesheet applies under the pages' Content-Security-Policy.
    assert page.evaluate("getComputedStyle(document.querySelector('main')).maxWidth") == "1152px"
    page.get_by_role("link", name=OWNER, exact=True).click()
    expect(page).to_have_url(re.compile(f"/{OWNER}$"))
    screenshot(page, "user")
    page.get_by_role("link", name=f"{OWNER}/dev", exact=True).click()
    expect(page).to_have_url(re.compile(f"/{OWNER}/dev$"))
    expect(page.get_by_role("heading", level=1)).to_have_text(f"{OWNER}/dev")
    screenshot(page, "index")
    page.get_by_role("link", name="demo-pkg", exact=True).click()
    expect(page).to_have_url(re.compile(f"/{OWNER}/dev/demo-pkg$"))
    screenshot(page, "project")
    page.get_by_role("link", name="1.0", exact=True).click()
    expect(page).to_have_url(re.compile(f"/{OWNER}/dev/demo-pkg/1.0$"))
    expect(page.locator("main > h1")).to_have_text("demo-pkg 1.0")
    expect(page.get_by_text("A demo package")).to_be_visible()
    expect(page.get_by_role("link", name="demo_pkg-1.0-py3-none-any.whl")).to_be_visible()

    readme = page.get_by_role("region", name="Project description")
    expect(readme.locator("h1")).to_have_text("Zebra crossing")
    expect(readme.locator("h2")).to_have_text("Features")
    expect(readme.locator("ul > li")).to_have_text(["renders Markdown", "survives a phone screen"])
    expect(readme.locator("strong")).to_have_text("testing")
    expect(readme.locator("pre")).to_contain_text("a rather long line of code")
    expect(readme.locator("table th")).to_have_count(4)
    screenshot(page, "version")


def test_search_finds_a_package_by_a_word_only_in_its_description(
    visit: Callable[..., Visitor],
) -> None:
    page = visit().page
    page.goto("/")
    page.get_by_role("searchbox", name="Search packages").fill("okapi")
    page.get_by_role("searchbox", name="Search packages").press("Enter")
    expect(page).to_have_url(re.compile(r"/\+search\?q=okapi$"))
    expect(page.get_by_role("main")).to_contain_text("1 result for okapi")
    hit = page.get_by_role("main").get_by_role("link", name="demo-pkg 1.0")
    expect(hit).to_be_visible()
    screenshot(page, "search")
    hit.click()
    expect(page).to_have_url(re.compile(f"/{OWNER}/dev/demo-pkg/1.0$"))

    page.goto("/+search?q=no-such-word-anywhere")
    expect(page.get_by_role("main")).to_contain_text("0 results")


# --- logging in and managing indexes ---------------------------------------------------------


def test_log_in_through_the_form_and_create_an_index(
    visit: Callable[..., Visitor], site: Site
) -> None:
    page = visit().page
    page.goto(f"/+login?next=/{OWNER}")
    screenshot(page, "login")
    page.get_by_label("User").fill(OWNER)
    page.get_by_label("Password").fill("wrong")
    page.get_by_role("main").get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_have_text("Unknown user or wrong password.")
    page.get_by_label("User").fill(OWNER)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("main").get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(f"/{OWNER}$"))  # back where `next` pointed
    expect(page.get_by_role("navigation")).to_contain_text(f"Logged in as {OWNER}")

    page.get_by_label("Name").fill("made-in-ui")
    page.get_by_label("Bases").fill(f"{OWNER}/dev")
    page.get_by_label("Title").fill("Made in the browser")
    page.get_by_role("button", name="Create index").click()
    expect(page).to_have_url(re.compile(f"/{OWNER}/made-in-ui$"))
    expect(page.get_by_role("heading", level=1)).to_have_text(f"{OWNER}/made-in-ui")
    # The base's projects show through.
    expect(page.get_by_role("link", name="demo-pkg", exact=True)).to_be_visible()

    page.goto(f"/{OWNER}")
    expect(page.get_by_role("link", name=f"{OWNER}/made-in-ui")).to_be_visible()
    response = site.get_json(f"/{OWNER}/made-in-ui")
    assert response.status_code == 200, response.text
    config = response.json()["result"]
    assert config["type"] == "stage"
    assert config["title"] == "Made in the browser"
    assert config["bases"] == [f"{OWNER}/dev"]
    assert config["volatile"] is True

    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("navigation").get_by_role("link", name="Log in")).to_be_visible()
    page.goto(f"/{OWNER}")
    expect(page.get_by_role("button", name="Create index")).to_have_count(0)


def test_change_an_index_setting_through_the_form(owner: Page, site: Site) -> None:
    create_index(site.api, OWNER, "tuned", volatile=True)
    owner.goto(f"/{OWNER}/tuned")
    owner.get_by_label("Title").fill("Tuned builds")
    owner.get_by_label("Description").fill("Nightly builds of the team's tools")
    owner.get_by_label("Bases").fill(f"{OWNER}/dev")
    owner.get_by_label("Volatile").uncheck()
    owner.get_by_role("button", name="Save settings").click()
    expect(owner).to_have_url(re.compile(f"/{OWNER}/tuned$"))
    expect(owner.get_by_role("main")).to_contain_text("Nightly builds of the team's tools")
    expect(owner.get_by_label("Volatile")).not_to_be_checked()

    config = site.get_json(f"/{OWNER}/tuned").json()["result"]
    assert config["title"] == "Tuned builds"
    assert config["description"] == "Nightly builds of the team's tools"
    assert config["bases"] == [f"{OWNER}/dev"]
    assert config["volatile"] is False


def test_yank_and_unyank_a_release_through_the_form(owner: Page, site: Site) -> None:
    site.publish("yank-me", "1.0")
    owner.goto(f"/{OWNER}/dev/yank-me/1.0")
    owner.get_by_label("Reason for yanking").fill("broken build")
    owner.get_by_role("button", name="Yank 1.0").click()
    expect(owner.get_by_role("main")).to_contain_text("yanked: broken build")
    [entry] = simple_files(site, "dev", "yank-me")
    assert entry["yanked"] == "broken build"

    owner.get_by_role("button", name="Unyank 1.0").click()
    expect(owner.get_by_role("button", name="Yank 1.0")).to_be_visible()
    [entry] = simple_files(site, "dev", "yank-me")
    assert entry.get("yanked", False) is False


def test_delete_a_release_on_a_volatile_index(owner: Page, site: Site) -> None:
    site.publish("delete-me", "1.0")
    site.publish("delete-me", "2.0")
    owner.goto(f"/{OWNER}/dev/delete-me/1.0")
    owner.get_by_role("button", name="Delete 1.0").click()
    expect(owner).to_have_url(re.compile(f"/{OWNER}/dev/delete-me$"))
    expect(owner.get_by_role("link", name="2.0", exact=True)).to_be_visible()
    expect(owner.get_by_role("link", name="1.0", exact=True)).to_have_count(0)
    assert site.get_json(f"/{OWNER}/dev/delete-me/1.0").status_code == 404
    assert [f["filename"] for f in simple_files(site, "dev", "delete-me")] == [
        "delete_me-2.0-py3-none-any.whl"
    ]


def test_search_follows_deleted_releases(owner: Page, site: Site) -> None:
    site.publish("short-lived", "1.0", description="An early quokka release.")
    site.publish("short-lived", "2.0", description="A later wombat release.")
    owner.goto("/+search?q=wombat")
    expect(owner.get_by_role("main").get_by_role("link", name="short-lived 2.0")).to_be_visible()

    owner.goto(f"/{OWNER}/dev/short-lived/2.0")
    owner.get_by_role("button", name="Delete 2.0").click()
    owner.goto("/+search?q=wombat")
    expect(owner.get_by_role("main")).to_contain_text("0 results")
    owner.goto("/+search?q=quokka")  # the remaining release's words are found again
    owner.get_by_role("main").get_by_role("link", name="short-lived 1.0").click()
    expect(owner.locator("main > h1")).to_have_text("short-lived 1.0")

    owner.get_by_role("button", name="Delete 1.0").click()
    owner.goto("/+search?q=quokka")
    expect(owner.get_by_role("main")).to_contain_text("0 results")


def test_a_non_volatile_index_offers_no_delete_and_refuses_a_forged_one(
    owner: Page, site: Site
) -> None:
    site.publish("kept", "1.0", index="stable")
    owner.goto(f"/{OWNER}/stable/kept/1.0")
    expect(owner.get_by_role("button", name="Yank 1.0")).to_be_visible()
    expect(owner.get_by_role("button", name="Delete 1.0")).to_have_count(0)
    form = {"csrf": csrf_of(owner), "index": f"{OWNER}/stable", "project": "kept", "version": "1.0"}
    response = owner.request.post("/+ui/delete-release", form=form, max_redirects=0)
    assert response.status == 403, response.text()
    assert site.get_json(f"/{OWNER}/stable/kept/1.0").status_code == 200


# --- safety ---------------------------------------------------------------------------------


def test_hostile_descriptions_and_titles_render_inert(
    visit: Callable[..., Visitor], site: Site
) -> None:
    create_index(
        site.api, OWNER, "hostile", volatile=True, title=HOSTILE_TEXT, description=HOSTILE_TEXT
    )
    site.publish(
        "xss-pkg", "1.0", index="hostile", description=HOSTILE_README, summary=HOSTILE_TEXT
    )
    visitor = visit()
    page = visitor.page
    for path in [
        "/",
        f"/{OWNER}",
        f"/{OWNER}/hostile",
        f"/{OWNER}/hostile/xss-pkg",
        f"/{OWNER}/hostile/xss-pkg/1.0",
        "/+search?q=harmless",
    ]:
        page.goto(path, wait_until="load")
        page.wait_for_timeout(100)  # time for an image's error handler, were there one
        assert page.evaluate("typeof window.__xss") == "undefined", path
        assert page.evaluate("document.scripts.length") == 0, path
        handlers = page.evaluate(
            """() => [...document.querySelectorAll('*')].flatMap(element =>
                [...element.attributes].filter(a => a.name.startsWith('on'))
                    .map(a => `${element.tagName} ${a.name}`))"""
        )
        assert handlers == [], path
        assert page.locator("iframe, object, embed").count() == 0, path
        assert page.locator("[href^='javascript:' i], [src^='javascript:' i]").count() == 0, path
    readme = page.goto(f"/{OWNER}/hostile/xss-pkg/1.0")
    assert readme is not None and readme.status == 200
    expect(page.get_by_role("region", name="Project description").locator("h1")).to_have_text(
        "Harmless heading"
    )
    page.get_by_text("a markdown link").click()  # goes nowhere, runs nothing
    page.wait_for_timeout(100)
    assert page.evaluate("typeof window.__xss") == "undefined"
    assert visitor.dialogs == []


def test_a_form_post_without_the_csrf_token_is_refused(
    visit: Callable[..., Visitor], site: Site
) -> None:
    alice = visit()
    log_in(alice.page)
    alice.page.goto(f"/{OWNER}")
    fields = {"user": OWNER, "name": "forged", "bases": "", "title": ""}
    missing = alice.page.request.post("/+ui/create-index", form=fields, max_redirects=0)
    assert missing.status == 403, missing.text()
    wrong = alice.page.request.post(
        "/+ui/create-index", form={**fields, "csrf": "0" * 64}, max_redirects=0
    )
    assert wrong.status == 403, wrong.text()
    # A token belongs to its session: trudy cannot use alice's, even on her own account.
    create_user(site.api, "trudy")
    trudy = visit()
    log_in(trudy.page, "trudy")
    stolen = trudy.page.request.post(
        "/+ui/create-index",
        form={**fields, "user": "trudy", "csrf": csrf_of(alice.page)},
        max_redirects=0,
    )
    assert stolen.status == 403, stolen.text()
    assert site.get_json(f"/{OWNER}/forged").status_code == 404
    assert site.get_json("/trudy/forged").status_code == 404

    # Logged out, a form post is a 401 page in the browser, without a Basic-auth challenge
    # (which would pop up the browser's password dialog instead of the log-in page).
    anonymous = site.api.post("/+ui/create-index", data=fields, headers={"Accept": BROWSER_ACCEPT})
    assert anonymous.status_code == 401
    assert "www-authenticate" not in anonymous.headers
    assert "/+login" in anonymous.text
    assert_page_headers(anonymous)


def test_another_user_can_neither_see_nor_use_the_owner_forms(
    visit: Callable[..., Visitor], site: Site
) -> None:
    create_user(site.api, "mallory")
    visitor = visit()
    log_in(visitor.page, "mallory")
    page = visitor.page
    page.goto(f"/{OWNER}")
    expect(page.get_by_role("button", name="Create index")).to_have_count(0)
    page.goto(f"/{OWNER}/dev")
    expect(page.get_by_role("button", name="Save settings")).to_have_count(0)
    page.goto(f"/{OWNER}/dev/demo-pkg/1.0")
    expect(page.get_by_role("button", name="Yank 1.0")).to_have_count(0)
    form = {
        "csrf": csrf_of(page), "index": f"{OWNER}/dev", "project": "demo-pkg", "version": "1.0",
        "action": "yank", "reason": "",
    }  # fmt: skip
    response = page.request.post("/+ui/yank", form=form, max_redirects=0)
    assert response.status == 403, response.text()
    assert all("yanked" not in f for f in simple_files(site, "dev", "demo-pkg"))


def assert_page_headers(response: httpx.Response) -> None:
    """Pages run no script, even one that got past sanitising, and no other site frames them."""
    policy = response.headers.get("content-security-policy", "")
    assert "script-src 'none'" in policy, response.url
    assert "frame-ancestors 'none'" in policy, response.url
    assert response.headers.get("x-content-type-options") == "nosniff", response.url


def test_the_same_urls_answer_json_to_api_clients(
    visit: Callable[..., Visitor], site: Site
) -> None:
    expected = {
        "/": "list:userconfig",
        f"/{OWNER}": "userconfig",
        f"/{OWNER}/dev": "indexconfig",
        f"/{OWNER}/dev/demo-pkg": "projectconfig",
        f"/{OWNER}/dev/demo-pkg/1.0": "versiondata",
        "/+status": "status",
    }
    page = visit().page
    for path, kind in expected.items():
        for accept in ["application/json", "*/*"]:
            response = site.api.get(path, headers={"Accept": accept})
            assert response.status_code == 200, (path, response.text)
            assert response.headers["content-type"] == "application/json", path
            assert response.json()["type"] == kind, path
            # One URL, two representations: caches must key on Accept.
            assert "accept" in response.headers.get("vary", "").lower(), path
        html = site.api.get(path, headers={"Accept": BROWSER_ACCEPT})
        assert html.headers["content-type"].startswith("text/html"), path
        assert "accept" in html.headers.get("vary", "").lower(), path
        assert_page_headers(html)
        browsed = page.goto(path)
        assert browsed is not None and browsed.headers["content-type"].startswith("text/html")
    assert "demo-pkg" in site.get_json(f"/{OWNER}/dev").json()["result"]["projects"]


def test_the_install_hint_names_the_outside_url(site: Site) -> None:
    """Behind a proxy, the index page tells pip the address users reach, not the internal one."""
    headers = {"Accept": BROWSER_ACCEPT, "X-Outside-Url": "https://packages.example.invalid"}
    page = site.api.get(f"/{OWNER}/dev", headers=headers)
    assert page.status_code == 200
    expected = f"--index-url https://packages.example.invalid/{OWNER}/dev/+simple/"
    assert expected in page.text


# --- accessibility and small screens -----------------------------------------------------------

ACCESSIBILITY_PROBLEMS = """() => {
  const problems = [];
  if (!document.documentElement.lang) problems.push("<html> has no lang");
  if (!document.title.trim()) problems.push("no <title>");
  if (document.querySelectorAll("main").length !== 1) problems.push("not exactly one <main>");
  // The page's own <h1> comes first; a project's README may bring more.
  if (document.querySelector("main h1, main h2, main h3") !== document.querySelector("main > h1")) {
    problems.push("the page does not start with its <h1>");
  }
  const navs = [...document.querySelectorAll("nav")];
  if (navs.length === 0) problems.push("no <nav>");
  for (const nav of navs) {
    if (!nav.getAttribute("aria-label") && !nav.getAttribute("aria-labelledby")) {
      problems.push("a <nav> without aria-label");
    }
  }
  for (const field of document.querySelectorAll("input, textarea, select")) {
    if (field.type === "hidden") continue;
    if (field.labels.length === 0 && !field.getAttribute("aria-label")
        && !field.getAttribute("aria-labelledby")) {
      problems.push(`unlabelled field: ${field.outerHTML}`);
    }
  }
  for (const button of document.querySelectorAll("button")) {
    if (!button.textContent.trim() && !button.getAttribute("aria-label")) {
      problems.push(`a button without a name: ${button.outerHTML}`);
    }
  }
  return problems;
}"""

PAGES = [
    "/",
    f"/{OWNER}",
    f"/{OWNER}/dev",
    f"/{OWNER}/dev/demo-pkg",
    f"/{OWNER}/dev/demo-pkg/1.0",
    "/+search?q=okapi",
    "/+search",
    "/+status",
    f"/{OWNER}/+tokens",
    "/nobody-here",  # the error page
]
PHONE_SHOTS = {f"/{OWNER}/dev": "index-phone", f"/{OWNER}/dev/demo-pkg/1.0": "version-phone"}


def test_every_page_has_landmarks_a_language_and_labelled_fields(
    owner: Page, visit: Callable[..., Visitor]
) -> None:
    # Logged in, so that the owner's forms are on the pages too.
    for path in PAGES:
        owner.goto(path)
        assert owner.evaluate(ACCESSIBILITY_PROBLEMS) == [], path
    anonymous = visit().page
    anonymous.goto("/+login")
    assert anonymous.evaluate(ACCESSIBILITY_PROBLEMS) == [], "/+login"


def test_a_phone_width_screen_needs_no_horizontal_scrolling(
    visit: Callable[..., Visitor], site: Site
) -> None:
    # Long words with no place to break: names, versions, titles, summaries, a search query.
    long_name, long_version = "unbroken" * 16, "1.0.post" + "7" * 40
    create_index(site.api, OWNER, "wide", title="T" * 150, description="D" * 300)
    site.publish(long_name, long_version, index="wide", summary="S" * 200)
    long_pages = [
        f"/{OWNER}/wide",
        f"/{OWNER}/wide/{long_name}",
        f"/{OWNER}/wide/{long_name}/{long_version}",
        "/+search?q=" + "q" * 150,
        f"/{OWNER}/{'z' * 150}",
    ]
    page = visit(viewport=PHONE).page
    log_in(page)
    for path in [*PAGES, "/+login", *long_pages]:
        page.goto(path)
        width = page.evaluate("document.scrollingElement.scrollWidth")
        assert width <= PHONE["width"], f"{path} is {width} px wide"
        if path in PHONE_SHOTS:
            screenshot(page, PHONE_SHOTS[path])


def test_the_owner_quarantines_a_project_through_the_form(owner: Page, site: Site) -> None:
    site.publish("suspect", "1.0")
    owner.goto(f"/{OWNER}/dev/suspect")
    owner.get_by_label("Status").select_option("quarantined")
    owner.get_by_label("Reason").fill("under review")
    owner.get_by_role("button", name="Set status").click()
    expect(owner.get_by_role("main")).to_contain_text("suspect is quarantined: under review")
    expect(owner.get_by_role("main")).to_contain_text("refused: The project suspect is")
    assert simple_files(site, "dev", "suspect") == []
