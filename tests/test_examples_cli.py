"""Every example's ``--help`` describes each flag with its default, and bad values fail naming the flag."""

import json
import re

import pytest

from tests._subprocess import run_python

EXAMPLES = ("binary_classification", "gaussian_regression", "haiku_example", "linen_example", "nnx_example",
            "sharded_lm", "ctc_digits")

# One interpreter for all of them: starting Python with JAX costs more than printing a help text.
RUN_ALL = """
import contextlib, io, json, runpy, sys
sys.path.insert(0, "examples")
out = {}
for name, argv in %s:
  buf, err = io.StringIO(), io.StringIO()
  sys.argv = [name + ".py", *argv]
  with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(err):
    try:
      runpy.run_path(f"examples/{name}.py", run_name="__main__")
      code = 0
    except SystemExit as e:
      code = e.code
  out[name + " " + " ".join(argv)] = (code, buf.getvalue(), err.getvalue())
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def runs():
  calls = [(name, ["--help"]) for name in EXAMPLES] + [(name, ["--steps", "0"]) for name in EXAMPLES]
  return json.loads(run_python(["-c", RUN_ALL % calls]).strip().splitlines()[-1])


@pytest.mark.parametrize("name", EXAMPLES)
def test_help_describes_every_flag_with_its_default(runs, name):
  code, out, _ = runs[f"{name} --help"]
  assert code == 0, out
  flags = re.findall(r"^  (--[a-z-]+)(?: [A-Z_]+)?\s*(.*)$", out, re.MULTILINE)
  assert flags, out
  for flag, text in flags:
    assert text.strip(), f"{name}: {flag} has no help text\n{out}"
  assert "(default:" in out, out


@pytest.mark.parametrize("name", EXAMPLES)
def test_bad_values_fail_naming_the_flag(runs, name):
  code, _, err = runs[f"{name} --steps 0"]
  assert code == 2 and "argument --steps:" in err and "Traceback" not in err, err
