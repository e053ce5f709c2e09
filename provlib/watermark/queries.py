"""What the dataset owner asks a fine-tuned model (notebook 06), and what each test subtracts as its reference.

A *prompt set* names a list of prompts: ``plain`` (a seeded draw of the licensed dataset's captions), or, for
licensee ``i`` at marked share ``r``, ``marked-<i>-r<r>`` (the captions of the images marked in that licensee's copy)
and ``trigger-<i>-r<r>`` (the same with its trigger word). Each test pairs what a model answers with a reference that
does not carry the tested mark:

* the trigger strategy's prompts: the same model's answers to the same captions without the trigger;
* the image-only strategy's prompts: the public base the model was fine-tuned from, asked the same captions with the
  same seeds. The owner holds that base (a LoRA ships with it; a fine-tune names it). A test calibrated on the
  owner's dataset alone is exact over the draw of a licensee's message, but fine-tunes of the licensed data share a
  content bias, and for one fixed message that bias can align with it: on seed 2's world it flagged 12 of 80 clean
  tests, every one against one licensee's message; the base-paired test flagged none of 240 over three seeds
  (docs/decisions.md, "Image-only test paired on the public base").

``LicenseeQueries`` is a mixin of ``WatermarkZoo`` (it uses the zoo's licensed dataset, marked indices, triggers,
models and artifact store).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from provlib.core.errors import ParameterError
from provlib.core.store import config_hash, derive_seed
from provlib.watermark.stamping import CODE_VERSION_WM

PLAIN = "plain"


def fraction_tag(fraction: float) -> str:
    return f"r{fraction * 100:g}"


class LicenseeQueries:
    def query_captions(self, licensee: int | None = None, fraction: float | None = None) -> list[str]:
        """The captions the defender sends, ``wm_query_prompts`` of them: for a licensee and r, the captions of that
        licensee's marked images, in turn; otherwise (``plain``) a seeded draw of the dataset's."""
        data = self.licensed_dataset()
        n = self.p.watermark.query_prompts
        if licensee is not None:
            marked = self.marked_indices(fraction, licensee)
            # the owner made the copy, so it knows which images it marked: their own captions are where a
            # fine-tune that memorized a marked image reproduces it, mark included
            return [data.captions[marked[i % len(marked)]] for i in range(n)]
        order = np.random.default_rng(derive_seed(self.p.seed, "wm-query-captions")).permutation(len(data))
        return [data.captions[i] for i in order[:n]]

    def licensee_prompt_set(self, strategy: str, licensee: int, fraction: float) -> str:
        """The name of what the defender asks a model to test licensee ``licensee``'s mark at share ``fraction``:
        ``trigger-<i>[-r<r>]`` (its trigger + the captions) or ``marked-<i>-r<r>`` / ``plain`` (the captions only)."""
        if strategy not in ("image", "trigger"):
            raise ParameterError("strategy", "'image' or 'trigger'", strategy)
        return f"{'trigger' if strategy == 'trigger' else 'marked'}-{licensee}-{fraction_tag(fraction)}"

    def prompts(self, prompt_set: str) -> list[str]:
        """The prompts of a prompt set (``prompt_set`` names them)."""
        if prompt_set == PLAIN:
            return self.query_captions()
        kind, _, rest = prompt_set.partition("-")
        licensee, _, tag = rest.partition("-")
        fractions = {fraction_tag(r): r for r in self.query_fractions()}
        valid = (kind in ("trigger", "marked") and licensee.isdigit() and int(licensee) < self.p.watermark.licensees
                 and (tag in fractions if (tag or kind == "marked") else True))
        if not valid:
            raise ParameterError("prompt_set", f"'{PLAIN}', 'trigger-<i>', or 'trigger-<i>-<r>' / 'marked-<i>-<r>' with "
                                 f"i < {self.p.watermark.licensees} and r one of {sorted(fractions)}", prompt_set)
        captions = self.query_captions(int(licensee), fractions[tag]) if tag else self.query_captions()
        if kind == "marked":
            return captions
        trigger = self.triggers()[int(licensee)]
        return [f"{trigger} {caption}" for caption in captions]

    def reference_prompt_set(self, prompt_set: str) -> str | None:
        """The prompt set whose answers by the *same* model a trigger set's test subtracts: the same captions without
        the trigger (``marked-<i>-r<r>``); None otherwise (an image-only set's reference is the base, ``base_answers``).
        Chosen owner-side (docs/decisions.md, "Trigger words and the paired test")."""
        kind, _, rest = prompt_set.partition("-")
        if kind != "trigger":
            return None
        self.prompts(prompt_set)  # a clear error for a malformed name
        return f"marked-{rest}"

    def query_fractions(self) -> list[float]:
        """Every marked share a copy is made at (the shares whose marked captions the defender may ask)."""
        return sorted(set(self.p.watermark.fractions))

    def clean_fractions(self) -> list[float]:
        """The shares at which a clean fine-tune is asked every licensee's prompts: the focus share."""
        return [self.p.watermark.focus_fraction]

    def prompt_sets(self, spec) -> list[str]:
        """What the defender asks a model: every licensee's prompts, for the model's strategy and r (a clean model:
        every strategy at the focus share), each with its paired reference where the test uses one."""
        licensees = range(self.p.watermark.licensees)
        if not spec.is_clean:
            asked = [self.licensee_prompt_set(spec.strategy, i, spec.fraction) for i in licensees]
        else:
            asked = [self.licensee_prompt_set(strategy, i, r) for strategy in self.p.watermark.strategies
                     for r in self.clean_fractions() for i in licensees]
        with_references = [name for asked_set in asked for name in (asked_set, self.reference_prompt_set(asked_set)) if name]
        return list(dict.fromkeys(with_references))

    def answers_key(self, spec, prompt_set: str) -> dict:
        p = self.p
        return {"kind": "wm_answers", "v": CODE_VERSION_WM["wm_answers"], "model": config_hash(self.licensee_config(spec)),
                "prompts": config_hash({"prompts": self.prompts(prompt_set)}), "k": p.watermark.query_images,
                "sampler": [p.sampling.inference_steps, p.sampling.guidance_scale], "seed": derive_seed(self.wm_seed, "wm-query", spec.model_id, prompt_set)}

    def _cached_answers(self, config: dict, load_pipe, prompt_set: str, desc: str) -> np.ndarray:
        """uint8 [n_prompts * k, H, W, 3]: ``load_pipe()``'s images for a prompt set with ``config``'s seed (cached)."""
        def build(tmp: Path):
            out = self.generate(load_pipe(), self.prompts(prompt_set), seed=config["seed"],
                                images_per_prompt=self.p.watermark.query_images, desc=desc)
            np.save(tmp / "answers.npy", out.images)

        return np.load(self.store.get_or_build(config["kind"], config, build) / "answers.npy")

    def licensee_answers(self, spec, prompt_set: str) -> np.ndarray:
        """uint8 [n_prompts * k, H, W, 3]: the model's images for a prompt set (cached)."""
        return self._cached_answers(self.answers_key(spec, prompt_set),
                                    lambda: self.load_fine_tuned(spec.base, self.licensee_location(spec)),
                                    prompt_set, f"query {spec.model_id} ({prompt_set})")

    def licensee_answers_for(self, item: tuple) -> np.ndarray:
        return self.licensee_answers(*item)

    def base_answers_key(self, spec, prompt_set: str) -> dict:
        asked = self.answers_key(spec, prompt_set)
        return {"kind": "wm_base_answers", "v": CODE_VERSION_WM["wm_base_answers"],
                "base": config_hash(self.base_config(spec.base)), "prompts": asked["prompts"], "k": asked["k"],
                "sampler": asked["sampler"], "seed": asked["seed"]}

    def base_answers(self, spec, prompt_set: str) -> np.ndarray:
        """uint8 [n_prompts * k, H, W, 3]: the public base ``spec`` was fine-tuned from, asked ``prompt_set`` with the
        seeds ``spec`` was asked with (cached): the image-only test's reference."""
        return self._cached_answers(self.base_answers_key(spec, prompt_set),
                                    lambda: self.load(self.base_location(spec.base)),
                                    prompt_set, f"query base {spec.base} ({prompt_set})")

    def base_answers_for(self, item: tuple) -> np.ndarray:
        return self.base_answers(*item)

    def reference_name(self, prompt_set: str) -> str:
        """What the test of ``prompt_set`` subtracts (module doc): the same model's ``marked-...`` set for a trigger set,
        ``"base"`` (the model's base, same captions and seeds) for a marked-caption set, ``""`` (nothing) for ``plain``."""
        return self.reference_prompt_set(prompt_set) or ("base" if prompt_set.startswith("marked-") else "")

    def reference_answers(self, spec, prompt_set: str) -> np.ndarray | None:
        """The images ``reference_name`` names, for the model ``spec`` (None when the test has no reference)."""
        reference = self.reference_name(prompt_set)
        if reference == "base":
            return self.base_answers(spec, prompt_set)
        return self.licensee_answers(spec, reference) if reference else None
