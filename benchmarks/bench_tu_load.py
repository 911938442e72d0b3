"""Load time and peak memory of the bundled TU datasets: cold parse, warm cache, and an older loader.

Every load runs in a fresh Python process, so that its peak RSS is its own:

``cold``
    :class:`dglbs.data.tu.TUDataset` with an empty cache folder: parse the text and write the cache.
``warm``
    The same, again, with the cache written by the cold load.
``baseline``
    (with ``--baseline REV``) the ``dglbs/data/tu.py`` of git revision ``REV``, e.g. the
    loader before the cache, for a before/after comparison in the same run.

Times are the median over ``--repeats`` processes and cover ``TUDataset(name)`` only; RSS is
the process's peak (``ru_maxrss``), of which ``imports`` is already used after importing
torch, DGL and dglbs. The zips are in the OS page cache after the first load.

Usage::

    python benchmarks/bench_tu_load.py                          # the 8 bundled datasets
    python benchmarks/bench_tu_load.py --dataset COLLAB --baseline c6314a1~1 --repeats 3
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BUNDLED = ("MUTAG", "PTC_MR", "PROTEINS", "NCI1", "IMDB-BINARY", "IMDB-MULTI", "REDDIT-BINARY", "COLLAB")
REPO = Path(__file__).resolve().parents[1]


def rss_mb() -> float:
    """Peak resident set size of this process so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(name: str, cache_dir: str | None, module_path: str | None) -> None:
    """Load ``name`` once and print one JSON line with the time and memory."""
    import importlib.util

    import dglbs.data.tu  # noqa: F401  (imports torch and DGL before the baseline RSS is taken)

    if module_path is None:
        load = lambda: dglbs.data.tu.TUDataset(name, cache_dir=cache_dir)  # noqa: E731
    else:
        spec = importlib.util.spec_from_file_location("tu_baseline", module_path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        load = lambda: module.TUDataset(name)  # noqa: E731
    imports = rss_mb()
    start = time.perf_counter()
    dataset = load()
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "peak_mb": rss_mb(), "imports_mb": imports, "graphs": len(dataset)}))


def run_child(name: str, cache_dir: str | None, module_path: str | None) -> dict:
    command = [sys.executable, __file__, "--child", name]
    if cache_dir is not None:
        command += ["--cache-dir", cache_dir]
    if module_path is not None:
        command += ["--module", module_path]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", nargs="+", default=list(BUNDLED))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline", metavar="REV", help="also time dglbs/data/tu.py of this git revision")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--cache-dir", help=argparse.SUPPRESS)
    parser.add_argument("--module", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.cache_dir, args.module)
        return

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO).stdout
    print(f"# {' '.join(sys.argv)}")
    print(f"# commit {commit.strip()}, python {platform.python_version()}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f} at start, median of {args.repeats} processes per cell")
    with tempfile.TemporaryDirectory() as scratch:
        module_path = None
        if args.baseline:
            source = subprocess.run(
                ["git", "show", f"{args.baseline}:dglbs/data/tu.py"], capture_output=True, text=True, cwd=REPO, check=True
            ).stdout
            module_path = str(Path(scratch) / "tu_baseline.py")
            Path(module_path).write_text(source)
        arms = ["cold", "warm"] + (["baseline"] if args.baseline else [])
        header = f"{'dataset':14s} {'graphs':>6s}" + "".join(f" | {arm + ' s':>11s} {'peak MB':>8s}" for arm in arms)
        print(header + " | imports MB")
        for name in args.dataset:
            results: dict[str, list[dict]] = {arm: [] for arm in arms}
            for repeat in range(args.repeats):
                cache_dir = str(Path(scratch) / f"cache-{name}-{repeat}")
                results["cold"].append(run_child(name, cache_dir, None))
                results["warm"].append(run_child(name, cache_dir, None))
                if args.baseline:
                    results["baseline"].append(run_child(name, None, module_path))
            row = f"{name:14s} {results['cold'][0]['graphs']:6d}"
            for arm in arms:
                seconds = statistics.median(r["seconds"] for r in results[arm])
                row += f" | {seconds:11.2f} {max(r['peak_mb'] for r in results[arm]):8.0f}"
            imports = statistics.median(r["imports_mb"] for arm in arms for r in results[arm])
            print(row + f" | {imports:10.0f}", flush=True)


if __name__ == "__main__":
    main()
