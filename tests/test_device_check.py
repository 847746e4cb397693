"""bench/device_check.py runs end to end at tiny sizes on CPU, without ml_collections,
tensorflow-datasets or mlxtend on its import path (a stock GPU image need not have them)."""
import json
import os
import subprocess
import sys

from tests.conftest import REPO

BLOCKED = ("ml_collections", "tensorflow_datasets", "mlxtend", "tensorflow", "sklearn")
_RUN = f"""
import runpy, sys
for name in {BLOCKED!r}:
  sys.modules[name] = None  # importing any of them now raises ImportError
sys.argv = ["device_check", "--tiny", "--json=" + sys.argv[1]]
runpy.run_module("bench.device_check", run_name="__main__")
"""


def test_device_check_runs_tiny_on_cpu_without_data_packages(tmp_path):
  out = tmp_path / "rows.json"
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO))
  proc = subprocess.run([sys.executable, "-c", _RUN, str(out)], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=900)
  assert proc.returncode == 0, proc.stderr[-3000:]
  rows = json.loads(out.read_text())["rows"]
  items = [r["item"] for r in rows]
  for expected in ("matmul float32", "matmul bfloat16", "step f32", "step bf16", "masked step",
                   "seeds vmapped", "loop step", "loop scan-16", "PGD-10", "TRADES step"):
    assert any(expected in item for item in items), (expected, items)
  for r in rows:
    assert not str(r["implied"]).startswith(("error", "skipped")), r
    assert r["lipprune"] and float(r["lipprune"].split()[0].replace(",", "")) >= 0, r
  assert "| item" in proc.stdout and "compile s" in proc.stdout  # the one table
