from pathlib import Path

from starlette.testclient import TestClient

from tests.builders import build_wheel
from tests.conftest import JSON, ROOT_PASSWORD, basic_auth


def test_create_user_index_upload_and_read_simple_page(client: TestClient, tmp_path: Path) -> None:
    assert client.put("/alice", json={"password": "pw"}, headers=JSON).status_code == 201
    auth = basic_auth("alice", "pw")
    assert client.put("/alice/dev", json={}, headers=JSON | auth).status_code == 200
    wheel = build_wheel(tmp_path, "demo", "1.0")
    response = client.post(
        "/alice/dev/",
        data={":action": "file_upload", "name": "demo", "version": "1.0"},
        files={"content": (wheel.name, wheel.read_bytes())},
        headers=auth,
    )
    assert response.status_code == 200, response.text
    page = client.get("/alice/dev/+simple/demo/", headers={"Accept": "text/html"})
    assert wheel.name in page.text
    assert basic_auth("root", ROOT_PASSWORD)
