"""Reading a compiled program: the collectives it contains."""

from __future__ import annotations

import re

KINDS = ("all-gather", "all-reduce", "reduce-scatter", "all-to-all", "collective-permute")


def collectives(hlo: str) -> list[tuple[str, str]]:
  """``(kind, result type)`` of every collective in an HLO module's text (layouts dropped)."""
  ops = re.findall(rf"= (.+?) ({'|'.join(KINDS)})(?:-start)?\(", hlo)
  return [(kind, re.sub(r"\{[0-9,]*\}", "", shape)) for shape, kind in ops]
