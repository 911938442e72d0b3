"""Per-configuration scores and paired differences to uniform from the per-seed lines of graph example logs.

``examples/graph_tu.py`` and ``examples/graph_molhiv.py`` print them at the end of a
run; this recomputes them from logs (e.g. those of runs made before they did, or runs
split over several logs): per dataset, method, loss and sampler, the score's mean ±
population std over seeds, then the score minus uniform's over the seeds both ran,
mean ± sample std and the paired t-test's two-sided p. Scores: the SVM accuracy of
``graph_tu.py`` lines, the valid and test ROC-AUC of ``graph_molhiv.py`` lines.

    python benchmarks/paired_from_logs.py benchmarks/results/graph_tu_dcl_hcl_5seeds.txt
    python benchmarks/paired_from_logs.py benchmarks/results/graph_molhiv_{3seeds,seeds34}.txt
"""
from __future__ import annotations

import argparse
import re
import statistics
from pathlib import Path
from types import SimpleNamespace

from dglbs_examples.common import group_by_config, paired_differences

TU_RUN = re.compile(r"(\S+) (\S+) (\S+) (\S+) seed (\d+): accuracy ([\d.]+)")
MOLHIV_RUN = re.compile(r"(\S+) (\S+) seed (\d+): ROC-AUC valid ([\d.]+) test ([\d.]+)")


def read_runs(paths: list[str]) -> list[SimpleNamespace]:
    """One namespace per run line: ``config`` (dataset, method, loss, sampler, seed) and
    ``scores`` (name -> value in %)."""
    runs = []
    for path in paths:
        with open(path) as file:
            for line in file:
                if match := TU_RUN.match(line):
                    dataset, method, loss, sampler, seed, accuracy = match.groups()
                    scores = {"accuracy": float(accuracy)}
                elif match := MOLHIV_RUN.match(line):
                    dataset, method = "ogbg-molhiv", "graphcl"
                    loss, sampler, seed, valid, test = match.groups()
                    scores = {"valid ROC-AUC": float(valid), "test ROC-AUC": float(test)}
                else:
                    continue
                config = SimpleNamespace(dataset=dataset, method=method, loss=loss, sampler=sampler, seed=int(seed))
                runs.append(SimpleNamespace(config=config, scores=scores))
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("logs", nargs="+", help="logs of graph_tu.py or graph_molhiv.py runs")
    paths = parser.parse_args().logs
    missing = [path for path in paths if not Path(path).is_file()]
    if missing:
        parser.error(f"no such log: {', '.join(missing)}")
    runs = read_runs(paths)
    if not runs:
        parser.error(f"no per-seed run lines in {', '.join(paths)}; pass logs of examples/graph_tu.py or "
                     f"examples/graph_molhiv.py")
    names = list(dict.fromkeys(name for run in runs for name in run.scores))
    for name in names:
        scored = [run for run in runs if name in run.scores]
        print(f"{name}:")
        for key, group in group_by_config(scored).items():
            values = [run.scores[name] for run in group]
            print(f"  {' '.join(key)}: {statistics.fmean(values):.2f} ± {statistics.pstdev(values):.2f} "
                  f"over {len(values)} seeds")
        for line in paired_differences(scored, lambda run, name=name: run.scores[name]):
            print(f"  {line}")


if __name__ == "__main__":
    main()
