"""The interface between the shared trainer and a modality's contrastive method."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn


class ContrastiveMethod(nn.Module):
    """A contrastive method the shared :class:`~dglbs.trainer.Trainer` can train.

    A method owns its encoder(s), its view function (augmentations) and its
    projection head; the trainer owns the loss, the sampler and the loop.
    ``batch`` is whatever the dataset's collate function returns for one
    mini-batch of B instances (a batched ``DGLGraph``, an image tensor, token ids…).
    """

    def forward(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Two projected views of the batch, row-aligned.

        Returns
        -------
        (z1, z2) : pair of float tensors of shape ``(B, p)``
            ``z1[i]`` and ``z2[i]`` form the positive pair of instance ``i``; every
            other row is one of its in-batch negatives.
        """
        raise NotImplementedError

    def embed(self, batch: Any) -> torch.Tensor:
        """Representations used downstream and for the sampler's proximity graph.

        Returns
        -------
        Tensor of shape ``(B, d)``, no augmentation, called under ``torch.no_grad``.
        """
        raise NotImplementedError

    def on_step_end(self, progress: float) -> None:
        """Called after each optimizer step with training progress in ``[0, 1]``
        (e.g. a momentum encoder's update). Does nothing by default."""
