"""The published non-finite behaviour table is what benchmarks/nonfinite_table.py measures now."""

from pathlib import Path

from tests._subprocess import ROOT, run_python


def test_published_nonfinite_table_is_current():
  table = run_python(["benchmarks/nonfinite_table.py"]).strip()
  assert table.count("\n") >= 10, table
  for page in (Path(ROOT, "README.md"), Path(ROOT, "docs", "semantics.md")):
    assert table in page.read_text(), f"{page.name} does not show the table benchmarks/nonfinite_table.py prints"
