"""BatchSampler at a million instances on this machine (the scale-out issue, item 5).

Trains a small MLP encoder with InfoNCE on N = 1,280,000 synthetic instances (d = 128,
a mixture of 1,000 Gaussian clusters; views are the instance plus noise) with the
shared ``Trainer`` and ``WalkBatchSampler`` (M = 1000, K = 100, B = 512, t = 100), for a
few hundred steps with several graph refreshes, refreshed from the embedding bank (no
encode pass) and built in the background (``build_lag``). Prints the trainer's costs
per epoch, the sampler's share of a step and the peak RSS.

Usage:
    python benchmarks/bench_million.py                  # N = 1,280,000, 300 steps
    python benchmarks/bench_million.py --n 100000 --steps 60
"""
from __future__ import annotations

import argparse
import resource
import time

import torch
from torch import nn

from dglbs import WalkBatchSampler
from dglbs.losses import InfoNCELoss
from dglbs.method import ContrastiveMethod
from dglbs.trainer import Trainer


class NoisyViewsMLP(ContrastiveMethod):
    """Two views: the input plus Gaussian noise; an MLP encoder and projection."""

    def __init__(self, dim: int, hidden: int = 128, out: int = 64, noise: float = 0.5) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, out))
        self.noise = noise

    def forward(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return (self.encoder(batch + self.noise * torch.randn_like(batch)),
                self.encoder(batch + self.noise * torch.randn_like(batch)))

    def embed(self, batch: torch.Tensor) -> torch.Tensor:
        return self.encoder(batch)


class Rows:
    """A tensor as a dataset of its rows."""

    def __init__(self, data: torch.Tensor) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.data[index]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_280_000)
    parser.add_argument("--d", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--refresh-every", type=int, default=100)
    parser.add_argument("--build-lag", type=int, default=20)
    args = parser.parse_args()
    generator = torch.Generator().manual_seed(0)
    centres = torch.randn(1000, args.d, generator=generator) * 2
    data = centres[torch.randint(1000, (args.n,), generator=generator)] + torch.randn(args.n, args.d, generator=generator)
    sampler = WalkBatchSampler(
        args.n, args.batch_size, num_candidates=1000, num_neighbors=100, refresh_every=args.refresh_every,
        build_lag=args.build_lag, chunk_size=min(128, args.refresh_every),
    )
    torch.manual_seed(0)
    trainer = Trainer(
        NoisyViewsMLP(args.d), InfoNCELoss(0.2), sampler, Rows(data), collate_fn=torch.stack, lr=1e-3,
        refresh="bank", encode_batch_size=8192, progress=False,
    )
    # Train on the first `steps` batches of the epoch (a sampler over a prefix would
    # change N), and time every refresh on the critical path: the hand-over to the
    # sampler, and any wait for a background build when it takes over.
    original_step, original_set, original_finish = sampler.step, sampler.set_embeddings, sampler._finish_build
    handovers, waits = [], []

    def step(num_steps: int = 1) -> None:
        original_step(num_steps)
        if sampler.global_step >= args.steps:
            raise Stop

    def set_embeddings(embeddings: torch.Tensor) -> None:
        start = time.perf_counter()
        original_set(embeddings)
        handovers.append((sampler.global_step, time.perf_counter() - start))

    def finish_build() -> None:
        start = time.perf_counter()
        original_finish()
        waits.append(time.perf_counter() - start)

    sampler.step, sampler.set_embeddings, sampler._finish_build = step, set_embeddings, finish_build
    start = time.perf_counter()
    try:
        trainer.fit(1)
    except Stop:
        pass
    seconds = time.perf_counter() - start
    tally = trainer._epoch_so_far()
    steps = len(tally["losses"])
    sampling = tally["costs"][0]
    step_seconds = tally["step_seconds"] / steps
    later = [seconds for step, seconds in handovers[1:]]
    critical = sum(later) + sum(waits)
    print(f"N={args.n:,} d={args.d} B={args.batch_size} M=1000 K=100 t={args.refresh_every} "
          f"build_lag={args.build_lag}: {steps} steps in {seconds:.0f} s, refreshes at steps "
          f"{[step for step, _ in handovers]}")
    print(f"  first graph (before training, built at once): {handovers[0][1]:.1f} s")
    print(f"  later refreshes on the critical path: hand-over {', '.join(f'{s * 1e3:.0f}' for s in later)} ms, "
          f"waits for the background build {', '.join(f'{s * 1e3:.0f}' for s in waits) or '-'} ms")
    print(f"  Cost_T {step_seconds * 1e3:.1f} ms a step; Cost_S {sampling / steps * 1e3:.2f} ms a step; "
          f"sampler share of a step after the first graph: {(sampling + critical) / steps / step_seconds * 100:.2f} %")
    print(f"  loss {tally['losses'][0]:.3f} -> {sum(tally['losses'][-20:]) / 20:.3f} (mean of the last 20 steps)")
    print(f"  peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")


class Stop(Exception):
    """Ends training after the requested number of steps."""


if __name__ == "__main__":
    main()
