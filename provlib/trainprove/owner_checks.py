"""Owner-side checks of TrainProVe's generators, made before any suspect exists.

TrainProVe can only tell a suspect trained on G from one trained on G' when the two generators' images differ as
real generators' do, and only verify anyone when G's images show their class. Two measures, both from the
defender's own images (its shadow sets to train, its fresh test sets to score):
- **generator attribution**: one classifier names the generator of an image (real generators: near-perfect). It
  learns from every image the owner drew from each generator apart from the fresh test set (``attribution_sets``);
- **class fidelity and transfer**: the classifier trained on G's images (the shadow) scored on every generator's
  fresh images; its own generator's column is G's class fidelity.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from provlib.trainprove.classifier import predict, train_classifier
from provlib.trainprove.test import LabelledImages


def attribution_sets(zoo) -> dict[str, LabelledImages]:
    """Per generator, the images the attribution classifier learns from: the defender's shadow set and the suspects'
    pool, both drawn from that generator and never its fresh test images (which it is scored on).

    The shadow set alone (100 per class) leaves the classifier short of data, its errors spread over every other
    generator: owner-side, 20 epochs on the shadow sets named 0.968 / 0.976 of the fresh images at seeds 0 / 1, on
    shadow set and pool (250 per class) 0.983 / 0.991 (docs/decisions.md, "Generator attribution: no flips, shadow
    set and pool")."""
    return {g: LabelledImages.concat([zoo.images(g, "shadow"), zoo.images(g, "pool")]) for g in zoo.generators}


def generator_attribution(train: dict[str, LabelledImages], test: dict[str, LabelledImages], *, epochs: int,
                          seed: int) -> tuple[float, pd.DataFrame]:
    """Accuracy of a classifier that names each fresh image's generator, and its confusion (rows sum to 1)."""
    names = list(train)
    images = np.concatenate([train[g].images for g in names])
    labels = np.concatenate([np.full(len(train[g]), i) for i, g in enumerate(names)])
    # no flip augmentation: a house style lights its images from one side, and a mirrored image shows another's light
    model, _ = train_classifier(images, labels, len(names), epochs=epochs, seed=seed, flips=False)
    rows, right, total = [], 0, 0
    for i, g in enumerate(names):
        predicted = predict(model, test[g].images)
        right, total = right + int((predicted == i).sum()), total + len(predicted)
        rows.append({"generator": g, **{f"named_{h}": float((predicted == j).mean()) for j, h in enumerate(names)}})
    return right / total, pd.DataFrame(rows)


def transfer_matrix(answers: dict, labels: dict[str, np.ndarray], shadow_of: dict[str, str]) -> pd.DataFrame:
    """Each shadow's accuracy (trained on ``generator``) on every generator's fresh images; ``own`` marks fidelity."""
    rows = []
    for generator, model_id in shadow_of.items():
        for tested, y in labels.items():
            a = np.asarray(answers[model_id][tested])
            predicted = a.argmax(1) if a.ndim == 2 else a
            rows.append({"trained_on": generator, "tested_on": tested, "accuracy": float((predicted == y).mean()),
                         "own": tested == generator})
    return pd.DataFrame(rows)
