"""Generate the TU notebooks from the example code, so they never drift from it.

Every notebook imports ``dglbs_examples.graph_tu`` (``examples/graph_tu.py``) and
only adds plotting; its cells are written here. Regenerate (and optionally execute) with

    python notebooks/build.py            # write notebooks/tu_<dataset>.ipynb
    python notebooks/build.py --execute  # ... and run them in place (full settings)

Executed outputs are cleaned of what depends on the machine that ran them: warning
lines (e.g. tqdm's ``TqdmWarning`` when ipywidgets is missing) and absolute paths
(the data folder becomes ``<data dir>``, the home folder ``~``). The test suite
checks the committed notebooks' cells equal what this script writes and their
outputs are clean, and executes them with ``DGLBS_NOTEBOOK_SMOKE=1`` (one epoch,
one seed).
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
DATASETS = ("MUTAG", "IMDB-BINARY")

WARNING_LINES = re.compile(r"^.*\b\w*Warning: .*\n(?:  .*\n)?", re.MULTILINE)
"""A ``warnings`` message and the source line Python prints under it."""

INTRO = """# BatchSampler on {dataset}

GraphCL on the TU dataset **{dataset}**, trained with the uniform sampler, the kNN
sampler and BatchSampler (proximity graph + random walk with restart), then scored
with an SVM on frozen embeddings (10-fold CV). The training code is
`examples/graph_tu.py` (installed as `dglbs_examples.graph_tu`); this notebook adds
the plots of the paper's Figures 4-5: in-batch cosine similarities and the
false-negative rate over training.

Open it with `pip install -c constraints.txt -e ".[notebooks]" && jupyter notebook notebooks/`;
the data folder is `$DGLBS_DATA` or the default one (see `dglbs.data.paths`)."""

PARAMETERS = """import os

DATASET = "{dataset}"
SAMPLERS = ["uniform", "knn", "batchsampler"]
SEEDS = [0, 1, 2]
EPOCHS = 20
SVM_FOLDS = 10
if os.environ.get("DGLBS_NOTEBOOK_SMOKE"):  # the test suite runs a tiny version
    SEEDS, EPOCHS, SVM_FOLDS = [0], 1, 3"""

SETUP = """import matplotlib.pyplot as plt
import torch

from dglbs.data.tu import TUDataset
from dglbs.diagnostics import false_negative_rate, pairwise_cosine
from dglbs_examples.graph_tu import Config, make_sampler, run, summary_table

dataset = TUDataset(DATASET)  # from $DGLBS_DATA/tu, or the default data folder's tu/
print(f"{DATASET}: {len(dataset)} graphs, node features of width {dataset.feat_dim}")"""

TRAIN = """results = [
    run(Config(dataset=DATASET, sampler=sampler, seed=seed, epochs=EPOCHS, svm_folds=SVM_FOLDS), dataset)
    for sampler in SAMPLERS
    for seed in SEEDS
]
print(summary_table(results))"""

HISTOGRAM_TEXT = """## In-batch similarity

For each sampler, one epoch of batches drawn on the final embeddings of its own
run (seed 0): the histogram of pairwise cosine similarities inside a batch, and
the share of same-class pairs (false negatives)."""

HISTOGRAM = """figure, axis = plt.subplots(figsize=(7, 4))
for result in (r for r in results if r.config.seed == SEEDS[0]):
    sampler = make_sampler(result.config, len(dataset))
    if hasattr(sampler, "set_embeddings"):
        sampler.set_embeddings(result.embeddings)
    if hasattr(sampler, "set_total_steps"):
        sampler.set_total_steps(1)
    batches = list(sampler)
    similarities = torch.cat([pairwise_cosine(result.embeddings[batch]) for batch in batches])
    false_negatives = sum(false_negative_rate(dataset.labels[batch]) for batch in batches) / len(batches)
    axis.hist(similarities.numpy(), bins=40, range=(-1, 1), histtype="step", density=True,
              label=f"{result.config.sampler} (false negatives {100 * false_negatives:.1f}%)")
axis.set_xlabel("cosine similarity of in-batch pairs")
axis.set_ylabel("density")
axis.legend()
plt.show()"""

CURVES = """figure, (loss_axis, fn_axis) = plt.subplots(1, 2, figsize=(11, 4))
for result in (r for r in results if r.config.seed == SEEDS[0]):
    epochs = [stats["epoch"] for stats in result.history]
    loss_axis.plot(epochs, [stats["loss"] for stats in result.history], label=result.config.sampler)
    fn_axis.plot(epochs, [100 * stats["false_negative_rate"] for stats in result.history],
                 label=result.config.sampler)
loss_axis.set(xlabel="epoch", ylabel="training loss")
fn_axis.set(xlabel="epoch", ylabel="false negatives in batch (%)")
fn_axis.legend()
plt.show()"""


def notebook(dataset: str) -> nbformat.NotebookNode:
    cells = [
        nbformat.v4.new_markdown_cell(INTRO.format(dataset=dataset)),
        nbformat.v4.new_code_cell(PARAMETERS.format(dataset=dataset)),
        nbformat.v4.new_code_cell(SETUP),
        nbformat.v4.new_markdown_cell("## Training and SVM accuracy (mean ± std over seeds)"),
        nbformat.v4.new_code_cell(TRAIN),
        nbformat.v4.new_markdown_cell(HISTOGRAM_TEXT),
        nbformat.v4.new_code_cell(HISTOGRAM),
        nbformat.v4.new_markdown_cell("## Loss and false negatives over training"),
        nbformat.v4.new_code_cell(CURVES),
    ]
    book = nbformat.v4.new_notebook(cells=cells)
    book.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return book


def clean_outputs(book: nbformat.NotebookNode, replacements: dict[str, str] | None = None) -> None:
    """Drop warning lines from the stream outputs of an executed notebook and replace
    machine-specific paths in all text outputs (default: the data folder by
    ``<data dir>``, the home folder by ``~``), in place. Streams left empty are removed."""
    if replacements is None:
        from dglbs.data.paths import default_data_dir

        replacements = {str(default_data_dir()): "<data dir>", str(Path.home()): "~"}

    def replace(text: str) -> str:
        for old, new in replacements.items():
            text = text.replace(old, new)
        return text

    for cell in book.cells:
        if cell.cell_type != "code":
            continue
        outputs = []
        for output in cell.outputs:
            if output.output_type == "stream":
                output.text = replace(WARNING_LINES.sub("", output.text))
                if not output.text:
                    continue
            elif "data" in output and "text/plain" in output.data:
                output.data["text/plain"] = replace(output.data["text/plain"])
            outputs.append(output)
        cell.outputs = outputs


def path_of(dataset: str) -> Path:
    return HERE / f"tu_{dataset.lower().replace('-', '_')}.ipynb"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--execute", action="store_true", help="run the notebooks and keep their outputs")
    args = parser.parse_args()
    for dataset in DATASETS:
        book = notebook(dataset)
        if args.execute:
            from nbclient import NotebookClient

            NotebookClient(book, timeout=3600, resources={"metadata": {"path": str(HERE)}}).execute()
            clean_outputs(book)
        nbformat.write(book, path_of(dataset))
        print(f"wrote {path_of(dataset)}")


if __name__ == "__main__":
    main()
