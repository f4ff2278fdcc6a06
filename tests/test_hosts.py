"""One host's operations: `/+metrics` (summed over its workers, bounded labels, who may read
it) and files served from an object store (streamed with Range and ETag, or redirected to a
presigned URL), against real server processes, real pip and a real S3 API server (moto)."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT_PASSWORD, ServerProcess, basic_auth, clean_env, free_port, tool
from tests.s3 import S3Server, in_environment

ROOT = basic_auth("root", ROOT_PASSWORD)


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = S3Server(tmp_path_factory.mktemp("s3") / "moto.log")
    server.start()
    in_environment(server)
    try:
        yield server
    finally:
        server.stop()


def _server(tmp_path: Path, name: str = "server", **settings: str) -> ServerProcess:
    server = ServerProcess(tmp_path / name, free_port(), tmp_path / f"{name}.log")
    server.settings = dict(settings)
    return server


def metric_total(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        match = re.fullmatch(r"(\w+)(?:\{(.*)\})? (\S+)", line)
        if not match or match[1] != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match[2] or ""))
        if all(found.get(key) == value for key, value in labels.items()):
            total += float(match[3])
    return total


def upload_wheel(url: str, index: str, project: str, version: str = "1.0") -> tuple[str, bytes]:
    """Create `root/INDEX` if needed and upload a real wheel to it; (filename, bytes)."""
    from tests.builders import build_wheel

    httpx.put(f"{url}/root/{index}", json={"volatile": False}, headers=ROOT, timeout=30)
    path = build_wheel(Path(f"/tmp/packyard-dist-{uuid.uuid4().hex}"), project, version)
    data = path.read_bytes()
    response = httpx.post(
        f"{url}/root/{index}/",
        data={":action": "file_upload", "name": project, "version": version},
        files={"content": (path.name, data)},
        headers=ROOT,
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return path.name, data


def pip_download(index_url: str, project: str, into: Path) -> subprocess.CompletedProcess[str]:
    command = [tool("pip"), "download", "--no-deps", "--no-cache-dir", "-d", str(into)]
    return subprocess.run(
        [*command, "--index-url", index_url, project],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


# --- /+metrics -------------------------------------------------------------------------------


def test_metrics_are_summed_over_workers_by_route_template(tmp_path: Path) -> None:
    server = _server(tmp_path)
    server.start("--workers", "2")
    try:
        assert httpx.get(f"{server.url}/+metrics").status_code == 401  # default: root only
        invented = [f"/{uuid.uuid4().hex}/a/b/c/d/e/f" for _ in range(20)]  # no route's
        for path in invented:
            assert httpx.get(server.url + path).status_code == 404
        for name in ("alpha", "beta"):
            assert httpx.get(f"{server.url}/root/{name}/+simple/").status_code == 404
        upload_wheel(server.url, "dev", "metered")
        totals = set()
        for _ in range(6):  # new connections: spread over both workers by the kernel
            with httpx.Client() as client:
                response = client.get(f"{server.url}/+metrics", headers=ROOT)
            assert response.status_code == 200, response.text
            assert response.headers["content-type"].startswith("text/plain")
            text = response.text
            totals.add(metric_total(text, "packyard_requests_total", route="(unmatched)"))
            assert not any(path in text for path in invented)  # no raw paths as labels
        assert totals == {20.0}  # every scrape sees both workers' counts
        routes = set(re.findall(r'route="([^"]*)"', text))
        assert "/{user}/{index}/+simple" in routes or "/{user}/{index}/+simple/" in routes
        assert not any("alpha" in route or "metered" in route for route in routes)
        assert metric_total(text, "packyard_uploads_total", status="200") == 1
        assert metric_total(text, "packyard_change_serial") >= 1
        assert metric_total(text, "packyard_request_duration_seconds_count", route="/+api") >= 1
        other = httpx.put(f"{server.url}/mallory", json={"password": "pw"}, timeout=30)
        assert other.status_code == 201
        assert (
            httpx.get(f"{server.url}/+metrics", headers=basic_auth("mallory", "pw")).status_code
            == 403
        )
    finally:
        server.stop()
    assert (server.serverdir / "tmp" / "metrics").is_dir()


def test_metrics_allow_opens_them_to_a_network(tmp_path: Path) -> None:
    server = _server(tmp_path, metrics_allow="127.0.0.0/8")
    server.start()
    try:
        response = httpx.get(f"{server.url}/+metrics")
        assert response.status_code == 200
        assert "packyard_requests_total" in response.text
    finally:
        server.stop()


# --- files from an object store --------------------------------------------------------------


def test_files_from_a_bucket_stream_with_range_and_etag(
    tmp_path: Path, s3_server: S3Server
) -> None:
    server = _server(tmp_path, blobs=f"s3://{s3_server.new_bucket()}/files")
    server.start()
    try:
        filename, data = upload_wheel(server.url, "dev", "streamed")
        sha = hashlib.sha256(data).hexdigest()
        url = f"{server.url}/root/dev/+f/{sha[:3]}/{sha[3:16]}/{filename}"
        shutil.rmtree(server.serverdir / "blob-cache" / sha[:2])  # so served from the bucket
        whole = httpx.get(url)
        assert whole.status_code == 200 and whole.content == data
        assert whole.headers["etag"] == f'"{sha}"'
        assert "immutable" in whole.headers["cache-control"]
        part = httpx.get(url, headers={"Range": "bytes=10-19"})
        assert part.status_code == 206 and part.content == data[10:20]
        assert httpx.get(url, headers={"If-None-Match": f'"{sha}"'}).status_code == 304
        ran = pip_download(f"{server.url}/root/dev/+simple/", "streamed", tmp_path / "got")
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert (tmp_path / "got" / filename).read_bytes() == data
    finally:
        server.stop()


def test_blobs_redirect_answers_302_to_a_presigned_url(tmp_path: Path, s3_server: S3Server) -> None:
    bucket = s3_server.new_bucket()
    server = _server(
        tmp_path, blobs=f"s3://{bucket}/files", blobs_redirect="true", blobs_redirect_expiry="60"
    )
    server.start()
    try:
        filename, data = upload_wheel(server.url, "dev", "redirected")
        sha = hashlib.sha256(data).hexdigest()
        url = f"{server.url}/root/dev/+f/{sha[:3]}/{sha[3:16]}/{filename}"
        response = httpx.get(url)
        assert response.status_code == 302
        location = response.headers["location"]
        assert location.startswith(f"{s3_server.endpoint}/{bucket}/files/")
        assert "X-Amz-Signature=" in location and "X-Amz-Expires=60" in location
        assert httpx.get(location).content == data  # the store serves it, signed
        ran = pip_download(f"{server.url}/root/dev/+simple/", "redirected", tmp_path / "got")
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert (tmp_path / "got" / filename).read_bytes() == data
        metadata = httpx.get(url + ".metadata")
        assert metadata.status_code == 200  # small sidecars are served here
    finally:
        server.stop()
