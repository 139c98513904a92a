"""Pull throughput against the local replay server with rate limiting on, and the share of duplicates removed.

    python benchmarks/stock_pull.py [--limit 2 --window 1.0] [--per-page 20] [--twins 0.1]

The catalogue is every SFEW train photo (real PNG bytes from ../shared/data) tagged with its folder's class and
"face"; ``--twins`` of them appear a second time under another id (the same bytes: a re-upload). Queries per class
overlap on purpose ("<class> face" and "<class>" find the same photos), so some hits are repeats of a known id and
some are new ids with known bytes. The server allows ``--limit`` search requests per ``--window`` seconds (then 429
with X-Ratelimit-Remaining/Reset); downloads are not limited. Results: benchmarks/results/stock_pull.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

from ferkit.stock.client import Client  # noqa: E402
from ferkit.stock.config import config_from_dict  # noqa: E402
from ferkit.stock.pull import pull  # noqa: E402
from ferkit.stock.replay import CatalogueItem, RateLimit, ReplayServer  # noqa: E402


def catalogue(data: Path, twins: float, seed: int) -> list[CatalogueItem]:
    """Every SFEW train photo tagged "<class>, face", plus ``twins`` of them again under new ids."""
    files = sorted((data / "sfew" / "train").glob("*/*.png"))
    items = [CatalogueItem(1000 + i, str(p.relative_to(data)), [p.parent.name, "face"]) for i, p in enumerate(files)]
    rng = random.Random(seed)  # noqa: S311 - a reproducible simulation
    extra = [
        CatalogueItem(50_000 + j, it.file, it.tags) for j, it in enumerate(rng.sample(items, int(twins * len(items))))
    ]
    items += extra
    rng.shuffle(items)
    return items


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(HERE.parent.parent / "shared" / "data"))
    ap.add_argument("--limit", type=int, default=2, help="search requests allowed per window")
    ap.add_argument("--window", type=float, default=1.0, help="rate-limit window in seconds")
    ap.add_argument("--per-page", type=int, default=20)
    ap.add_argument("--twins", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(HERE / "results" / "stock_pull.json"))
    args = ap.parse_args()
    data = Path(args.data)
    items = catalogue(data, args.twins, args.seed)
    classes = sorted({it.tags[0] for it in items})
    cfg = config_from_dict(
        {"classes": {c: [f"{c} face", c] for c in classes}, "per_query": 1000, "per_page": args.per_page}
    )
    rows = {}
    for source in ("pexels", "pixabay"):
        with (
            tempfile.TemporaryDirectory() as tmp,
            ReplayServer(data, key="bench", catalogue=items, rate_limit=RateLimit(args.limit, args.window)) as srv,
        ):
            t0 = time.perf_counter()
            res = pull(source, cfg, Path(tmp) / "raw", base_url=srv.base_url, key="bench", client=Client())
            seconds = time.perf_counter() - t0
        c = res.counts
        removed = c.get("duplicates", 0) + c.get("repeats", 0)
        rows[source] = {
            "seconds": round(seconds, 2),
            "images_stored": res.images_total,
            "images_per_s": round(res.images_total / seconds, 2),
            "hits": c["hits"],
            "hits_per_s": round(c["hits"] / seconds, 2),
            "search_requests": c["pages"] + int(res.client["rate_limited"]),
            "rate_limited_429": int(res.client["rate_limited"]),
            "waited_for_reset_s": res.client["waited_s"],
            "duplicates_by_content": c.get("duplicates", 0),
            "repeats_by_id": c.get("repeats", 0),
            "duplicate_share_removed": round(removed / c["hits"], 4),
        }
        print(source, json.dumps(rows[source]), flush=True)
    result = {
        "command": " ".join(["python", *sys.argv]),
        "machine": platform.platform(),
        "catalogue": {"photos": len(items), "distinct_files": len({it.file for it in items})},
        "rate_limit": {"requests": args.limit, "window_s": args.window},
        "per_page": args.per_page,
        "results": rows,
    }
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
