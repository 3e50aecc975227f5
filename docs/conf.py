"""Sphinx configuration for the jaxnll documentation.

Build: ``pip install -e ".[docs]"``, then
``sphinx-build -W --keep-going -b html docs docs/_build/html`` and open
``docs/_build/html/index.html``; it works offline (MathJax is bundled).
"""

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS.parent))
sys.path.insert(0, str(DOCS / "_ext"))

import jaxnll  # noqa: E402

project = "jaxnll"
author = "The jaxnll authors"
copyright = "The jaxnll authors"
release = jaxnll.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "myst_parser",
    "sphinx_copybutton",
    "public_api",
    "offline_math",  # MathJax bundled into the build: the math renders with no network
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
root_doc = "index"

# Docstrings: Google style, math in `.. math::`; signatures stay short.
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
autodoc_typehints = "signature"
autodoc_typehints_format = "short"
autodoc_preserve_defaults = True
autodoc_member_order = "bysource"
autodoc_type_aliases = {"jax.typing.ArrayLike": "jax.typing.ArrayLike", "ArrayLike": "jax.typing.ArrayLike"}
python_use_unqualified_type_names = True
add_module_names = True

myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

copybutton_prompt_text = r">>> |\.\.\. |\$ "
copybutton_prompt_is_regexp = True

html_theme = "furo"
html_title = f"jaxnll {release}"
html_static_path = ["_static"]
html_css_files = ["custom.css"]
html_theme_options: dict[str, str] = {}
