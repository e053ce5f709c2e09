"""TrainProVe's world over the artifact store: generators, labelled image sets, and the suspect and shadow classifiers.

``GeneratorZoo`` builds (or loads) the four generators and every labelled set they draw; ``TrainProVeZoo`` adds
the classifiers: suspects trained on a generator's pool, on real images or on a mixture, and the defender's
shadow model per generator, trained on its own fresh generations. See ``provlib.trainprove.generators``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from provlib.core.errors import ParameterError
from provlib.core.fanout import fan_out
from provlib.core.fingerprint import Fingerprints
from provlib.core.paths import cache_dir
from provlib.core.store import ArtifactStore, config_hash, derive_seed
from provlib.trainprove.classifier import (
    Recipe,
    draw_recipe,
    load_classifier,
    save_classifier,
    train_classifier,
)
from provlib.trainprove.analogues import CpuAnalogues
from provlib.trainprove.config import check_trainprove_inputs
from provlib.trainprove.generators import (
    CPU_GENERATORS,
    DEFAULT_PAPER_SAMPLING,
    PAPER_SAMPLING,
    REAL,
    GeneratorSpec,
    generate_labelled,
    load_generator,
    real_folder_images,
)
from provlib.trainprove.test import LabelledImages, check_classes, class_prompts

CODE_VERSION = {"tp_images": 1, "tp_classifier": 2}


@dataclass(frozen=True)
class ClassifierSpec:
    model_id: str
    source: str        # a generator name, "real", or "<generator>+real" (half generated, half real)
    seed: int
    role: str          # "suspect" (evaluation only) or "shadow" (the defender's own)
    recipe: Recipe = Recipe()  # how it is trained; a shadow keeps the default

    @property
    def generators(self) -> list[str]:
        return [part for part in self.source.split("+") if part != REAL]


class GeneratorZoo(CpuAnalogues):
    def __init__(self, preset, cache_root: str | Path | None = None, show_progress: bool = True):
        self.p = preset
        self.classes = check_classes(preset.trainprove.classes)
        self.cache_root = Path(cache_root) if cache_root else cache_dir() / "artifacts"
        self.store = ArtifactStore(self.cache_root)
        self.show_progress = show_progress
        self.fingerprint = Fingerprints()
        if preset.is_paper_scale:
            check_trainprove_inputs(preset)
        else:
            unknown = [g for g in preset.trainprove.generators if g not in CPU_GENERATORS]
            if unknown:
                raise ParameterError("tp_generators", f"names of CPU analogues, from {sorted(CPU_GENERATORS)}", unknown)
            missing = sorted({CPU_GENERATORS[g].architecture for g in preset.trainprove.generators}
                             - set(preset.trainprove.generator_lrs))
            if missing:
                raise ParameterError("tp_generator_lrs", f"a learning rate for every analogue's architecture {missing}",
                                     preset.trainprove.generator_lrs)

    @property
    def generators(self) -> list[str]:
        return list(self.p.trainprove.generators)

    @property
    def prompts(self) -> list[str]:
        return class_prompts(self.classes, self.p.trainprove.prompt_template)

    def spec(self, generator: str) -> GeneratorSpec:
        if generator not in self.generators:
            raise ParameterError("generator", f"one of {self.generators}", generator)
        return CPU_GENERATORS[generator]

    def generator_lr(self, generator: str) -> float:
        """A CPU analogue's denoiser learning rate: its architecture's entry of ``tp_generator_lrs``."""
        return float(self.p.trainprove.generator_lrs[self.spec(generator).architecture])

    def describe(self) -> list[dict]:
        """One row per generator: what it stands for and how it differs."""
        if self.p.is_paper_scale:
            return [{"generator": g, "checkpoint": self.p.trainprove.checkpoints[g], **PAPER_SAMPLING.get(g, DEFAULT_PAPER_SAMPLING)}
                    for g in self.generators]
        rows = []
        for g in self.generators:
            spec = self.spec(g)
            rows.append({"generator": g, **{k: v for k, v in asdict(spec).items() if k != "name"},
                         "sampling_steps": self.sampling(g)["num_inference_steps"], "train_images": self.p.trainprove.generator_images,
                         "train_steps": self.p.trainprove.generator_steps, "train_lr": self.generator_lr(g)})
        return rows

    # ---- generators ---------------------------------------------------------------------------------
    def generator_config(self, generator: str) -> dict:
        if self.p.is_paper_scale:
            location = str(self.p.trainprove.checkpoints[generator])
            return {"kind": "tp_generator", "checkpoint": location, "contents": self.fingerprint(location)}
        return self.analogue_config(generator)

    def generator_location(self, generator: str) -> str:
        """A generator's pipeline folder: the user's checkpoint, or a CPU analogue built here (cached)."""
        if self.p.is_paper_scale:
            return str(self.p.trainprove.checkpoints[generator])
        return self.analogue_location(generator)

    def sampling(self, generator: str) -> dict:
        """Sampler arguments of a generator's pipeline call (CPU: steps capped by the preset's ``inference_steps``)."""
        if self.p.is_paper_scale:
            return dict(PAPER_SAMPLING.get(generator, DEFAULT_PAPER_SAMPLING))
        spec = self.spec(generator)
        steps = self.p.trainprove.sampling_steps.get(generator, spec.steps)
        return {"num_inference_steps": min(steps, self.p.sampling.inference_steps), "guidance_scale": spec.guidance_scale}

    # ---- labelled image sets -------------------------------------------------------------------------
    def images_config(self, generator: str, purpose: str, n_per_class: int) -> dict:
        p = self.p
        return {"kind": "tp_images", "v": CODE_VERSION["tp_images"], "generator": config_hash(self.generator_config(generator)),
                "purpose": purpose, "n_per_class": n_per_class, "prompts": self.prompts, "sampling": self.sampling(generator),
                "resolution": p.trainprove.resolution, "seed": derive_seed(p.seed, "tp-images", generator, purpose)}

    def purpose_size(self, purpose: str) -> int:
        # "calibration": a second fresh training set of the owner's, for owner-side models that calibrate the test
        sizes = {"pool": self.p.trainprove.pool_per_class, "shadow": self.p.trainprove.train_per_class,
                 "calibration": self.p.trainprove.train_per_class, "test": self.p.trainprove.test_per_class}
        if purpose not in sizes:
            raise ParameterError("purpose", f"one of {sorted(sizes)}", purpose)
        return sizes[purpose]

    def images(self, generator: str, purpose: str) -> LabelledImages:
        """Class-prompted images of a generator: the suspects' ``pool``, the defender's ``shadow`` set, or its ``test`` set.

        Each purpose has its own seed, so the defender's images are never the suspects' own training images.
        """
        if generator == REAL:
            return self.real_images(purpose)
        n = self.purpose_size(purpose)
        config = self.images_config(generator, purpose, n)

        def build(tmp: Path):
            p = self.p
            pipe = load_generator(self.generator_location(generator), p.runtime.device, p.runtime.dtype)
            out = generate_labelled(pipe, self.prompts, n, seed=config["seed"], sampling=self.sampling(generator),
                                    resolution=None if p.is_paper_scale else p.world.resolution, output_resolution=p.trainprove.resolution,
                                    batch_size=p.sampling.batch_size, desc=f"{generator}: {purpose} images",
                                    show_progress=self.show_progress)
            np.savez(tmp / "images.npz", images=out.images, labels=out.labels)

        with np.load(self.store.get_or_build("tp_images", config, build) / "images.npz") as saved:
            return LabelledImages(saved["images"], saved["labels"])

    def real_images(self, purpose: str) -> LabelledImages:
        """Real labelled images: the uniform procedural world at CPU scale, the user's class folders at paper scale."""
        n = self.purpose_size(purpose)
        p = self.p
        if p.is_paper_scale:
            everything = real_folder_images(p.trainprove.real_dir, self.classes, p.trainprove.resolution)
            order = np.random.default_rng(derive_seed(p.seed, "tp-real-split")).permutation(len(everything))
            half = len(order) // 2  # disjoint halves: suspects' pool, then the defender's test images
            part = everything.subset(order[:half] if purpose != "test" else order[half:])
            return part.per_class_subset(n, derive_seed(p.seed, "tp-real", purpose))
        data, labels = self.object_draw(REAL, n, purpose)
        images = data.images
        if images.shape[1] != p.trainprove.resolution:
            images = np.stack([np.asarray(Image.fromarray(im).resize((p.trainprove.resolution,) * 2, Image.BICUBIC)) for im in images])
        return LabelledImages(images, labels)

    def test_sets(self) -> dict[str, LabelledImages]:
        """The defender's fresh test images from every generator."""
        return {g: self.images(g, "test") for g in self.generators}

    def build_generators(self, n_jobs: int) -> None:
        """CPU scale: the analogues and everything they are built from, fanned out (paper scale: nothing to build)."""
        if not self.p.is_paper_scale:
            self.build_analogues(n_jobs)


class TrainProVeZoo(GeneratorZoo):
    # ---- classifiers ---------------------------------------------------------------------------------
    def suspect_sources(self) -> list[str]:
        return self.generators + [REAL] + [f"{g}+{REAL}" for g in self.generators]

    def classifier_specs(self) -> list[ClassifierSpec]:
        """Suspects (several seeds per training source) and one shadow model per generator (the defender's)."""
        p = self.p
        tp = p.trainprove

        def recipe(seed: int, k: int) -> Recipe:
            return draw_recipe(derive_seed(seed, "tp-recipe"), tp.suspect_architectures[k % len(tp.suspect_architectures)],
                               tp.suspect_lrs, tp.suspect_weight_decays, tp.suspect_batch_sizes, tp.suspect_losses)
        seeds = {(source, k): derive_seed(p.seed, "tp-suspect", source, k)
                 for source in self.suspect_sources() for k in range(tp.suspect_seeds)}
        specs = [ClassifierSpec(f"{source}_{k:02d}", source, seed, "suspect", recipe(seed, k))
                 for (source, k), seed in seeds.items()]
        specs += [self.shadow_spec(g) for g in self.generators]
        return specs

    def shadow_spec(self, generator: str) -> ClassifierSpec:
        """The defender's shadow classifier for ``generator`` (the default recipe, on its own fresh generations)."""
        return ClassifierSpec(f"shadow_{generator}", generator, derive_seed(self.p.seed, "tp-shadow", generator), "shadow")

    def training_images(self, spec: ClassifierSpec) -> LabelledImages:
        """A shadow trains on the defender's own fresh generations; a suspect samples its sources' pools (mixtures half-half)."""
        if spec.role == "shadow":
            return self.images(spec.source, "shadow")
        return self.mixed_images(spec.source, "pool", spec.seed)

    def mixed_images(self, source: str, purpose: str, seed: int) -> LabelledImages:
        """``train_per_class`` images per class of ``source`` (``a+b``: an equal share of each) drawn from ``purpose``."""
        n = self.p.trainprove.train_per_class
        parts = source.split("+")
        shares = [n // len(parts) + (1 if i < n % len(parts) else 0) for i in range(len(parts))]
        return LabelledImages.concat([self.images(part, purpose).per_class_subset(share, derive_seed(seed, part))
                                      for part, share in zip(parts, shares)])

    def set_key(self, source: str, purpose: str) -> str:
        """Cache key of a labelled set, for the configs of the classifiers trained on it."""
        if source == REAL:
            config = self.draw_config(REAL, self.purpose_size(purpose), purpose)
            if self.p.is_paper_scale:  # the user's class folders: keyed by what they hold
                config = {**config, "real_dir": self.p.trainprove.real_dir,
                          "contents": self.fingerprint(self.p.trainprove.real_dir)}
            return config_hash(config)
        return config_hash(self.images_config(source, purpose, self.purpose_size(purpose)))

    def classifier_config(self, spec: ClassifierSpec) -> dict:
        purpose = "shadow" if spec.role == "shadow" else "pool"
        return {"kind": "tp_classifier", "v": CODE_VERSION["tp_classifier"], "spec": asdict(spec),
                "inputs": {part: self.set_key(part, purpose) for part in spec.source.split("+")},
                "n_per_class": self.p.trainprove.train_per_class, "epochs": self.p.trainprove.classifier_epochs, "classes": self.classes}

    def classifier_location(self, spec: ClassifierSpec) -> str:
        config = self.classifier_config(spec)

        def build(tmp: Path):
            data = self.training_images(spec)
            model, losses = train_classifier(data.images, data.labels, len(self.classes), epochs=self.p.trainprove.classifier_epochs,
                                             seed=spec.seed, recipe=spec.recipe, device=self.p.runtime.device)
            save_classifier(model, tmp, {"spec": asdict(spec), "n_train": len(data), "losses": losses})

        return str(self.store.get_or_build("tp_classifier", config, build))

    def classifier(self, spec: ClassifierSpec):
        return load_classifier(Path(self.classifier_location(spec)))

    def build_all(self, n_jobs: int | None = None) -> None:
        """Generators, then every labelled set, then every classifier, fanned out over worker processes."""
        n_jobs = self.p.runtime.n_jobs if n_jobs is None else n_jobs
        self.build_generators(n_jobs)
        self.real_images("pool")
        self.real_images("test")
        sets = [(g, purpose) for g in self.generators for purpose in ("pool", "shadow", "test")]
        pending = [s for s in sets if not self.store.exists("tp_images", self.images_config(s[0], s[1], self.purpose_size(s[1])))]
        # generation is batched and multi-threaded already; one process per set at paper scale (one GPU)
        fan_out(self, "images_for", pending, n_jobs if not self.p.is_paper_scale else 1, "labelled image sets")
        pending = [s for s in self.classifier_specs() if not self.store.exists("tp_classifier", self.classifier_config(s))]
        fan_out(self, "classifier_location", pending, n_jobs, "classifiers")

    def images_for(self, item: tuple[str, str]) -> LabelledImages:
        return self.images(*item)
