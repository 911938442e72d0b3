"""The TU notebooks stay in sync with notebooks/build.py, carry clean outputs, figures and
findings that match them, and run end to end (slow)."""
import importlib.util
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def load_script(path: Path, name: str):
    """A script as a module under its own name (docs/ has a build.py too)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build = load_script(NOTEBOOKS / "build.py", "notebooks_build")


def text_outputs(book: nbformat.NotebookNode) -> str:
    parts = []
    for cell in book.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            parts.append(output.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)  # a display's text/plain ends without a newline


@pytest.mark.parametrize("dataset", build.DATASETS)
def test_committed_notebook_matches_the_generator(dataset):
    committed = nbformat.read(build.path_of(dataset), as_version=4)
    generated = build.notebook(dataset)
    assert [(c.cell_type, c.source) for c in committed.cells] == [(c.cell_type, c.source) for c in generated.cells], (
        "notebook is stale: run `python notebooks/build.py --execute`"
    )


FIGURES = ("accuracy", "histograms", "coverage", "curves")


def written_figures(text: str) -> list[str]:
    """The figure files a notebook's outputs say it wrote."""
    return re.findall(r"^wrote (\S+\.png)$", text, re.MULTILINE)


@pytest.mark.parametrize("dataset", build.DATASETS)
def test_committed_outputs_are_complete_and_free_of_paths_and_warnings(dataset):
    book = nbformat.read(build.path_of(dataset), as_version=4)
    text = text_outputs(book)
    assert f"{dataset}: " in text and "batchsampler-cover" in text  # executed: the table is there
    assert "batchsampler - uniform: " in text and "over 3 paired seeds" in text  # full settings, paired
    assert not re.search(r"Warning\b", text)
    assert not re.search(r"(?<![\w<])/(?:root|home|work|tmp|usr)/", text), "absolute path in an output"
    assert str(Path.home()) not in text and str(NOTEBOOKS.parent) not in text


@pytest.mark.parametrize("dataset", build.DATASETS)
def test_committed_figures_are_the_ones_the_notebook_wrote(dataset):
    book = nbformat.read(build.path_of(dataset), as_version=4)
    stem = build.path_of(dataset).stem
    assert written_figures(text_outputs(book)) == [f"figures/{stem}_{plot}.png" for plot in FIGURES]
    assert all((NOTEBOOKS / "figures" / f"{stem}_{plot}.png").is_file() for plot in FIGURES)
    shown = [output for cell in book.cells for output in cell.get("outputs", []) if "image/png" in output.get("data", {})]
    assert len(shown) == len(FIGURES)


@pytest.mark.parametrize("dataset", build.DATASETS)
def test_findings_quote_only_numbers_the_outputs_show(dataset):
    findings = build.FINDINGS[dataset]
    text = text_outputs(nbformat.read(build.path_of(dataset), as_version=4))
    numbers = re.findall(r"[+-]?\d+\.\d+%?", findings.replace("\N{MINUS SIGN}", "-"))
    assert numbers, "the findings quote no measured number"
    missing = [number for number in numbers if number not in text]
    assert not missing, f"numbers in FINDINGS[{dataset!r}] that no output shows: {missing}"


def test_clean_outputs_drops_warnings_and_replaces_paths():
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stderr", text=(
            "/opt/py/site-packages/tqdm/auto.py:21: TqdmWarning: IProgress not found.\n"
            "  from .autonotebook import tqdm as notebook_tqdm\n")),
        nbformat.v4.new_output("stream", name="stdout", text="read /data/here/tu/MUTAG.zip\n"),
        nbformat.v4.new_output("execute_result", data={"text/plain": "path='/home/me/x'"}, execution_count=1),
    ]
    book = nbformat.v4.new_notebook(cells=[cell])
    build.clean_outputs(book, {"/data/here": "<data dir>", "/home/me": "~"})
    assert [output.output_type for output in cell.outputs] == ["stream", "execute_result"]
    assert cell.outputs[0].text == "read <data dir>/tu/MUTAG.zip\n"
    assert cell.outputs[1].data["text/plain"] == "path='~/x'"


@pytest.mark.slow  # a minute or so per notebook: a kernel, 4 trainings and SVMs
@pytest.mark.parametrize("dataset", build.DATASETS)
def test_notebook_executes(dataset, monkeypatch, tmp_path):
    monkeypatch.setenv("DGLBS_NOTEBOOK_SMOKE", "1")
    monkeypatch.setenv("DGLBS_NOTEBOOK_FIGURES", str(tmp_path))  # not over the committed figures
    book = build.notebook(dataset)
    NotebookClient(book, timeout=600, resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    outputs = text_outputs(book)
    assert "batchsampler-cover" in outputs and "accuracy" in outputs and "coverage" in outputs
    assert not any(output.output_type == "error" for cell in book.cells for output in cell.get("outputs", []))
    stem = build.path_of(dataset).stem
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(f"{stem}_{plot}.png" for plot in FIGURES)
