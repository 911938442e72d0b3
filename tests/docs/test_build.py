"""docs/build.py renders the API reference from the docstrings with pdoc."""
import importlib.util
import warnings
from pathlib import Path

import pytest

pytest.importorskip("pdoc")


def load_script(path: Path, name: str):
    """A script as a module under its own name (notebooks/ has a build.py too)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build = load_script(Path(__file__).resolve().parents[2] / "docs" / "build.py", "docs_build")


def test_public_modules_list_every_module_of_a_package():
    modules = build.public_modules(("dglbs_models",))
    expected = ["dglbs_models"] + sorted(f"dglbs_models.{path.stem}" for path in
                                         (Path(build.__file__).parents[1] / "models").glob("[!_]*.py"))
    assert sorted(modules) == sorted(expected)


def test_pages_carry_the_numpy_docstrings(tmp_path):
    index = build.build(tmp_path, ["dglbs", "dglbs.trainer", "dglbs.metrics"])
    assert index.is_file()
    trainer = (tmp_path / "dglbs" / "trainer.html").read_text()
    assert "metrics_path" in trainer and "JSON Lines" in trainer
    assert (tmp_path / "dglbs" / "metrics.html").is_file()


@pytest.mark.slow
def test_the_whole_reference_builds(tmp_path):
    """Opt-in (`pytest -m slow`): every public module gets a page (about half a minute)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a module without its optional dependency is reported, not fatal
        modules = build.public_modules()
    assert {"dglbs", "dglbs.trainer", "dglbs.cli", "dglbs.data.images", "dglbs_models.gin"} <= set(modules)
    assert not any(part.startswith("_") for name in modules for part in name.split("."))
    index = build.build(tmp_path, modules)
    pages = {path.relative_to(tmp_path).with_suffix("").as_posix().replace("/", ".")
             for path in tmp_path.rglob("*.html")} - {"index"}
    assert index.is_file() and set(modules) <= pages
