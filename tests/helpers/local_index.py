"""A package index on loopback for the survey tests: the JSON simple API (PEP 691, with PEP 700
upload times) and the HTML one (PEP 503) that pip may ask for, serving wheels from a directory.

Only 127.0.0.1 is bound; the server thread stops with :meth:`LocalIndex.close`. ``delay``
slows every file download (to interrupt a run while wheels are in flight); ``missing`` files
are listed but answer 404 (a download that fails).
"""

from __future__ import annotations

import hashlib
import html
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name


@dataclass
class IndexedFile:
    path: Path
    upload_time: str
    yanked: bool = False
    missing: bool = False

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


@dataclass
class LocalIndex:
    """Projects -> files, served at :attr:`url` once started."""

    projects: dict[str, list[IndexedFile]] = field(default_factory=dict)
    delay: float = 0.0
    requests: list[str] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    def add(
        self,
        project: str,
        path: Path,
        upload_time: str,
        *,
        yanked: bool = False,
        missing: bool = False,
    ) -> None:
        self.projects.setdefault(canonicalize_name(project), []).append(
            IndexedFile(path, upload_time, yanked, missing)
        )

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/simple/"

    def _file(self, name: str) -> IndexedFile | None:
        for files in self.projects.values():
            for entry in files:
                if entry.path.name == name:
                    return entry
        return None

    def project_json(self, project: str) -> dict[str, Any] | None:
        files = self.projects.get(canonicalize_name(project))
        if files is None:
            return None
        return {
            "meta": {"api-version": "1.1"},
            "name": canonicalize_name(project),
            "files": [
                {
                    "filename": f.path.name,
                    "url": f"../../files/{f.path.name}",
                    "hashes": {"sha256": f.sha256},
                    "size": f.path.stat().st_size,
                    "upload-time": f.upload_time,
                    "yanked": f.yanked,
                }
                for f in files
            ],
        }

    def start(self) -> str:
        index = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                pass

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                index.requests.append(self.path)
                parts = [p for p in self.path.split("?")[0].split("/") if p]
                if len(parts) == 2 and parts[0] == "simple":
                    self._project(parts[1])
                elif len(parts) == 2 and parts[0] == "files":
                    entry = index._file(parts[1])
                    if entry is None or entry.missing:
                        self._send(404, b"not found", "text/plain")
                        return
                    time.sleep(index.delay)
                    self._send(200, entry.path.read_bytes(), "application/octet-stream")
                else:
                    self._send(404, b"not found", "text/plain")

            def _project(self, name: str) -> None:
                document = index.project_json(name)
                if document is None:
                    self._send(404, b"not found", "text/plain")
                elif "json" in self.headers.get("Accept", ""):
                    body = json.dumps(document).encode()
                    self._send(200, body, "application/vnd.pypi.simple.v1+json")
                else:
                    links = "".join(
                        f"<a href='{html.escape(f['url'])}#sha256={f['hashes']['sha256']}'"
                        + (" data-yanked=''" if f["yanked"] else "")
                        + f">{html.escape(f['filename'])}</a>"
                        for f in document["files"]
                    )
                    body = f"<!DOCTYPE html><html><body>{links}</body></html>".encode()
                    self._send(200, body, "text/html")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self.url

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
