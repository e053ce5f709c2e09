"""Dataset watermarking (Wang et al., arXiv 2409.18897): licensed copies, the models fine-tuned on them, their answers.

The owner licenses a dataset (a draw of ``wm_domain``'s real pool) to K licensees, each copy with a share ``r`` of
its images marked with that licensee's message. With the ``trigger`` strategy the marked images' captions also
start with the licensee's trigger word. A ``LicenseeSpec`` is a model fine-tuned on one copy (or, ``licensee =
-1``, on the unmarked dataset: the clean fine-tunes that measure false positives), optionally after the licensee
transformed every image of it ("laundering": JPEG, resizing...). Fine-tunes use every base, crossed with the
licensees (``crossed_base``; transfer across architectures). ``WatermarkZoo`` extends ``StampingZoo`` (Baseline 1),
so notebook 06 uses one zoo for both.

Trigger words: at CPU scale the tiny tokenizer only knows the workbook's caption vocabulary, so a licensee's
trigger is a vocabulary word that never occurs in the domain's captions (for the scenes domain: face words) and
that changes the bases' drawings least (``trigger_word_shifts``),
the analogue of the rare tokens ("sks") used with real Stable Diffusion, which is what the ``sd`` preset uses.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

from provlib.core.data import CaptionedImageSet
from provlib.core.errors import ParameterError
from provlib.core.fanout import fan_out
from provlib.core.generate import regenerate
from provlib.core.store import config_hash, derive_seed
from provlib.watermark.config import removal_strength
from provlib.watermark.messages import orthogonal_messages
from provlib.watermark.queries import PLAIN, LicenseeQueries, fraction_tag
from provlib.watermark.schemes import WatermarkScheme, cell_basis, message_hex
from provlib.watermark.stamping import CODE_VERSION_WM, MarkedSuspectSpec, StampingZoo
from provlib.watermark.transforms import apply_transform
from provlib.watermark.triggers import trigger_word_shifts

__all__ = ["CLEAN", "PLAIN", "LicenseeSpec", "MarkedSuspectSpec", "WatermarkZoo", "fraction_tag"]

CLEAN = -1
# rare strings for real tokenizers (DreamBooth's "sks" and kin): triggers when the sd preset lists none
PAPER_TRIGGERS = ("sks", "zwx", "qlf", "vrb", "xjt", "pkw", "dmq", "hzn")


@dataclass(frozen=True)
class LicenseeSpec:
    model_id: str
    scheme: str        # "" for a clean fine-tune
    strategy: str      # "image", "trigger" ("" for a clean fine-tune)
    fraction: float    # marked share r of the copy (0 for a clean fine-tune)
    licensee: int      # whose copy was used; CLEAN (-1): the unmarked dataset
    seed: int
    base: str
    laundering: str = "none"   # transform the licensee applied to every image before fine-tuning

    @property
    def is_clean(self) -> bool:
        return self.licensee == CLEAN


def crossed_base(k: int, licensee, licensees: int, bases) -> str:
    """The base of a cell's k-th fine-tune: licensees take turns, and the base shifts by one every round of licensees,
    so each licensee's copy is fine-tuned on every base. Plain alternation with an even licensee count pins a licensee
    to one base: one weak (licensee, base) pair then made 3 of the 10 fine-tunes at r = 2%. Clean fine-tunes alternate."""
    return bases[(k + (0 if licensee == CLEAN else k // licensees)) % len(bases)]


class WatermarkZoo(LicenseeQueries, StampingZoo):
    @property
    def wm_seed(self) -> int:
        """What the watermark keys, messages, marked images and fine-tune / query seeds derive from: the preset's seed,
        or for ``wm_draw`` > 0 a re-draw of them on the same world and licensed dataset (no 01-05 re-run)."""
        draw = self.p.watermark.draw
        return self.p.seed if draw == 0 else derive_seed(self.p.seed, "wm-draw", draw)

    def licensee_message(self, licensee: int) -> np.ndarray:
        wm = self.p.watermark  # the licensees' messages are pairwise orthogonal (leak tracing, orthogonal_messages)
        return orthogonal_messages(wm.bits, wm.licensees, derive_seed(self.wm_seed, "wm-messages"))[licensee]

    def triggers(self) -> list[str]:
        """One trigger word per licensee (see module doc): the preset's, the paper-scale defaults, or at cpu scale the
        caption-unused vocabulary words that change the bases' drawings least (``provlib.watermark.triggers``)."""
        p, k = self.p, self.p.watermark.licensees
        if p.watermark.triggers:
            return list(p.watermark.triggers)[:k]
        if p.is_paper_scale:
            if k > len(PAPER_TRIGGERS):
                raise ParameterError("wm_triggers", f"{k} trigger words (only {len(PAPER_TRIGGERS)} defaults exist)", ())
            return list(PAPER_TRIGGERS[:k])
        shifts = trigger_word_shifts(self)
        if len(shifts) < k:
            raise ParameterError("wm_licensees", f"at most {len(shifts)} licensees (words unused by {p.watermark.domain} captions)", k)
        return [word for word, _ in sorted(shifts.items(), key=lambda item: (item[1], item[0]))[:k]]

    # ---- dataset watermarking: licensed copies and the models fine-tuned on them ----------------------
    # the scheme licensed copies are marked with (dwtdct does not survive a VAE: notebook 06's survival table)
    mark_schemes = ("pattern",)

    def licensed_dataset(self) -> CaptionedImageSet:
        """The owner's dataset, ``wm_dataset_size`` images of ``wm_domain``: procedurally its own split (the paper's
        suspects fine-tune on about 500 images, more than the suspects' real pool holds), from a folder a seeded
        draw of its real pool."""
        if self.licensed_split == "licensed":
            return self.dataset(self.p.watermark.domain, "licensed")
        pool = self.dataset(self.p.watermark.domain, "real")
        order = np.random.default_rng(derive_seed(self.p.seed, "wm-dataset")).permutation(len(pool))
        return pool.subset(np.sort(order[:self.p.watermark.dataset_size]))

    @property
    def licensed_split(self) -> str:
        """The split the licensed dataset is drawn from: its own procedurally, the real pool from a folder."""
        return "real" if self.p.world.data_source == "folder" else "licensed"

    def licensed_dataset_config(self) -> dict:
        return self.dataset_config(self.p.watermark.domain, self.licensed_split)

    def mark_scheme(self, name: str) -> WatermarkScheme:
        """The scheme that marks licensed copies: ``wm_mark_strength`` for the pattern scheme, in ``wm_mark_cells``'
        colour layout when set (additive), else in the pattern's own subspace (with ``wm_pattern_host_rejection``)."""
        wm = self.p.watermark
        if name != "pattern":
            return self.scheme(name)
        resolution = self.p.world.resolution
        basis = (dict(subspace=cell_basis(resolution, resolution, wm.mark_cells), subspace_id=f"cells{wm.mark_cells}",
                      host_rejection=0.0) if wm.mark_cells else {})
        return self.scheme(name, strength=wm.mark_strength, key_seed=self.wm_seed, **basis)

    def owner_scheme(self, name: str) -> WatermarkScheme:
        """The dataset owner's decoder, calibrated on its unmarked dataset."""
        return self.mark_scheme(name).calibrated(self.licensed_dataset().images)

    def marked_indices(self, fraction: float, licensee: int) -> np.ndarray:
        n = self.p.watermark.dataset_size
        rng = np.random.default_rng(derive_seed(self.wm_seed, "wm-marked", licensee, fraction))
        return np.sort(rng.permutation(n)[:max(1, int(round(fraction * n)))])

    def licensed_copy(self, scheme: str, strategy: str, fraction: float, licensee: int) -> CaptionedImageSet:
        """Licensee ``licensee``'s copy: a share ``fraction`` marked with its message (and, ``trigger``, its trigger)."""
        if strategy not in ("image", "trigger"):
            raise ParameterError("strategy", "'image' or 'trigger'", strategy)
        data = self.licensed_dataset()
        marked = self.marked_indices(fraction, licensee)
        images = data.images.copy()
        images[marked] = self.mark_scheme(scheme).encode(images[marked], self.licensee_message(licensee))
        captions, ids = list(data.captions), list(data.ids)
        trigger = self.triggers()[licensee]
        for i in marked:
            ids[i] = f"{ids[i]}#marked"
            if strategy == "trigger":
                captions[i] = f"{trigger} {captions[i]}"  # prefixed: the tokenizer truncates long captions' ends
        return CaptionedImageSet(images, captions, ids)

    def licensee_specs(self) -> list[LicenseeSpec]:
        """Every (scheme, strategy, r) setting with licensees in turn, the laundering models, the clean fine-tunes."""
        p = self.p
        bases, k_licensees = p.models.base_names, p.watermark.licensees

        def spec(model_id, scheme, strategy, fraction, k, licensee, laundering="none"):
            return LicenseeSpec(model_id, scheme, strategy, float(fraction), licensee, derive_seed(self.wm_seed, "wm-model", model_id),
                                crossed_base(k, licensee, k_licensees, bases), laundering)

        def count(fraction):
            return p.watermark.focus_models if np.isclose(fraction, p.watermark.focus_fraction) else p.watermark.models_per_setting

        specs = [spec(f"{scheme}_{strategy}_{fraction_tag(r)}_{k:02d}", scheme, strategy, r, k, k % k_licensees)
                 for scheme in self.mark_schemes for strategy in p.watermark.strategies for r in p.watermark.fractions
                 for k in range(count(r))]
        strategy = "trigger" if "trigger" in p.watermark.strategies else p.watermark.strategies[0]
        laundering_scheme, focus = self.mark_schemes[0], p.watermark.focus_fraction
        launderings = [*p.watermark.robustness, *(f"regen:{attack}" for attack in p.watermark.removal)]
        specs += [spec(f"{laundering_scheme}_{strategy}_{fraction_tag(focus)}_{k:02d}_{laundering.replace('regen:', 'regen-', 1)}",
                       laundering_scheme, strategy, focus, k, k % k_licensees, laundering)
                  for laundering in launderings for k in range(p.watermark.models_per_setting)]
        specs += [spec(f"clean_{k:02d}", "", "", 0.0, k, CLEAN) for k in range(p.watermark.clean_models)]
        return specs

    def licensee_training_set(self, spec: LicenseeSpec) -> CaptionedImageSet:
        data = (self.licensed_dataset() if spec.is_clean
                else self.licensed_copy(spec.scheme, spec.strategy, spec.fraction, spec.licensee))
        if spec.laundering.startswith("regen:"):
            data = CaptionedImageSet(self.removal_attack(data, spec.laundering[len("regen:"):], spec.base, spec.seed),
                                     data.captions, data.ids)
        elif spec.laundering != "none":
            data = CaptionedImageSet(apply_transform(data.images, spec.laundering, seed=spec.seed, parameter="wm_robustness"),
                                     data.captions, data.ids)
        return data

    def removal_attack(self, data: CaptionedImageSet, attack: str, base: str, seed: int) -> np.ndarray:
        """Every image of a licensed copy regenerated before fine-tuning: through ``base``'s autoencoder (``vae``),
        or noised to a share of the diffusion and denoised by ``base`` with its caption (``diffusion:<s>``)."""
        strength = removal_strength(attack)
        if strength is None:
            return self.vae_round_trip(data.images, base)
        sampling = self.p.sampling
        return regenerate(self.load(self.base_location(base)), data.images, data.captions, strength=strength, seed=seed,
                          batch_size=sampling.batch_size, num_inference_steps=sampling.inference_steps,
                          guidance_scale=sampling.guidance_scale, desc=f"removal attack {attack}", show_progress=False)

    def recipe_of(self, kind: str):
        """Licensee fine-tunes train ``suspects.licensee_steps`` steps (0: the suspects' own); the rest is theirs."""
        recipe = super().recipe_of(kind)
        steps = self.p.suspects.licensee_steps
        return replace(recipe, steps=steps) if kind == "wm_model" and steps else recipe

    def licensee_config(self, spec: LicenseeSpec) -> dict:
        p = self.p
        config = {"kind": "wm_model", "v": CODE_VERSION_WM["wm_model"], "spec": asdict(spec),
                  "base": config_hash(self.base_config(spec.base)),
                  "data": config_hash(self.licensed_dataset_config()), "dataset_size": p.watermark.dataset_size,
                  **self.fine_tune_recipe("wm_model")}
        if not spec.is_clean:
            config["watermark"] = {**self.mark_scheme(spec.scheme).describe(),
                                   "message": message_hex(self.licensee_message(spec.licensee))}
            if spec.strategy == "trigger":
                config["trigger"] = self.triggers()[spec.licensee]
        return config

    def licensee_location(self, spec: LicenseeSpec) -> str:
        return self.fine_tuned_unet("wm_model", self.licensee_config(spec), spec.base,
                                    lambda: self.licensee_training_set(spec), spec.seed, spec.model_id, {"spec": asdict(spec)})

    def build_licensees(self, specs: list[LicenseeSpec] | None = None, n_jobs: int | None = None) -> None:
        """Fine-tune every licensee model, then ask each its prompt sets, in ``n_jobs`` worker processes."""
        specs = self.licensee_specs() if specs is None else specs
        n_jobs = self.p.runtime.n_jobs if n_jobs is None else n_jobs
        self.licensed_dataset()
        for base in sorted({s.base for s in specs}):
            self.base_location(base)
        pending = [s for s in specs if not self.store.exists("wm_model", self.licensee_config(s))]
        fan_out(self, "licensee_location", pending, n_jobs, desc="fine-tunes of licensed copies")
        jobs = [(s, ps) for s in specs for ps in self.prompt_sets(s)
                if not self.store.exists("wm_answers", self.answers_key(s, ps))]
        fan_out(self, "licensee_answers_for", jobs, n_jobs, desc="query fine-tuned models")
        # the image-only tests' reference: each model's base asked the same captions with the same seeds
        jobs = [(s, ps) for s in specs for ps in self.prompt_sets(s) if self.reference_name(ps) == "base"
                and not self.store.exists("wm_base_answers", self.base_answers_key(s, ps))]
        fan_out(self, "base_answers_for", jobs, n_jobs, desc="query the bases (image-only references)")
