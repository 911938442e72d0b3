"""Time GraphCL's SVM protocol: an older ``svm_cross_val`` against the current one, in one run.

The embeddings are shaped like NCI1's in the paper's set-up: 4,110 graphs x 96 (GIN, 3
layers x 32, per-layer sum readout). ``--embedding gin`` (default) encodes the bundled
NCI1 with an untrained GIN (seed 0), ``--embedding random`` draws Gaussian features with
two balanced random classes. Arms, timed one after the other on the same embeddings:

``baseline``
    ``svm_cross_val`` from ``dglbs/evaluation/svm.py`` at git revision ``--baseline``
    (``GridSearchCV(SVC)`` per outer fold, one job).
``new, 1 job`` and ``new, all cores``
    The current ``svm_cross_val`` (precomputed kernels) with ``n_jobs=1`` and ``n_jobs=-1``.

Every arm must return the baseline's fold accuracies and chosen C exactly.

Usage::

    python benchmarks/bench_svm.py --baseline e84620a
    python benchmarks/bench_svm.py --baseline e84620a --embedding random --folds 3
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import sklearn
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # for models/

from dglbs.evaluation.svm import svm_cross_val  # noqa: E402


def gin_embeddings(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Untrained GIN (3 x 32, sum readout) embeddings of NCI1, ``(4110, 96)`` float32, and labels."""
    import dgl

    from dglbs.data.tu import TUDataset
    from models.gin import GIN

    dataset = TUDataset("NCI1")
    torch.manual_seed(seed)
    encoder = GIN(dataset.feat_dim, 32, 3).eval()
    parts = []
    with torch.no_grad():
        for start in range(0, len(dataset), 512):
            batch = dgl.batch(dataset.graphs[start : start + 512])
            parts.append(encoder(batch, batch.ndata["feat"]))
    return torch.cat(parts).numpy(), dataset.labels.numpy()


def random_embeddings(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian ``(4110, 96)`` float32 features with two balanced random classes."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(4110, 96)).astype(np.float32), rng.permutation(np.arange(4110) % 2)


def load_baseline(revision: str, folder: str):
    """The ``svm_cross_val`` of ``dglbs/evaluation/svm.py`` at git ``revision``."""
    source = subprocess.run(
        ["git", "show", f"{revision}:dglbs/evaluation/svm.py"], capture_output=True, text=True, cwd=REPO, check=True
    ).stdout
    path = Path(folder) / "svm_baseline.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("svm_baseline", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.svm_cross_val


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", required=True, metavar="REV", help="git revision of the older svm.py")
    parser.add_argument("--embedding", choices=("gin", "random"), default="gin")
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO).stdout
    print(f"# {' '.join(sys.argv)}")
    print(f"# commit {commit.strip()}, baseline {args.baseline}, python {platform.python_version()}, "
          f"scikit-learn {sklearn.__version__}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start")
    x, y = (gin_embeddings if args.embedding == "gin" else random_embeddings)(args.seed)
    print(f"# embeddings {args.embedding}: {x.shape[0]} x {x.shape[1]} {x.dtype}, class sizes {np.bincount(y).tolist()}; "
          f"{args.folds} outer folds x 5 inner folds x 7 values of C, seed {args.seed}", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        arms = {
            "baseline (GridSearchCV, 1 job)": lambda: load_baseline(args.baseline, folder)(x, y, folds=args.folds, seed=args.seed),
            "new, 1 job": lambda: svm_cross_val(x, y, folds=args.folds, seed=args.seed, n_jobs=1),
            "new, all cores": lambda: svm_cross_val(x, y, folds=args.folds, seed=args.seed, n_jobs=-1),
        }
        results, seconds = {}, {}
        for name, run in arms.items():
            start = time.perf_counter()
            results[name] = run()
            seconds[name] = time.perf_counter() - start
            print(f"{name:32s} {seconds[name]:8.1f} s  accuracy {results[name]['mean']:.4f} ± {results[name]['std']:.4f}"
                  f"  load average {os.getloadavg()[0]:.2f}", flush=True)
    baseline = next(iter(arms))
    for name in list(arms)[1:]:
        same = all(results[name][key] == results[baseline][key] for key in ("fold_accuracies", "best_C"))
        print(f"{name:32s} speed-up {seconds[baseline] / seconds[name]:5.1f}x, same fold accuracies and C as the baseline: {same}")
    print(f"fold accuracies: {results[baseline]['fold_accuracies']}")
    print(f"chosen C: {results[baseline]['best_C']}")


if __name__ == "__main__":
    main()
