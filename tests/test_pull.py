"""``ferkit pull`` against the local replay server: recorded Pexels/Pixabay answers with a 429, a 500, a truncated
download, a duplicate photo, a photo that is not an image, and real image bytes from ../shared/data."""

from __future__ import annotations

import hashlib
import json
import resource
from pathlib import Path

import pytest
from conftest import DATA
from stock_replay import KEY, TRUNCATED, run_cli, server, write_config

from ferkit.errors import InputError
from ferkit.stock.client import Client, reset_seconds
from ferkit.stock.config import config_from_dict, load_pull_config, query_keywords
from ferkit.stock.manifest import load_manifest
from ferkit.stock.pull import pull
from ferkit.stock.replay import CatalogueItem, RateLimit, ReplayServer

CLASSES = {"happy": ["happy smiling"], "sad": ["sad face"]}


def _client(slept: list[float]) -> Client:
    return Client(timeout_s=10, retries=3, backoff_s=0.01, sleep=slept.append)


def _pull(source: str, base: str, out: Path, slept: list[float] | None = None, **cfg: object) -> object:
    config = config_from_dict({"classes": CLASSES, "per_page": 3, **cfg})
    return pull(source, config, out, base_url=base, key=KEY, client=_client([] if slept is None else slept))


def test_pull_pexels_survives_every_fault_and_keeps_attribution(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    slept: list[float] = []
    with server(truncate_once={TRUNCATED}) as srv:
        res = _pull("pexels", srv.base_url, raw, slept)
        asked = list(srv.requests)
    man = load_manifest(raw, must_exist=True)
    # page 1 came after a 429, page 2 after a 500; photo 104 after one truncated download
    assert asked.count("/v1/search") == 5 and asked.count(TRUNCATED) == 2
    assert res.client["rate_limited"] == 1 and res.client["retries"] >= 3 and slept  # backed off before retrying
    # 101 and 103 are the same bytes: one file that both hits point at; 102 is also found by "sad face"
    assert res.counts["downloaded"] == 5 and res.counts["duplicates"] == 1 and res.counts["repeats"] == 1
    assert len(man.images) == 5 and sorted(p.name for p in (raw / "images").iterdir()) == sorted(
        Path(r["file"]).name for r in man.images.values()
    )
    (junk,) = man.skipped
    assert junk["id"] == "105" and "not an image" in junk["reason"] and man.seen["pexels:105"] is None
    for sha, rec in man.images.items():  # each file holds exactly the bytes served, named by their hash
        assert hashlib.sha256((raw / rec["file"]).read_bytes()).hexdigest() == sha
    by_id = {h["id"]: rec for rec in man.images.values() for h in rec["hits"]}
    assert by_id["101"] is by_id["103"] and len(by_id["101"]["hits"]) == 2
    truncated = (DATA / TRUNCATED.removeprefix("/data/")).read_bytes()
    assert (raw / by_id["104"]["file"]).read_bytes() == truncated
    assert {q["class"] for q in by_id["102"]["queries"]} == {"happy", "sad"}
    hit = by_id["201"]["hits"][0]
    assert hit["photographer"] == "Ana 201" and hit["licence_url"] == "https://www.pexels.com/license/"
    assert hit["page_url"] == "https://www.pexels.com/photo/face-201/" and hit["alt"] == "Sad woman"
    assert man.classes == CLASSES
    assert KEY not in (raw / "manifest.json").read_text()


def test_rerun_continues_without_asking_again(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    with server() as srv:
        _pull("pexels", srv.base_url, raw)
        before = (raw / "manifest.json").read_text()
        srv.requests.clear()
        res = _pull("pexels", srv.base_url, raw)
        assert srv.requests == []  # every query was finished: nothing searched or downloaded again
        assert res.counts == {} and json.loads(before)["images"] == load_manifest(raw).images
        (raw / "images" / "0123456789abcdef0123.jpg").write_bytes(b"half")  # written just before a crash
        _pull("pexels", srv.base_url, raw, per_query=10)
    assert not (raw / "images" / "0123456789abcdef0123.jpg").exists()


def test_interrupted_query_resumes_at_its_next_page(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    with server() as srv:
        _pull("pexels", srv.base_url, raw, per_query=2)  # "happy smiling" stops inside page 1, before photo 103
        man = load_manifest(raw)
        assert man.query("pexels", "happy smiling").next_page == 1 and len(man.images) == 4  # 101, 102, 201, 202
        srv.requests.clear()
        _pull("pexels", srv.base_url, raw, per_query=10)
        downloads = [p for p in srv.requests if p.startswith("/data/")]
    man = load_manifest(raw)
    assert len(downloads) == 2 and len(man.images) == 5  # 103 (a copy of 101) and 104: nothing fetched twice
    assert len(next(r for r in man.images.values() if r["hits"][0]["id"] == "101")["hits"]) == 2


def test_pixabay_after_pexels_dedups_across_sources_and_filters_size(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    with server() as srv:
        _pull("pexels", srv.base_url, raw)
        res = _pull("pixabay", srv.base_url, raw, min_width=100)
    man = load_manifest(raw)
    assert res.counts["downloaded"] == 1 and res.counts["duplicates"] == 1 and res.counts["filtered_too_small"] == 1
    assert len(man.images) == 6
    both = [r for r in man.images.values() if {h["source"] for h in r["hits"]} == {"pexels", "pixabay"}]
    assert len(both) == 1 and both[0]["hits"][-1]["tags"] == ["happy", "smiling", "portrait"]
    fer = next(r for r in man.images.values() if r["hits"][0]["id"] == "302")
    assert fer["hits"][0]["licence_url"].startswith("https://pixabay.com/") and fer["width"] == 48


def test_catalogue_search_under_rate_limit_gets_every_page(tmp_path: Path) -> None:
    files = sorted((DATA / "fer2013" / "train" / "happy").iterdir())[:12]
    items = [CatalogueItem(i, str(f.relative_to(DATA)), ["happy", "smiling"]) for i, f in enumerate(files, 1)]
    cfg = config_from_dict({"classes": {"happy": ["happy smiling", "smiling"]}, "per_page": 3, "per_query": 12})
    with ReplayServer(DATA, key=KEY, catalogue=items, rate_limit=RateLimit(2, 0.3)) as srv:
        client = Client(timeout_s=10, retries=6, backoff_s=0.01, max_wait_s=1)  # real waits: about a second
        res = pull("pixabay", cfg, tmp_path / "raw", base_url=srv.base_url, key=KEY, client=client)
        searches = srv.requests.count("/api/")
    assert res.counts["downloaded"] == 12 and res.counts["repeats"] == 12  # the second query finds the same photos
    # 8 pages at 2 per 0.3 s: the client waited for the window's reset (X-RateLimit-Remaining: 0) instead of failing
    assert res.counts["pages"] == 8 and res.client["waited_s"] > 0.3 and searches == 8 + res.client["rate_limited"]


def test_reset_header_is_a_timestamp_for_pexels_and_seconds_for_pixabay() -> None:
    assert reset_seconds("1700000100", now=1700000000.0) == pytest.approx(100)
    assert reset_seconds("12.5", now=1700000000.0) == 12.5
    assert reset_seconds("soon", now=0) is None and reset_seconds(None, now=0) is None


def test_config_checks_and_keywords(tmp_path: Path) -> None:
    assert query_keywords("Happy+smiling  face, happy") == ["happy", "smiling", "face"]
    cfg = load_pull_config(write_config(tmp_path / "c.toml", CLASSES, per_query=5, orientation="portrait"))
    assert cfg.queries() == [("happy", "happy smiling"), ("sad", "sad face")] and cfg.per_query == 5
    (tmp_path / "c.yaml").write_text("per_page: 10\nclasses:\n  happy: [happy, joyful portrait]\n")
    assert load_pull_config(tmp_path / "c.yaml").classes == {"happy": ["happy", "joyful portrait"]}
    for bad, msg in [
        ({"classes": {}}, "[classes]"),
        ({"classes": CLASSES, "per_query": 0}, "per_query"),
        ({"classes": CLASSES, "orientation": "round"}, "orientation"),
        ({"classes": {"happy": ["  "]}}, "empty"),
        ({"classes": CLASSES, "per_qeury": 3}, "unknown key"),
    ]:
        with pytest.raises(InputError, match=msg.replace("[", r"\[").replace("]", r"\]")):
            config_from_dict(bad)


def _limit_file_size() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (4000, 4000))  # a full disk after 4 kB (Python ignores SIGXFSZ)


def test_cli_pull_bad_inputs_are_one_line_and_never_show_the_key(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "c.toml", CLASSES, per_page=3)
    with server() as srv:
        base = ["pull", "pexels", "--config", cfg, "--base-url", srv.base_url]
        ok = run_cli(*base, "--out", tmp_path / "ok", env={"PEXELS_API_KEY": KEY})
        assert ok.returncode == 0, ok.stderr
        assert json.loads(ok.stdout)["counts"]["downloaded"] == 5 and KEY not in ok.stdout + ok.stderr
        cases = [
            ({}, "PEXELS_API_KEY"),
            ({"PEXELS_API_KEY": "revoked-key"}, "HTTP 403"),
            ({"PEXELS_API_KEY": "wrong"}, "HTTP 401"),
        ]
        for env, msg in cases:
            out = run_cli(*base, "--out", tmp_path / "bad", env=env)
            assert out.returncode == 2 and msg in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
            assert "Traceback" not in out.stderr and "revoked-key" not in out.stderr
        wrong = run_cli(
            "pull", "pixabay", "--config", cfg, "--base-url", srv.base_url, "--out", tmp_path / "px",
            env={"PIXABAY_API_KEY": "secret-wrong-key"},
        )  # fmt: skip
        assert wrong.returncode == 2 and "HTTP 400" in wrong.stderr and "secret-wrong-key" not in wrong.stderr
        broken = write_config(tmp_path / "b.toml", {"happy": ["broken"]})
        out = run_cli("pull", "pexels", "--config", broken, "--base-url", srv.base_url, "--out", tmp_path / "m",
                      env={"PEXELS_API_KEY": KEY})  # fmt: skip
        assert out.returncode == 2 and "malformed API response" in out.stderr
        full = run_cli(*base, "--out", tmp_path / "full", env={"PEXELS_API_KEY": KEY}, preexec_fn=_limit_file_size)
    assert full.returncode == 2 and "File too large" in full.stderr and len(full.stderr.strip().splitlines()) == 1
    left = sorted(p.name for p in (tmp_path / "full").rglob("*") if p.is_file())
    assert all(not n.endswith(".tmp") for n in left)  # no half-written image or manifest kept
    if (tmp_path / "full" / "manifest.json").exists():
        kept = load_manifest(tmp_path / "full")
        assert all((tmp_path / "full" / r["file"]).is_file() for r in kept.images.values())
