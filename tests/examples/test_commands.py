"""The examples as commands: entry points, --help, --data-dir, one-line errors, missing extras."""
from __future__ import annotations

import configparser
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from dglbs.cli import run_main
from dglbs.data.paths import default_data_dir
from dglbs_examples import commands

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = ("graph_tu", "graph_molhiv", "vision", "simcse", "simcse_from_logs", "sampler_demo")


def test_every_example_is_a_console_command():
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    scripts = dict(line.split(" = ") for line in config["options.entry_points"]["console_scripts"].split("\n") if line)
    assert sorted(target.split(":")[1] for target in scripts.values()) == sorted(EXAMPLES)
    for target in scripts.values():
        module, function = target.split(":")
        assert callable(getattr(importlib.import_module(module), function))
    assert sorted(path.stem for path in (REPO / "examples").glob("*.py")) == sorted(
        EXAMPLES + ("__init__", "commands", "common", "notebook_plots"))


@pytest.mark.parametrize("example", EXAMPLES)
def test_help_describes_the_example(example, capsys):
    main = importlib.import_module(f"dglbs_examples.{example}").main
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: ") and "dglbs-" in out
    if example != "simcse_from_logs":
        assert "--data-dir DATA_DIR" in out and "tu/, sts/" in out


@pytest.mark.parametrize("example,expected", [
    ("graph_tu", "no tu/ folder in the data folder"),
    ("sampler_demo", "no tu/ folder in the data folder"),
    ("simcse", "no sts/ folder in the data folder"),
    ("graph_molhiv", "no molecules/HIV.csv in the data folder"),
    ("vision", "no fashion-mnist IDX files under"),
])
def test_data_dir_is_the_folder_that_holds_every_dataset(example, expected, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [f"dglbs-{example}"])
    main = importlib.import_module(f"dglbs_examples.{example}").main
    assert run_main(main, ["--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"dglbs-{example}: error: ") and expected in err
    assert str(tmp_path) in err


def test_a_wrong_dataset_name_lists_the_datasets_found(monkeypatch, capsys):
    from dglbs_examples.graph_tu import main

    monkeypatch.setattr(sys, "argv", ["dglbs-graph"])
    assert run_main(main, ["--dataset", "MUTAG", "MUTAGG"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dglbs-graph: error: --dataset 'MUTAGG' is not in ") and err.count("\n") == 1
    assert "found COLLAB, IMDB-BINARY, IMDB-MULTI, MUTAG," in err and "--data-dir" in err


def test_graph_command_trains_from_the_data_folder_and_writes_metrics(tmp_path, capsys):
    from dglbs_examples.graph_tu import main

    main(["--dataset", "MUTAG", "--data-dir", str(default_data_dir()), "--sampler", "uniform", "--epochs", "2",
          "--svm-folds", "2", "--hidden-dim", "8", "--num-layers", "2", "--metrics-dir", str(tmp_path),
          "--log-level", "WARNING"])
    out = capsys.readouterr().out
    assert "MUTAG graphcl infonce uniform seed 0: accuracy" in out
    lines = [json.loads(line) for line in (tmp_path / "MUTAG_graphcl_infonce_uniform_seed0.jsonl").open()]
    assert [line["event"] for line in lines] == ["step"] * 2 + ["epoch"] + ["step"] * 2 + ["epoch"]


def test_a_missing_extra_is_one_line_naming_it_even_for_help(monkeypatch, capsys):
    # As if scikit-learn were not installed: its modules (also those already imported) are hidden.
    for name in [name for name in sys.modules if name == "sklearn" or name.startswith("sklearn.")] + ["sklearn"]:
        monkeypatch.setitem(sys.modules, name, None)
    for name in ("dglbs.evaluation.svm", "dglbs_examples.graph_tu"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.setattr(sys, "argv", ["dglbs-graph", "--help"])
    assert commands.graph_tu() == 2
    assert capsys.readouterr().err == ("dglbs-graph: error: dglbs_examples.graph_tu needs the 'graph' extra "
                                       "(no module named 'sklearn'): pip install 'dglbs[graph]'\n")


def test_a_script_run_from_a_clone_reports_a_missing_extra_in_one_line():
    # The script itself is __main__; sklearn is hidden as if the graph extra were not installed.
    code = ("import runpy, sys; sys.modules['sklearn'] = None; sys.argv = ['examples/graph_tu.py', '--help']; "
            "runpy.run_path('examples/graph_tu.py', run_name='__main__')")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr == ("graph_tu.py: error: graph_tu.py needs the 'graph' extra (no module named 'sklearn'): "
                           "pip install 'dglbs[graph]'\n")
