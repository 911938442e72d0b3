"""Build the API reference (HTML) from the docstrings with pdoc.

    pip install -c constraints.txt -e ".[docs]"
    python docs/build.py                 # writes build/api/index.html
    python docs/build.py -o /some/folder

Every public module of ``dglbs`` and ``dglbs_models`` gets a page (``dglbs``'s
``__all__`` would otherwise hide its sub-modules from pdoc); modules whose optional
dependencies are missing (e.g. ``dglbs.integrations.lightning`` without the
``lightning`` extra) are left out with a warning.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import warnings
from pathlib import Path

PACKAGES = ("dglbs", "dglbs_models")
DEFAULT_OUTPUT = Path(__file__).resolve().parents[1] / "build" / "api"


def public_modules(packages: tuple[str, ...] = PACKAGES) -> list[str]:
    """The packages and their sub-modules whose names have no part starting with ``_``,
    that import (the others are reported in a warning)."""
    names = []
    for package in packages:
        names.append(package)
        path = importlib.import_module(package).__path__
        for module in pkgutil.walk_packages(path, prefix=f"{package}."):
            if any(part.startswith("_") for part in module.name.split(".")):
                continue
            try:
                importlib.import_module(module.name)
            except ImportError as error:
                warnings.warn(f"{module.name} left out of the API reference: {error}", stacklevel=2)
                continue
            names.append(module.name)
    return names


def build(output: Path = DEFAULT_OUTPUT, modules: list[str] | None = None) -> Path:
    """Write the HTML reference of ``modules`` (default: :func:`public_modules`) to
    ``output``; returns its ``index.html``."""
    import pdoc

    modules = public_modules() if modules is None else modules
    pdoc.render.configure(docformat="numpy", search=True)
    with warnings.catch_warnings():
        # pdoc also walks the sub-modules of packages without __all__, which are listed here too.
        warnings.filterwarnings("ignore", message="The module specification .* has already been added")
        pdoc.pdoc(*modules, output_directory=output)
    return output / "index.html"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUTPUT, help="output folder (default: build/api)")
    args = parser.parse_args()
    print(f"wrote {build(args.output)}")


if __name__ == "__main__":
    main()
