"""GraphCL (You et al., NeurIPS 2020): graph contrastive learning with augmentations."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from dgl import DGLGraph
from torch import Tensor, nn

from dglbs.method import ContrastiveMethod
from dglbs_models.augment_graph import check_augmentation_names, check_ratio, random_augment


class GraphCL(ContrastiveMethod):
    """GraphCL's views, encoder and projection head for the shared trainer.

    Each call of :meth:`forward` makes two views of the batch, each with one
    augmentation drawn uniformly (per batch, independently per view) from
    ``augmentations``, encodes them and projects them with a 2-layer MLP head. Both
    views are augmented, as in the GraphCL paper (its unsupervised TU script instead
    pairs the original graph with one augmented view).

    Parameters
    ----------
    encoder : nn.Module
        Graph encoder called as ``encoder(bg, feat) -> (B, encoder.out_dim)``, e.g.
        :class:`dglbs_models.gin.GIN`; it must have an int ``out_dim`` attribute.
    augmentations : sequence of str
        Names from :data:`dglbs_models.augment_graph.AUGMENTATIONS`.
    ratio : float
        Augmentation strength in ``[0, 1)``.
    proj_dim : int or None
        Output size of the projection head; ``None`` keeps ``encoder.out_dim`` as GraphCL.
    seed : int
        Seed of :attr:`generator`, the only source of augmentation randomness.

    Attributes
    ----------
    generator : torch.Generator
        CPU generator driving the augmentations; its state is saved in ``state_dict()``
        (as extra state) so a resumed run continues the same augmentation stream.
    """

    def __init__(
        self,
        encoder: nn.Module,
        *,
        augmentations: Sequence[str] = ("drop_nodes", "subgraph"),
        ratio: float = 0.2,
        proj_dim: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        out_dim = getattr(encoder, "out_dim", None)
        if not isinstance(encoder, nn.Module) or isinstance(out_dim, bool) or not isinstance(out_dim, int):
            raise TypeError(
                f"encoder must be an nn.Module with an int out_dim attribute (e.g. dglbs_models.gin.GIN), "
                f"got {type(encoder).__name__}"
            )
        check_augmentation_names(augmentations)
        check_ratio(ratio)
        if proj_dim is not None and (isinstance(proj_dim, bool) or not isinstance(proj_dim, int) or proj_dim < 1):
            raise ValueError(f"proj_dim must be a positive int or None (use encoder.out_dim), got {proj_dim!r}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int, got {seed!r}")
        self.encoder = encoder
        self.augmentations = tuple(augmentations)
        self.ratio = float(ratio)
        self.proj_dim = out_dim if proj_dim is None else proj_dim
        self.head = nn.Sequential(
            nn.Linear(out_dim, out_dim),
            nn.ReLU(),
            nn.Linear(out_dim, self.proj_dim),
        )
        self.generator = torch.Generator().manual_seed(seed)

    def forward(self, batch: tuple[DGLGraph, Tensor]) -> tuple[Tensor, Tensor]:
        """Project two augmented views of the batch.

        Parameters
        ----------
        batch : (DGLGraph, Tensor)
            Batched graph of B graphs with float ``ndata["feat"]`` of shape ``(N, D)``,
            and int64 labels ``(B,)`` (ignored).

        Returns
        -------
        (z1, z2) : pair of float tensors of shape ``(B, proj_dim)``
        """
        bg, _ = batch
        feat = bg.ndata["feat"]
        views = [random_augment(bg, feat, self.augmentations, self.ratio, self.generator) for _ in range(2)]
        z1, z2 = (self.head(self.encoder(view_graph, view_feat)) for view_graph, view_feat in views)
        return z1, z2

    def embed(self, batch: tuple[DGLGraph, Tensor]) -> Tensor:
        """Encoder output on the unaugmented graphs (no projection head).

        Returns
        -------
        Tensor
            Float tensor of shape ``(B, encoder.out_dim)``.
        """
        bg, _ = batch
        return self.encoder(bg, bg.ndata["feat"])

    def get_extra_state(self) -> Tensor:
        return self.generator.get_state()

    def set_extra_state(self, state: Tensor) -> None:
        self.generator.set_state(state.cpu())
