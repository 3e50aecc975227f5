"""Command-line flags shared by the short examples: each flag checked when parsed, defaults shown in ``--help``."""

from __future__ import annotations

import argparse
import math


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
  """The module docstring as written, and each flag's default after its help."""


def parser(doc: str | None) -> argparse.ArgumentParser:
  return argparse.ArgumentParser(description=doc, formatter_class=HelpFormatter)


def int_at_least(low: int):
  """An argparse type: a whole number of at least ``low``."""

  def parse(text: str) -> int:
    try:
      value = int(text)
    except ValueError:
      raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < low:
      raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
    return value

  return parse


positive_int = int_at_least(1)
nonnegative_int = int_at_least(0)


def positive_float(text: str) -> float:
  try:
    value = float(text)
  except ValueError:
    raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
  if not (math.isfinite(value) and value > 0):
    raise argparse.ArgumentTypeError(f"must be finite and > 0, got {text}")
  return value
