"""The documentation builds with warnings as errors and documents every public name once, with its math."""

import importlib
import re
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from tests._subprocess import ROOT

PUBLIC_MODULES = ("jaxnll", "jaxnll.losses", "jaxnll.training")


def _inventory(path: Path) -> dict[str, tuple[str, str]]:
  """``{name: (role, uri)}`` from a Sphinx ``objects.inv``."""
  header_lines = 4
  raw = path.read_bytes().split(b"\n", header_lines)[header_lines]
  entries = {}
  for line in zlib.decompress(raw).decode().splitlines():
    match = re.match(r"(.+?)\s+(\S+:\S+)\s+-?\d+\s+(\S*)\s+.*", line)
    if match:
      name, role, uri = match.groups()
      if role.startswith("py:"):
        entries[name] = (role, uri)
  return entries


def test_docs_build(tmp_path):
  """One build (about 10 s), checked several ways: xdist may not split a module-scoped fixture's users."""
  pytest.importorskip("sphinx", reason="the docs extra: pip install -e '.[docs]'")
  html = _build(tmp_path)
  _check_every_public_name_is_in_the_api_reference(html)
  _check_docstring_math_is_rendered(html)
  _check_guide_pages_are_built(html)
  _check_pages_load_nothing_from_the_network(html)


def _build(out: Path) -> Path:
  proc = subprocess.run(
      [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
       "-d", str(out / "doctrees"), str(ROOT / "docs"), str(out / "html")],
      cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
  assert proc.returncode == 0, f"sphinx-build -W failed:\n{proc.stdout}\n{proc.stderr}"
  return out / "html"


def _check_every_public_name_is_in_the_api_reference(html: Path) -> None:
  inventory = _inventory(html / "objects.inv")
  missing = []
  for module_name in PUBLIC_MODULES:
    module = importlib.import_module(module_name)
    for name in module.__all__:
      qualified = f"{module_name}.{name}"
      role, uri = inventory.get(qualified, ("", ""))
      expected_role = "py:module" if isinstance(getattr(module, name), type(sys)) else None
      if not uri.startswith("api/") or (expected_role and role != expected_role):
        missing.append(qualified)
  assert not missing, f"public names missing from the API pages: {missing}"


def _check_docstring_math_is_rendered(html: Path) -> None:
  page = (html / "api" / "jaxnll.html").read_text()
  cross_entropy = page[page.index('id="jaxnll.cross_entropy"'):page.index('id="jaxnll.nll_loss"')]
  assert 'class="math' in cross_entropy and r"\varepsilon" in cross_entropy
  for built in html.rglob("*.html"):
    text = built.read_text()
    assert ".. math::" not in text and ":math:`" not in text, f"unrendered markup in {built.relative_to(html)}"


def _check_guide_pages_are_built(html: Path) -> None:
  for page in ("getting_started", "porting", "semantics", "training", "ctc", "large_vocabularies", "scaling",
               "benchmarks", "changelog", "api/jaxnll", "api/losses", "api/training"):
    assert (html / f"{page}.html").is_file(), page


def _check_pages_load_nothing_from_the_network(html: Path) -> None:
  """MathJax (and every other script and style) comes from the build itself, so the math renders offline."""
  assert (html / "_static" / "mathjax" / "tex-chtml.js").is_file()
  assert any((html / "_static" / "mathjax" / "output" / "chtml" / "fonts").rglob("*.woff"))
  for built in html.rglob("*.html"):
    text = built.read_text()
    remote = re.findall(r'<(?:script|link)[^>]*(?:src|href)="((?:https?:)?//[^"]*)"', text)
    assert not remote, f"{built.relative_to(html)} loads {remote}"
  api = (html / "api" / "jaxnll.html").read_text()
  assert 'src="../_static/mathjax/tex-chtml.js"' in api
