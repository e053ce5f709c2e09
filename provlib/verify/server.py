"""A tiny reference server for the endpoint protocol (``provlib.verify.endpoint``): a pipeline behind HTTP.

    python -m provlib serve --pipeline PIPELINE_FOLDER [--port 8765] [--lora ADAPTER]

It stands in for a hosted text-to-image service in notebook 08 and in the tests, which also inject the
faults a real service shows (``Faults``: slow answers, HTTP 500, undecodable or too few images).
"""
from __future__ import annotations

import base64
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

import numpy as np

from provlib.verify.endpoint import decode_image, encode_png


@dataclass
class Faults:
    """What the server does wrong, per request number (0-based): ``{n: "500" | "sleep:SECONDS" | "garbage" |
    "too_few" | "not_json"}``; ``always`` applies to every request not listed."""
    by_request: dict = field(default_factory=dict)
    always: str = ""
    served: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def next(self) -> str:
        with self.lock:
            number, self.served = self.served, self.served + 1
        return self.by_request.get(number, self.always)


def make_server(answer: Callable[[dict], dict], host: str = "127.0.0.1", port: int = 0,
                faults: Faults | None = None) -> ThreadingHTTPServer:
    """An HTTP server answering each POSTed JSON request with ``answer(request) -> JSON payload``.

    ``images_answer(draw)`` makes ``answer`` for the text-to-image protocol, ``labels_answer(classify)`` for a
    classifier. A ``ValueError`` from ``answer`` is the client's fault (HTTP 400).
    """
    faults = faults or Faults()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet: the verifier reports what matters
            pass

        def _send(self, status: int, body: bytes, content_type: str):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            fault = faults.next()
            if fault.startswith("sleep:"):
                time.sleep(float(fault.split(":", 1)[1]))
            if fault == "500":
                return self._send(500, b'{"error": "internal"}', "application/json")
            if fault == "not_json":
                return self._send(200, b"<html>busy</html>", "text/html")
            try:
                payload = answer(request)
            except ValueError as error:
                return self._send(400, json.dumps({"error": str(error)}).encode(), "application/json")
            listed = next(k for k in ("images", "labels", "logits") if k in payload)
            if fault == "garbage":
                payload[listed] = ["bm90IGFuIGltYWdl" for _ in payload[listed]]  # base64 of "not an image"
            if fault == "too_few":
                payload[listed] = payload[listed][:-1]
            self._send(200, json.dumps(payload).encode(), "application/json")

    return ThreadingHTTPServer((host, port), Handler)


def images_answer(draw: Callable[[str, list[int], dict], list[np.ndarray]]) -> Callable[[dict], dict]:
    """The text-to-image protocol: ``{"prompt", "seeds", ...}`` -> ``{"images": [base64 PNG, one per seed]}``."""
    def answer(request: dict) -> dict:
        if not isinstance(request.get("prompt"), str) or not isinstance(request.get("seeds"), list):
            raise ValueError("prompt (str) and seeds (list) are required")
        return {"images": [encode_png(image) for image in draw(request["prompt"], request["seeds"], request)]}
    return answer


def labels_answer(classify: Callable[[np.ndarray], np.ndarray], label_only: bool = True) -> Callable[[dict], dict]:
    """The classifier protocol: ``{"images": [base64 PNG]}`` -> ``{"labels": [...]}`` (or ``{"logits": [[...]]}``)."""
    def answer(request: dict) -> dict:
        if not isinstance(request.get("images"), list):
            raise ValueError("images (a list of base64 PNG) is required")
        images = np.stack([decode_image(base64.b64decode(item)) for item in request["images"]])
        out = np.asarray(classify(images))
        return {"labels": out.argmax(1).tolist()} if label_only else {"logits": out.tolist()}
    return answer


def pipeline_drawer(pipe) -> Callable[[str, list[int], dict], list[np.ndarray]]:
    """``draw`` for a diffusers pipeline: one image per seed, with the request's sampler settings."""
    from provlib.core.generate import generate

    lock = threading.Lock()  # one generation at a time: the pipeline is not re-entrant

    def draw(prompt: str, seeds: list[int], settings: dict) -> list[np.ndarray]:
        with lock:
            return list(generate(pipe, [prompt], images_per_prompt=len(seeds), image_seeds=seeds, show_progress=False,
                                 resolution=int(settings.get("height", 32)),
                                 num_inference_steps=int(settings.get("num_inference_steps", 20)),
                                 guidance_scale=float(settings.get("guidance_scale", 3.0))).images)

    return draw


def serve_in_thread(server: ThreadingHTTPServer) -> str:
    """Start ``server`` in a daemon thread; returns its URL."""
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host, port = server.server_address[:2]
    return f"http://{host}:{port}/generate"
