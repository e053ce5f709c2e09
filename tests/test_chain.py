"""The signal chain's per-suspect links on hand-made images: coverage, near-copies, covered vs uncovered keys."""
import json
from types import SimpleNamespace

import numpy as np

from provlib.attribution.chain import signal_chain, suspect_chain
from provlib.attribution.distance import PixelSpace
from provlib.attribution.keys import KeySet
from provlib.core.data import CaptionedImageSet
from provlib.core.suspects import SuspectSpec


def flat(value: int) -> np.ndarray:
    return np.full((32, 32, 3), value, np.uint8)


class StubZoo:
    """What the chain reads from a zoo: a suspect's saved training ids and the source's generated pool."""

    def __init__(self, folder, train_ids):
        self.p = SimpleNamespace(world=SimpleNamespace(resolution=32))
        self.show_progress = False
        self.folder = folder
        (folder / "suspect.json").write_text(json.dumps({"train_ids": train_ids}))
        self.pool = CaptionedImageSet(np.stack([flat(0), flat(100), flat(255)]), ["key a", "other", "key c"],
                                      ["gen/s/0", "gen/s/1", "gen/s/2"])

    def training_record(self, spec):
        return json.loads((self.folder / "suspect.json").read_text())

    def generated_pool(self, spec):
        return self.pool


def keys() -> KeySet:
    # key a is generated verbatim, key b has a near-copy under another caption, key c was never generated
    import pandas as pd
    return KeySet("s", "strategy12", ["key a", "key b", "key c"], np.stack([flat(0), flat(104), flat(200)]),
                  np.ones(3), pd.DataFrame({"candidate": [0, 1, 2]}))


def test_coverage_near_copies_and_covered_distances(tmp_path):
    zoo = StubZoo(tmp_path, ["gen/s/0", "gen/s/1", "real/3"])
    spec = SuspectSpec("m", "s", 0.5, 1, "test", "v2", "faces")
    row = suspect_chain(zoo, spec, keys(), np.array([0.01, 0.05, 0.4]), PixelSpace(), delta0=0.1)
    assert row["coverage"] == 2 / 3            # a by its prompt, b by a near-copy of its image
    assert row["near_copy_share"] == 1.0       # both generated images copy a key
    assert np.isclose(row["d_covered"], 0.03) and np.isclose(row["d_uncovered"], 0.4)
    assert row["conf"] == 2 / 3 and row["median_distance"] == 0.05


def test_innocent_suspects_have_no_coverage_and_the_table_groups_by_setting(tmp_path):
    import pandas as pd
    zoo = StubZoo(tmp_path, ["real/1", "real/2"])
    specs = [SuspectSpec(f"m{i}", "s", 0.0, i, "test", "v2", "faces") for i in range(2)]
    distances = pd.DataFrame([{"model_id": s.model_id, "key_rank": r + 1, "distance": d}
                              for s in specs for r, d in enumerate((0.3, 0.2, 0.25))])
    per_model, table = signal_chain(zoo, specs, {"s": keys()}, distances, PixelSpace(), 0.1, {"s": 0.9})
    assert (per_model.coverage == 0).all() and per_model.d_covered.isna().all()
    assert len(table) == 1 and table.n_models.iloc[0] == 2 and table.source_copy_rate.iloc[0] == 0.9
    assert np.isclose(table.d_uncovered.iloc[0], 0.25)
