"""Sampling and graph builds on the training loop's critical path, with and without
drawing ahead (``prefetch``) and building in the background (``build_lag``).

A loop of simulated training steps (a fixed matrix product, on the threads torch
uses) over a ``WalkBatchSampler`` at the paper's settings, refreshed every ``t`` steps
from fixed embeddings (as from an embedding bank: no encode pass), both epoch
policies, all arms in one run: the time ``next(batch)`` takes inside the loop (Cost_S
on the critical path), the time in ``set_embeddings`` and ``step`` (Cost_G on the
critical path), and the wall time per step. The background threads compete with the
step for the 2 cores here, so the wall time is the honest figure.

Usage:
    python benchmarks/bench_prefetch.py            # N = 20,000, B = 256, M = 500, K = 100, t = 25
"""
from __future__ import annotations

import argparse
import time

import torch

from dglbs import LinearSchedule, WalkBatchSampler


def run(prefetch: bool, build_lag: int, policy: str, args: argparse.Namespace) -> tuple[float, float, float]:
    sampler = WalkBatchSampler(
        args.n, args.batch_size, num_candidates=500, num_neighbors=100, refresh_every=args.t,
        restart_prob=LinearSchedule(0.2, 0.05), total_steps=10**6, epoch_policy=policy, prefetch=prefetch,
        build_lag=build_lag,
    )
    embeddings = torch.randn(args.n, 64, generator=torch.Generator().manual_seed(0))
    sampler.set_embeddings(embeddings)
    work = torch.randn(args.work, args.work, generator=torch.Generator().manual_seed(1))
    sampling = building = 0.0
    start = time.perf_counter()
    sampler.set_epoch(0)
    iterator = iter(sampler)
    for _ in range(args.steps):
        before = time.perf_counter()
        try:
            next(iterator)
        except StopIteration:
            sampler.set_epoch(sampler.epoch + 1)
            iterator = iter(sampler)
            next(iterator)
        sampling += time.perf_counter() - before
        work @ work  # the training step
        before = time.perf_counter()
        sampler.step()
        if sampler.refresh_due:
            sampler.set_embeddings(embeddings)
        building += time.perf_counter() - before
    return sampling / args.steps, building / args.steps, (time.perf_counter() - start) / args.steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--t", type=int, default=25, help="refresh_every; chunks are min(128, t) batches")
    parser.add_argument("--build-lag", type=int, default=5)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--work", type=int, default=700, help="side of the matrix product standing for a step")
    args = parser.parse_args()
    print(f"N={args.n} B={args.batch_size} M=500 K=100 t={args.t}, {args.steps} steps, "
          f"{torch.get_num_threads()} torch threads; ms per step")
    print(f"{'policy':>12} {'prefetch':>8} {'build_lag':>9} {'sampling':>9} {'graph builds':>13} {'wall':>8}")
    for policy in ("independent", "cover"):
        for prefetch, build_lag in ((False, 0), (True, 0), (True, args.build_lag)):
            sampling, building, wall = run(prefetch, build_lag, policy, args)
            print(f"{policy:>12} {str(prefetch):>8} {build_lag:>9} {sampling * 1e3:9.3f} {building * 1e3:13.3f} "
                  f"{wall * 1e3:8.2f}", flush=True)


if __name__ == "__main__":
    main()
