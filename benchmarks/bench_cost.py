"""What BatchSampler costs over uniform sampling, per example (the cost issue's table).

Each example trains for a fixed number of steps with the uniform sampler and with
BatchSampler, refreshed from an encode pass and from the embedding bank, one after
the other in this process, with the same seed and data; no evaluation. Per arm:

- wall ms/step: training time (``fit``, including the graph built before the first
  step) over steps;
- Cost_T: the mean training step as the trainer times it; Cost_S: sampling inside
  the loop (what drawing ahead leaves on the critical path); Cost_G/step and
  encode/step: graph builds and the encode passes that feed them, per step;
- overhead: BatchSampler's wall time per step over uniform's (two separate runs:
  on a shared machine other jobs move it by tens of percent), and its in-loop
  costs (Cost_S + Cost_G/step + encode/step) over its own Cost_T, both measured in
  the same run, so load from other jobs scales them alike: the figure to trust.

    python benchmarks/bench_cost.py                       # every example (28 min on one thread)
    python benchmarks/bench_cost.py --cases PROTEINS NCI1 --log benchmarks/results/cost.txt
"""
from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import torch

from dglbs.trainer import summarize_history
from dglbs_examples import graph_tu, simcse, vision


@dataclass
class Case:
    name: str
    note: str
    config: Any
    load: Callable[[Any], Any]
    train: Callable[[Any, Any], tuple]


def _graph(dataset: str, epochs: int) -> Case:
    return Case(dataset, f"GraphCL, {epochs} epochs of B = 128, M = 500, K = 100, t = 25",
                graph_tu.Config(dataset=dataset, epochs=epochs, progress=False),
                graph_tu.load_dataset, graph_tu.train)


CASES = {
    case.name: case
    for case in (
        _graph("PROTEINS", 20),
        _graph("IMDB-BINARY", 20),
        _graph("NCI1", 20),
        _graph("REDDIT-BINARY", 4),
        _graph("COLLAB", 2),
        Case("Fashion-MNIST", "SimCLR, ResNet-18 width 8, 5,000 images, 3 epochs of B = 128, M = 1000, K = 100, t = 100",
             vision.Config(train_subset=5000, test_subset=10, width=8, batch_size=128, epochs=3, crop_min=0.2,
                           knn_every=0, progress=False),
             vision.load_data, vision.train),
        Case("SimCSE", "all-MiniLM-L6-v2, first 3,000 sentences, 1 epoch of B = 64, M = 1000, K = 100, one refresh",
             simcse.Config(max_sentences=3000, progress=False),
             lambda config: simcse.load_data(config)[0], simcse.train),
    )
}

ARMS = (("uniform", "uniform", "encode"), ("BatchSampler, encode", "batchsampler", "encode"),
        ("BatchSampler, bank", "batchsampler", "bank"))


def measure(case: Case, data: Any, sampler: str, refresh: str) -> dict[str, float]:
    config = replace(case.config, sampler=sampler, refresh=refresh)
    _, history, seconds = case.train(config, data)
    costs = summarize_history(history)
    steps = costs["steps"]
    encode = sum(stats["encode_per_step"] * stats["steps"] for stats in history) / steps
    graph = sum(stats["cost_g_per_step"] * stats["steps"] for stats in history) / steps
    return {"steps": steps, "refreshes": costs["refreshes"], "wall": seconds / steps, "cost_t": costs["cost_t"],
            "cost_s": costs["cost_s"], "graph": graph, "encode": encode}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--log", type=Path, help="also write the table to this file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    lines = [f"torch threads: {torch.get_num_threads()}; ms per step; overhead relative to uniform", ""]
    header = (f"{'example':14s} {'arm':22s} {'steps':>5s} {'refr':>4s} {'wall':>8s} {'Cost_T':>8s} {'Cost_S':>7s} "
              f"{'Cost_G':>7s} {'encode':>7s} {'wall +%':>8s} {'in-loop +%':>10s}")
    for name in args.cases:
        case = CASES[name]
        start = time.perf_counter()
        data = case.load(case.config)
        lines += [f"{name}: {case.note}", header]
        uniform = None
        for label, sampler, refresh in ARMS:
            row = measure(case, data, sampler, refresh)
            uniform = uniform or row
            in_loop = row["cost_s"] + row["graph"] + row["encode"]
            lines.append(
                f"{name:14s} {label:22s} {row['steps']:5d} {row['refreshes']:4d} {1e3 * row['wall']:8.1f} "
                f"{1e3 * row['cost_t']:8.1f} {1e3 * row['cost_s']:7.2f} {1e3 * row['graph']:7.2f} "
                f"{1e3 * row['encode']:7.2f} {100 * (row['wall'] / uniform['wall'] - 1):+8.1f} "
                f"{100 * in_loop / row['cost_t']:10.1f}"
            )
            print(lines[-1], flush=True)
        lines += [f"({time.perf_counter() - start:.0f} s)", ""]
    text = "\n".join(lines)
    print("\n" + text)
    if args.log:
        args.log.write_text(text + "\n")


if __name__ == "__main__":
    main()
