"""Argument checks shared by the public functions; messages name the bad value."""
from __future__ import annotations

import numbers

import torch


def check_embeddings(embeddings: object, *, num_instances: int | None = None) -> torch.Tensor:
    """Return ``embeddings`` if it is a finite 2-D floating-point tensor, else raise."""
    if not isinstance(embeddings, torch.Tensor):
        raise TypeError(
            f"embeddings must be a torch.Tensor of shape (N, d), got {type(embeddings).__name__}"
        )
    if embeddings.dim() != 2:
        raise ValueError(
            f"embeddings must be 2-D (N, d), got shape {tuple(embeddings.shape)}"
        )
    if embeddings.shape[1] == 0:
        raise ValueError(
            f"embeddings have shape {tuple(embeddings.shape)}: zero dimensions per "
            "instance; pass at least one feature per row"
        )
    if not embeddings.is_floating_point():
        raise TypeError(
            f"embeddings must be floating point, got dtype {embeddings.dtype}; "
            "convert with .float()"
        )
    if num_instances is not None and embeddings.shape[0] != num_instances:
        raise ValueError(
            f"embeddings has {embeddings.shape[0]} rows but the dataset has "
            f"{num_instances} instances; pass one embedding per instance"
        )
    finite = torch.isfinite(embeddings).all(dim=1)
    if not bool(finite.all()):
        bad = torch.nonzero(~finite).flatten()
        raise ValueError(
            f"embeddings contain NaN or inf in {bad.numel()} rows (first: row "
            f"{int(bad[0])}); check the encoder's output before building a graph"
        )
    return embeddings


def check_int(name: str, value: object, *, low: int, high: int | None = None) -> int:
    """Return ``value`` as int if it is an integer in ``[low, high]``, else raise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {value!r}")
    value = int(value)
    if value < low or (high is not None and value > high):
        bound = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be {bound}, got {value}")
    return value


def check_probability(name: str, value: object) -> float:
    """Return ``value`` as float if it is a real number in ``[0, 1]``, else raise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a float in [0, 1], got {value!r}")
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")
    return value


def normalize_rows(embeddings: torch.Tensor) -> torch.Tensor:
    """Rows scaled to unit L2 norm without overflow, as float32 (float64 stays float64).

    ``F.normalize`` squares the entries, so rows with entries above ~1e19 (float32)
    overflow to an infinite norm and become zero rows; dividing each row by its
    largest magnitude first keeps every finite row. All-zero rows stay zero.
    """
    embeddings = embeddings.detach()
    dtype = torch.float64 if embeddings.dtype == torch.float64 else torch.float32
    # The largest magnitude per row is a reduction: no temporary copy of the rows.
    scale = torch.linalg.vector_norm(embeddings, ord=float("inf"), dim=1, keepdim=True).to(dtype)
    unit = embeddings.to(dtype) / torch.where(scale > 0, scale, torch.ones_like(scale))
    norm = torch.linalg.vector_norm(unit, dim=1, keepdim=True)
    return unit.div_(torch.where(norm > 0, norm, torch.ones_like(norm)))
