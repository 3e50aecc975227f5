"""examples/ctc_digits.py: a few training steps end to end in a fresh process, and its flags checked up front."""

import subprocess
import sys

from tests._subprocess import ROOT, run_python


def test_a_few_steps_train_and_report_held_out_accuracy():
  out = run_python(["examples/ctc_digits.py", "--steps", "3", "--batch-size", "8", "--test-strips", "16"],
                   timeout=120)
  assert "step 3: loss " in out
  summary = next(line for line in out.splitlines() if line.startswith("held-out strips:"))
  accuracy = float(summary.split("sequence accuracy ")[1].split(",")[0])
  error_rate = float(summary.split("character error rate ")[1].split(" ")[0])
  assert 0.0 <= accuracy <= 1.0 and error_rate >= 0.0


def test_bad_flags_fail_before_any_work_with_the_default_in_help():
  run = lambda *args: subprocess.run([sys.executable, "examples/ctc_digits.py", *args], cwd=ROOT,
                                     capture_output=True, text=True, timeout=60, check=False)
  bad = run("--steps", "0")
  assert bad.returncode == 2 and "--steps: must be at least 1, got 0" in bad.stderr
  bad = run("--lr", "nan")
  assert bad.returncode == 2 and "--lr: must be finite and > 0" in bad.stderr
  shown = run("--help")
  assert shown.returncode == 0 and "(default: 1200)" in shown.stdout and "strips per training step" in shown.stdout
