"""``GET /downloads`` and ``GET /downloads/{platform}``: the host builds of ``DESKHAND_HOST_DOWNLOADS``, on a real broker.

The builds here are made-up bytes under the names ``scripts/build-host`` gives; what the
real file does is ``tests/e2e/test_host_build.py``'s.
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

import httpx
import pytest

from tests.support.raw_http import RawConnection

LINUX = "deskhand-host-linux-x86_64"
WINDOWS = "deskhand-host-windows-x86_64.exe"
SECRET = b"the broker's secrets are beside the downloads"


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("offered")
    (root / "secret.txt").write_bytes(SECRET)  # beside the folder: what a path traversal would be after
    downloads = root / "downloads"
    downloads.mkdir()
    (downloads / LINUX).write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    (downloads / WINDOWS).write_bytes(os.urandom(1000))
    (downloads / "README.txt").write_bytes(SECRET)  # not a build: never offered
    (downloads / "deskhand-host-linux-x86_64.sha256").write_bytes(SECRET)
    (downloads / "deskhand-host-macos-arm64").mkdir()  # a folder under a build's name: not a file
    return downloads


@pytest.fixture(scope="module")
def broker_env(folder: Path) -> dict[str, str]:
    return {"DESKHAND_HOST_DOWNLOADS": str(folder)}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def listing(broker) -> dict[str, dict]:
    response = broker.http.get("/downloads")
    assert response.status_code == 200, response.text
    return {d["platform"]: d for d in response.json()["downloads"]}


def test_the_listing_gives_each_build_with_its_size_and_sha256(broker, folder) -> None:
    offered = listing(broker)
    assert list(offered) == ["linux-x86_64", "windows-x86_64"]
    for platform, name in (("linux-x86_64", LINUX), ("windows-x86_64", WINDOWS)):
        data = (folder / name).read_bytes()
        assert offered[platform] == {"platform": platform, "file_name": name, "size": len(data), "sha256": sha256(data),
                                     "url": f"/api/v1/downloads/{platform}"}


def test_a_download_is_the_file_whose_sha256_was_listed(broker, folder) -> None:
    listed = listing(broker)["linux-x86_64"]
    with httpx.stream("GET", broker.base_url + listed["url"], timeout=30) as response:
        assert response.status_code == 200
        body = response.read()
    assert sha256(body) == listed["sha256"] and len(body) == listed["size"]
    assert response.headers["content-length"] == str(listed["size"])
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["content-disposition"] == f'attachment; filename="{LINUX}"'
    assert response.headers["repr-digest"] == f"sha-256=:{base64.b64encode(bytes.fromhex(listed['sha256'])).decode()}:"
    resumed = httpx.get(broker.base_url + listed["url"], headers={"Range": "bytes=1000-"}, timeout=30)
    assert resumed.status_code == 206 and resumed.content == body[1000:]  # a broken download goes on


def test_an_unknown_platform_is_a_404_naming_those_there_are(broker) -> None:
    response = broker.http.get("/downloads/macos-arm64")
    assert response.status_code == 404
    body = response.json()
    assert body["error"] == "download_not_found"
    assert body["message"] == "no host download for macos-arm64; this broker offers: linux-x86_64, windows-x86_64"
    assert body["detail"] == {"platforms": ["linux-x86_64", "windows-x86_64"]}


@pytest.mark.parametrize("path", [
    "/api/v1/downloads/../../../secret.txt",
    "/api/v1/downloads/..%2f..%2fsecret.txt",
    "/api/v1/downloads/%2e%2e%2fsecret.txt",
    "/api/v1/downloads/..",
    "/api/v1/downloads/README.txt",
    f"/api/v1/downloads/{LINUX}",
    "/api/v1/downloads/linux-x86_64.sha256",
    "/api/v1/downloads/linux-x86_64%00",
    "/api/v1/downloads/linux-x86_64%2f..%2f..%2fsecret.txt",
    "/api/v1/downloads/LINUX-X86_64",
    "/api/v1/downloads/" + "a" * 20 + "-" + "b" * 20,
])
def test_paths_and_names_that_are_not_a_platform_are_refused(broker, path) -> None:
    with RawConnection(broker.base_url) as raw:
        raw.send_head("GET", path)
        answer = raw.answer()
    assert answer is not None
    assert answer.status in (404, 422), (answer.status, answer.body[:200])
    assert SECRET not in answer.body
    if answer.headers.get("content-type", "").startswith("application/json"):
        assert set(answer.json()) >= {"error", "message"}


def test_a_folder_under_a_builds_name_is_not_offered(broker) -> None:
    response = broker.http.get("/downloads/macos-arm64")
    assert response.status_code == 404 and "macos-arm64" not in response.json()["detail"]["platforms"]


def test_a_build_replaced_in_the_folder_is_listed_with_its_new_size_and_hash(broker, folder) -> None:
    before = listing(broker)["windows-x86_64"]
    new = os.urandom(2000)
    staged = folder / "staged.partial"
    staged.write_bytes(new)
    staged.replace(folder / WINDOWS)  # as docs/operations.md says: rename the new build over the old
    after = listing(broker)["windows-x86_64"]
    assert before["sha256"] != after["sha256"] == sha256(new) and after["size"] == len(new)
    assert broker.http.get("/downloads/windows-x86_64").content == new


def test_a_broker_without_downloads_lists_none_and_says_so(start_broker) -> None:
    bare = start_broker()
    assert bare.http.get("/downloads").json() == {"downloads": []}
    response = bare.http.get("/downloads/linux-x86_64")
    assert response.status_code == 404
    assert response.json()["message"] == "no host download for linux-x86_64: this broker offers none"


def test_whole_downloads_are_counted_per_address_and_the_rest_of_one_is_not(start_broker, folder) -> None:
    # Each build is tens of megabytes for anyone: an address gets DESKHAND_HOST_DOWNLOADS_PER_HOUR whole ones.
    strict = start_broker(DESKHAND_HOST_DOWNLOADS=str(folder), DESKHAND_HOST_DOWNLOADS_PER_HOUR="2")
    assert strict.http.get("/downloads/windows-x86_64").status_code == 200
    assert strict.http.get("/downloads/windows-x86_64", headers={"Range": "bytes=0-99"}).status_code == 206  # from byte 0: whole
    refused = strict.http.get("/downloads/windows-x86_64")
    assert refused.status_code == 429 and refused.json()["error"] == "rate_limited"
    assert refused.json()["message"].startswith("too many downloads from this address (at most 2 an hour): try again in ")
    assert 1 <= int(refused.headers["retry-after"]) <= 1800
    # Going on with a download already counted (a resumed one), and the listing, are not limited.
    rest = strict.http.get("/downloads/windows-x86_64", headers={"Range": "bytes=100-"})
    assert rest.status_code == 206 and rest.content == (folder / WINDOWS).read_bytes()[100:]
    assert strict.http.get("/downloads").status_code == 200
