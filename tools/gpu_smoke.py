"""Paper-scale code path on a CUDA machine, without real checkpoints: `python tools/gpu_smoke.py`.

Tiny pipelines trained here for a few steps stand in for the user's Stable Diffusion folders, so the `sd`
preset's machinery runs end to end: fp16 loading through diffusers, batched CUDA generation, fp16 mixed-precision
fine-tuning (the attribution suspects' recipe), TrainProVe's generators, classifiers and test, and the watermark
path (a mark through a base's fp16 VAE, detection). It checks
plumbing and measures speed; the numbers it prints say nothing about attribution quality.
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from provlib.core import models  # noqa: E402
from provlib.core.generate import generate  # noqa: E402
from provlib.core.train import train_denoiser  # noqa: E402
from provlib.presets import PRESETS, load_preset  # noqa: E402
from provlib.trainprove.classifier import predict  # noqa: E402
from provlib.trainprove.generators import REAL, attribute_weights, render_objects  # noqa: E402
from provlib.trainprove.test import verify  # noqa: E402
from provlib.trainprove.zoo import TrainProVeZoo  # noqa: E402
from provlib.watermark.detect import detect  # noqa: E402
from provlib.watermark.zoo import WatermarkZoo  # noqa: E402


def main() -> None:
    if not torch.cuda.is_available():
        raise SystemExit("tools/gpu_smoke.py needs a CUDA device")
    work = Path(tempfile.mkdtemp(prefix="gpu-smoke-"))
    t0 = time.time()
    # 1. tiny stand-ins for the four checkpoints, built on the CPU at the smoke preset
    smoke = TrainProVeZoo(load_preset("smoke"), work / "cpu-cache", show_progress=False)
    checkpoints = {g: smoke.generator_location(g) for g in smoke.generators}
    data, labels = render_objects(list(smoke.classes), 12, attribute_weights(REAL, 1.0, 0), seed=0, resolution=32,
                                  template="a photo of a {}")
    real_dir = work / "real"
    for i, (image, label) in enumerate(zip(data.images, labels)):
        folder = real_dir / smoke.classes[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{i}.png")
    print(f"stand-ins ready in {time.time() - t0:.0f} s")

    # 2. the sd preset's TrainProVe path: fp16 CUDA generation with each model card's sampler settings
    sd = load_preset("sd", inputs_for="trainprove", tp_checkpoints=checkpoints, tp_real_dir=str(real_dir),
                     tp_classes=smoke.classes, tp_pool_per_class=8, tp_train_per_class=8, tp_test_per_class=8,
                     tp_suspect_seeds=1, tp_classifier_epochs=2, generation_batch_size=16)
    zoo = TrainProVeZoo(sd, work / "sd-cache", show_progress=False)
    t = time.time()
    zoo.build_all()
    torch.cuda.synchronize()
    print(f"sd preset, TrainProVe: {len(zoo.generators)} generators x 3 sets + {len(zoo.classifier_specs())} classifiers "
          f"in {time.time() - t:.1f} s")
    tests = zoo.test_sets()
    spec = zoo.classifier_specs()[0]
    model = zoo.classifier(spec)
    verdict = verify(lambda x: predict(model, x), "sd14", tests, sd.trainprove.alpha)
    print(f"verdict for {spec.model_id}: verified={verdict.verified} p={verdict.p_value:.3g} accuracies={verdict.accuracies}")

    # 3. the attribution path: fp16 pipeline on CUDA, fp16 mixed-precision fine-tuning, batched generation
    pipe = models.load_pipeline(checkpoints["sd14"], device="cuda", dtype="float16")
    assert pipe.unet.dtype == torch.float16
    t = time.time()
    losses = train_denoiser(pipe, data, steps=50, batch_size=32, lr=1e-4, seed=0, mixed_precision="fp16", show_progress=False)
    torch.cuda.synchronize()
    print(f"fp16 mixed-precision fine-tuning: 50 steps in {time.time() - t:.2f} s, loss {np.mean(losses[:5]):.3f} -> "
          f"{np.mean(losses[-5:]):.3f}, weights back in {pipe.unet.dtype}")
    t = time.time()
    out = generate(pipe, data.captions[:64], batch_size=PRESETS["sd"].sampling.batch_size * 8, num_inference_steps=50,
                   guidance_scale=7.5, show_progress=False)
    torch.cuda.synchronize()
    assert out.images.shape == (64, 32, 32, 3) and np.isfinite(out.images).all()
    print(f"fp16 generation: 64 images x 50 steps in {time.time() - t:.2f} s")

    # 4. the watermark path: stamp, round trip through a base's fp16 VAE on CUDA, detect with the binomial test
    wm = WatermarkZoo(load_preset("sd", dataset_dirs={"faces": str(real_dir), "scenes": str(real_dir)},
                                  base_checkpoints={"v1": checkpoints["sd14"], "v2": checkpoints["lcm"]}),
                      work / "sd-cache", show_progress=False)
    scheme = wm.scheme("pattern").calibrated(data.images)
    message = wm.message("gpu-smoke")
    t = time.time()
    after_vae = wm.vae_round_trip(scheme.encode(data.images, message), "v1")
    found = detect(scheme, after_vae, message, alpha=0.01)
    assert after_vae.shape == data.images.shape and after_vae.dtype == np.uint8
    print(f"watermark through the fp16 VAE: {found.matches}/{found.n_bits} bits, p={found.p_value:.2g} "
          f"({time.time() - t:.2f} s; the stand-in VAE is barely trained, so this checks plumbing only)")
    print(f"gpu smoke passed in {time.time() - t0:.0f} s on {torch.cuda.get_device_name()}")


if __name__ == "__main__":
    main()
