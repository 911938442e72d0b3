"""Paired differences to uniform from the per-seed lines of graph example logs.

``examples/graph_tu.py`` prints them itself at the end of a run; this recomputes them
from logs (e.g. those of runs made before it did, or runs split over several logs):
per dataset, method, loss and sampler, the accuracy minus uniform's over the seeds
both ran, mean ± sample std and the paired t-test's two-sided p.

    python benchmarks/paired_from_logs.py benchmarks/results/graph_tu_dcl_hcl_5seeds.txt
"""
from __future__ import annotations

import re
import sys
from types import SimpleNamespace

from dglbs_examples.common import paired_differences

RUN = re.compile(r"(\S+) (\S+) (\S+) (\S+) seed (\d+): accuracy ([\d.]+)")


def main() -> None:
    runs = []
    for path in sys.argv[1:]:
        with open(path) as file:
            for line in file:
                match = RUN.match(line)
                if match:
                    dataset, method, loss, sampler, seed, accuracy = match.groups()
                    config = SimpleNamespace(dataset=dataset, method=method, loss=loss, sampler=sampler, seed=int(seed))
                    runs.append(SimpleNamespace(config=config, accuracy=float(accuracy)))
    print("\n".join(paired_differences(runs, lambda run: run.accuracy)))


if __name__ == "__main__":
    main()
