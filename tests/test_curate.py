"""``ferkit curate``: labels given in the browser are stored at once, undone, exported; nothing outside the queue
and the dataset is reachable. The end-to-end test drives Debian's chromium (Playwright, ``executable_path``)."""

from __future__ import annotations

import csv
import json
import shutil
import socket
import sqlite3
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import DATA
from test_mine import support

from ferkit.curation import labelling
from ferkit.curation.export import export
from ferkit.curation.filters import MineRules
from ferkit.curation.mine import MineOptions, mine
from ferkit.curation.queue import Queue
from ferkit.curation.server import check_port, serve_in_thread
from ferkit.errors import InputError
from ferkit.labels.taxonomy import load_taxonomy

CLIPS = DATA / "clips"
TAX = load_taxonomy("extended12")


@pytest.fixture(scope="module")
def mined_queue(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A queue of real faces (every face a candidate; near-duplicates dropped) from two short clips."""
    q = tmp_path_factory.mktemp("curate") / "queue"
    clips = [CLIPS / "styletalk_feifeili_clip3.mp4", CLIPS / "pyfeat_single_face.mp4"]
    mine(clips, q, MineOptions(fps=5, rules=MineRules(min_confidence=1.01)))
    return q


@pytest.fixture
def queue(mined_queue: Path, tmp_path: Path) -> Iterator[Queue]:
    """A fresh copy of the mined queue (tests label it)."""
    copy = tmp_path / "queue"
    shutil.copytree(mined_queue, copy)
    with Queue(copy) as q:
        yield q


@pytest.fixture
def server(queue: Queue, tmp_path: Path) -> Iterator[str]:
    """The curate app on 127.0.0.1 (a free port) in a thread; yields its base URL."""
    url, stop = serve_in_thread(queue, TAX, tmp_path / "out")
    yield url
    stop()


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:  # noqa: S310 - a local test server
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _post(url: str, body: dict) -> tuple[int, dict]:
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})  # noqa: S310
    try:
        with urllib.request.urlopen(req, timeout=10) as r:  # noqa: S310
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_two_tabs_get_different_faces_and_undo_restores_the_previous_label(queue: Queue) -> None:
    a = labelling.next_faces(queue, "tab-a", n=3)
    b = labelling.next_faces(queue, "tab-b", n=3)
    assert len(a) == len(b) == 3 and not {f["id"] for f in a} & {f["id"] for f in b}
    fid = a[0]["id"]
    labelling.set_label(queue, fid, "happy", "tab-a", TAX)
    labelling.set_label(queue, fid, "questioning", "tab-a", TAX, note="brows up")
    assert queue.query("SELECT label, note FROM labels")[0][:] == ("questioning", "brows up")
    assert labelling.undo(queue, "tab-a") == fid
    assert queue.query("SELECT label FROM labels")[0][0] == "happy"
    assert labelling.undo(queue, "tab-a") == fid
    assert queue.query("SELECT COUNT(*) FROM labels")[0][0] == 0
    assert labelling.undo(queue, "tab-a") is None
    with pytest.raises(InputError, match="not in taxonomy"):
        labelling.set_label(queue, fid, "joy", "tab-a", TAX)  # an alias is not a label: labels are stored as given
    with pytest.raises(InputError, match="not a face id"):
        labelling.set_label(queue, "../../etc/passwd", "happy", "tab-a", TAX)
    assert queue.query("SELECT COUNT(*) FROM labels")[0][0] == 0


def test_concurrent_tabs_label_every_face_exactly_once(queue: Queue) -> None:
    def worker(tab: str) -> int:
        n = 0
        while faces := labelling.next_faces(queue, tab):
            labelling.set_label(queue, faces[0]["id"], "neutral", tab, TAX)
            n += 1
        return n

    with ThreadPoolExecutor(4) as pool:
        done = list(pool.map(worker, ["tab-1", "tab-2", "tab-3", "tab-4"]))
    total = queue.count()
    assert sum(done) == total == queue.query("SELECT COUNT(*) FROM labels")[0][0]
    assert queue.query("SELECT COUNT(*) FROM events WHERE action='label'")[0][0] == total


def test_export_writes_label_folders_and_csv_never_overwriting(queue: Queue, tmp_path: Path) -> None:
    ids = [f["id"] for f in labelling.next_faces(queue, "t", n=4)]
    for fid, lab in zip(ids, ["happy", "happy", "hard_case", "speech_action"], strict=True):
        labelling.set_label(queue, fid, lab, "t", TAX, note=f"note {fid}")
    out = tmp_path / "out"
    s = export(queue, out)
    assert s.written == 4 and (out / "happy" / f"{ids[0]}.png").read_bytes() == queue.crop_path(ids[0]).read_bytes()
    rows = list(csv.DictReader(open(out / "labels.csv", encoding="utf-8")))
    assert [(r["id"], r["label"], r["note"]) for r in rows] == [
        (i, lab, f"note {i}") for i, lab in zip(ids, ["happy", "happy", "hard_case", "speech_action"], strict=True)
    ]
    assert all(r["source"] and r["reasons"] and r["file"] == f"{r['label']}/{r['id']}.png" for r in rows)
    (out / "happy" / f"{ids[0]}.png").write_bytes(b"edited by hand")
    labelling.set_label(queue, ids[1], "sad", "t", TAX)  # relabelled after export: reported, not moved
    s2 = export(queue, out)
    assert s2.written == 0 and s2.already == 3 and s2.changed == [ids[1]]
    assert (out / "happy" / f"{ids[0]}.png").read_bytes() == b"edited by hand"
    assert len(list(csv.DictReader(open(out / "labels.csv", encoding="utf-8")))) == 4
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="is a file"):
        export(queue, tmp_path / "file")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (tmp_path / "out2").mkdir()
    (tmp_path / "out2" / "happy").symlink_to(outside)  # a label folder that leads out of the dataset
    with pytest.raises(InputError, match="outside"):
        export(queue, tmp_path / "out2")
    assert list(outside.iterdir()) == []


def test_routes_refuse_traversal_and_bad_labels(server: str, queue: Queue) -> None:
    assert _get(f"{server}/")[0] == 200 and b"ferkit curate" in _get(f"{server}/")[1]
    assert _get(f"{server}/assets/app.js")[0] == 200
    for path in (
        "/assets/..%2Fqueue.sqlite",
        "/assets/%2e%2e/%2e%2e/etc/passwd",
        "/assets/../../etc/passwd",
        "/assets/index.html%00.js",
        "/api/face/..%2F..%2Fqueue.sqlite/crop",
        "/api/face/0123456789abcdef/crop",  # the shape of an id, not in the queue
        "/api/face/0123456789abcdef/../../queue.sqlite",
    ):
        code, body = _get(server + path)
        assert code == 404 and b"SQLite" not in body and b"root:" not in body, path
    fid = labelling.next_faces(queue, "probe")[0]["id"]
    assert _get(f"{server}/api/face/{fid}/crop")[1] == queue.crop_path(fid).read_bytes()
    code, body = _post(f"{server}/api/label", {"tab": "x", "id": fid, "label": "../../etc"})
    assert code == 400 and "not in taxonomy" in body["error"]
    code, body = _post(f"{server}/api/label", {"tab": "x", "id": "../queue", "label": "happy"})
    assert code == 400 and "not a face id" in body["error"]
    body_bytes = json.dumps({"tab": "x", "id": fid, "label": "happy"}).encode()
    # what another site's form could send (text/plain, no preflight): refused, not JSON
    form = urllib.request.Request(f"{server}/api/label", body_bytes, {"Content-Type": "text/plain"})  # noqa: S310
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(form, timeout=10)  # noqa: S310
    assert e.value.code == 400
    rebound = urllib.request.Request(f"{server}/api/config", headers={"Host": "evil.example:80"})  # noqa: S310
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(rebound, timeout=10)  # noqa: S310
    assert e.value.code == 400
    assert queue.query("SELECT COUNT(*) FROM labels")[0][0] == 0


def test_port_in_use_is_refused_before_serving() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        with pytest.raises(InputError, match="in use"):
            check_port("127.0.0.1", s.getsockname()[1])


def test_browser_labels_by_keyboard_undoes_reloads_and_exports(server: str, queue: Queue, tmp_path: Path) -> None:
    pw = pytest.importorskip("playwright.sync_api")
    helpers = support()
    exe = helpers.chromium()
    if exe is None:
        pytest.skip("no chromium on PATH (scripts/setup_env.sh installs it with apt-get; it could not here)")
    _face, _press = helpers.face_shown, helpers.press
    with pw.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, headless=True, args=["--no-sandbox"])
        page = browser.new_page()
        page.goto(server)
        page.wait_for_selector("body[data-ready='1']")
        assert page.inner_text("#classes").count("\n") >= 11 and "questioning" in page.inner_text("#classes")
        f1 = _face(page)
        guess = queue.face(f1)["emotion"]
        f2 = _press(page, "1")  # angry
        f3 = _press(page, "4")  # happy
        f4 = _press(page, "Enter")  # accept the model's guess
        f5 = _press(page, " ")  # skip f4
        assert len({f1, f2, f3, f4, f5}) == 5
        assert _press(page, "z") == f4  # undo the skip
        assert _press(page, "z") == f3  # undo the accept
        page.keyboard.press("n")
        page.keyboard.type("brows up, no smile")
        page.keyboard.press("Escape")
        _press(page, "8")  # contempt, with the note
        page.reload()
        page.wait_for_selector("body[data-ready='1']")
        assert _face(page) not in (f1, f2, f3)
        assert page.inner_text("#progress").startswith("3 / ")
        page.select_option("#reason", "low_confidence")
        page.wait_for_function("document.activeElement.tagName !== 'SELECT' && document.body.dataset.busy !== '1'")
        while _face(page):
            _press(page, "q")  # hard_case for the rest
        page.click("#export")
        page.wait_for_function("document.getElementById('status').textContent.startsWith('exported')")
        second = browser.new_page()  # a reloaded/second tab sees everything labelled
        second.goto(server)
        second.wait_for_selector("body[data-ready='1']")
        assert _face(second) == "" and second.inner_text("#progress").startswith(f"{queue.count()} / {queue.count()}")
        browser.close()
    labels = dict(queue.query("SELECT face_id, label FROM labels"))
    assert labels[f1] == "angry" and labels[f2] == "happy" and labels[f3] == "contempt"
    assert queue.query("SELECT note FROM labels WHERE face_id=?", (f3,))[0][0] == "brows up, no smile"
    assert len(labels) == queue.count() and guess  # every face labelled once; f4 got hard_case after its undo
    out = tmp_path / "out"
    rows = list(csv.DictReader(open(out / "labels.csv", encoding="utf-8")))
    assert sorted(r["id"] for r in rows) == sorted(labels)
    for r in rows:
        assert (out / r["label"] / f"{r['id']}.png").is_file() and labels[r["id"]] == r["label"]
    with sqlite3.connect(queue.db_path) as c:
        undone = c.execute("SELECT action FROM events WHERE undone=1 ORDER BY id").fetchall()
    assert [a for (a,) in undone] == ["label", "skip"]


def test_export_refuses_labels_outside_the_taxonomy_before_writing(queue: Queue, tmp_path: Path) -> None:
    ids = [f["id"] for f in labelling.next_faces(queue, "t", n=2)]
    labelling.set_label(queue, ids[0], "happy", "t", TAX)
    labelling.set_label(queue, ids[1], "questioning", "t", TAX)
    with pytest.raises(InputError, match=r"'questioning'.*not in taxonomy 'basic7'"):
        export(queue, tmp_path / "out", load_taxonomy("basic7"))
    assert not (tmp_path / "out").exists()
    assert export(queue, tmp_path / "out", TAX).written == 2


def test_two_browser_tabs_labelling_at_once_label_each_face_once(server: str, queue: Queue) -> None:
    pw = pytest.importorskip("playwright.sync_api")
    helpers = support()
    exe = helpers.chromium()
    if exe is None:
        pytest.skip("no chromium on PATH (scripts/setup_env.sh installs it with apt-get; it could not here)")
    with pw.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, headless=True, args=["--no-sandbox"])
        tabs = [browser.new_page(), browser.new_page()]  # one browser, two tabs: each its own tab id
        for tab in tabs:
            tab.goto(server)
            tab.wait_for_selector("body[data-ready='1']")
        shown = [helpers.face_shown(t) for t in tabs]
        assert shown[0] and shown[1] and shown[0] != shown[1]  # each tab holds its own face
        presses = 0
        while any(helpers.face_shown(t) for t in tabs):
            for tab, key in zip(tabs, ["4", "6"], strict=True):
                if helpers.face_shown(tab):
                    helpers.press(tab, key)
                    presses += 1
        browser.close()
    assert presses == queue.count() == queue.query("SELECT COUNT(*) FROM labels")[0][0]
    assert queue.query("SELECT COUNT(*) FROM events WHERE action='label'")[0][0] == presses  # none labelled twice
    assert len(queue.query("SELECT DISTINCT tab FROM labels")) == 2
