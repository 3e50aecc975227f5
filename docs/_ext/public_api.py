"""``.. public-api:: MODULE``: the API reference of every name in ``MODULE.__all__``.

The directive writes an autosummary table of the module's public names, then
one autodoc entry per name, grouped by the private module that defines it
(``jaxnll._cross_entropy`` -> "Cross-entropy and NLL"). A name added to
``__all__`` appears on the next build without editing any page; submodules in
``__all__`` are linked to their own pages instead.
"""

from __future__ import annotations

import importlib
import inspect
import re
import types
import typing
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective
from sphinx.util.parsing import nested_parse_to_nodes

# Section titles, in page order, for the private modules that define public names.
# Names from a module missing here get a title made from its name ("_foo_bar" -> "Foo bar").
TOPICS = {
    "jaxnll._log_softmax": "Log-softmax",
    "jaxnll._cross_entropy": "Cross-entropy and negative log-likelihood",
    "jaxnll._binary": "Binary classification",
    "jaxnll._divergence": "Divergences",
    "jaxnll._regression": "Regression",
    "jaxnll._focal": "Focal loss",
    "jaxnll._margin": "Margin losses",
    "jaxnll._embedding": "Embedding and metric-learning losses",
    "jaxnll._ctc": "Connectionist temporal classification (CTC)",
    "jaxnll._adaptive": "Adaptive softmax",
    "jaxnll._linear_cross_entropy": "Large vocabularies",
    "jaxnll._loss_objects": "Loss objects",
    "jaxnll._optax_compat": "Softmax cross-entropy",
    "jaxnll._optax_elementwise": "Binary, divergence and regression losses",
    "jaxnll._optax_margin": "Margin and similarity losses",
    "jaxnll._optax_ctc": "CTC",
    "jaxnll._targets": "Checked mode",
    "jaxnll._reduction": "Types",
    "jaxnll._training": "Training helpers",
}
_TYPES = "Types"


def public_names(module: types.ModuleType) -> list[str]:
  """``module.__all__``, which every public module defines."""
  names = getattr(module, "__all__", None)
  if names is None:
    raise ValueError(f"{module.__name__} has no __all__; the API reference is generated from it.")
  return list(names)


def _topic(obj: Any) -> str:
  if _is_type_alias(obj):
    return _TYPES
  home = getattr(inspect.unwrap(obj), "__module__", None) or ""
  if home in TOPICS:
    return TOPICS[home]
  return home.rsplit(".", 1)[-1].strip("_").replace("_", " ").capitalize() or "Other"


def _is_type_alias(obj: Any) -> bool:
  return typing.get_origin(obj) is not None or isinstance(obj, getattr(typing, "TypeAliasType", ()))


def _entry(qualified: str, obj: Any) -> str:
  if inspect.isclass(obj):
    return f".. autoclass:: {qualified}\n   :members:\n   :inherited-members:\n   :special-members: __call__\n"
  if callable(obj) and not _is_type_alias(obj):
    return f".. autofunction:: {qualified}\n"
  if _is_type_alias(obj):
    module, name = qualified.rsplit(".", 1)
    return f".. py:data:: {name}\n   :module: {module}\n\n   Type alias: ``{_alias_text(obj)}``.\n"
  return f".. autodata:: {qualified}\n"


def _alias_text(obj: Any) -> str:
  if typing.get_origin(obj) is typing.Literal:
    return "Literal[" + ", ".join(repr(a) for a in typing.get_args(obj)) + "]"
  return repr(obj).replace("typing.", "")


def api_rst(module_name: str) -> str:
  """The reStructuredText of one module's API page body."""
  module = importlib.import_module(module_name)
  documented, submodules = [], []
  for name in public_names(module):
    obj = getattr(module, name)
    (submodules if inspect.ismodule(obj) else documented).append((name, obj))
  lines = [f".. currentmodule:: {module_name}", ""]
  summarized = [name for name, obj in documented if not _is_type_alias(obj)]
  if summarized:
    lines += [".. autosummary::", "   :nosignatures:", ""] + [f"   {name}" for name in summarized] + [""]
  if submodules:
    lines += ["Submodules: " + ", ".join(f":mod:`{module_name}.{name}`" for name, _ in submodules) + ".", ""]
  order = list(TOPICS.values())
  groups: dict[str, list[tuple[str, Any]]] = {}
  for name, obj in documented:
    groups.setdefault(_topic(obj), []).append((name, obj))
  titled = len(groups) > 1
  for topic in sorted(groups, key=lambda t: (order.index(t) if t in order else len(order), t)):
    if titled:
      lines += [topic, "-" * len(topic), ""]
    for name, obj in groups[topic]:
      lines += [_entry(f"{module_name}.{name}", obj), ""]
  return "\n".join(lines)


class PublicAPI(SphinxDirective):
  required_arguments = 1
  has_content = False

  def run(self) -> list[nodes.Node]:
    module_name = self.arguments[0]
    module = importlib.import_module(module_name)
    if module.__file__:
      self.env.note_dependency(module.__file__)
    return nested_parse_to_nodes(self.state, api_rst(module_name), allow_section_headings=True)


def _always_reread_api_pages(app: Sphinx, env: Any, added: set, changed: set, removed: set) -> list[str]:
  """API pages depend on ``__all__`` of modules that may be edited anywhere: reread them every build."""
  return [doc for doc in env.found_docs if doc.startswith("api/")]


def _alias_signature(app: Sphinx, what: str, name: str, obj: Any, options: Any, signature: str | None,
                     return_annotation: str | None) -> tuple[str | None, str | None]:
  """Shows ``autodoc_type_aliases`` inside unions (``ArrayLike | None``) by name, as outside them."""
  def clean(text: str | None) -> str | None:
    return None if text is None else re.sub(r"TypeAliasForwardRef\('([^']*)'\)", r"\1", text)

  return clean(signature), clean(return_annotation)


def setup(app: Sphinx) -> dict[str, Any]:
  app.add_directive("public-api", PublicAPI)
  app.connect("autodoc-process-signature", _alias_signature)
  app.connect("env-get-outdated", _always_reread_api_pages)
  return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
