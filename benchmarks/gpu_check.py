"""The GPU check (the scale-out issue, item 6): one prepared script, under 5 minutes on one GPU.

1. Proximity-graph build on the GPU at N = 1,280,000, d = 128, M = 1000, K = 100 (the
   paper reports about 100 s on a V100): time and peak GPU memory.
2. A few SimCLR steps of a ResNet-18 on CIFAR-shaped random images (uint8, 32 x 32) with
   bf16 autocast, uniform sampler vs BatchSampler (graph from the model's embeddings):
   ms per step and the sampler's share.
3. The GPU-only test of the suite (``pytest -m "not slow" -k cuda`` style selection).

Every figure is printed and also written as JSON to ``--out`` (default ``$OUT/gpu_check.json``
when ``$OUT`` is set, the device tool's output folder). ``--smoke`` runs the same code at a
small size (on the CPU when there is no GPU), which the test suite does.

Usage:
    python benchmarks/gpu_check.py                    # on a GPU machine
    python benchmarks/gpu_check.py --smoke --device cpu
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from dglbs import UniformBatchSampler, WalkBatchSampler, proximity_graph
from dglbs.losses import InfoNCELoss
from dglbs.trainer import Trainer, summarize_history
from dglbs_models.augment_image import simclr_augmentation
from dglbs_models.resnet import resnet18
from dglbs_models.simclr import SimCLR


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def graph_build(n: int, device: torch.device) -> dict:
    embeddings = torch.nn.functional.normalize(torch.randn(n, 128, device=device), dim=1)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    synchronize(device)
    start = time.perf_counter()
    graph = proximity_graph(embeddings, 1000, 100, generator=torch.Generator().manual_seed(0),
                            memory_budget=2 * 2**30 if device.type == "cuda" else 256 * 2**20)
    synchronize(device)
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    return {"n": n, "seconds": seconds, "edges": graph.num_edges(), "peak_gpu_gib": peak,
            "no_in_edge_share": float((graph.in_degrees() == 0).float().mean())}


class RandomImages:
    """CIFAR-shaped uint8 images with labels, generated once."""

    def __init__(self, n: int) -> None:
        generator = torch.Generator().manual_seed(0)
        self.images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=generator)
        self.labels = torch.randint(0, 10, (n,), generator=generator)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        return self.images[index], self.labels[index]


def collate(items):
    images, labels = zip(*items)
    return torch.stack(images), torch.stack(labels)


def simclr_steps(n: int, batch_size: int, steps: int, sampler_name: str, device: torch.device) -> dict:
    torch.manual_seed(0)
    data = RandomImages(n)
    backbone = resnet18(image_size=32, width=64 if device.type == "cuda" else 8)
    method = SimCLR(backbone, augmentation=simclr_augmentation(32), mean=(0.5,) * 3, std=(0.25,) * 3)
    if sampler_name == "uniform":
        sampler = UniformBatchSampler(n, batch_size)
    else:
        sampler = WalkBatchSampler(n, batch_size, num_candidates=min(1000, n - 1), num_neighbors=min(100, n - 1),
                                   refresh_every=max(1, steps // 2), restart_prob=0.2)
    trainer = Trainer(method, InfoNCELoss(0.5, intra_view=True), sampler, data, collate_fn=collate,
                      device=device, progress=False, encode_batch_size=1024)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16)
    original = trainer.method.forward

    def forward(batch):
        with autocast:
            z1, z2 = original(batch)
        return z1.float(), z2.float()

    trainer.method.forward = forward
    epochs = max(1, -(-steps // len(sampler)))
    start = time.perf_counter()
    history = trainer.fit(epochs)
    synchronize(device)
    costs = summarize_history(history)
    return {"sampler": sampler_name, "steps": costs["steps"], "seconds": time.perf_counter() - start,
            "cost_t_ms": costs["cost_t"] * 1e3, "sampler_share": costs["sampler_share"],
            "encode_share": costs["encode_share"], "loss": history[-1]["loss"]}


def gpu_test() -> dict:
    finished = subprocess.run([sys.executable, "-m", "pytest", "-q", "tests/models/test_augment_image.py", "-k", "gpu"],
                              capture_output=True, text=True, timeout=240)
    return {"returncode": finished.returncode, "tail": finished.stdout.strip().splitlines()[-1:]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--smoke", action="store_true", help="small sizes, for a quick run anywhere")
    parser.add_argument("--out", type=Path, default=Path(os.environ["OUT"]) / "gpu_check.json" if os.environ.get("OUT") else None)
    args = parser.parse_args()
    device = torch.device(args.device)
    n_graph, n_images, batch_size, steps = (5000, 600, 64, 6) if args.smoke else (1_280_000, 50_000, 512, 40)
    report = {"device": str(device), "name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "torch": torch.__version__}
    report["graph"] = graph_build(n_graph, device)
    print(f"graph build N={n_graph:,} M=1000 K=100 on {report['name']}: {report['graph']['seconds']:.1f} s, "
          f"peak GPU memory {report['graph']['peak_gpu_gib']:.2f} GiB", flush=True)
    report["simclr"] = [simclr_steps(n_images, batch_size, steps, name, device) for name in ("uniform", "batchsampler")]
    for run in report["simclr"]:
        print(f"SimCLR ResNet-18 bf16 {run['sampler']}: {run['steps']} steps, {run['cost_t_ms']:.1f} ms a step, "
              f"sampler {100 * run['sampler_share']:.2f} %, encode {100 * run['encode_share']:.2f} %", flush=True)
    if device.type == "cuda":
        report["gpu_test"] = gpu_test()
        print(f"GPU-only test: {report['gpu_test']}", flush=True)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
