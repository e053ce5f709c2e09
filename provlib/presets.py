"""Scale presets: one frozen ``Preset`` per scale, made of typed sections; notebook parameters override fields.

``smoke`` exercises every code path in seconds (tests), ``cpu`` is the default embedded workbook,
``sd`` is paper scale (Stable Diffusion checkpoints the user provides, fp16 on CUDA).

A preset is ``name``, ``seed`` and one section per concern:

============== ===================================================== =========================================
section        what                                                  defined in
============== ===================================================== =========================================
runtime        device, dtype, mixed precision, workers, checkpoints  ``provlib.core.config.Runtime``
world          data source, folders, resolution, split sizes         ``provlib.core.config.World``
sampling       sampler steps, guidance, generation batch             ``provlib.core.config.Sampling``
models         bases, checkpoints, pre-training and source recipes   ``provlib.core.config.Models``
suspects       M, the suspects' recipe, ρ values, shadow share       ``provlib.core.config.Suspects``
attribution    key candidates, N, k, probes, descriptor              ``provlib.attribution.config.Attribution``
discriminator  CV repeats, bootstrap, learning curve                 ``provlib.attribution.config.Discriminator``
trainprove     generators, classes, set sizes, α                     ``provlib.trainprove.config.TrainProVe``
watermark      schemes, strengths, dataset and licensees, α          ``provlib.watermark.config.Watermark``
============== ===================================================== =========================================

Overrides (``load_preset(name, **overrides)``, papermill parameters, ``python -m provlib run -p key=value``) take
either the **flat names** the notebooks have always used (``suspect_steps``, ``key_count``, ``tp_alpha``,
``wm_bits``; see ``FLAT_NAMES``) or the **dotted path** (``suspects.recipe.steps``, ``attribution.key_count``,
``trainprove.alpha``, ``watermark.bits``). A wrong name or value raises ``ParameterError`` naming it.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from provlib.attribution.config import Attribution, Discriminator
from provlib.core.config import (
    Models,
    Recipe,
    Runtime,
    Sampling,
    Section,
    Suspects,
    World,
    any_int,
)
from provlib.core.errors import ParameterError
from provlib.core.paths import HUB_ID
from provlib.core.source import Source
from provlib.trainprove.config import TrainProVe, check_trainprove_inputs
from provlib.watermark.config import Watermark

SECTIONS = {"runtime": Runtime, "world": World, "sampling": Sampling, "models": Models, "suspects": Suspects,
            "attribution": Attribution, "discriminator": Discriminator, "trainprove": TrainProVe, "watermark": Watermark}


@dataclass(frozen=True)
class Preset:
    name: str
    seed: int = 0
    runtime: Runtime = field(default_factory=Runtime)
    world: World = field(default_factory=World)
    sampling: Sampling = field(default_factory=Sampling)
    models: Models = field(default_factory=Models)
    suspects: Suspects = field(default_factory=Suspects)
    attribution: Attribution = field(default_factory=Attribution)
    discriminator: Discriminator = field(default_factory=Discriminator)
    trainprove: TrainProVe = field(default_factory=TrainProVe)
    watermark: Watermark = field(default_factory=Watermark)

    def __post_init__(self):
        if any_int(self.seed):
            raise ParameterError("seed", "an integer", self.seed)
        for name, kind in SECTIONS.items():
            if not isinstance(getattr(self, name), kind):
                raise ParameterError(name, f"a {kind.__name__} section", getattr(self, name))
        _check_across_sections(self)

    def replace(self, **overrides) -> "Preset":
        """A copy with some fields changed (flat or dotted names); unknown names raise an error listing valid ones.

        Every change is applied before anything is validated, so overrides that only make sense together
        (a smaller ``n_real`` with a smaller ``suspect_samples``) are accepted in one call.
        """
        changes: dict[tuple, tuple[str, object]] = {}  # path -> (the name the user wrote, the value)
        for key, value in overrides.items():
            if key in SECTIONS:  # a whole section as a dict of its fields
                if not isinstance(value, dict):
                    raise ParameterError(key, f"a dict of {key}'s fields, e.g. {{'{dataclasses.fields(SECTIONS[key])[0].name}': ...}}",
                                         value)
                for sub_key, sub_value in value.items():
                    changes[resolve_name(f"{key}.{sub_key}")] = (f"{key}.{sub_key}", sub_value)
            else:
                changes[resolve_name(key)] = (key, value)
        return _rebuild(self, (), changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    # derived names
    @property
    def sources(self) -> list[Source]:
        """SD-v1, SD-v1-CelebA, SD-v1-CC3M, ...: each base alone, then fine-tuned on each private domain."""
        m = self.models
        fine_tuned = m.fine_tuned_bases or m.base_names
        return [s for base in m.base_names
                for s in [Source(base)] * m.base_sources
                + [Source(base, d) for d in self.world.source_domains if base in fine_tuned]]

    @property
    def source_names(self) -> list[str]:
        """The sources' names in this workbook: v1, v1-faces, v1-scenes, ..."""
        return [s.name for s in self.sources]

    @property
    def fine_tuned_source_names(self) -> list[str]:
        """The sources fine-tuned on a private domain (``v1-faces``...), without the bases alone."""
        return [s.name for s in self.sources if s.is_fine_tuned]

    @property
    def is_paper_scale(self) -> bool:
        return self.world.data_source == "folder"

    @property
    def data_domains(self) -> list[str]:
        """The domains this preset reads data for: the generic procedural mix at CPU scale, the user's folders
        (every source domain, the base sources' and the licensed dataset's) at paper scale."""
        w = self.world
        if self.is_paper_scale:
            return sorted(set(w.source_domains) | {w.base_source_domain, self.watermark.domain})
        return ["generic"] + list(w.source_domains)


def _flat_names() -> dict[str, tuple[str, ...]]:
    """Flat parameter name -> path in the preset (the names notebooks and earlier releases used)."""
    flat = {"seed": ("seed",)}
    prefixes = {"trainprove": "tp_", "watermark": "wm_"}
    renamed = {("sampling", "batch_size"): "generation_batch_size", ("suspects", "samples"): "suspect_samples",
               ("suspects", "per_setting"): "suspects_per_setting", ("suspects", "base"): "suspect_base",
               ("suspects", "train_text_encoder"): "suspect_train_text_encoder",
               ("suspects", "innocents"): "suspect_innocents"}
    recipes = {("models", "pretrain"): "pretrain_", ("models", "source"): "source_", ("suspects", "recipe"): "suspect_"}
    for section, kind in SECTIONS.items():
        for f in dataclasses.fields(kind):
            if (section, f.name) in recipes:
                for r in dataclasses.fields(Recipe):
                    flat[recipes[(section, f.name)] + r.name] = (section, f.name, r.name)
                continue
            flat[renamed.get((section, f.name), prefixes.get(section, "") + f.name)] = (section, f.name)
    return flat


FLAT_NAMES = _flat_names()


def resolve_name(name: str) -> tuple[str, ...]:
    """A flat (``suspect_steps``) or dotted (``suspects.recipe.steps``) parameter name -> its path in a preset."""
    if name in FLAT_NAMES:
        return FLAT_NAMES[name]
    path = tuple(name.split("."))
    if path in FLAT_NAMES.values():
        return path
    raise ParameterError(name, f"a preset field: a flat name, one of {sorted(FLAT_NAMES)}, or a dotted path such as "
                               "'suspects.recipe.steps'")


PATH_NAMES = {path: flat for flat, path in FLAT_NAMES.items()}


def _rebuild(obj, prefix: tuple[str, ...], changes: dict[tuple, tuple[str, object]]):
    """``obj`` (a preset or a section at ``prefix``) with every change below it applied, validated once.

    ``changes`` maps a full path to (the name the user wrote, the new value).
    """
    fields = {}
    for f in dataclasses.fields(obj):
        path = prefix + (f.name,)
        current = getattr(obj, f.name)
        if path in changes:
            value = changes[path][1]  # lists for tuple fields become tuples in Section.__post_init__
            if isinstance(current, Section) and not isinstance(value, Section):
                raise ParameterError(changes[path][0], f"a dict of {f.name}'s fields", value)
            fields[f.name] = value
        elif isinstance(current, Section) and any(p[:len(path)] == path for p in changes):
            fields[f.name] = _rebuild(current, path, changes)
    if not fields:
        return obj
    try:
        return dataclasses.replace(obj, **fields)
    except ParameterError as error:
        if not isinstance(obj, Section):
            raise
        # name the parameter as the user wrote it, or by its flat name when another field conflicts with it
        path = prefix + (error.parameter,)
        name = changes[path][0] if path in changes else PATH_NAMES.get(path, ".".join(path))
        raise ParameterError(name, error.expected, error.got) from None
    except TypeError as error:
        raise ParameterError(".".join(prefix) or "preset", f"known fields of {type(obj).__name__}", str(error)) from None


def _check_across_sections(p: Preset) -> None:
    def need(ok: bool, parameter: str, expected: str, got):
        if not ok:
            raise ParameterError(parameter, expected, got)

    bases = p.models.base_names
    need(p.suspects.samples <= p.world.n_real, "suspect_samples",
         f"at most n_real={p.world.n_real} (suspects draw from the real pool)", p.suspects.samples)
    need(p.suspects.base == "other" or p.suspects.base in bases, "suspect_base", f"'other' or one of {bases}",
         p.suspects.base)
    need(p.suspects.base != "other" or len(bases) >= 2, "suspect_base", "a base name when there is only one base",
         p.suspects.base)
    need(p.world.data_source != "folder" or p.watermark.dataset_size <= p.world.n_real, "wm_dataset_size",
         f"at most n_real={p.world.n_real} (a folder's licensed dataset is drawn from its real pool)",
         p.watermark.dataset_size)
    need(p.watermark.domain in p.world.dataset_dirs or p.watermark.domain in ("faces", "scenes", "generic"), "wm_domain",
         "'faces', 'scenes' or a domain with a dataset folder", p.watermark.domain)


def _preset(name: str, **flat) -> Preset:
    return Preset(name=name).replace(**flat)


# The CPU world (notebook 01 tells it): every image carries coarse content its caption does not predict, an SD-like 8x
# autoencoder, sources and suspects that fine-tune their text encoder with the UNet (without it the tiny models draw
# caption averages and copy nothing), and one set of innocent models per (suspect base, domain). The evidence behind
# each choice is in docs/decisions.md, section "The CPU world". With it, the sizes cpu and quick share unless quick
# sets its own (smoke overrides every one of them).
# Sources fine-tune on 128 private images, 16 of them 8 times over: they copy the duplicated ones and only some of the
# rest, so key selection has something to find that random training samples do not (docs/decisions.md, "Private sets
# with duplicated images": the source answering its own key prompts at 32 / 128 / 256 private images). A source's
# innocents are its domain's innocent models on both bases (8 per base and domain: 5 test ones each, 10 per source).
# Key selection's reference bases are chosen in notebook 03 on shadow models (the paper's single reference, the suspect
# base, or every public base, since half of those innocents fine-tune the source's own base); the preset's
# reference_bases="every" wins a tie there and is what key selection uses outside the notebooks' choice.
# The autoencoder trains 2000 steps (floor 0.09 instead of 0.13 at 800): ρ = 0.3 suspects then reproduce the keys
# they saw more closely and a tighter δ0 separates them (docs/decisions.md, "An 8× autoencoder trained 2000 steps").
CPU_WORLD = dict(identity_grid=4, vae_downsampling=8, scene_caption_list_size=64, n_private=128, private_duplicates=16,
                 duplicate_copies=8, source_batch_size=64, source_train_text_encoder=True, suspect_batch_size=64,
                 suspect_train_text_encoder=True, key_candidates=48, key_count=16, probe_seeds=4, memorization_prompts=32,
                 n_pretrain=2000, vae_steps=2000, pretrain_steps=1500, source_steps=1000, suspect_samples=128,
                 rho_values=(0.3, 1.0), suspects_per_setting=2, suspect_innocents=8, innocents_on_every_base=True,
                 shadow_fraction=0.4, descriptor_steps=300, reference_bases="every")


def _cpu_preset(name: str, **flat) -> Preset:
    return _preset(name, **{**CPU_WORLD, **flat})


PRESETS = {
    "smoke": _cpu_preset(
        "smoke", n_jobs=1, n_pretrain=96, n_private=24, private_duplicates=4, duplicate_copies=4, n_real=32, scene_caption_list_size=40,
        vae_steps=30, tp_vae_steps=30, pretrain_steps=30, pretrain_batch_size=16, source_steps=10, source_batch_size=16,
        suspect_samples=16, suspect_steps=4, suspect_batch_size=8, rho_values=(0.5, 1.0), suspects_per_setting=2,
        suspect_innocents=3, innocents_on_every_base=False, reference_bases="suspect", shadow_fraction=0.5,
        inference_steps=4, generation_batch_size=32, checkpoint_every=5, memorization_prompts=8,
        key_candidates=8, probe_seeds=2, key_count=4, query_images=2, descriptor_steps=5,
        cv_repeats=1, bootstrap_resamples=50, learning_curve_repeats=2,
        tp_generator_images=96, tp_generator_steps=6, tp_pool_per_class=6, tp_train_per_class=4,
        tp_test_per_class=4, tp_suspect_seeds=1, tp_classifier_epochs=1,
        tp_grubbs_batches=10,  # 24 test images: 15 batches would hold one or two images each
        wm_dataset_size=16, wm_fractions=(0.25, 1.0), wm_licensees=2, wm_models_per_setting=2, wm_clean_models=2,
        wm_focus_fraction=0.25, wm_focus_models=2, wm_removal=("diffusion:0.5",),
        wm_query_prompts=4, wm_query_images=1, wm_robustness=("jpeg:75", "noise:8"),
        wm_subspace_probe_images=4, wm_subspace_images=16,
    ),
    # The CPU world at a size a 2-core machine runs cold (data/results/workbook_runs.csv): the four fine-tuned sources
    # (base sources memorize only duplicated pre-training images, pretrain_duplicates, not measured), suspects on M = 256
    # samples for 1500 steps (the same epochs as M = 128 at 750; on shadow suspects, key coverage at rho = 0.3 from
    # 0.44-0.81 to 0.75-1.00 and a conf gap of about 0.48 against 0.28: docs/decisions.md, "Suspect recipe: M = 256,
    # 1500 steps, three per setting"), innocents shared per (suspect base, domain).
    # Dataset watermarking's licensees keep 750 steps (licensee_steps): they learn a 2% mark there, and fewer steps or a
    # smaller batch did not (docs/decisions.md, "Licensee fine-tunes: 750 steps of 64").
    # Three suspects per (source, rho): one shadow and two test ones. With one test suspect per setting a seed's rho = 0.3
    # mean rested on 4 models and Table 1's TPR on 2 per source (0, 0.5 or 1), and the single test suspects strayed from
    # what the shadows promised (same entry). Eight more suspects, about 10 minutes of notebook 02.
    # The v2 base's UNet is 32 channels wide instead of 48 (0.82 M parameters against 1.80 M): its training loop runs
    # 1.21x faster and a cold 01-05 at seed 3 met every attribution target with it in 61 min, against 73-76 min
    # (docs/decisions.md, "v2's UNet at width 32").
    # v1 keeps 48.
    "cpu": _cpu_preset("cpu", base_sources=False, suspect_samples=256, suspect_steps=1500, licensee_steps=750,
                       suspects_per_setting=3, learning_curve_repeats=5, unet_widths={"v2": 32}),
    "sd": _preset(
        "sd", device="cuda", dtype="float16", mixed_precision="fp16", resolution=512, n_jobs=1,
        data_source="folder", n_private=3000, n_real=1000, base_source_domain="scenes",
        dataset_dirs={}, base_checkpoints={}, pretrain_steps=1, vae_steps=1,
        source_steps=3000, source_batch_size=2, source_lr=2e-6,
        suspect_samples=500, suspect_steps=3000, suspect_batch_size=2, suspect_lr=2e-6,
        suspects_per_setting=30, inference_steps=50, guidance_scale=7.5, generation_batch_size=8,
        checkpoint_every=500, memorization_prompts=64,
        key_candidates=300, probe_seeds=4, key_count=30, query_images=4, descriptor_steps=3000,
        # TrainProVe's four generators (SD v1.4, LCM, PixArt-alpha, Stable Cascade) from local folders the
        # user downloaded, e.g. CompVis/stable-diffusion-v1-4, SimianLuo/LCM_Dreamshaper_v7,
        # PixArt-alpha/PixArt-XL-2-512x512, stabilityai/stable-cascade; classes and real images: CIFAR-10
        tp_checkpoints={}, tp_real_dir="",
        tp_classes=("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
        tp_pool_per_class=1000, tp_train_per_class=1000, tp_test_per_class=100, tp_suspect_seeds=3,
        tp_classifier_epochs=30, tp_resolution=32,  # CIFAR-10's size
        # dataset watermarking: 500 licensed CC3M images (the suspects' size); every fine-tune is 3000 steps at 512 px,
        # so the default plan is 2 x 2 x 2 x 2 marked + 2 laundered + 4 clean = 22 fine-tunes (widen it at will)
        wm_dataset_size=500, wm_fractions=(0.02, 0.1), wm_models_per_setting=2, wm_focus_models=2, wm_clean_models=4,
        wm_robustness=("jpeg:75",),
        # SD's VAE keeps low frequencies at 512 px, and a fitted subspace at 512 px would not fit in memory: whole band
        wm_pattern_subspace=0,
    ),
}
# A first look or a lecture: notebooks 01-05 cold in about 13 minutes on 2 cores (goal 15; 20 on a slower machine),
# the same world as ``cpu`` with one fine-tuned source per domain and the fewest suspects that still give every
# number an interval (one shadow and one test suspect per (source, rho); 2 test innocents per source, on the suspect
# base only). What buys the time (docs/decisions.md, "The quick preset's recipe"): the sources fine-tune v2, so the
# suspects ("other" base) train the cheaper v1; a shorter autoencoder and base pre-training (1200 / 1000 steps);
# suspects see M = 256 samples for 750 steps at twice cpu's learning rate (on shadow suspects at cpu: conf gap 0.35,
# against 0.45 for cpu's 1500 steps at 6e-4). 1000 suspect steps showed the same direction and took the run past
# 15 minutes.
PRESETS["quick"] = _cpu_preset("quick", fine_tuned_bases=("v2",), base_sources=False, vae_steps=1200,
                               pretrain_steps=1000, suspect_samples=256, suspect_steps=750, suspect_lr=1.2e-3,
                               cv_repeats=1, bootstrap_resamples=300, learning_curve_repeats=3,
                               innocents_on_every_base=False,
                               suspect_innocents=4,
                               # 06: the 2% cell and fully marked copies, 4 clean fine-tunes, one transform and one removal
                               wm_fractions=(0.02, 1.0), wm_focus_models=4, wm_clean_models=4,
                               wm_robustness=("jpeg:75",), wm_removal=("vae",))
# The sd code path at smoke sizes on the CPU: folder data, checkpoints and generators from local pipeline folders
# (``provlib.rehearsal`` builds tiny ones), so CI exercises everything the paper-scale run does except the GPU.
PRESETS["sd-rehearsal"] = PRESETS["sd"].replace(
    device="cpu", dtype="float32", mixed_precision="no", resolution=32, n_private=24, n_real=32,
    source_steps=4, source_batch_size=8, suspect_samples=16, suspect_steps=4, suspect_batch_size=8,
    rho_values=(0.5, 1.0), suspects_per_setting=2, inference_steps=4, guidance_scale=3.0, generation_batch_size=32,
    checkpoint_every=5, memorization_prompts=8, key_candidates=8, probe_seeds=2, key_count=4, query_images=2,
    descriptor_steps=5, cv_repeats=1, bootstrap_resamples=50, learning_curve_repeats=2,
    tp_classes=PRESETS["smoke"].trainprove.classes, tp_resolution=32, tp_pool_per_class=6, tp_train_per_class=4,
    tp_test_per_class=4, tp_suspect_seeds=1, tp_classifier_epochs=1,
    wm_dataset_size=16, wm_fractions=(0.25, 1.0), wm_licensees=2, wm_models_per_setting=2, wm_clean_models=2,
    wm_focus_fraction=0.25, wm_focus_models=2,
    wm_query_prompts=4, wm_query_images=1, wm_robustness=("jpeg:75",),
    wm_removal=("diffusion:0.5",),
)
PRESETS["sd-rehearsal"] = dataclasses.replace(PRESETS["sd-rehearsal"], name="sd-rehearsal")


def load_preset(name: str, *, inputs_for: str = "attribution", **overrides) -> Preset:
    """The named preset with notebook parameters applied; errors name the offending parameter.

    At paper scale the user's inputs are checked up front for the part of the workbook that will run:
    ``inputs_for="attribution"`` (notebooks 01-05: data folders and base checkpoints) or ``"trainprove"``
    (notebook 07: the four generators' checkpoints and the real class images).
    """
    if name not in PRESETS:
        raise ParameterError("preset", f"one of {sorted(PRESETS)}", name)
    if inputs_for not in INPUT_CHECKS:
        raise ParameterError("inputs_for", f"one of {sorted(INPUT_CHECKS)}", inputs_for)
    preset = PRESETS[name].replace(**overrides) if overrides else PRESETS[name]
    if preset.is_paper_scale:
        INPUT_CHECKS[inputs_for](preset)
    return preset


def check_paper_scale_inputs(p: Preset) -> None:
    """Paper scale needs the user's checkpoints and data folders; say exactly which one is missing."""
    for domain in p.data_domains:
        folder = p.world.dataset_dirs.get(domain)
        if folder is None or not Path(folder).expanduser().is_dir():
            raise ParameterError(f"dataset_dirs['{domain}']", "an existing folder of images with captions.csv or "
                                 "metadata.jsonl (faces: CelebA-Dialog-HQ, scenes: CC3M-val)", folder or p.world.dataset_dirs)
    for base in p.models.base_names:
        location = p.models.base_checkpoints.get(base)
        local = location is not None and (Path(location).expanduser() / "model_index.json").is_file()
        if not local and not (location and p.models.allow_download and HUB_ID.match(location)):
            raise ParameterError(f"base_checkpoints['{base}']", "a local Stable Diffusion pipeline folder "
                                 "(with model_index.json) or, with allow_download=True, a hub id",
                                 location or p.models.base_checkpoints)


INPUT_CHECKS = {"attribution": check_paper_scale_inputs, "trainprove": check_trainprove_inputs}
