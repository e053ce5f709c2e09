"""Scale presets: one frozen object per scale; notebook parameters override single fields.

``smoke`` exercises every code path in seconds (tests), ``cpu`` is the default embedded workbook,
``sd`` is paper scale (Stable Diffusion checkpoints the user provides, fp16 on CUDA).
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

from .errors import ParameterError
from .scenes import SIZES


@dataclass(frozen=True)
class Preset:
    name: str
    seed: int = 0
    device: str = "cpu"                 # "cpu" or "cuda"
    dtype: str = "float32"              # weights / inference dtype: "float32" or "float16"
    mixed_precision: str = "no"         # accelerate's setting for fine-tuning: "no", "fp16", "bf16"
    resolution: int = 32
    n_jobs: int = 2                     # parallel workers for the suspect zoo (1 = single process)

    # data: procedural domains at CPU scale, user folders at paper scale
    data_source: str = "procedural"     # "procedural" or "folder"
    dataset_dirs: dict = field(default_factory=dict)  # domain -> folder with captions.csv / metadata.jsonl
    n_pretrain: int = 3000              # generic images the tiny base models are pre-trained on
    n_private: int = 64                 # a source owner's private fine-tuning set, per domain
    n_real: int = 256                   # real-data pool per domain that suspects draw from
    scene_caption_list_size: int = 400  # the CC3M analogue's caption list
    base_source_domain: str = "generic"  # prompts / real data for the base-only sources

    # base ("pre-trained") models
    base_names: tuple = ("v1", "v2")
    base_checkpoints: dict = field(default_factory=dict)  # base -> local pipeline dir or hub id (paper scale)
    allow_download: bool = False        # hub ids are only fetched when this is True
    vae_steps: int = 1500
    pretrain_steps: int = 2500
    pretrain_batch_size: int = 32
    pretrain_lr: float = 6e-4

    # source models: each base fine-tuned on each private domain
    source_domains: tuple = ("faces", "scenes")
    source_steps: int = 2500
    source_batch_size: int = 16
    source_lr: float = 6e-4

    # suspect zoo
    suspect_samples: int = 128          # M: size of a suspect's fine-tuning set (paper: 500)
    # 400 steps x 16 = 50 epochs at lr 6e-4: chosen on v1-faces *shadow* models (notebook 03's story); the
    # paper's 12 epochs at lr 2e-6 left tiny suspects too close to their base to reproduce anything
    suspect_steps: int = 400
    suspect_batch_size: int = 16
    suspect_lr: float = 6e-4
    rho_values: tuple = (0.3, 0.5, 0.7, 1.0)
    suspects_per_setting: int = 6       # per (source, rho), rho = 0 (innocent) included
    shadow_fraction: float = 0.5        # share of each setting the defender may use (shadow models)
    suspect_base: str = "other"         # "other": the base the source was not built on; or a base name

    # generation and training mechanics
    inference_steps: int = 20
    guidance_scale: float = 3.0
    generation_batch_size: int = 64
    checkpoint_every: int = 500
    memorization_prompts: int = 64     # prompts per source in notebook 01's memorization check

    # instance-level attribution
    key_candidates: int = 64            # candidate prompts per source that key selection ranks
    probe_seeds: int = 8                # source / reference images per candidate prompt during selection
    key_count: int = 30                 # N: key samples per source (paper: 30)
    query_images: int = 4               # k: images the suspect is asked for per key prompt
    descriptor_steps: int = 1500        # training steps of the copy-detection descriptor (embedding space)

    # statistical-level attribution (discriminator)
    cv_repeats: int = 3                 # reshuffled shadow-model folds averaged when choosing the discriminator
    bootstrap_resamples: int = 1000     # resamples of test models behind every confidence interval
    learning_curve_repeats: int = 10    # random shadow subsets per point of the shadow-count learning curve

    # TrainProVe (notebook 07): generators G1..G4 made class-conditional images; suspects are classifiers
    tp_generators: tuple = ("sd14", "lcm", "pixart", "cascade")  # CPU analogues, or the real four at paper scale
    tp_checkpoints: dict = field(default_factory=dict)  # paper scale: generator name -> local pipeline folder
    tp_classes: tuple = ("circle", "square", "triangle", "diamond", "cross", "ring")
    tp_prompt_template: str = "a photo of a {}"
    tp_real_dir: str = ""               # paper scale: an image folder with one subfolder of real images per class
    tp_resolution: int = 32             # classifier input size; generations are resized to it
    tp_generator_images: int = 2000     # CPU scale: each analogue's own draw of labelled training images
    # CPU scale: denoiser training steps of each analogue, and the object sizes its world draws. Chosen on the generators'
    # own class fidelity (a classifier trained on a generator's images, tested on fresh ones from it), never on suspects:
    # 2500 steps over mixed sizes gave 0.23 for sd14 (small shapes do not survive a 4x VAE at 32 px), 6000 steps over big
    # objects 0.80
    tp_generator_steps: int = 6000
    tp_sizes: tuple = ("big",)
    tp_draw_concentration: float = 2.0  # CPU scale: Dirichlet skew of each analogue's attribute draw (smaller = more distinct)
    tp_pool_per_class: int = 200        # per generator: the generated pool suspects sample their training sets from
    tp_train_per_class: int = 100       # a suspect's (and the shadow's) training images per class
    tp_test_per_class: int = 50         # the defender's fresh test images per class and generator
    tp_suspect_seeds: int = 4           # suspects per training source
    tp_classifier_epochs: int = 20
    tp_alpha: float = 0.05              # significance level of the one-sided test

    # Watermarks (notebook 06): Baseline 1 of the attribution paper and dataset watermarking with leak tracing
    wm_bits: int = 32                   # message length (the attribution paper's Baseline 1: 32 bits)
    wm_schemes: tuple = ("dwtdct", "pattern")
    wm_dwtdct_step: float = 36.0        # QIM step of the DWT-DCT scheme (invisible-watermark's default scale)
    wm_pattern_strength: float = 2.0    # spread-spectrum mark amplitude, RMS per pixel value in 0-255 units
    wm_pattern_band: tuple = (1.0, 6.0)  # its frequency band, cycles per image
    wm_pattern_host_rejection: float = 1.0  # share of the image's own pattern projection removed (ISS)
    # the pattern scheme's subspace (0: the whole band): of the `wm_pattern_transmitted` band directions the base's VAE
    # passes best, the `wm_pattern_subspace` least used by image content. Chosen on the owner's side only (public and
    # owner images through the VAE): PSNR 35-37 dB, and a mark read from 4 round-tripped images per prompt
    wm_pattern_transmitted: int = 128
    wm_pattern_subspace: int = 64
    wm_subspace_probe_images: int = 48  # public images the VAE's response is measured on
    wm_subspace_images: int = 512       # public images the content's energy is measured on
    wm_baseline_scheme: str = "pattern"  # the scheme the source stamps into every generation (Baseline 1)
    wm_statistic: str = "soft"          # "soft" (matched filter, sign-randomization test) or "bits" (binomial on bits)
    wm_alpha: float = 0.01              # level of the model-level test (both statistics are exact, see watermark_detect)
    wm_key_alpha: float = 0.05          # per-prompt level behind Baseline 1's conf
    wm_domain: str = "scenes"           # the licensed dataset: a draw of this domain's real pool
    wm_dataset_size: int = 128
    wm_fractions: tuple = (0.01, 0.02, 0.05, 0.1, 1.0)  # share r of the licensed copy that is marked
    wm_strategies: tuple = ("image", "trigger")
    wm_licensees: int = 4               # K copies, each with its own message (and trigger)
    wm_models_per_setting: int = 4      # fine-tunes per (scheme, strategy, r), licensees in turn, bases alternating
    wm_clean_models: int = 8            # fine-tunes of the unmarked dataset: the false-positive population
    wm_query_prompts: int = 32          # prompts the defender sends a fine-tuned model per prompt set
    wm_query_images: int = 2            # images per prompt
    wm_robustness: tuple = ("jpeg:75", "resize:0.5", "crop:0.8", "noise:8")  # applied to generations and datasets
    wm_laundering_fraction: float = 0.1  # r of the copies a licensee transforms before fine-tuning
    wm_triggers: tuple = ()             # one trigger word per licensee; empty: words the domain's captions never use

    def __post_init__(self):
        _validate(self)

    def replace(self, **overrides) -> "Preset":
        """A copy with some fields changed; unknown names raise an error listing the valid ones."""
        known = {f.name for f in dataclasses.fields(self)}
        for key in overrides:
            if key not in known:
                raise ParameterError(key, f"a preset field, one of {sorted(known - {'name'})}")
        overrides = {k: tuple(v) if isinstance(getattr(self, k), tuple) and isinstance(v, list) else v
                     for k, v in overrides.items()}
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    # derived names
    @property
    def source_names(self) -> list[str]:
        """SD-v1, SD-v1-CelebA, SD-v1-CC3M, ... in this workbook's names: v1, v1-faces, v1-scenes, ..."""
        return [name for base in self.base_names for name in [base] + [f"{base}-{d}" for d in self.source_domains]]

    @property
    def is_paper_scale(self) -> bool:
        return self.data_source == "folder"


def _validate(p: Preset) -> None:
    def need(ok: bool, parameter: str, expected: str, got):
        if not ok:
            raise ParameterError(parameter, expected, got)

    for name in ("resolution", "n_jobs", "n_pretrain", "n_private", "n_real", "scene_caption_list_size",
                 "vae_steps", "pretrain_steps", "pretrain_batch_size", "source_steps", "source_batch_size",
                 "suspect_samples", "suspect_steps", "suspect_batch_size", "suspects_per_setting",
                 "inference_steps", "generation_batch_size", "checkpoint_every", "memorization_prompts",
                 "key_candidates", "probe_seeds", "key_count", "query_images", "descriptor_steps",
                 "cv_repeats", "bootstrap_resamples", "learning_curve_repeats", "tp_resolution", "tp_generator_images",
                 "tp_generator_steps", "tp_pool_per_class", "tp_train_per_class", "tp_test_per_class",
                 "tp_suspect_seeds", "tp_classifier_epochs", "wm_bits", "wm_dataset_size", "wm_licensees",
                 "wm_models_per_setting", "wm_clean_models", "wm_query_prompts", "wm_query_images",
                 "wm_subspace_probe_images", "wm_subspace_images", "wm_pattern_transmitted"):
        value = getattr(p, name)
        need(isinstance(value, int) and not isinstance(value, bool) and value >= 1, name, "a positive integer", value)
    need(p.device in ("cpu", "cuda"), "device", "'cpu' or 'cuda'", p.device)
    need(p.dtype in ("float32", "float16"), "dtype", "'float32' or 'float16'", p.dtype)
    need(p.mixed_precision in ("no", "fp16", "bf16"), "mixed_precision", "'no', 'fp16' or 'bf16'", p.mixed_precision)
    need(p.resolution % 8 == 0, "resolution", "a multiple of 8", p.resolution)
    need(p.data_source in ("procedural", "folder"), "data_source", "'procedural' or 'folder'", p.data_source)
    need(isinstance(p.rho_values, tuple) and len(p.rho_values) > 0, "rho_values", "a non-empty list of proportions", p.rho_values)
    for rho in p.rho_values:
        need(isinstance(rho, (int, float)) and 0.0 < rho <= 1.0, "rho_values",
             "proportions in (0, 1] (rho = 0, the innocent models, is always built)", rho)
    need(0.0 < p.shadow_fraction < 1.0, "shadow_fraction", "a number strictly between 0 and 1", p.shadow_fraction)
    need(p.suspects_per_setting >= 2, "suspects_per_setting", "at least 2 (one shadow and one test model)", p.suspects_per_setting)
    need(p.suspect_samples <= p.n_real, "suspect_samples", f"at most n_real={p.n_real} (suspects draw from the real pool)", p.suspect_samples)
    need(len(p.base_names) >= 1 and len(set(p.base_names)) == len(p.base_names), "base_names", "distinct base names", p.base_names)
    need(p.suspect_base == "other" or p.suspect_base in p.base_names, "suspect_base", f"'other' or one of {p.base_names}", p.suspect_base)
    need(p.suspect_base != "other" or len(p.base_names) >= 2, "suspect_base", "a base name when there is only one base", p.suspect_base)
    need(p.key_count <= p.key_candidates, "key_count", f"at most key_candidates={p.key_candidates}", p.key_count)
    need(p.probe_seeds >= 2, "probe_seeds", "at least 2 (strategy 2 measures agreement across seeds)", p.probe_seeds)
    need(p.guidance_scale >= 1.0, "guidance_scale", "a number >= 1", p.guidance_scale)
    if p.data_source == "procedural":
        need(p.base_source_domain == "generic" or p.base_source_domain in p.source_domains, "base_source_domain",
             "'generic' or one of source_domains", p.base_source_domain)
        need(set(p.source_domains) <= {"faces", "scenes"}, "source_domains", "a subset of ('faces', 'scenes')", p.source_domains)
    need(len(p.tp_generators) >= 3 and len(set(p.tp_generators)) == len(p.tp_generators), "tp_generators",
         "at least 3 distinct generator names (the defender's and at least 2 references)", p.tp_generators)
    need(len(p.tp_classes) >= 2 and len(set(p.tp_classes)) == len(p.tp_classes), "tp_classes",
         "at least 2 distinct class names", p.tp_classes)
    need(isinstance(p.tp_prompt_template, str) and p.tp_prompt_template.count("{}") == 1, "tp_prompt_template",
         "a prompt with one '{}' where the class name goes", p.tp_prompt_template)
    need(0.0 < p.tp_alpha < 1.0, "tp_alpha", "a significance level strictly between 0 and 1", p.tp_alpha)
    need(p.tp_draw_concentration > 0, "tp_draw_concentration", "a positive number", p.tp_draw_concentration)
    need(len(p.tp_sizes) >= 1 and set(p.tp_sizes) <= set(SIZES), "tp_sizes", f"a non-empty subset of {SIZES}", p.tp_sizes)
    need(p.tp_train_per_class <= p.tp_pool_per_class, "tp_train_per_class",
         f"at most tp_pool_per_class={p.tp_pool_per_class}", p.tp_train_per_class)
    need(p.device == "cuda" or p.dtype == "float32", "dtype", "'float32' on the CPU (fp16 needs device='cuda')", p.dtype)
    _validate_watermarks(p, need)


def _validate_watermarks(p: Preset, need) -> None:
    from .transforms import parse_transform
    from .watermark import SCHEMES
    from .watermark_detect import STATISTICS

    need(len(p.wm_schemes) >= 1 and set(p.wm_schemes) <= set(SCHEMES), "wm_schemes", f"a non-empty subset of {SCHEMES}",
         p.wm_schemes)
    need(p.wm_statistic in STATISTICS, "wm_statistic", f"one of {STATISTICS}", p.wm_statistic)
    need(p.wm_baseline_scheme in SCHEMES, "wm_baseline_scheme", f"one of {SCHEMES}", p.wm_baseline_scheme)
    need(len(p.wm_strategies) >= 1 and set(p.wm_strategies) <= {"image", "trigger"}, "wm_strategies",
         "a non-empty subset of ('image', 'trigger')", p.wm_strategies)
    need(len(p.wm_fractions) >= 1 and all(isinstance(r, (int, float)) and 0.0 < r <= 1.0 for r in p.wm_fractions),
         "wm_fractions", "a non-empty list of marked shares in (0, 1]", p.wm_fractions)
    need(0.0 < p.wm_laundering_fraction <= 1.0, "wm_laundering_fraction", "a marked share in (0, 1]", p.wm_laundering_fraction)
    need(p.wm_licensees >= 2, "wm_licensees", "at least 2 licensees (leak tracing chooses among them)", p.wm_licensees)
    need(p.wm_clean_models >= 2, "wm_clean_models", "at least 2 clean fine-tunes", p.wm_clean_models)
    need(p.wm_dataset_size <= p.n_real, "wm_dataset_size", f"at most n_real={p.n_real} (drawn from the real pool)",
         p.wm_dataset_size)
    need(p.wm_query_prompts <= p.wm_dataset_size, "wm_query_prompts", f"at most wm_dataset_size={p.wm_dataset_size}",
         p.wm_query_prompts)
    need(p.wm_domain in p.dataset_dirs or p.wm_domain in ("faces", "scenes", "generic"), "wm_domain",
         "'faces', 'scenes' or a domain with a dataset folder", p.wm_domain)
    for level in ("wm_alpha", "wm_key_alpha"):
        need(0.0 < getattr(p, level) < 1.0, level, "a significance level strictly between 0 and 1", getattr(p, level))
    need(0.0 <= p.wm_pattern_host_rejection <= 1.0, "wm_pattern_host_rejection", "a share in [0, 1]",
         p.wm_pattern_host_rejection)
    need(isinstance(p.wm_pattern_subspace, int) and (p.wm_pattern_subspace == 0 or
                                                     p.wm_bits <= p.wm_pattern_subspace <= p.wm_pattern_transmitted),
         "wm_pattern_subspace", f"0 (the whole band) or between wm_bits={p.wm_bits} and wm_pattern_transmitted="
         f"{p.wm_pattern_transmitted} directions", p.wm_pattern_subspace)
    need(p.wm_pattern_strength > 0, "wm_pattern_strength", "a positive RMS in 0-255 pixel units", p.wm_pattern_strength)
    need(p.wm_dwtdct_step > 0, "wm_dwtdct_step", "a positive quantization step", p.wm_dwtdct_step)
    need(len(p.wm_pattern_band) == 2 and 0 < p.wm_pattern_band[0] < p.wm_pattern_band[1], "wm_pattern_band",
         "(low, high) cycles per image with 0 < low < high", p.wm_pattern_band)
    need(not p.wm_triggers or (len(p.wm_triggers) >= p.wm_licensees and len(set(p.wm_triggers)) == len(p.wm_triggers)
                               and all(isinstance(t, str) and t and " " not in t for t in p.wm_triggers)),
         "wm_triggers", f"empty, or at least wm_licensees={p.wm_licensees} distinct single words", p.wm_triggers)
    for spec in p.wm_robustness:
        parse_transform(spec, "wm_robustness")


PRESETS = {
    "smoke": Preset(
        name="smoke", n_jobs=1, n_pretrain=96, n_private=24, n_real=32, scene_caption_list_size=40,
        vae_steps=30, pretrain_steps=30, pretrain_batch_size=16, source_steps=10, suspect_samples=16,
        suspect_steps=4, suspect_batch_size=8, rho_values=(0.5, 1.0), suspects_per_setting=2,
        inference_steps=4, generation_batch_size=32, checkpoint_every=5, memorization_prompts=8,
        key_candidates=8, probe_seeds=2, key_count=4, query_images=2, descriptor_steps=5,
        cv_repeats=1, bootstrap_resamples=50, learning_curve_repeats=2,
        tp_generator_images=96, tp_generator_steps=6, tp_pool_per_class=6, tp_train_per_class=4,
        tp_test_per_class=4, tp_suspect_seeds=1, tp_classifier_epochs=1,
        wm_dataset_size=16, wm_fractions=(0.25, 1.0), wm_licensees=2, wm_models_per_setting=2, wm_clean_models=2,
        wm_query_prompts=4, wm_query_images=1, wm_robustness=("jpeg:75", "noise:8"), wm_laundering_fraction=0.25,
        wm_subspace_probe_images=4, wm_subspace_images=16,
    ),
    # laundering is measured where the unlaundered mark is detected: at cpu scale only a fully marked copy is
    # (notebook 06, first cpu run: TPR 1.0 at r = 100%, at most 0.25 below), so a 10% copy would measure nothing
    "cpu": Preset(name="cpu", wm_laundering_fraction=1.0),
    "sd": Preset(
        name="sd", device="cuda", dtype="float16", mixed_precision="fp16", resolution=512, n_jobs=1,
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
        tp_classifier_epochs=30,
        # dataset watermarking: 500 licensed CC3M images (the suspects' size); every fine-tune is 3000 steps at 512 px,
        # so the default plan is 2 x 2 x 2 x 2 marked + 2 laundered + 4 clean = 22 fine-tunes (widen it at will)
        wm_dataset_size=500, wm_fractions=(0.02, 0.1), wm_models_per_setting=2, wm_clean_models=4,
        wm_robustness=("jpeg:75",),
        # SD's VAE keeps low frequencies at 512 px, and a fitted subspace at 512 px would not fit in memory: whole band
        wm_pattern_subspace=0,
    ),
}


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


def check_trainprove_inputs(p: Preset) -> None:
    """TrainProVe at paper scale needs a local checkpoint per generator and a folder of real class images."""
    for name in p.tp_generators:
        if name not in p.tp_checkpoints:
            raise ParameterError(f"tp_checkpoints['{name}']", "a local folder of that generator's diffusers pipeline "
                                 "(e.g. a snapshot of its hub repository)", p.tp_checkpoints)
    if not p.tp_real_dir:
        raise ParameterError("tp_real_dir", "a folder with one subfolder of real images per class", p.tp_real_dir)


def check_paper_scale_inputs(p: Preset) -> None:
    """Paper scale needs the user's checkpoints and data folders; say exactly which one is missing."""
    for domain in sorted(set(p.source_domains) | {p.base_source_domain}):
        if domain not in p.dataset_dirs:
            raise ParameterError(f"dataset_dirs['{domain}']", "a folder of images with captions.csv or metadata.jsonl "
                                 "(faces: CelebA-Dialog-HQ, scenes: CC3M-val)", p.dataset_dirs)
    for base in p.base_names:
        if base not in p.base_checkpoints:
            raise ParameterError(f"base_checkpoints['{base}']", "a local Stable Diffusion pipeline folder "
                                 "(with model_index.json) or, with allow_download=True, a hub id", p.base_checkpoints)


INPUT_CHECKS = {"attribution": check_paper_scale_inputs, "trainprove": check_trainprove_inputs}
