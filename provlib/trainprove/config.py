"""TrainProVe's configuration (notebook 07): generators G1..G4 make class-conditional images; suspects are classifiers."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from provlib.core.config import (
    Section,
    at_least_int,
    choice,
    mapping,
    names,
    number,
    numbers_in,
    positive_int,
    positive_number,
    probability_open,
    setting,
    text,
)
from provlib.core.errors import ParameterError
from provlib.core.scenes import SIZES


def _template(value):
    return None if isinstance(value, str) and value.count("{}") == 1 else "a prompt with one '{}' where the class name goes"


def _learning_rates(value):
    if isinstance(value, dict) and value and all(isinstance(k, str) and positive_number(v) is None
                                                 for k, v in value.items()):
        return None
    return "a dict of architecture name -> learning rate (a positive number), e.g. {'v1': 0.004, 'v2': 0.002}"


def _step_counts(value):
    if isinstance(value, dict) and all(isinstance(k, str) and positive_int(v) is None for k, v in value.items()):
        return None
    return "a dict of generator name -> sampling steps (a positive integer), e.g. {'lcm': 12}"


@dataclass(frozen=True)
class TrainProVe(Section):
    generators: tuple = setting(("sd14", "lcm", "pixart", "cascade"), names(at_least=3))  # CPU analogues or the real four
    checkpoints: dict = setting({}, mapping)       # paper scale: generator name -> local pipeline folder
    classes: tuple = setting(("circle", "square", "triangle", "diamond", "cross", "ring"), names(at_least=2))
    prompt_template: str = setting("a photo of a {}", _template)
    real_dir: str = setting("", text)              # paper scale: a folder with one subfolder of real images per class
    # classifier input size; generations are resized to it. CPU scale: 16 px, a quarter of every classifier's work at
    # 32 px; a classifier of the shadow's recipe names the rendered 32 px world's classes as well at 16 px (0.97) and
    # on its autoencoder's reconstructions 0.85 (0.86 at 32 px; docs/decisions.md, "Classifiers at 16 px; 100 test
    # images per class")
    resolution: int = setting(16, positive_int)
    generator_images: int = setting(2000, positive_int)  # CPU scale: each analogue's own draw of labelled training images
    # CPU scale: the analogues' autoencoder training steps, apart from the attribution world's (models.vae_steps)
    vae_steps: int = setting(1500, positive_int)
    # CPU scale: denoiser training steps, batch size and learning rate of each analogue (trained from scratch on its own
    # draw, its text encoder frozen, provlib.trainprove.analogues). Chosen on the generators' own class fidelity (a
    # classifier trained on a generator's images, tested on fresh ones from it), never on suspects (docs/decisions.md,
    # "Generator recipe: bare captions, frozen text encoder, cosine decay"): small shapes do not survive a 4x VAE at 32
    # px; bare class captions at lr 4e-3 learn the class in a fraction of the steps of detailed captions at 6e-4. The
    # learning rate is per tiny architecture (``models.TINY_ARCHITECTURES``): the larger v2 stays at chance at 4e-3.
    # With the text encoder frozen, the weakest analogue (pixart) at a constant rate swings from one step to the next
    # (seed 0: 0.71 / 0.93 / 0.93 at 1750 / 2000 / 2500 steps, seed 1: 0.79 / 0.70 / 0.83); decaying the rate to zero
    # over 2000 steps (cosine) ends it at 0.88 and 0.82. 2000 steps is what four analogues can take within the 15-minute
    # notebook on 2 cores. (With the text encoder trained, the cosine schedule did not help.)
    generator_steps: int = setting(2000, positive_int)
    generator_batch_size: int = setting(32, positive_int)
    generator_lrs: dict = setting({"v1": 4e-3, "v2": 2e-3}, _learning_rates)
    # the learning rate's course over those steps (diffusers' schedule names)
    generator_lr_schedule: str = setting("cosine", choice("constant", "cosine", "linear"))
    # CPU scale: sampling steps of an analogue where they differ from its real model's (the table's ``steps``). The
    # real LCM is distilled for 4 steps; its analogue is not, and its class fidelity at 4 / 8 / 12 steps is 0.59 /
    # 0.66 / 0.79 at seed 0 and 0.53 / 0.68 / 0.74 at seed 1 (docs/decisions.md, "Guidance 50; LCM at 12 steps"):
    # it keeps the few-step LCM scheduler, at 12 steps
    sampling_steps: dict = setting({"lcm": 12}, _step_counts)
    sizes: tuple = setting(("big",), names(allowed=SIZES))
    draw_concentration: float = setting(2.0, positive_number)  # Dirichlet skew of each analogue's attribute draw
    # CPU scale: the share of a generator's training captions that name every attribute (the rest are the bare class
    # prompt the defender later queries with)
    caption_detail: float = setting(0.0, number(0, 1, text="a share from 0 (bare class prompts only) to 1"))
    # CPU scale: how strongly each analogue's training images carry its house style (provlib.trainprove.styles;
    # 0: none, the generators then differ only in attribute frequencies, architecture and sampler)
    style_strength: float = setting(1.0, number(0, 2, text="a number from 0 (no house style) to 2"))
    pool_per_class: int = setting(150, positive_int)   # per generator: the generated pool suspects sample from
    train_per_class: int = setting(100, positive_int)  # a suspect's (and the shadow's) training images per class
    # the defender's fresh test (validation) images per class and generator. Grubbs' threshold is its critical value
    # times the shadow's spread over batches of them, and a batch of 20 images leaves a 0.7-accurate shadow a binomial
    # spread of 0.10 (threshold 0.25 at n = 15); 100 per class give batches of 40 (spread 0.07, threshold 0.17)
    test_per_class: int = setting(100, positive_int)
    suspect_seeds: int = setting(4, positive_int)      # suspects per training source
    # each suspect's training recipe, unlike the shadow's (the small CNN, lr 2e-3, no weight decay, batch 64,
    # cross-entropy): the k-th suspect of a source takes the k-th architecture in turn, the rest is drawn per suspect
    # the families of the authors' suspects (ResNet, ViT); an MLP or a small ConvNeXt is far weaker than the shadow at
    # this data size and fails the accuracy test whatever its data (docs/decisions.md, "Suspect families: CNN, ResNet,
    # tiny ViT")
    suspect_architectures: tuple = setting(("cnn", "resnet", "vit"),
                                           names(allowed=("cnn", "resnet", "vit", "mlp", "convnext")))
    suspect_lrs: tuple = setting((1e-3, 2e-3, 4e-3), numbers_in(0, 1, what="learning rates"))
    suspect_weight_decays: tuple = setting((0.0, 5e-4, 5e-2), numbers_in(0, 1, low_open=False, what="weight decays"))
    suspect_batch_sizes: tuple = setting((32, 64, 128), lambda v: None if isinstance(v, (list, tuple)) and v and all(
        positive_int(b) is None for b in v) else "a non-empty list of positive integers")
    suspect_losses: tuple = setting(("ce", "focal"), names(allowed=("ce", "focal")))
    classifier_epochs: int = setting(20, positive_int)
    alpha: float = setting(0.05, probability_open)     # significance level of every rule's one-sided test
    # the published Grubbs decision: the defender's fresh images split into this many batches give the shadow's
    # reference sample, and the Student-t quantile is taken at 1 - alpha/(2n) ("published", the authors' code) or
    # 1 - alpha/n ("textbook", the one-sided value). The paper fixes no n; it sets both the threshold's noise and
    # its size. Chosen owner-side on calibration models the owner trains itself (108 pairs at seed 0): accuracy
    # 0.84 / 0.90 / 0.95 / 0.98 / 0.94 at n = 5 / 10 / 15 / 20 / 30, FPR 0 up to 20, then 0.06; on an earlier
    # generator recipe 15 was best (docs/decisions.md, "Grubbs as published, n = 20 batches")
    grubbs_batches: int = setting(20, at_least_int(3))
    grubbs_quantile: str = setting("published", choice("published", "textbook"))

    def validate(self):
        self.require(self.train_per_class <= self.pool_per_class, "train_per_class",
                     f"at most pool_per_class={self.pool_per_class}")
        self.require(self.grubbs_batches <= self.test_per_class * len(self.classes), "grubbs_batches",
                     f"at most the defender's test images per generator ({self.test_per_class * len(self.classes)})")


def check_trainprove_inputs(preset) -> None:
    """TrainProVe at paper scale needs a local checkpoint per generator and a folder of real class images."""
    tp = preset.trainprove
    for name in tp.generators:
        location = tp.checkpoints.get(name)
        if location is None or not (Path(location).expanduser() / "model_index.json").is_file():
            raise ParameterError(f"tp_checkpoints['{name}']", "a local folder of that generator's diffusers pipeline "
                                 "(with model_index.json, e.g. a snapshot of its hub repository)",
                                 location or tp.checkpoints)
    if not tp.real_dir or not Path(tp.real_dir).expanduser().is_dir():
        raise ParameterError("tp_real_dir", "a folder with one subfolder of real images per class", tp.real_dir)
