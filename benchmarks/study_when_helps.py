"""When does BatchSampler help? A study around the paper's settings (graph issue, item 3).

GraphCL on a TU dataset, BatchSampler against uniform sampling at the same batch
size and seeds, changing one setting at a time from the paper's defaults (B = 128,
M = 500, K = 100, alpha 0.2 -> 0.05, t = 25): the batch size (so N / B), a constant
alpha, K, M and t. Per setting and seed it records the SVM's 10-fold test accuracy,
its validation accuracy (the inner cross-validation score of the chosen C, computed
on the outer training folds only) and the in-batch false-negative rate over
training. It reports per setting the paired difference to uniform over the seeds
(mean ± std, paired t-test p) on test and on validation, picks the setting with the
best validation difference, and only then reads its test difference: the choice
never looks at the reported test folds.

    python benchmarks/study_when_helps.py --dataset IMDB-BINARY --seeds 0 1 2 3 4 \
        --runs benchmarks/results/when_helps_imdb_binary.jsonl

``--subset N`` runs the study on N graphs of the dataset drawn once, stratified by
class (the same graphs for every seed and sampler), which changes N / B at a fixed
batch size; its runs are recorded as ``DATASET[N]``. When the runs file holds
several sizes of one dataset, a table and a plot (``<runs>_by_size.png``) of the
batch-size rows of every size against N / B follow the report.

    python benchmarks/study_when_helps.py --dataset NCI1 --subset 1024 --seeds 0 1 2 \
        --settings 'paper default' --runs benchmarks/results/when_helps_nci1.jsonl

Every run is appended to ``--runs`` (JSON Lines) as it finishes, and runs already
there are not repeated, so an interrupted study continues; ``--report-only`` prints
the table and draws the plots (``<runs>.png``) from the file alone.
"""
from __future__ import annotations

import argparse
import json
import statistics
from dataclasses import replace
from pathlib import Path

import torch

from dglbs_examples import graph_tu
from dglbs_examples.common import format_p, paired_statistics

SETTINGS: dict[str, dict] = {
    "paper default": {},
    "B = 32": {"batch_size": 32},
    "B = 64": {"batch_size": 64},
    "B = 256": {"batch_size": 256},
    "alpha = 0.05": {"alpha_start": 0.05, "alpha_end": 0.05},
    "alpha = 0.7": {"alpha_start": 0.7, "alpha_end": 0.7},
    "K = 10": {"num_neighbors": 10},
    "K = 30": {"num_neighbors": 30},
    "M = 150": {"num_candidates": 150},
    "t = 5": {"refresh_every": 5},
    "t = 100": {"refresh_every": 100},
}
"""BatchSampler's settings, each a change from the paper's defaults (graph_tu.Config)."""


def run_key(setting: str, seed: int) -> str:
    return f"{setting}|{seed}"


def uniform_setting(batch_size: int) -> str:
    return f"uniform, B = {batch_size}"


def planned_runs(settings: list[str], seeds: list[int]) -> list[tuple[str, str, dict, int]]:
    """(setting, sampler, config changes, seed), seed by seed, so that every setting
    has as many seeds as any other when the study is cut short."""
    batch_sizes = sorted({SETTINGS[name].get("batch_size", graph_tu.Config.batch_size) for name in settings})
    runs = []
    for seed in seeds:
        runs += [(uniform_setting(b), "uniform", {"batch_size": b}, seed) for b in batch_sizes]
        runs += [(name, "batchsampler", SETTINGS[name], seed) for name in settings]
    return runs


def stratified_subset(labels: torch.Tensor, size: int, seed: int = 0) -> torch.Tensor:
    """``size`` distinct indices drawn at random with each class's share of ``labels``
    (rounded, at least one per class), in increasing order: shape (size,), int64."""
    if not 0 < size <= len(labels):
        raise ValueError(f"--subset must be in [1, {len(labels)}] (the dataset's size), got {size}")
    generator = torch.Generator().manual_seed(seed)
    classes, counts = labels.unique(return_counts=True)
    if size < len(classes):
        raise ValueError(f"--subset {size} cannot hold one graph of each of the {len(classes)} classes")
    quotas = (counts.double() * size / len(labels)).round().long().clamp(min=1)
    # Rounding may miss the total by a few graphs: take them from (or give them to) the largest classes.
    while int(quotas.sum()) != size:
        step = 1 if int(quotas.sum()) < size else -1
        quotas[int(torch.argmax(counts - quotas if step > 0 else quotas))] += step
    chosen = []
    for value, quota in zip(classes.tolist(), quotas.tolist()):
        members = (labels == value).nonzero().flatten()
        chosen.append(members[torch.randperm(len(members), generator=generator)[:quota]])
    return torch.cat(chosen).sort().values


def false_negative_rate(history: list[dict]) -> float:
    steps = sum(stats["steps"] for stats in history)
    return sum(stats["false_negative_rate"] * stats["steps"] for stats in history) / steps


def paired(rows: dict[int, float], reference: dict[int, float]) -> tuple[float, float, float, int]:
    """Mean and sample std of ``rows - reference`` over shared seeds, paired t-test p."""
    seeds = sorted(set(rows) & set(reference))
    return *paired_statistics([(rows[seed], reference[seed]) for seed in seeds]), len(seeds)


def paired_cell(difference: tuple[float, float, float, int]) -> str:
    """A table cell for :func:`paired`'s (mean, std, p, seeds)."""
    mean, std, p, n = difference
    return f"{mean:+6.2f} ± {std:4.2f} (p {format_p(p)}, n={n})"


def table_lines(rows: list[dict], sizes: bool = False) -> list[str]:
    """Header and one line per row of :func:`report` (with each row's ``size`` first if ``sizes``)."""
    first = f"{'N':>6s} " if sizes else ""
    lines = [f"{first}{'setting':14s} {'N/B':>6s} {'FN rate':>8s} {'uniform':>8s} {'test: BS - uniform':>28s} "
             f"{'validation: BS - uniform':>28s}"]
    for row in rows:
        first = f"{row['size']:6d} " if sizes else ""
        lines.append(f"{first}{row['setting']:14s} {row['n_over_b']:6.1f} {row['fn_rate']:8.3f} "
                     f"{row['fn_rate_uniform']:8.3f} {paired_cell(row['test']):>28s} "
                     f"{paired_cell(row['validation']):>28s}")
    return lines


def report(records: list[dict], num_instances: int) -> tuple[str, list[dict]]:
    by_setting: dict[str, dict[int, dict]] = {}
    for record in records:
        by_setting.setdefault(record["setting"], {})[record["seed"]] = record
    rows = []
    for name, change in SETTINGS.items():
        mine = by_setting.get(name, {})
        batch_size = change.get("batch_size", graph_tu.Config.batch_size)
        theirs = by_setting.get(uniform_setting(batch_size), {})
        if not mine or not theirs:
            continue
        test = paired({s: r["accuracy"] for s, r in mine.items()}, {s: r["accuracy"] for s, r in theirs.items()})
        validation = paired({s: r["validation"] for s, r in mine.items()},
                            {s: r["validation"] for s, r in theirs.items()})
        rows.append({
            "setting": name, "n_over_b": num_instances / batch_size, "test": test, "validation": validation,
            "fn_rate": statistics.fmean(r["false_negative_rate"] for r in mine.values()),
            "fn_rate_uniform": statistics.fmean(r["false_negative_rate"] for r in theirs.values()),
        })
    lines = table_lines(rows)
    if rows:
        chosen = max(rows, key=lambda row: row["validation"][0])
        mean, std, p, n = chosen["test"]
        lines.append(f"chosen on validation: {chosen['setting']} (validation {chosen['validation'][0]:+.2f}); "
                     f"its test difference {mean:+.2f} ± {std:.2f} (p {format_p(p)}, {n} paired seeds)")
    return "\n".join(lines), rows


def plot(rows: list[dict], dataset: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    batch_rows = [row for row in rows if row["setting"] == "paper default" or row["setting"].startswith("B = ")]
    batch_rows.sort(key=lambda row: row["n_over_b"])
    left.errorbar([row["n_over_b"] for row in batch_rows], [row["test"][0] for row in batch_rows],
                  yerr=[row["test"][1] for row in batch_rows], marker="o", capsize=3)
    left.set_xscale("log", base=2)
    left.set_xlabel("N / B (dataset size over batch size)")
    left.set_title(f"{dataset}: against N / B")
    for row in rows:
        right.errorbar(row["fn_rate"] - row["fn_rate_uniform"], row["test"][0], yerr=row["test"][1],
                       marker="o", capsize=3)
        right.annotate(row["setting"], (row["fn_rate"] - row["fn_rate_uniform"], row["test"][0]),
                       fontsize=7, xytext=(3, 3), textcoords="offset points")
    right.set_xlabel("in-batch false-negative rate, BatchSampler minus uniform")
    right.set_title(f"{dataset}: against the false-negative rate")
    for axes in (left, right):
        axes.axhline(0.0, color="grey", linewidth=0.8)
        axes.set_ylabel("test accuracy, BatchSampler − uniform (points)")
    figure.suptitle("Paired difference over seeds (mean ± std)")
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def dataset_size(key: str, full_size: int) -> int:
    """Graphs behind a record's dataset key: ``NAME[N]`` holds N, ``NAME`` all."""
    return int(key[key.index("[") + 1 : -1]) if key.endswith("]") else full_size


def by_size(records: list[dict], base: str, full_size: int) -> list[dict]:
    """The batch-size rows (paper default, B = ...) of every size of dataset ``base``
    in ``records``, each with its ``size``, sorted by N / B."""
    keys = {record["dataset"] for record in records if record["dataset"].split("[")[0] == base}
    rows = []
    for key in keys:
        size = dataset_size(key, full_size)
        _, key_rows = report([record for record in records if record["dataset"] == key], size)
        rows += [row | {"size": size} for row in key_rows
                 if row["setting"] == "paper default" or row["setting"].startswith("B = ")]
    return sorted(rows, key=lambda row: (row["n_over_b"], row["size"]))




def plot_by_size(rows: list[dict], dataset: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4.2))
    for size in sorted({row["size"] for row in rows}):
        mine = [row for row in rows if row["size"] == size]
        axes.errorbar([row["n_over_b"] for row in mine], [row["test"][0] for row in mine],
                      yerr=[row["test"][1] for row in mine], marker="o", capsize=3, label=f"N = {size:,}")
    axes.set_xscale("log", base=2)
    axes.axhline(0.0, color="grey", linewidth=0.8)
    axes.set_xlabel("N / B (graphs over batch size)")
    axes.set_ylabel("test accuracy, BatchSampler − uniform (points)")
    axes.set_title(f"{dataset}: subsets and batch sizes (mean ± std over seeds)")
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="IMDB-BINARY")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--runs", type=Path, required=True, help="JSON Lines file of the runs (appended to)")
    parser.add_argument("--report-only", action="store_true", help="table and plots from --runs, no training")
    parser.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=list(SETTINGS))
    parser.add_argument("--epochs", type=int, default=graph_tu.Config.epochs)
    parser.add_argument("--svm-folds", type=int, default=graph_tu.Config.svm_folds)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--subset", type=int, default=None,
                        help="study N graphs of the dataset, drawn once stratified by class (recorded as DATASET[N])")
    args = parser.parse_args()
    base = graph_tu.Config(dataset=args.dataset, data_dir=args.data_dir, progress=False, epochs=args.epochs,
                           svm_folds=args.svm_folds)
    dataset = graph_tu.load_dataset(base)
    key = args.dataset
    if args.subset is not None:
        dataset = dataset.subset(stratified_subset(dataset.labels, args.subset))
        key = f"{args.dataset}[{args.subset}]"
    every_record = [json.loads(line) for line in args.runs.read_text().splitlines()] if args.runs.exists() else []
    records = [record for record in every_record if record["dataset"] == key]
    if not args.report_only:
        done = {run_key(record["setting"], record["seed"]) for record in records}
        for setting, sampler, change, seed in planned_runs(args.settings, args.seeds):
            if run_key(setting, seed) in done:
                continue
            result = graph_tu.run(replace(base, sampler=sampler, seed=seed, **change), dataset)
            record = {"dataset": key, "setting": setting, "seed": seed, "accuracy": 100 * result.accuracy,
                      "validation": 100 * result.validation,
                      "false_negative_rate": false_negative_rate(result.history)}
            records.append(record)
            every_record.append(record)
            with args.runs.open("a") as file:
                file.write(json.dumps(record) + "\n")
            print(f"{setting} seed {seed}: test {record['accuracy']:.2f} validation {record['validation']:.2f} "
                  f"FN rate {record['false_negative_rate']:.3f}", flush=True)
    table, rows = report(records, len(dataset))
    print(f"\n{key} (N = {len(dataset)}), GraphCL; accuracy in points\n{table}")
    if rows and args.subset is None:
        plot(rows, args.dataset, args.runs.with_suffix(".png"))
    size_rows = by_size(every_record, args.dataset, dataset.num_source_graphs)
    if len({row["size"] for row in size_rows}) > 1:
        table = "\n".join(table_lines(size_rows, sizes=True))
        print(f"\n{args.dataset}, every size studied: batch-size rows against N / B\n{table}")
        plot_by_size(size_rows, args.dataset, args.runs.with_name(args.runs.stem + "_by_size.png"))


if __name__ == "__main__":
    main()
