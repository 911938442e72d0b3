"""Fold the one-run tables of separate ``examples/simcse.py`` processes into one table.

On a small CPU the seeds of the SimCSE table run best as parallel one-thread processes,
each printing its own one-run table; this reads those logs and prints what one process
running all the seeds would have printed (mean ± std over seeds, per loss and sampler).

    dglbs-simcse-from-logs benchmarks/results/simcse_minilm_seed*.txt
    python examples/simcse_from_logs.py benchmarks/results/simcse_minilm_seed*.txt   # from a clone
"""
from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Iterable, Sequence

from dglbs.cli import UsageError, run_main
from dglbs_examples.simcse import COLUMNS, Config, Result, summary_table

SCORE = r"(-?\d+\.\d+) ± \d+\.\d+"
# "infonce  uniform   71.70 ± 0.00  ...  84.98 ± 0.00     1   1016.0": a row of the table.
RUN_ROW = re.compile(
    rf"^(?P<loss>\w+)\s+(?P<sampler>\w+)\s+(?P<scores>(?:{SCORE}\s+)+)(?P<seeds>\d+)\s+(?P<seconds>\d+\.\d+)$"
)
BEFORE_ROW = re.compile(r"^-\s+before train\s+((?:-?\d+\.\d+\s*)+)$")


def read_logs(lines: Iterable[str], source: str = "log") -> tuple[list[Result], dict[str, float] | None]:
    """One-run results and the before-training scores (None if absent) found in ``lines``.

    Rows averaged over several seeds are rejected: their seeds cannot be unfolded.
    """
    results, pretrained = [], None
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if match := BEFORE_ROW.match(line):
            pretrained = _scores(match.group(1).split(), f"{source}:{number}")
        elif match := RUN_ROW.match(line):
            if match["seeds"] != "1":
                raise ValueError(f"{source}:{number}: a row averaged over {match['seeds']} seeds; pass one-run logs")
            scores = _scores(re.findall(SCORE, match["scores"]), f"{source}:{number}")
            config = Config(loss=match["loss"], sampler=match["sampler"])
            results.append(Result(config, scores, train_seconds=float(match["seconds"]), eval_seconds=math.nan,
                                  sampler_share=math.nan, encode_share=math.nan, history=[]))
    return results, pretrained


def _scores(values: list[str], where: str) -> dict[str, float]:
    if len(values) != len(COLUMNS):
        raise ValueError(f"{where}: expected {len(COLUMNS)} scores ({', '.join(COLUMNS)}), got {len(values)}")
    return dict(zip(COLUMNS, map(float, values)))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("logs", nargs="+", help="outputs of dglbs-simcse (examples/simcse.py)")
    args = parser.parse_args(argv)
    results, pretrained = [], None
    for path in args.logs:
        with open(path, encoding="utf-8") as log:
            found, before = read_logs(log, source=path)
        results += found
        pretrained = before or pretrained
    if not results:
        raise UsageError(f"no one-run SimCSE rows in {', '.join(args.logs)}; pass the outputs of dglbs-simcse")
    print(summary_table(results, pretrained))


if __name__ == "__main__":
    sys.exit(run_main(main))
