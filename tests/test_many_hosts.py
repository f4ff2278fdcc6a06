"""Many stateless hosts on one PostgreSQL and one bucket, behind a real nginx load balancer,
and `packyard move` between topologies: real processes on loopback (moto as the S3 server)."""

from __future__ import annotations

import getpass
import hashlib
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import BIN, ROOT_PASSWORD, ServerProcess, clean_env, free_port
from tests.pg import PostgresCluster
from tests.s3 import S3Server, in_environment
from tests.test_hosts import ROOT, pip_download, upload_wheel
from tests.test_reverse_proxy import _wait_for_port

pytestmark = pytest.mark.postgres

# Round robin over the hosts; a dead host's connection refusal moves an idempotent request
# (GET, HEAD) to the next one, never an upload (nginx's default for non-idempotent methods).
NGINX_CONF = """\
daemon off;
worker_processes 1;
user {user};
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    upstream packyard {{
{servers}
    }}
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 64M;
        proxy_read_timeout 60s;
        proxy_next_upstream error timeout;
        location / {{
            proxy_pass http://packyard;
            proxy_set_header X-outside-url http://127.0.0.1:{port};
            proxy_set_header X-Real-IP $remote_addr;
        }}
        location = /+metrics {{ deny all; }}
    }}
}}
"""


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = S3Server(tmp_path_factory.mktemp("s3") / "moto.log")
    server.start()
    in_environment(server)
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Fleet:
    hosts: list[ServerProcess]
    url: str  # the load balancer's
    directory: Path


@pytest.fixture(scope="module")
def fleet(
    tmp_path_factory: pytest.TempPathFactory,
    postgres_cluster: PostgresCluster,
    s3_server: S3Server,
) -> Iterator[Fleet]:
    """Three hosts (separate server dirs) on one database and one bucket, and nginx."""
    directory = tmp_path_factory.mktemp("fleet")
    database, bucket = postgres_cluster.new_database(), s3_server.new_bucket()
    hosts = []
    for number in range(3):
        host = ServerProcess(
            directory / f"host{number}", free_port(), directory / f"host{number}.log", database
        )
        host.settings = {"blobs": f"s3://{bucket}/blobs"}
        host.start()
        hosts.append(host)
    port, nginx_dir = free_port(), directory / "nginx"
    nginx_dir.mkdir()
    servers = "\n".join(f"        server 127.0.0.1:{host.port};" for host in hosts)
    conf = nginx_dir / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(user=getpass.getuser(), dir=nginx_dir, port=port, servers=servers)
    )
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    process = subprocess.Popen(
        [nginx, "-p", str(nginx_dir), "-c", str(conf), "-e", "stderr"], stderr=subprocess.DEVNULL
    )
    try:
        _wait_for_port(port, process)
        yield Fleet(hosts, f"http://127.0.0.1:{port}", directory)
    finally:
        process.send_signal(signal.SIGQUIT)
        process.wait(timeout=10)
        for host in hosts:
            if host.process is not None and host.process.poll() is None:
                host.stop()


def _file_url(base: str, index: str, filename: str, data: bytes) -> str:
    sha = hashlib.sha256(data).hexdigest()
    return f"{base}/root/{index}/+f/{sha[:3]}/{sha[3:16]}/{filename}"


def test_an_upload_through_one_host_installs_through_another(fleet: Fleet, tmp_path: Path) -> None:
    first, second = fleet.hosts[0], fleet.hosts[1]
    filename, data = upload_wheel(first.url, "shared", "across-hosts")
    started = time.monotonic()
    while time.monotonic() - started < 5:  # the change feed makes this immediate
        page = httpx.get(f"{second.url}/root/shared/+simple/across-hosts/")
        if filename in page.text:
            break
        time.sleep(0.05)
    lag = time.monotonic() - started
    assert filename in page.text, f"not listed on another host after {lag:.2f} s"
    ran = pip_download(f"{fleet.url}/root/shared/+simple/", "across-hosts", tmp_path / "got")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert (tmp_path / "got" / filename).read_bytes() == data
    for host in fleet.hosts:  # every host serves the bytes, from the bucket
        assert httpx.get(_file_url(host.url, "shared", filename, data)).content == data
    assert httpx.get(f"{fleet.url}/+metrics").status_code == 403  # the balancer hides them


def _seen_everywhere(fleet: Fleet, path: str, within: float = 5.0) -> None:
    """Wait until every host answers `path` (the change feed makes it immediate)."""
    deadline = time.monotonic() + within
    for host in fleet.hosts:
        while httpx.get(f"{host.url}{path}", headers=ROOT, timeout=30).status_code != 200:
            assert time.monotonic() < deadline, f"{path} not seen by {host.url}"
            time.sleep(0.05)


def _upload_retrying(url: str, path: Path, attempts: int = 4) -> list[int]:
    """What a CI client does: upload, and upload again after a failure; the statuses seen."""
    project, version = path.name.split("-")[:2]
    seen: list[int] = []
    for _ in range(attempts):
        try:
            response = httpx.post(
                f"{url}/root/burst/",
                data={":action": "file_upload", "name": project, "version": version},
                files={"content": (path.name, path.read_bytes())},
                headers=ROOT,
                timeout=30,
            )
            seen.append(response.status_code)
        except httpx.HTTPError:
            seen.append(0)  # the connection broke: no answer
        if seen[-1] == 200:
            break
        time.sleep(0.2)
    return seen


def test_a_host_killed_during_an_upload_burst_loses_nothing(fleet: Fleet, tmp_path: Path) -> None:
    """kill -9 of one host while 50 uploads go through the balancer: every upload that got a
    200 is listed and intact, nothing half-written is listed, and the failed ones succeed when
    the client sends them again. twine and uv go through the balancer too."""
    from tests.builders import build_wheel

    httpx.put(f"{fleet.url}/root/burst", json={"volatile": False}, headers=ROOT, timeout=30)
    _seen_everywhere(fleet, "/root/burst")
    wheels = [build_wheel(tmp_path / "dist", "burst", f"1.0.{n}") for n in range(50)]
    first = subprocess.run(
        [str(BIN / "twine"), "upload", "--non-interactive", "--disable-progress-bar",
         "--repository-url", f"{fleet.url}/root/burst/", "-u", "root", "-p", ROOT_PASSWORD,
         str(wheels[0])],
        env=clean_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert first.returncode == 0, first.stdout + first.stderr
    victim = fleet.hosts[2]
    assert victim.process is not None
    with ThreadPoolExecutor(4) as pool:
        pending = [pool.submit(_upload_retrying, fleet.url, path) for path in wheels[1:]]
        time.sleep(1.0)  # some uploads done, some under way
        victim.process.send_signal(signal.SIGKILL)
        statuses = [future.result() for future in pending]
    victim.process.wait(timeout=10)
    assert all(seen[-1] == 200 for seen in statuses), statuses
    try:
        files = {}
        page = httpx.get(f"{fleet.url}/root/burst/+simple/burst/", timeout=30).text
        for path in wheels:
            assert path.name in page
            files[path.name] = httpx.get(
                _file_url(fleet.url, "burst", path.name, path.read_bytes()), timeout=30
            ).content
        assert all(files[path.name] == path.read_bytes() for path in wheels)
        pep691 = {"Accept": "application/vnd.pypi.simple.v1+json"}
        simple = httpx.get(f"{fleet.url}/root/burst/+simple/burst/", headers=pep691, timeout=30)
        listed = sorted(entry["filename"] for entry in simple.json()["files"])
        assert listed == sorted(path.name for path in wheels)  # nothing else, nothing twice
        uv = [str(BIN / "uv"), "pip", "install", "--no-config", "--no-cache", "--target"]
        ran = subprocess.run(
            [*uv, str(tmp_path / "uv"), "--python", str(BIN / "python"),
             "--index-url", f"{fleet.url}/root/burst/+simple/", "burst==1.0.49"],
            env=clean_env(), capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert ran.returncode == 0, ran.stdout + ran.stderr
        print(f"statuses seen by the retried uploads: {[s for s in statuses if len(s) > 1]}")
    finally:
        victim.start()  # back for the module's other tests


def test_a_paused_object_store_is_a_prompt_503_then_recovers(
    fleet: Fleet, s3_server: S3Server, tmp_path: Path
) -> None:
    """Reads of uncached files and uploads answer a prompt 503 while the store hangs; the
    upload stores nothing, and succeeds when sent again once the store is back."""
    from tests.builders import build_wheel

    host = fleet.hosts[2]
    wheel = build_wheel(tmp_path / "dist", "during-pause", "1.0")
    filename, data = upload_wheel(host.url, "paused", "before-pause")
    page = f"{host.url}/root/paused/+simple/before-pause/"
    assert httpx.get(page).status_code == 200  # cached now
    uncached = host  # (another host would need the change feed to know the new index)
    sha = hashlib.sha256(data).hexdigest()
    shutil.rmtree(host.serverdir / "blob-cache" / sha[:2])  # only the bucket has it now
    assert s3_server.process is not None
    s3_server.process.send_signal(signal.SIGSTOP)  # a hung store: connections, no answers
    try:
        started = time.monotonic()
        assert httpx.get(page, timeout=30).status_code == 200
        response = httpx.get(_file_url(uncached.url, "paused", filename, data), timeout=60)
        assert response.status_code == 503, response.text
        assert "object storage cannot be reached" in response.text
        assert time.monotonic() - started < 45  # bounded retries: an answer, not a hang
        started = time.monotonic()
        upload = _upload(host.url, "paused", wheel)
        took = time.monotonic() - started
        assert upload.status_code == 503, upload.text
        assert "object storage cannot be reached" in upload.text and "nothing was" in upload.text
        assert took < 45, f"the upload took {took:.1f} s"  # the store's timeouts bound it
        print(f"upload during the pause: {upload.status_code} after {took:.1f} s")
        assert httpx.get(f"{host.url}/root/paused/+simple/during-pause/").status_code == 404
    finally:
        s3_server.process.send_signal(signal.SIGCONT)
    response = httpx.get(_file_url(uncached.url, "paused", filename, data), timeout=60)
    assert response.status_code == 200 and response.content == data
    assert _upload(host.url, "paused", wheel).status_code == 200  # the same upload, again
    listed = httpx.get(f"{host.url}/root/paused/+simple/during-pause/", timeout=30).text
    assert wheel.name in listed


def _upload(url: str, index: str, path: Path) -> httpx.Response:
    project, version = path.name.split("-")[:2]
    return httpx.post(
        f"{url}/root/{index}/",
        data={":action": "file_upload", "name": project, "version": version},
        files={"content": (path.name, path.read_bytes())},
        headers=ROOT,
        timeout=90,
    )


def test_move_a_server_dir_to_postgresql_and_s3_and_back(
    tmp_path: Path, postgres_cluster: PostgresCluster, s3_server: S3Server
) -> None:
    old = ServerProcess(tmp_path / "old", free_port(), tmp_path / "old.log")
    old.start()
    uploaded = [upload_wheel(old.url, "dev", name) for name in ("moved-one", "moved-two")]
    old.stop()
    database, bucket = postgres_cluster.new_database(), s3_server.new_bucket()
    to_s3 = ["--to-storage", database, "--to-blobs", f"s3://{bucket}/blobs"]
    moved = _packyard("move", "--serverdir", str(old.serverdir), *to_s3)
    assert moved.returncode == 0, moved.stdout + moved.stderr
    assert "2 files copied" in moved.stdout or "files copied" in moved.stdout
    again = _packyard("move", "--serverdir", str(old.serverdir), *to_s3)
    assert again.returncode != 0 and "not empty" in again.stderr  # never merged into data

    new = ServerProcess(tmp_path / "new", free_port(), tmp_path / "new.log", database)
    new.settings = {"blobs": f"s3://{bucket}/blobs"}
    new.start()
    try:
        for (filename, data), project in zip(uploaded, ("moved-one", "moved-two"), strict=True):
            ran = pip_download(f"{new.url}/root/dev/+simple/", project, tmp_path / "got")
            assert ran.returncode == 0, ran.stdout + ran.stderr
            assert (tmp_path / "got" / filename).read_bytes() == data
        assert httpx.get(f"{new.url}/root/dev", headers=ROOT).status_code == 200  # root's hash
        assert httpx.get(f"{new.url}/+audit", headers=ROOT).json()["result"]  # the trail moved
        upload_wheel(new.url, "dev", "after-move")  # ids continue past the copied ones
    finally:
        new.stop()

    back = tmp_path / "back"
    reverse = _packyard(
        "move", "--serverdir", str(new.serverdir), "--storage", database,
        "--blobs", f"s3://{bucket}/blobs", "--to-serverdir", str(back),
    )  # fmt: skip
    assert reverse.returncode == 0, reverse.stdout + reverse.stderr
    home = ServerProcess(back, free_port(), tmp_path / "back.log")
    home.start()
    try:
        ran = pip_download(f"{home.url}/root/dev/+simple/", "after-move", tmp_path / "home")
        assert ran.returncode == 0, ran.stdout + ran.stderr
    finally:
        home.stop()


def _packyard(*words: str) -> subprocess.CompletedProcess[str]:
    env = clean_env() | {"PACKYARD_ROOT_PASSWD": ROOT_PASSWORD}
    return subprocess.run(
        [str(BIN / "packyard"), *words], env=env, capture_output=True, text=True, timeout=120
    )
