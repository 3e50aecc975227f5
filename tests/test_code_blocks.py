"""The code in the README and in the documentation's guide pages runs as it stands.

Each README block runs alone in a fresh interpreter with JAX's default
configuration (so it must import and define everything it uses); a guide
page's blocks run in order in one interpreter, as a reader would type them.
Fragments that continue a complete example kept elsewhere (a file in
``examples/``, tested on its own) use MyST's ``{code-block} python`` instead
of a ```python fence.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests._subprocess import ROOT

FENCE = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
DOCS = ROOT / "docs"


def python_blocks(path: Path) -> list[str]:
  return FENCE.findall(path.read_text())


README = ROOT / "README.md"
README_BLOCKS = python_blocks(README)
GUIDE_PAGES = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")
                     if "_build" not in p.parts and python_blocks(p))


def _run(tmp_path: Path, name: str, code: str) -> None:
  """Runs ``code`` as a script in a fresh interpreter, with no JAX or XLA settings inherited but the run's
  compilation cache (tests/conftest.py), which reuses compiled programs and changes no result."""
  script = tmp_path / name
  script.write_text(code)
  env = {k: v for k, v in os.environ.items()
         if not k.startswith(("JAX_", "XLA_")) or k.startswith(("JAX_COMPILATION_CACHE", "JAX_PERSISTENT_CACHE"))}
  proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env={**env, "PYTHONPATH": str(ROOT)},
                        capture_output=True, text=True, timeout=300, check=False)
  assert proc.returncode == 0, f"{name} exited {proc.returncode}\n{code}\n{proc.stdout}\n{proc.stderr}"


@pytest.mark.parametrize("index", range(len(README_BLOCKS)))
def test_readme_block_runs_alone(index, tmp_path):
  _run(tmp_path, f"readme_block_{index}.py", README_BLOCKS[index])


@pytest.mark.parametrize("page", GUIDE_PAGES)
def test_guide_page_runs(page, tmp_path):
  _run(tmp_path, "page.py", "\n\n".join(python_blocks(DOCS / page)))


def test_readme_reads_as_a_package_description():
  text = README.read_text()
  assert len(README_BLOCKS) >= 4 and len(GUIDE_PAGES) >= 5
  # PyPI shows the README without the repository around it: every link is absolute. No site is published,
  # so none points at one: the docs are built from docs/ (the Documentation section says how).
  for target in re.findall(r"\]\(([^)]*)\)", text):
    assert target.startswith("https://"), f"relative link {target!r} only works inside the repository"
  for unpublished in ("readthedocs", "github.com/jaxnll"):
    assert unpublished not in text, unpublished
  assert ".venv/bin/sphinx-build -W --keep-going -b html docs docs/_build/html" in text
  # CI runs the README's test command verbatim.
  ci_command = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
  assert f"```bash\n{ci_command}\n```" in text
  mnist = 'python3 -m venv .venv && .venv/bin/pip install -q -e ".[examples]" && .venv/bin/python examples/mnist.py'
  assert f"```bash\n{mnist}\n```" in text
