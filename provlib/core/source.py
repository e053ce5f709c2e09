"""A source model's identity: a base, optionally fine-tuned on one private domain (``v1``, ``v1-faces``)."""
from __future__ import annotations

from dataclasses import dataclass

from provlib.core.errors import ParameterError


@dataclass(frozen=True)
class Source:
    base: str
    domain: str | None = None   # the private domain it was fine-tuned on; None: the base as it is

    def __post_init__(self):
        if not self.base or "-" in self.base:
            raise ParameterError("source", "a base name without '-'", self.base)

    @classmethod
    def parse(cls, name: "str | Source") -> "Source":
        """``"v1-faces"`` -> Source("v1", "faces"); ``"v1"`` -> Source("v1")."""
        if isinstance(name, Source):
            return name
        if not isinstance(name, str) or not name:
            raise ParameterError("source", "a source name such as 'v1' or 'v1-faces'", name)
        base, _, domain = name.partition("-")
        return cls(base, domain or None)

    @property
    def name(self) -> str:
        """The name used in tables, cache keys and model ids."""
        return self.base if self.domain is None else f"{self.base}-{self.domain}"

    @property
    def is_fine_tuned(self) -> bool:
        return self.domain is not None

    def __str__(self) -> str:
        return self.name
