"""The attribution method's work over the zoo: the copy descriptor, key candidates, source/reference probes and
the suspects' answers to key prompts (every piece cached like the models it comes from)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from provlib.attribution.descriptor import (
    load_descriptor,
    save_descriptor,
    train_descriptor,
)
from provlib.attribution.distance import EmbeddingSpace, PixelSpace
from provlib.attribution.keys import CandidateProbe, nearest_training_images
from provlib.core.data import CaptionedImageSet
from provlib.core.errors import ParameterError
from provlib.core.fanout import fan_out
from provlib.core.store import config_hash, derive_seed, levers_on
from provlib.core.suspects import SuspectSpec, SuspectZoo
from provlib.core.zoo import CODE_VERSION

FEATURE_SPACES = ("pixel", "embedding")


def check_feature_spaces(names, parameter: str = "feature_spaces") -> list[str]:
    """A notebook's list of reconstruction-distance spaces: non-empty, each one of ``FEATURE_SPACES``."""
    names = list(names) if isinstance(names, (list, tuple)) else names
    if not isinstance(names, list) or not names or any(n not in FEATURE_SPACES for n in names):
        raise ParameterError(parameter, f"a non-empty list of {FEATURE_SPACES}", names)
    return names


class AttributionZoo(SuspectZoo):
    # ---- feature spaces -----------------------------------------------------------------------
    def descriptor_config(self) -> dict:
        domain, split = self.public_split()
        return {"kind": "descriptor", "v": CODE_VERSION["descriptor"], "steps": self.p.attribution.descriptor_steps,
                "seed": self.p.seed, "data": config_hash(self.dataset_config(domain, split)), "domain": domain,
                "split": split}

    def copy_descriptor(self):
        """The embedding space's descriptor, trained on public images only (generic pre-training data)."""
        config = self.descriptor_config()

        def build(tmp: Path):
            images = self.dataset(config["domain"], config["split"]).images
            model, losses = train_descriptor(images, steps=self.p.attribution.descriptor_steps, seed=self.p.seed,
                                             show_progress=self.show_progress)
            save_descriptor(model, tmp)
            (tmp / "losses.json").write_text(json.dumps(losses))

        return load_descriptor(self.store.get_or_build("descriptor", config, build))

    def feature_space(self, name: str):
        """'pixel' (normalized RMS) or 'embedding' (copy-descriptor cosine distance)."""
        if name == "pixel":
            return PixelSpace()
        if name == "embedding":
            return EmbeddingSpace(self.copy_descriptor())
        raise ParameterError("feature_space", f"one of {FEATURE_SPACES}", name)

    # ---- key candidates and probes ------------------------------------------------------------
    def candidate_draw_owner(self, source: str) -> str:
        """The source whose seed draws ``source``'s key candidates (``key_candidate_draw``): itself, or the first
        source in the preset's order that prompts from the same training set."""
        split = self.prompt_split(source)
        if self.p.attribution.key_candidate_draw == "source":
            return str(self.source(source))
        return next(name for name in self.p.source_names if self.prompt_split(name) == split)

    def candidates_config(self, source: str) -> dict:
        data = self.dataset_config(*self.prompt_split(source))
        return {"source": self.candidate_draw_owner(source), "data": config_hash(data),
                "n": self.p.attribution.key_candidates, "seed": self.p.seed}

    def key_candidates(self, source: str) -> CaptionedImageSet:
        """Up to ``key_candidates`` captioned samples the source can be prompted with (its training set where known).

        Captions are taken once each, so a candidate prompt names one training image. Sources of one training set
        share the draw unless ``key_candidate_draw="source"``.
        """
        pool = self.prompt_set(source)
        _, first = np.unique(np.asarray(pool.captions), return_index=True)
        rng = np.random.default_rng(derive_seed(self.p.seed, "key-candidates", self.candidate_draw_owner(source)))
        picks = rng.permutation(np.sort(first))[:self.p.attribution.key_candidates]
        return pool.subset(np.sort(picks))

    def probe_config(self, source: str, reference_bases: str | None = None) -> dict:
        p = self.p
        references = self.reference_bases(source, reference_bases)
        return {"kind": "probe", "v": CODE_VERSION["probe"], "candidates": self.candidates_config(source),
                "source": config_hash(self.source_config(source)), "reference": config_hash(self.base_config(references[0])),
                "seeds": p.attribution.probe_seeds, "sampler": [p.sampling.inference_steps, p.sampling.guidance_scale],
                "seed": derive_seed(p.seed, "probe", source),
                **levers_on(training_match=p.attribution.training_match if p.attribution.training_match != "first" else None,
                            other_references=[config_hash(self.base_config(b)) for b in references[1:]])}

    def candidate_probe(self, source: str, reference_bases: str | None = None) -> CandidateProbe:
        """The source's and the reference models' generations for every candidate prompt (cached).

        ``reference_bases`` overrides the preset's ("suspect" or "every"); the suspect-base-only probe is read out of
        a cached every-base probe when there is one (its first images are the same generations).
        """
        p, seeds = self.p, self.p.attribution.probe_seeds
        references = self.reference_bases(source, reference_bases)
        config = self.probe_config(source, reference_bases)
        if len(references) == 1 and len(self.p.models.base_names) > 1 and not self.store.exists("probe", config):
            every = self.probe_config(source, "every")
            if self.store.exists("probe", every):
                wide = CandidateProbe.load(self.store.path("probe", every))
                return CandidateProbe(wide.prompts, wide.source_images, wide.reference_images[:, :seeds],
                                      wide.training_images)

        def build(tmp: Path):
            candidates = self.key_candidates(source)
            shape = (len(candidates), seeds, p.world.resolution, p.world.resolution, 3)
            roles = [("source", self.source_location(source))] + [(f"reference {b}", self.base_location(b)) for b in references]
            images = {role: self.generate(self.load(location), candidates.captions, seed=config["seed"],
                                          images_per_prompt=seeds, desc=f"key candidates: {source} ({role})"
                                          ).images.reshape(shape) for role, location in roles}
            # every reference base's generations side by side: distances to "the reference" are minima over all of them
            reference = np.concatenate([images[f"reference {b}"] for b in references], axis=1)
            training = candidates.images if self.has_known_training_set(source) else None
            if training is not None and p.attribution.training_match == "nearest":
                training = nearest_training_images(images["source"], candidates.captions, self.training_set(source))
            CandidateProbe(candidates.captions, images["source"], reference, training).save(tmp)

        return CandidateProbe.load(self.store.get_or_build("probe", config, build))

    def reference_bases(self, source: str, mode: str | None = None) -> list[str]:
        """The public bases whose generations key selection discounts: the suspect base first, then (with
        ``reference_bases="every"``, the preset's unless ``mode`` is given) every other base."""
        mode = mode or self.p.attribution.reference_bases
        if mode not in ("suspect", "every"):
            raise ParameterError("reference_bases", "'suspect' or 'every'", mode)
        first = self.suspect_base(source)
        if mode == "suspect":
            return [first]
        return [first] + [b for b in self.p.models.base_names if b != first]

    # ---- the suspects' answers ------------------------------------------------------------------
    def answers_config(self, spec: SuspectSpec, prompts_of: str | None = None) -> dict:
        p = self.p
        config = {"kind": "answers", "v": CODE_VERSION["answers"], "suspect": config_hash(self.suspect_config(spec)),
                  "candidates": self.candidates_config(spec.source), "k": p.attribution.query_images,
                  "sampler": [p.sampling.inference_steps, p.sampling.guidance_scale],
                  "seed": derive_seed(p.seed, "query", spec.model_id)}
        if prompts_of is not None and prompts_of != spec.source:
            self.source(prompts_of)
            captions = self.key_candidates(prompts_of).captions
            if captions != self.key_candidates(spec.source).captions:
                # keyed by the prompts themselves: sources sharing a caption list share one answer set
                config["candidates"] = {"captions": config_hash({"captions": list(captions)})}
        return config

    def suspect_answers(self, spec: SuspectSpec, prompts_of: str | None = None) -> np.ndarray:
        """The suspect's k images for every candidate prompt of a source: uint8 [P, k, H, W, 3] (cached).

        ``prompts_of`` defaults to the suspect's own source; another source's prompts are what scoring a
        suspect against every source needs (notebook 05). Queried once for all candidates so that every
        key set and every N reuses them; a method that uses N keys is charged N x k queries.
        """
        k = self.p.attribution.query_images
        config = self.answers_config(spec, prompts_of)

        def build(tmp: Path):
            prompts = self.key_candidates(prompts_of or spec.source).captions
            out = self.generate(self.load_suspect(spec), prompts, seed=config["seed"], images_per_prompt=k,
                                desc=f"query {spec.model_id}")
            np.save(tmp / "answers.npy", out.images.reshape(len(prompts), k, *out.images.shape[1:]))

        return np.load(self.store.get_or_build("answers", config, build) / "answers.npy")

    def build_answers(self, specs: list[SuspectSpec], n_jobs: int | None = None, prompts_of: str | None = None) -> None:
        """Query every suspect with its source's (or ``prompts_of``'s) candidate prompts, in worker processes."""
        for source in sorted({s.source for s in specs} | ({prompts_of} if prompts_of else set())):
            self.key_candidates(source)
        pending = [s for s in specs if not self.store.exists("answers", self.answers_config(s, prompts_of))]
        self.build_suspects(pending, n_jobs)
        fan_out(self, "answers_for", [(s, prompts_of) for s in pending],
                self.p.runtime.n_jobs if n_jobs is None else n_jobs, desc="query suspects")

    def answers_for(self, item: tuple[SuspectSpec, str | None]) -> np.ndarray:
        """``suspect_answers`` of one (suspect, prompts_of) pair: the unit ``fan_out`` hands to a worker."""
        return self.suspect_answers(*item)
