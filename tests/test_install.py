"""The package as a user installs it: what the wheel holds, and a fresh venv that runs it.

The wheel test builds the wheel from the checkout's files, installs it without
dependencies into a virtual environment that sees this interpreter's packages
(torch, dgl ... are never re-installed) and runs it from a folder outside the
repository that holds a ``models`` package of its own. It takes about half a minute,
so it is marked slow; ``.ci/run`` runs it.
"""
from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from setuptools import find_packages

REPO = Path(__file__).resolve().parents[1]


def setup_cfg() -> configparser.ConfigParser:
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    return config


def listed(value: str) -> list[str]:
    return [line.strip() for line in value.splitlines() if line.strip()]


def test_setup_cfg_installs_every_package_under_a_name_that_cannot_clash():
    options = setup_cfg()["options"]
    packages = listed(options["packages"])
    mapped = dict(line.split(" = ") for line in listed(options["package_dir"]))
    assert mapped == {"dglbs_models": "models", "dglbs_examples": "examples"}
    # Every sub-package of dglbs is listed (setup.cfg lists them by hand for the mapping).
    assert sorted(name for name in packages if name.split(".")[0] == "dglbs") == sorted(
        find_packages(REPO, include=["dglbs", "dglbs.*"]))
    assert all(name.startswith("dglbs") for name in packages)
    for folder in mapped.values():
        assert (REPO / folder / "__init__.py").is_file() and not find_packages(REPO / folder)


def _checkout_copy(destination: Path) -> Path:
    """The files git would commit (tracked or new, not ignored), copied to ``destination``."""
    listing = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                             capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listing):
        source = REPO / name
        if source.is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)
    return destination


def _run(*command: str | Path, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run([str(part) for part in command], capture_output=True, text=True, timeout=300, **kwargs)
    assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.mark.slow
def test_wheel_installs_and_runs_outside_the_repository(tmp_path):
    source = _checkout_copy(tmp_path / "source")
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", tmp_path / "dist",
         source)
    [wheel] = (tmp_path / "dist").glob("dglbs-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names if not name.startswith("dglbs-")} == {
        "dglbs", "dglbs_models", "dglbs_examples"}
    assert "dglbs_models/gin.py" in names and "dglbs_examples/graph_tu.py" in names

    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", venv)
    python, scripts = venv / "bin" / "python", venv / "bin"
    _run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "-q", wheel)

    # A user's project with its own models/ package, outside the repository.
    project = tmp_path / "project"
    (project / "models").mkdir(parents=True)
    (project / "models" / "__init__.py").write_text("")
    (project / "models" / "gin.py").write_text('GIN = "the user\'s own"\n')
    environment = {key: value for key, value in os.environ.items() if key != "DGLBS_DATA"}
    environment["XDG_DATA_HOME"] = str(tmp_path / "xdg")
    check = (
        "import dglbs, dglbs_models.gin, dglbs_examples.graph_tu, models.gin; "
        "from dglbs.data.paths import default_data_location; "
        "print(dglbs.__file__, dglbs_models.gin.__file__, dglbs_examples.graph_tu.__file__, models.gin.GIN, "
        "default_data_location()[0], sep='\\n')"
    )
    lines = _run(python, "-c", check, cwd=project, env=environment).stdout.splitlines()
    site = str(venv)
    assert all(line.startswith(site) for line in lines[:3]), lines
    assert lines[3] == "the user's own"
    assert lines[4] == str(tmp_path / "xdg" / "dglbs")

    # The commands: a clear error without data, then a tiny run with the data folder from $DGLBS_DATA.
    missing = subprocess.run([scripts / "dglbs-graph", "--dataset", "MUTAG"], cwd=project, env=environment,
                             capture_output=True, text=True, timeout=300)
    assert missing.returncode == 2
    assert missing.stderr.startswith("dglbs-graph: error: the data folder ") and "--data-dir" in missing.stderr
    environment["DGLBS_DATA"] = str(_data_dir())
    ran = _run(scripts / "dglbs-graph", "--dataset", "MUTAG", "--epochs", "1", "--sampler", "batchsampler",
               "--svm-folds", "2", "--hidden-dim", "8", "--num-layers", "2", cwd=project, env=environment)
    assert "MUTAG graphcl infonce batchsampler seed 0: accuracy" in ran.stdout
    assert "epoch 0: loss" in ran.stderr
    module_help = _run(python, "-m", "dglbs_examples.vision", "--help", cwd=project, env=environment)
    assert "--data-dir DATA_DIR" in module_help.stdout


def _data_dir() -> Path:
    from dglbs.data.paths import default_data_dir

    return default_data_dir()
