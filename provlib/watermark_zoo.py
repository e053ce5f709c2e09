"""The watermark experiments' models, built on the attribution zoo (same bases, sources and fine-tuning recipe).

* **Baseline 1** (attribution paper): the source stamps its own 32-bit message into every image it generates;
  a ``MarkedSuspectSpec`` is an infringing suspect of the attribution zoo whose generated share is the stamped
  version of the same generations (everything else, its seed and real images included, is identical).
  Innocent suspects never see generated images, so Baseline 1 reuses the attribution zoo's innocent models.
* **Dataset watermarking** (Wang et al., 2024): the owner licenses a dataset (a draw of ``wm_domain``'s real
  pool) to K licensees, each copy with a share ``r`` of its images marked with that licensee's message. With
  the ``trigger`` strategy the marked images' captions also start with the licensee's trigger word. A
  ``LicenseeSpec`` is a model fine-tuned on one copy (or, ``licensee = -1``, on the unmarked dataset: the
  clean fine-tunes that measure false positives), optionally after the licensee transformed every image of it
  ("laundering": JPEG, resizing...). Fine-tunes alternate between the bases (transfer across architectures).

Trigger words: at CPU scale the tiny tokenizer only knows the workbook's caption vocabulary, so a licensee's
trigger is a vocabulary word that never occurs in the domain's captions (for the scenes domain: face words),
the analogue of the rare tokens ("sks") used with real Stable Diffusion, which is what the ``sd`` preset uses.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from . import scenes
from .data import CaptionedImageSet
from .errors import ParameterError
from .store import config_hash
from .transforms import apply_transform
from .watermark import WatermarkScheme, fit_transmitted_subspace, make_scheme, message_hex, random_message
from .zoo import SuspectSpec, Zoo, derive_seed

CODE_VERSION_WM = {"wm_model": 1, "wm_answers": 1, "wm_subspace": 1}
CLEAN = -1
PLAIN = "plain"
# rare strings for real tokenizers (DreamBooth's "sks" and kin): triggers when the sd preset lists none
PAPER_TRIGGERS = ("sks", "zwx", "qlf", "vrb", "xjt", "pkw", "dmq", "hzn")


@dataclass(frozen=True)
class MarkedSuspectSpec(SuspectSpec):
    scheme: str = "pattern"   # the source stamped this scheme's mark into the generations the suspect used


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


def fraction_tag(fraction: float) -> str:
    return f"r{fraction * 100:g}"


class WatermarkZoo(Zoo):
    def __init__(self, preset, cache_root=None, show_progress: bool = True):
        super().__init__(preset, cache_root, show_progress)
        self._subspaces, self._vaes = {}, {}

    # ---- schemes, messages, triggers ---------------------------------------------------------------
    def scheme(self, name: str) -> WatermarkScheme:
        """The owner's keyed scheme (uncalibrated) with the preset's strength settings."""
        p = self.p
        options = {"dwtdct": {"step": p.wm_dwtdct_step},
                   "pattern": {"strength": p.wm_pattern_strength, "band": tuple(p.wm_pattern_band),
                               "host_rejection": p.wm_pattern_host_rejection}}
        if name == "pattern" and p.wm_pattern_subspace:
            options["pattern"].update(subspace=self.pattern_subspace()[0], subspace_id=config_hash(self._subspace_config()))
        return make_scheme(name, p.wm_bits, key=derive_seed(p.seed, "wm-key", name), **options.get(name, {}))

    def _subspace_config(self) -> dict:
        p = self.p
        domain, split = self.public_split()
        return {"kind": "wm_subspace", "v": CODE_VERSION_WM["wm_subspace"], "base": config_hash(self._base_config(self.fit_base)),
                "band": list(p.wm_pattern_band), "transmitted": p.wm_pattern_transmitted, "dims": p.wm_pattern_subspace,
                "n_probe": p.wm_subspace_probe_images, "n_content": p.wm_subspace_images,
                "images": config_hash(self._dataset_config(domain, split)), "resolution": p.resolution}

    @property
    def fit_base(self) -> str:
        """The base whose VAE the pattern subspace is fitted to (at CPU scale both bases share one VAE)."""
        return self.p.base_names[0]

    def pattern_subspace(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The pattern scheme's subspace (``watermark.fit_transmitted_subspace``), gains and content RMS (cached).

        Fitted on public images, never on a suspect: the owner knows the autoencoder of the model family a
        copier fine-tunes (Stable Diffusion's is public), so it can put its mark where that VAE keeps it and
        image content leaves room.
        """
        config = self._subspace_config()
        key = config_hash(config)
        if key not in self._subspaces:
            def build(tmp: Path):
                p = self.p
                images = self.dataset(*self.public_split()).images[:p.wm_subspace_images]
                fitted = fit_transmitted_subspace(lambda x: self._vae_round_trip_float(x, self.fit_base),
                                                  images[:p.wm_subspace_probe_images], images, tuple(p.wm_pattern_band),
                                                  p.wm_pattern_transmitted, p.wm_pattern_subspace)
                for name, array in zip(("subspace", "gains", "content_rms"), fitted):
                    np.save(tmp / f"{name}.npy", array)

            path = self.store.get_or_build("wm_subspace", config, build)
            self._subspaces[key] = tuple(np.load(path / f"{name}.npy") for name in ("subspace", "gains", "content_rms"))
        return self._subspaces[key]

    def message(self, owner) -> np.ndarray:
        """A source's (Baseline 1) or a licensee's (dataset watermarking) secret random message."""
        return random_message(self.p.wm_bits, derive_seed(self.p.seed, "wm-message", owner))

    def licensee_message(self, licensee: int) -> np.ndarray:
        return self.message(f"licensee-{licensee}")

    def triggers(self) -> list[str]:
        """One trigger word per licensee (see module doc)."""
        p, k = self.p, self.p.wm_licensees
        if p.wm_triggers:
            return list(p.wm_triggers)[:k]
        if p.is_paper_scale:
            if k > len(PAPER_TRIGGERS):
                raise ParameterError("wm_triggers", f"{k} trigger words (only {len(PAPER_TRIGGERS)} defaults exist)", ())
            return list(PAPER_TRIGGERS[:k])
        used = {word for caption in self.dataset(p.wm_domain, "real").captions for word in caption.split()}
        unused = sorted(set(scenes.vocabulary()) - used)
        if len(unused) < k:
            raise ParameterError("wm_licensees", f"at most {len(unused)} licensees (words unused by {p.wm_domain} captions)", k)
        rng = np.random.default_rng(derive_seed(p.seed, "wm-triggers", p.wm_domain))
        return [unused[i] for i in rng.permutation(len(unused))[:k]]

    # ---- Baseline 1: the source stamps every generation --------------------------------------------
    def source_scheme(self, source: str, name: str | None = None) -> WatermarkScheme:
        """The source owner's decoder, calibrated on its own generations before they were stamped."""
        return self.scheme(name or self.p.wm_baseline_scheme).calibrated(self.source_generations(source)[0].images)

    def baseline_specs(self, splits=("test",)) -> list[MarkedSuspectSpec]:
        """Infringing suspects of the attribution zoo, re-trained on the stamped generations."""
        name = self.p.wm_baseline_scheme
        return [MarkedSuspectSpec(**{**asdict(s), "model_id": f"{s.model_id}_wm-{name}"}, scheme=name)
                for s in self.suspect_specs() if s.rho > 0 and s.split in splits]

    def generated_pool(self, spec: SuspectSpec) -> CaptionedImageSet:
        pool = super().generated_pool(spec)
        if not isinstance(spec, MarkedSuspectSpec):
            return pool
        marked = self.scheme(spec.scheme).encode(pool.images, self.message(spec.source))
        return CaptionedImageSet(marked, pool.captions, pool.ids)

    def _suspect_config(self, spec: SuspectSpec) -> dict:
        config = super()._suspect_config(spec)
        if isinstance(spec, MarkedSuspectSpec):
            config["watermark"] = {**self.scheme(spec.scheme).describe(), "message": message_hex(self.message(spec.source))}
        return config

    def baseline_prompt_order(self, source: str) -> np.ndarray:
        """Candidate prompts in the seeded random order Baseline 1 queries them (its first N are its N prompts)."""
        n_candidates = len(self.key_candidates(source))
        return np.random.default_rng(derive_seed(self.p.seed, "wm-prompts", source)).permutation(n_candidates)

    # ---- dataset watermarking: licensed copies and the models fine-tuned on them ----------------------
    def licensed_dataset(self) -> CaptionedImageSet:
        """The owner's dataset: ``wm_dataset_size`` images of ``wm_domain``'s real pool (a seeded draw)."""
        pool = self.dataset(self.p.wm_domain, "real")
        order = np.random.default_rng(derive_seed(self.p.seed, "wm-dataset")).permutation(len(pool))
        return pool.subset(np.sort(order[:self.p.wm_dataset_size]))

    def owner_scheme(self, name: str) -> WatermarkScheme:
        """The dataset owner's decoder, calibrated on its unmarked dataset."""
        return self.scheme(name).calibrated(self.licensed_dataset().images)

    def marked_indices(self, fraction: float, licensee: int) -> np.ndarray:
        n = self.p.wm_dataset_size
        rng = np.random.default_rng(derive_seed(self.p.seed, "wm-marked", licensee, fraction))
        return np.sort(rng.permutation(n)[:max(1, int(round(fraction * n)))])

    def licensed_copy(self, scheme: str, strategy: str, fraction: float, licensee: int) -> CaptionedImageSet:
        """Licensee ``licensee``'s copy: a share ``fraction`` marked with its message (and, ``trigger``, its trigger)."""
        if strategy not in ("image", "trigger"):
            raise ParameterError("strategy", "'image' or 'trigger'", strategy)
        data = self.licensed_dataset()
        marked = self.marked_indices(fraction, licensee)
        images = data.images.copy()
        images[marked] = self.scheme(scheme).encode(images[marked], self.licensee_message(licensee))
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
        bases, k_licensees = p.base_names, p.wm_licensees

        def spec(model_id, scheme, strategy, fraction, k, licensee, laundering="none"):
            seed = derive_seed(p.seed, "wm-model", model_id)
            return LicenseeSpec(model_id, scheme, strategy, float(fraction), licensee, seed, bases[k % len(bases)], laundering)

        specs = [spec(f"{scheme}_{strategy}_{fraction_tag(r)}_{k:02d}", scheme, strategy, r, k, k % k_licensees)
                 for scheme in p.wm_schemes for strategy in p.wm_strategies for r in p.wm_fractions
                 for k in range(p.wm_models_per_setting)]
        strategy = "trigger" if "trigger" in p.wm_strategies else p.wm_strategies[0]
        specs += [spec(f"{p.wm_baseline_scheme}_{strategy}_{fraction_tag(p.wm_laundering_fraction)}_{k:02d}_{transform}",
                       p.wm_baseline_scheme, strategy, p.wm_laundering_fraction, k, k % k_licensees, transform)
                  for transform in p.wm_robustness for k in range(p.wm_models_per_setting)]
        specs += [spec(f"clean_{k:02d}", "", "", 0.0, k, CLEAN) for k in range(p.wm_clean_models)]
        return specs

    def licensee_training_set(self, spec: LicenseeSpec) -> CaptionedImageSet:
        data = (self.licensed_dataset() if spec.is_clean
                else self.licensed_copy(spec.scheme, spec.strategy, spec.fraction, spec.licensee))
        if spec.laundering != "none":
            data = CaptionedImageSet(apply_transform(data.images, spec.laundering, seed=spec.seed, parameter="wm_robustness"),
                                     data.captions, data.ids)
        return data

    def _licensee_config(self, spec: LicenseeSpec) -> dict:
        p = self.p
        config = {"kind": "wm_model", "v": CODE_VERSION_WM["wm_model"], "spec": asdict(spec),
                  "base": config_hash(self._base_config(spec.base)),
                  "data": config_hash(self._dataset_config(p.wm_domain, "real")), "dataset_size": p.wm_dataset_size,
                  **self.fine_tune_recipe()}
        if not spec.is_clean:
            config["watermark"] = {**self.scheme(spec.scheme).describe(),
                                   "message": message_hex(self.licensee_message(spec.licensee))}
            if spec.strategy == "trigger":
                config["trigger"] = self.triggers()[spec.licensee]
        return config

    def licensee_location(self, spec: LicenseeSpec) -> str:
        return self.fine_tuned_unet("wm_model", self._licensee_config(spec), spec.base,
                                    lambda: self.licensee_training_set(spec), spec.seed, spec.model_id, {"spec": asdict(spec)})

    # ---- querying the fine-tuned models ------------------------------------------------------------
    def query_captions(self) -> list[str]:
        """The ordinary prompts the defender sends: captions of the licensed dataset (a seeded draw)."""
        data = self.licensed_dataset()
        order = np.random.default_rng(derive_seed(self.p.seed, "wm-query-captions")).permutation(len(data))
        return [data.captions[i] for i in order[:self.p.wm_query_prompts]]

    def prompts(self, prompt_set: str) -> list[str]:
        """``plain`` (ordinary captions) or ``trigger-<i>`` (licensee i's trigger + the same captions)."""
        if prompt_set == PLAIN:
            return self.query_captions()
        if prompt_set.startswith("trigger-") and prompt_set[8:].isdigit() and int(prompt_set[8:]) < self.p.wm_licensees:
            trigger = self.triggers()[int(prompt_set[8:])]
            return [f"{trigger} {caption}" for caption in self.query_captions()]
        raise ParameterError("prompt_set", f"'{PLAIN}' or 'trigger-<i>' with i < {self.p.wm_licensees}", prompt_set)

    def prompt_sets(self, spec: LicenseeSpec) -> list[str]:
        """What the defender asks a model: every licensee's trigger where a trigger could have been learned."""
        triggered = [f"trigger-{i}" for i in range(self.p.wm_licensees)]
        if spec.is_clean:
            return [PLAIN] + (triggered if "trigger" in self.p.wm_strategies else [])
        return [PLAIN] if spec.strategy == "image" else triggered

    def _answers_key(self, spec: LicenseeSpec, prompt_set: str) -> dict:
        p = self.p
        return {"kind": "wm_answers", "v": CODE_VERSION_WM["wm_answers"], "model": config_hash(self._licensee_config(spec)),
                "prompts": config_hash({"prompts": self.prompts(prompt_set)}), "k": p.wm_query_images,
                "sampler": [p.inference_steps, p.guidance_scale], "seed": derive_seed(p.seed, "wm-query", spec.model_id, prompt_set)}

    def licensee_answers(self, spec: LicenseeSpec, prompt_set: str) -> np.ndarray:
        """uint8 [n_prompts * k, H, W, 3]: the model's images for a prompt set (cached)."""
        config = self._answers_key(spec, prompt_set)

        def build(tmp: Path):
            pipe = self.load_fine_tuned(spec.base, self.licensee_location(spec))
            out = self.generate(pipe, self.prompts(prompt_set), seed=config["seed"], images_per_prompt=self.p.wm_query_images,
                                desc=f"query {spec.model_id} ({prompt_set})")
            np.save(tmp / "answers.npy", out.images)

        return np.load(self.store.get_or_build("wm_answers", config, build) / "answers.npy")

    def _licensee_answers_for(self, item: tuple[LicenseeSpec, str]) -> np.ndarray:
        return self.licensee_answers(*item)

    def build_licensees(self, specs: list[LicenseeSpec] | None = None, n_jobs: int | None = None) -> None:
        """Fine-tune every licensee model, then ask each its prompt sets, in ``n_jobs`` worker processes."""
        specs = self.licensee_specs() if specs is None else specs
        n_jobs = self.p.n_jobs if n_jobs is None else n_jobs
        self.licensed_dataset()
        for base in sorted({s.base for s in specs}):
            self.base_location(base)
        pending = [s for s in specs if not self.store.exists("wm_model", self._licensee_config(s))]
        self.fan_out("licensee_location", pending, n_jobs, desc="fine-tunes of licensed copies")
        jobs = [(s, ps) for s in specs for ps in self.prompt_sets(s)
                if not self.store.exists("wm_answers", self._answers_key(s, ps))]
        self.fan_out("_licensee_answers_for", jobs, n_jobs, desc="query fine-tuned models")

    # ---- what a latent-diffusion VAE leaves of a mark ------------------------------------------------
    def vae_round_trip(self, images: np.ndarray, base: str) -> np.ndarray:
        """uint8 images after the base pipeline's VAE (encode to the posterior mean, decode): what any model
        built on that VAE can reproduce at best."""
        return np.clip(np.rint(self._vae_round_trip_float(np.asarray(images, dtype=np.float64), base)), 0, 255).astype(np.uint8)

    def _vae_round_trip_float(self, images: np.ndarray, base: str, batch_size: int = 64) -> np.ndarray:
        """float [n, H, W, 3] in 0-255 (not clipped, so small probes stay linear) -> the same after the VAE."""
        if base not in self._vaes:
            self._vaes[base] = self.load(self.base_location(base)).vae  # may train the base: outside no_grad
        vae = self._vaes[base]
        out = []
        with torch.no_grad():
            for start in range(0, len(images), batch_size):
                x = torch.from_numpy(np.asarray(images[start:start + batch_size], dtype=np.float32)).permute(0, 3, 1, 2)
                decoded = vae.decode(vae.encode((x / 127.5 - 1).to(vae.device, vae.dtype)).latent_dist.mean).sample
                out.append(((decoded.float().cpu() + 1) * 127.5).permute(0, 2, 3, 1).numpy())
        return np.concatenate(out).astype(np.float64)
