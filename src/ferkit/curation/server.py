"""``ferkit curate``: a local labelling page (Starlette, served by uvicorn) over a mining queue.

Every asset comes from the package (``assets/curate``); routes take face ids (16 hex digits) and names from a fixed
list, never paths, so no request can read or write outside the queue and the dataset folder. Binds 127.0.0.1.
"""

from __future__ import annotations

import errno
import socket
import time
from collections.abc import Callable
from dataclasses import asdict
from importlib import resources
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from ferkit.curation import labelling
from ferkit.curation.export import export
from ferkit.curation.queue import FACE_ID, Queue
from ferkit.errors import InputError
from ferkit.labels.taxonomy import Taxonomy

ASSETS = {"app.js": "text/javascript", "style.css": "text/css", "index.html": "text/html"}
#: Keys for the classes in taxonomy order (letters a, s, n, u, z and space/enter/backspace are commands).
CLASS_KEYS = "1234567890qwertyiopdfghjkl"


def _asset(name: str) -> bytes:
    return resources.files("ferkit").joinpath("assets/curate", name).read_bytes()


def class_keys(taxonomy: Taxonomy) -> list[dict[str, str]]:
    """Each class with its key (the first 26 classes get one)."""
    return [{"label": c, "key": CLASS_KEYS[i] if i < len(CLASS_KEYS) else ""} for i, c in enumerate(taxonomy.classes)]


def _error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _body(request: Request) -> dict[str, Any]:
    # JSON only: another site's page cannot send that without a CORS preflight, which this app never grants
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise InputError("requests must be application/json")
    try:
        data = await request.json()
    except ValueError:
        raise InputError("request body is not JSON") from None
    if not isinstance(data, dict):
        raise InputError("request body must be a JSON object")
    return data


def make_app(queue: Queue, taxonomy: Taxonomy, dataset: Path | None = None, host: str | None = None) -> Starlette:
    """The labelling app over ``queue``; ``dataset``: where ``POST /api/export`` writes (None: export refused);
    ``host``: the address served on, accepted in the Host header besides the loopback names."""

    def page(request: Request) -> Response:
        return Response(_asset("index.html"), media_type="text/html")

    def asset(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in ASSETS or name == "index.html":
            return _error("not found", 404)
        return Response(_asset(name), media_type=ASSETS[name], headers={"Cache-Control": "no-cache"})

    def image(request: Request) -> Response:
        fid, kind = request.path_params["face_id"], request.path_params["kind"]
        if not FACE_ID.match(fid) or kind not in ("crop", "context") or queue.face(fid) is None:
            return _error("not found", 404)
        path = queue.crop_path(fid) if kind == "crop" else queue.context_path(fid)
        return FileResponse(path) if path.is_file() else _error("not found", 404)

    def config(request: Request) -> Response:
        return JSONResponse(
            {
                "taxonomy": taxonomy.name,
                "classes": class_keys(taxonomy),
                "export": dataset is not None,
                "progress": asdict(labelling.progress(queue)),
            }
        )

    def next_faces(request: Request) -> Response:
        p = request.query_params
        reason = p.get("reason") or None
        faces = labelling.next_faces(queue, p.get("tab", ""), reason, int(p.get("n", "1") or 1))
        return JSONResponse({"faces": faces, "progress": asdict(labelling.progress(queue, reason))})

    async def label(request: Request) -> Response:
        d = await _body(request)
        fid, tab = str(d.get("id", "")), str(d.get("tab", ""))
        if d.get("accept"):
            face = queue.face(fid)
            if face is None:
                return _error(f"no face {fid[:40]}", 404)
            guess = face.get("emotion")
            try:
                lab = taxonomy.map(guess) if guess else None
            except InputError:
                lab = None
            if lab is None:
                return _error(f"the model's guess {guess!r} is not a class of {taxonomy.name}")
        else:
            lab = str(d.get("label", ""))
        ev = labelling.set_label(queue, fid, lab, tab, taxonomy, str(d.get("note", "")))
        return JSONResponse({"ok": True, "event": ev, "label": lab})

    async def skip(request: Request) -> Response:
        d = await _body(request)
        return JSONResponse({"ok": True, "event": labelling.skip(queue, str(d.get("id", "")), str(d.get("tab", "")))})

    async def undo(request: Request) -> Response:
        d = await _body(request)
        fid = labelling.undo(queue, str(d.get("tab", "")))
        return JSONResponse({"ok": True, "face": queue.face(fid) if fid else None})

    async def do_export(request: Request) -> Response:
        await _body(request)
        if dataset is None:
            return _error("no --dataset folder given to export to")
        s = export(queue, dataset, taxonomy)
        return JSONResponse({"written": s.written, "already": s.already, "changed": s.changed, "csv": str(s.csv)})

    async def on_input_error(request: Request, exc: Exception) -> Response:
        return _error(str(exc))

    routes = [
        Route("/", page),
        Route("/assets/{name}", asset),
        Route("/api/face/{face_id}/{kind}", image),
        Route("/api/config", config),
        Route("/api/next", next_faces),
        Route("/api/label", label, methods=["POST"]),
        Route("/api/skip", skip, methods=["POST"]),
        Route("/api/undo", undo, methods=["POST"]),
        Route("/api/export", do_export, methods=["POST"]),
    ]
    # Host header checked: a DNS-rebinding page that resolves its own name to 127.0.0.1 is refused
    hosts = ["127.0.0.1", "localhost", "::1", "[::1]", *([host] if host else [])]
    return Starlette(
        routes=routes,
        middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=hosts)],
        exception_handlers={InputError: on_input_error, ValueError: on_input_error},
    )


def check_port(host: str, port: int) -> None:
    """``InputError`` when ``host:port`` cannot be bound (in use, or not an address of this machine)."""
    if not 0 < port < 65536:
        raise InputError(f"--port must be in 1-65535, got {port}")
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: a closing socket does not count
        try:
            s.bind((host, port))
        except OSError as e:
            in_use = e.errno == errno.EADDRINUSE
            why = "is in use (give another --port)" if in_use else f"cannot be bound ({e.strerror})"
            raise InputError(f"{host}:{port} {why}") from None


def serve_in_thread(
    queue: Queue, taxonomy: Taxonomy, dataset: Path | None, host: str = "127.0.0.1", port: int = 0
) -> tuple[str, Callable[[], None]]:
    """Serve in a background thread (tests, benchmarks); ``port=0`` picks a free one. Returns (base URL, stop)."""
    import threading

    import uvicorn

    if port == 0:
        with socket.socket() as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
    check_port(host, port)
    server = uvicorn.Server(uvicorn.Config(make_app(queue, taxonomy, dataset, host), host, port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        time.sleep(0.02)

    def stop() -> None:
        server.should_exit = True
        thread.join(10)

    return f"http://{host}:{port}", stop


def serve(queue: Queue, taxonomy: Taxonomy, dataset: Path | None, host: str = "127.0.0.1", port: int = 8765) -> None:
    """Serve the labelling page until interrupted."""
    import uvicorn

    check_port(host, port)
    uvicorn.run(make_app(queue, taxonomy, dataset, host), host=host, port=port, log_level="warning")
