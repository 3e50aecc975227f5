"""MathJax served from the built site itself, so the math renders offline.

The MathJax 3 files come from the ``sphinx-mathjax-offline`` package (the
``docs`` extra); only the combined TeX-to-CHTML component, its fonts and the
TeX packages it loads on demand are copied next to the pages (about 2 MB),
and ``mathjax_path`` points at them.
No page of the build loads anything from the network.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.errors import ExtensionError
from sphinx.util.fileutil import copy_asset, copy_asset_file

_FILES = ("tex-chtml.js",)
_FOLDERS = ("output/chtml/fonts", "input/tex/extensions")  # fonts, and TeX packages loaded on demand


def _mathjax_source() -> Path:
  spec = importlib.util.find_spec("sphinx-mathjax-offline")
  if spec is None or spec.origin is None:
    raise ExtensionError(
        "offline_math needs the MathJax files of sphinx-mathjax-offline: pip install -e '.[docs]'.")
  return Path(spec.origin).parent / "static" / "mathjax"


def _copy(app: Sphinx, exc: Exception | None) -> None:
  if exc is not None or app.builder.format != "html":
    return
  source, target = _mathjax_source(), Path(app.outdir) / "_static" / "mathjax"
  for name in _FILES:
    target.mkdir(parents=True, exist_ok=True)
    copy_asset_file(str(source / name), str(target / name))
  for folder in _FOLDERS:
    copy_asset(str(source / folder), str(target / folder))


def setup(app: Sphinx) -> dict[str, object]:
  _mathjax_source()  # fail early, with the install hint
  app.config.mathjax_path = "mathjax/tex-chtml.js"
  app.connect("build-finished", _copy)
  return {"parallel_read_safe": True, "parallel_write_safe": True}
