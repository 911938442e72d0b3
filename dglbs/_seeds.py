"""Independent random streams derived from a base seed.

``seed + epoch`` makes streams overlap: seed ``s`` at epoch ``e + 1`` is seed ``s + 1``
at epoch ``e``, so runs with "different" seeds share their batch orders. Every stream
here is instead keyed by a tuple of integers hashed with numpy's ``SeedSequence``
(a proper mixing function, the same on every platform and in every process).
"""
from __future__ import annotations

import numpy as np
import torch

SEED_BITS = 63
"""Mixed seeds are non-negative and fit ``torch.Generator.manual_seed``."""


def mix_seed(*keys: int) -> int:
    """A seed in ``[0, 2**63)`` determined by the integer ``keys`` and well mixed in each.

    Examples
    --------
    >>> mix_seed(0, 1) != mix_seed(1, 0)
    True
    """
    if any(isinstance(key, bool) or int(key) != key or key < 0 for key in keys):
        raise ValueError(f"seed keys must be non-negative integers, got {keys!r}")
    state = np.random.SeedSequence([int(key) for key in keys]).generate_state(1, np.uint64)
    return int(state[0]) >> (64 - SEED_BITS)


def generator_for(*keys: int) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with :func:`mix_seed` of ``keys``."""
    return torch.Generator().manual_seed(mix_seed(*keys))
