"""The TU notebooks stay in sync with notebooks/build.py and run end to end."""
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
sys.path.insert(0, str(NOTEBOOKS))
import build  # noqa: E402


@pytest.mark.parametrize("dataset", build.DATASETS)
def test_committed_notebook_matches_the_generator(dataset):
    committed = nbformat.read(build.path_of(dataset), as_version=4)
    generated = build.notebook(dataset)
    assert [(c.cell_type, c.source) for c in committed.cells] == [(c.cell_type, c.source) for c in generated.cells], (
        "notebook is stale: run `python notebooks/build.py --execute`"
    )


@pytest.mark.parametrize("dataset", build.DATASETS)
def test_notebook_executes(dataset, monkeypatch):
    monkeypatch.setenv("DGLBS_NOTEBOOK_SMOKE", "1")
    book = build.notebook(dataset)
    NotebookClient(book, timeout=600, resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    outputs = "".join(
        output.get("text", "") for cell in book.cells if cell.cell_type == "code" for output in cell.get("outputs", [])
    )
    assert "batchsampler" in outputs and "accuracy" in outputs
    assert not any(output.output_type == "error" for cell in book.cells for output in cell.get("outputs", []))
