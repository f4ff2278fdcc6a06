"""User-level devpi scenarios, written once and driven two ways.

`InProcessDriver` sends to the app in-process exactly what devpi-client 7.3.0 sends (JSON
bodies, `X-Devpi-Auth`, the `PUSH` method; devpi-protocol.md §10); `DevpiDriver` runs the real
`devpi` command against a real server and reads what it prints. A scenario that breaks shows up
twice: as a protocol failure and as a client failure.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from packaging.utils import parse_sdist_filename, parse_wheel_filename
from packaging.version import Version
from starlette.testclient import TestClient

from tests.builders import build_wheel
from tests.devpi_client import Devpi

DEVPI_HEADERS = {
    "User-Agent": "devpi-client/7.3.0 (py3.11.7; linux)",
    "Accept": "application/json",
    "content-type": "application/json",
}


@dataclass(frozen=True)
class Outcome:
    """Whether a command succeeded, and what the user was told."""

    ok: bool
    message: str


class Driver(Protocol):
    def create_user(self, user: str, password: str, **info: str) -> Outcome: ...
    def login(self, user: str, password: str) -> Outcome: ...
    def logoff(self) -> None: ...
    def create_index(self, index: str, **config: str) -> Outcome: ...
    def modify_index(self, index: str, *operations: str) -> Outcome: ...
    def index_config(self, index: str) -> dict[str, Any]: ...
    def use(self, index: str) -> None: ...
    def upload(self, path: Path) -> Outcome: ...
    def projects(self) -> list[str]: ...
    def versions(self, project: str) -> list[str]: ...
    def remove(self, project: str, version: str | None = None) -> Outcome: ...
    def push(self, project: str, version: str, target: str) -> Outcome: ...


def _sorted_versions(versions: set[str]) -> list[str]:
    return sorted(versions, key=Version)


# --- the in-process driver --------------------------------------------------------------------


class InProcessDriver:
    """devpi-client's requests, sent to the app in-process."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.auth: dict[str, str] = {}
        self.index = ""

    def _call(self, method: str, path: str, body: Any = None) -> tuple[int, dict[str, Any]]:
        content = json.dumps(body) if body is not None else None
        headers = DEVPI_HEADERS | self.auth
        response = self.client.request(method, path, content=content, headers=headers)
        # What devpi-client checks before it trusts a reply (§1.2, §1.3).
        assert response.headers["X-Devpi-Api-Version"] == "2"
        assert response.headers["content-type"] == "application/json", response.text
        document: dict[str, Any] = response.json()
        return response.status_code, document

    def _outcome(self, method: str, path: str, body: Any = None) -> Outcome:
        status, document = self._call(method, path, body)
        return Outcome(status in (200, 201), document.get("message", ""))

    def create_user(self, user: str, password: str, **info: str) -> Outcome:
        status, document = self._call("PUT", f"/{user}", {"password": password, **info})
        if status != 201:
            return Outcome(False, document.get("message", ""))
        assert document["type"] == "userconfig"
        created = document["result"]
        assert created["username"] == user and created["indexes"] == {}
        assert created["created"] and "pwhash" not in created and "password" not in created
        assert {key: created[key] for key in info} == info
        return Outcome(True, "")

    def login(self, user: str, password: str) -> Outcome:
        status, document = self._call("POST", "/+login", {"user": user, "password": password})
        if status == 200:
            assert document["type"] == "proxyauth"
            token = base64.b64encode(f"{user}:{document['result']['password']}".encode())
            self.auth = {"X-Devpi-Auth": token.decode()}
        return Outcome(status == 200, document.get("message", ""))

    def logoff(self) -> None:
        self.auth = {}

    def create_index(self, index: str, **config: str) -> Outcome:
        return self._outcome("PUT", f"/{index}", config)

    def modify_index(self, index: str, *operations: str) -> Outcome:
        return self._outcome("PATCH", f"/{index}", list(operations))

    def index_config(self, index: str) -> dict[str, Any]:
        status, document = self._call("GET", f"/{index}?no_projects=")
        assert status == 200 and document["type"] == "indexconfig", document
        config: dict[str, Any] = document["result"]
        return config

    def use(self, index: str) -> None:
        status, document = self._call("GET", f"/{index}/+api")
        assert status == 200 and document["type"] == "apiconfig", document
        self.index = index

    def upload(self, path: Path) -> Outcome:
        name, version = _name_version(path.name)
        form = {
            ":action": "file_upload",
            "protocol_version": "1",
            "metadata_version": "2.1",
            "name": name,
            "version": version,
            "filetype": "bdist_wheel" if path.suffix == ".whl" else "sdist",
            "pyversion": "3" if path.suffix == ".whl" else "source",
        }
        response = self.client.post(
            f"/{self.index}/",
            data=form,
            files={"content": (path.name, path.read_bytes())},
            headers={"User-Agent": DEVPI_HEADERS["User-Agent"]} | self.auth,
        )
        reason = response.headers.get("x-packyard-reason", "")
        return Outcome(response.status_code == 200, f"{reason}\n{response.text}")

    def projects(self) -> list[str]:
        status, document = self._call("GET", f"/{self.index}")
        assert status == 200 and document["type"] == "indexconfig", document
        return list(document["result"]["projects"])

    def versions(self, project: str) -> list[str]:
        status, document = self._call("GET", f"/{self.index}/{project}/")
        if status == 404:
            return []
        assert status == 200 and document["type"] == "projectconfig", document
        return _sorted_versions(set(document["result"]))

    def remove(self, project: str, version: str | None = None) -> Outcome:
        # As `devpi remove`: look at the index's own releases first, then delete.
        status, document = self._call("GET", f"/{self.index}/{project}/?ignore_bases=")
        if status != 200:
            return Outcome(False, document.get("message", ""))
        path = f"/{self.index}/{project}/{version}" if version else f"/{self.index}/{project}/"
        return self._outcome("DELETE", path)

    def push(self, project: str, version: str, target: str) -> Outcome:
        body = {"name": project, "version": version, "targetindex": target}
        status, document = self._call("PUSH", f"/{self.index}", body)
        if status != 200:
            return Outcome(False, document.get("message", ""))
        assert document["type"] == "actionlog"
        rows = document["result"]
        return Outcome(all(row[0] == 200 for row in rows), json.dumps(rows))


# --- the real client -------------------------------------------------------------------------


class DevpiDriver:
    """The real `devpi` command against a real server."""

    def __init__(self, devpi: Devpi, url: str) -> None:
        self.devpi = devpi
        devpi.ok("use", url)

    def _outcome(self, *args: str | Path) -> Outcome:
        result = self.devpi.run(*args)
        return Outcome(result.returncode == 0, result.output)

    def create_user(self, user: str, password: str, **info: str) -> Outcome:
        return self._outcome("user", "-c", user, f"password={password}", *_pairs(info))

    def login(self, user: str, password: str) -> Outcome:
        return self._outcome("login", user, "--password", password)

    def logoff(self) -> None:
        self.devpi.ok("logoff")

    def create_index(self, index: str, **config: str) -> Outcome:
        return self._outcome("index", "-c", index, *_pairs(config))

    def modify_index(self, index: str, *operations: str) -> Outcome:
        return self._outcome("index", index, *operations)

    def index_config(self, index: str) -> dict[str, Any]:
        document = self.devpi.getjson(f"/{index}?no_projects=")
        assert document["type"] == "indexconfig", document
        config: dict[str, Any] = document["result"]
        return config

    def use(self, index: str) -> None:
        self.devpi.ok("use", index)

    def upload(self, path: Path) -> Outcome:
        return self._outcome("upload", path)

    def projects(self) -> list[str]:
        return self.devpi.ok("list").split()

    def versions(self, project: str) -> list[str]:
        result = self.devpi.run("list", "--all", project)
        if result.returncode != 0:
            assert "404 Not Found" in result.output, str(result)
            return []
        hrefs = re.findall(r"https?://\S+", result.stdout)
        return _sorted_versions({_name_version(href.rsplit("/", 1)[-1])[1] for href in hrefs})

    def remove(self, project: str, version: str | None = None) -> Outcome:
        return self._outcome("remove", "-y", f"{project}=={version}" if version else project)

    def push(self, project: str, version: str, target: str) -> Outcome:
        return self._outcome("push", f"{project}=={version}", target)


def _pairs(config: dict[str, str]) -> list[str]:
    return [f"{key}={value}" for key, value in config.items()]


def _name_version(filename: str) -> tuple[str, str]:
    if filename.endswith(".whl"):
        name, version, _build, _tags = parse_wheel_filename(filename)
    else:
        name, version = parse_sdist_filename(filename)
    return str(name), str(version)


# --- the scenarios ---------------------------------------------------------------------------


def alice_with_index(driver: Driver, index: str = "alice/dev", **config: str) -> None:
    """Register alice, log her in, create `index` and make it the current one."""
    assert driver.create_user("alice", "alicepw", email="alice@example.invalid").ok
    assert driver.login("alice", "alicepw").ok
    created = driver.create_index(index, **config)
    assert created.ok, created.message
    driver.use(index)


def release_lifecycle(driver: Driver, workdir: Path) -> None:
    """Upload three versions, remove the middle one, then the project."""
    alice_with_index(driver, volatile="True")
    for version in ("0.1.0", "0.2.0", "0.3.0"):
        uploaded = driver.upload(build_wheel(workdir, "demo-app", version))
        assert uploaded.ok, uploaded.message
    assert driver.projects() == ["demo-app"]
    assert driver.versions("demo-app") == ["0.1.0", "0.2.0", "0.3.0"]
    removed = driver.remove("demo-app", "0.2.0")
    assert removed.ok, removed.message
    assert driver.versions("demo-app") == ["0.1.0", "0.3.0"]
    removed = driver.remove("demo-app")
    assert removed.ok, removed.message
    assert driver.projects() == []
    assert driver.versions("demo-app") == []


def non_volatile_index_keeps_its_files(driver: Driver, workdir: Path) -> None:
    """Once an index is made non-volatile, removing and replacing releases are refused."""
    alice_with_index(driver, "alice/prod", volatile="True")
    wheel = build_wheel(workdir / "first", "demo-app", "1.0")
    assert driver.upload(wheel).ok
    assert driver.modify_index("alice/prod", "volatile=False").ok
    assert driver.index_config("alice/prod")["volatile"] is False
    removed = driver.remove("demo-app", "1.0")
    assert not removed.ok
    assert "cannot delete version on non-volatile index" in removed.message
    assert driver.versions("demo-app") == ["1.0"]
    assert driver.upload(wheel).ok, "an identical re-upload is accepted"
    changed = driver.upload(build_wheel(workdir / "second", "demo-app", "1.0", payload="x = 1"))
    assert not changed.ok
    assert "already exists in non-volatile index" in changed.message
    assert driver.versions("demo-app") == ["1.0"]


def push_between_indexes(driver: Driver, workdir: Path) -> None:
    """Push one version from a volatile index into a non-volatile one, once."""
    alice_with_index(driver, volatile="True")
    for version in ("1.0", "2.0"):
        assert driver.upload(build_wheel(workdir, "demo-app", version)).ok
    assert driver.create_index("alice/prod", volatile="False").ok
    pushed = driver.push("demo-app", "1.0", "alice/prod")
    assert pushed.ok, pushed.message
    again = driver.push("demo-app", "1.0", "alice/prod")
    assert not again.ok
    assert "already exists in non-volatile index" in again.message
    driver.use("alice/prod")
    assert driver.projects() == ["demo-app"]
    assert driver.versions("demo-app") == ["1.0"]


def upload_permissions(driver: Driver, workdir: Path) -> None:
    """Only acl_upload may upload; strangers and anonymous users may still read."""
    alice_with_index(driver, volatile="True")
    wheel = build_wheel(workdir, "demo-app", "1.0")
    assert driver.create_user("bob", "bobpw").ok, "anyone may register by default"
    assert driver.login("bob", "bobpw").ok
    refused = driver.upload(wheel)
    assert not refused.ok
    assert "no permission to submit" in refused.message
    refused = driver.create_index("alice/bobs")
    assert not refused.ok
    assert "no permission to create index alice/bobs" in refused.message
    assert driver.login("alice", "alicepw").ok
    assert driver.modify_index("alice/dev", "acl_upload+=bob").ok
    assert driver.login("bob", "bobpw").ok
    assert driver.upload(wheel).ok
    driver.logoff()
    refused = driver.upload(build_wheel(workdir, "demo-app", "2.0"))
    assert not refused.ok
    assert "authentication required to upload" in refused.message
    assert not driver.create_index("alice/anon").ok
    assert driver.versions("demo-app") == ["1.0"]


def index_options(driver: Driver, workdir: Path) -> None:
    """Every stage option given as text on creation, then changed with =, += and -=."""
    alice_with_index(
        driver,
        volatile="False",
        acl_upload="alice,:ANONYMOUS:",
        mirror_whitelist="demo-app",
        mirror_whitelist_inheritance="union",
    )
    config = driver.index_config("alice/dev")
    assert config == {
        "type": "stage",
        "bases": [],
        "volatile": False,
        "acl_upload": ["alice", ":ANONYMOUS:"],
        "acl_toxresult_upload": [":ANONYMOUS:"],
        "acl_read": [":ANONYMOUS:"],
        "mirror_whitelist": ["demo-app"],
        "mirror_whitelist_inheritance": "union",
    }
    assert driver.create_index("alice/base").ok
    changed = driver.modify_index(
        "alice/dev", "bases=alice/base", "volatile=True", "mirror_whitelist+=other"
    )
    assert changed.ok, changed.message
    assert driver.modify_index("alice/dev", "acl_upload-=:ANONYMOUS:").ok
    config = driver.index_config("alice/dev")
    assert config["bases"] == ["alice/base"]
    assert config["volatile"] is True
    assert config["mirror_whitelist"] == ["demo-app", "other"]
    assert config["acl_upload"] == ["alice"]
    refused = driver.modify_index("alice/dev", "mirror_whitelist-=absent")
    assert not refused.ok
    assert "The 'mirror_whitelist' setting doesn't have value 'absent'" in refused.message


SCENARIOS = [
    release_lifecycle,
    non_volatile_index_keeps_its_files,
    push_between_indexes,
    upload_permissions,
    index_options,
]
