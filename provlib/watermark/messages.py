"""The licensees' secret messages for dataset watermarking (leak tracing needs them apart from one another)."""
from __future__ import annotations

import numpy as np
from scipy.linalg import hadamard


def orthogonal_messages(n_bits: int, count: int, seed: int) -> np.ndarray:
    """``count`` seeded messages [count, n_bits], one per licensee, that agree pairwise in exactly half their bits.

    Why: a model that learned licensee i's mark reads, tested for licensee j's message, the share of the marks'
    correlation, (agreeing - disagreeing bits) / n_bits; independent 32-bit draws put that at 0.4 for some pair
    (an owner-side pilot named a wrong licensee that way: docs/decisions.md, "Licensees: orthogonal messages, crossed
    with the bases"). Rows of a Sylvester-Hadamard matrix are pairwise orthogonal; the rows are chosen, their bits
    permuted and XORed with one mask, all secret and seeded, so each message alone is still uniformly random (the
    false-positive test on a model that saw no mark stays exact).
    Needs n_bits a power of two and count <= n_bits; otherwise the messages are independent draws.
    """
    rng = np.random.default_rng(seed)
    if n_bits < 1 or n_bits & (n_bits - 1) or count > n_bits:
        return rng.integers(0, 2, (count, n_bits)).astype(np.uint8)
    rows = (hadamard(n_bits)[rng.choice(n_bits, count, replace=False)] < 0).astype(np.uint8)
    return rows[:, rng.permutation(n_bits)] ^ rng.integers(0, 2, n_bits).astype(np.uint8)
