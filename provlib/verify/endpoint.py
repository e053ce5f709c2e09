"""A prompt-only suspect behind HTTP: timeouts, retries with backoff, a hard query budget, every answer cached.

Protocol (what ``provlib.verify.server`` serves, and what a thin adapter in front of a hosted model must speak):
``POST <url>`` with JSON ``{"prompt": str, "seeds": [int, ...], "num_images": k, "num_inference_steps": int,
"guidance_scale": float, "height": int, "width": int}``; the answer is either JSON ``{"images": [<base64 PNG or
JPEG>, ...]}`` with k images, or (k = 1) an ``image/png`` / ``image/jpeg`` body. A service that cannot take seeds
may ignore them; the owner then loses only the exact re-play of its own zoo runs.

Each prompt's answers are written to ``cache_dir`` as soon as they arrive (atomically), keyed by the endpoint, the
prompt, its seeds and the sampler, so an interrupted verification resumes and asks only the prompts still missing.
The budget caps the images obtained for the verification, cached ones included: it is what the owner spent.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import requests
from PIL import Image, UnidentifiedImageError
from safetensors.numpy import load_file

from provlib.core.errors import ParameterError
from provlib.core.progress import tqdm
from provlib.core.store import atomic_save_arrays
from provlib.verify.asking import Sampler, fit_answers, image_seeds

RETRIED_STATUS = {408, 429, 500, 502, 503, 504}


class QueryBudgetExhausted(ParameterError):
    """The next prompt would exceed the query budget; the answers obtained so far stay cached."""


def decode_image(blob: bytes, parameter: str = "suspect") -> np.ndarray:
    try:
        with Image.open(io.BytesIO(blob)) as picture:
            return np.asarray(picture.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise ParameterError(parameter, "PNG or JPEG images from the endpoint", f"undecodable bytes ({error})") from None


def encode_png(image: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


@dataclass
class HttpEndpoint:
    """POSTs JSON to a URL with a timeout, retrying timeouts, dropped connections and 5xx/429 with doubling backoff."""
    url: str
    timeout: float = 30.0            # seconds per request
    retries: int = 3                 # further attempts after a timeout, a dropped connection or a 5xx/429
    backoff: float = 1.0             # seconds before the first retry, doubled each time
    headers: dict = field(default_factory=dict)

    def __post_init__(self):
        if not str(self.url).startswith(("http://", "https://")):
            raise ParameterError("suspect", "an http:// or https:// endpoint URL", self.url)
        for name in ("timeout", "backoff"):
            if not float(getattr(self, name)) >= 0:
                raise ParameterError(name, "a number of seconds >= 0", getattr(self, name))

    def post(self, request: dict) -> requests.Response:
        problem = None
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                response = requests.post(self.url, json=request, timeout=self.timeout, headers=self.headers)
            except requests.Timeout:
                problem = f"no answer within timeout={self.timeout:g} s"
                continue
            except requests.ConnectionError as error:
                problem = f"connection failed ({str(error)[:120]})"
                continue
            if response.status_code in RETRIED_STATUS:
                problem = f"HTTP {response.status_code}"
                continue
            if response.status_code >= 400:
                raise ParameterError("suspect", "an endpoint that accepts the verification's requests",
                                     f"HTTP {response.status_code} from {self.url}: {response.text[:200]}")
            return response
        raise ParameterError("suspect", f"an endpoint that answers (tried {self.retries + 1} times, backoff "
                             f"{self.backoff:g} s doubling)", f"{problem} at {self.url}")

    def json(self, response: requests.Response, expected: str):
        try:
            return response.json()
        except ValueError:
            content_type = response.headers.get("Content-Type", "")
            raise ParameterError("suspect", expected, f"{content_type or 'no content type'}: {response.text[:80]!r}") from None


class AnswerCache:
    """Answers kept on disk as they arrive (atomically), keyed by the endpoint and the request."""

    def __init__(self, folder: str | Path | None, url: str):
        self.folder, self.url = (Path(folder) if folder is not None else None), url

    def path(self, request: dict) -> Path | None:
        if self.folder is None:
            return None
        key = hashlib.sha256(json.dumps({"url": self.url, **request}, sort_keys=True).encode()).hexdigest()[:24]
        return self.folder / f"{key}.safetensors"

    def get(self, request: dict) -> dict | None:
        path = self.path(request)
        return load_file(str(path)) if path is not None and path.is_file() else None

    def put(self, request: dict, arrays: dict) -> None:
        path = self.path(request)
        if path is not None:
            atomic_save_arrays(path, arrays)


def check_budget(spent: int, asking: int, budget: int | None, needed: int, unanswered: int) -> None:
    """Refuse a request that would take the images obtained past the budget (answers so far stay cached)."""
    if budget is not None and spent + asking > budget:
        raise QueryBudgetExhausted(
            "query_budget", f"a budget of at least {needed} images (spent {spent}, {unanswered} requests still "
            "unanswered; the answers so far are cached and a re-run asks only the rest)", budget)


@dataclass
class CachedEndpoint(HttpEndpoint):
    """An endpoint whose answers are cached request by request and whose images asked count against a budget."""
    query_budget: int | None = None  # most images obtained (or sent) in all, cached answers included
    cache_dir: str | Path | None = None
    queries_spent: int = 0           # images obtained, cached answers included
    queries_sent: int = 0            # images asked of the endpoint by this object
    details: dict = field(default_factory=dict)

    def __post_init__(self):
        super().__post_init__()
        if self.query_budget is not None and int(self.query_budget) < 1:
            raise ParameterError("query_budget", "a positive number of images", self.query_budget)
        self.details = {"url": self.url, "timeout_s": self.timeout, "retries": self.retries}
        self.cache = AnswerCache(self.cache_dir, self.url)

    def ask_cached(self, requests_: list[dict], sizes: list[int], key: str, read, show_progress: bool) -> list:
        """Each request's answer (``read(response, i)``), from the cache or POSTed in turn within the budget."""
        answers = [(hit or {}).get(key) for hit in map(self.cache.get, requests_)]
        self.queries_spent += sum(n for n, a in zip(sizes, answers) if a is not None)
        missing = [i for i, a in enumerate(answers) if a is None]
        for i in tqdm(missing, desc=f"ask {self.url}", disable=not show_progress or not missing, mininterval=5):
            check_budget(self.queries_spent, sizes[i], self.query_budget, sum(sizes), sum(a is None for a in answers))
            answers[i] = read(self.post(requests_[i]), i)
            self.cache.put(requests_[i], {key: answers[i]})
            self.queries_spent += sizes[i]
            self.queries_sent += sizes[i]
        return answers


@dataclass
class EndpointSuspect(CachedEndpoint):
    """A text-to-image service: one request per prompt, its images cached."""
    kind: str = "endpoint"

    def __post_init__(self):
        super().__post_init__()
        self.description = f"endpoint {self.url}"

    def _images(self, response: requests.Response, n_images: int) -> list[np.ndarray]:
        if response.headers.get("Content-Type", "").startswith("image/"):
            return [decode_image(response.content)]
        payload = self.json(response, "JSON {\"images\": [base64 images]} or an image body")
        encoded = payload.get("images") if isinstance(payload, dict) else None
        if not isinstance(encoded, list):
            raise ParameterError("suspect", "JSON with an 'images' list", str(payload)[:120])
        try:
            return [decode_image(base64.b64decode(item, validate=True)) for item in encoded]
        except (binascii.Error, TypeError):
            raise ParameterError("suspect", "base64-encoded images in 'images'", str(encoded)[:80]) from None

    def answer(self, prompts: list[str], prompt_numbers, images_per_prompt: int, seed: int, sampler: Sampler,
               show_progress: bool = True) -> np.ndarray:
        seeds = image_seeds(seed, prompt_numbers, images_per_prompt)
        requests_ = [{"prompt": prompt, "seeds": prompt_seeds, "num_images": images_per_prompt,
                      "num_inference_steps": sampler.num_inference_steps, "guidance_scale": sampler.guidance_scale,
                      "height": sampler.resolution, "width": sampler.resolution}
                     for prompt, prompt_seeds in zip(prompts, seeds)]
        answers = self.ask_cached(
            requests_, [images_per_prompt] * len(requests_), "images",
            lambda response, i: fit_answers(self._images(response, images_per_prompt), images_per_prompt, sampler.resolution),
            show_progress)
        return np.stack(answers)
