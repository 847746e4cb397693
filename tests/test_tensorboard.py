"""TensorBoard event files (lipprune.train.summary), read back with TensorBoard's own reader."""
import glob
import os
import shutil

import jax
import numpy as np
import pytest
# TensorBoard's own reader, independent of the writer (a test-only dependency, requirements.txt).
from tensorboard.backend.event_processing import event_accumulator

from lipprune.train import io, summary


def _scalars(run_dir) -> dict[str, list[tuple[int, float]]]:
  acc = event_accumulator.EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
  acc.Reload()
  return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def _expected(records, first_step=0) -> dict[str, list[tuple[int, float]]]:
  """What the event file should hold: every numeric field of every record, as float32."""
  out = {}
  for r in records:
    for k, v in r.items():
      if k not in ("step", "phase"):
        out.setdefault(k, []).append((first_step + r["step"], float(np.float32(v))))
  return out


def _no_duplicate_steps(scalars):
  for tag, points in scalars.items():
    steps = [s for s, _ in points]
    assert steps == sorted(set(steps)), (tag, steps)


def test_crc32c_check_value_and_record_framing():
  # The CRC-32C check value of RFC 3720 (iSCSI), appendix B.4.
  assert summary.crc32c(b"123456789") == 0xE3069283
  data = b"abc"
  framed = summary.frame(data)
  assert len(framed) == 8 + 4 + 3 + 4 and framed[12:15] == data
  assert int.from_bytes(framed[:8], "little") == 3


def test_values_tags_and_reset_read_back(tmp_path):
  run = summary.RunEvents(tmp_path / "seed_0" / "original", first_step=7)
  run.reset([{"step": 1, "phase": "p", "train/loss": 2.5}, {"step": 2, "train/loss": "nan"}])
  run.add(3, {"train/loss": 0.1, "eval/accuracy": 0.75, "phase": "p", "flag": True})
  summary.write_scalars(tmp_path / "seed_0" / "original", 11, {"test_accuracy": 0.5, "seed": 3},
                        skip=("seed",))
  got = _scalars(tmp_path / "seed_0" / "original")
  assert set(got) == {"train/loss", "eval/accuracy", "result/test_accuracy"}
  assert got["train/loss"][0] == (8, 2.5) and got["train/loss"][2] == (10, np.float32(0.1))
  assert got["train/loss"][1][0] == 9 and np.isnan(got["train/loss"][1][1])
  assert got["eval/accuracy"] == [(10, 0.75)] and got["result/test_accuracy"] == [(11, 0.5)]
  # A reset drops what was appended after it (a killed attempt's points).
  run.reset([{"step": 1, "train/loss": 2.5}])
  summary.write_scalars(tmp_path / "seed_0" / "original", 11, {"test_accuracy": 0.25})
  got = _scalars(tmp_path / "seed_0" / "original")
  assert got == {"train/loss": [(8, 2.5)], "result/test_accuracy": [(11, 0.25)]}


def _train(workdir, **kw):
  from lipprune import train as train_lib
  from lipprune.models import Model
  from tests.conftest import TinyMLP, blobs
  data = blobs(96)
  model = Model(TinyMLP())
  tx = train_lib.direction("sgd", momentum=0.9)
  params, model_state = model.init(jax.random.key(0), data["x"][:1])
  state = train_lib.TrainState.create(params, model_state, tx)
  sched = train_lib.schedule("constant", base_lr=0.1, total_steps=30)
  step = jax.jit(train_lib.make_train_step(train_lib.cross_entropy(model), tx, sched))
  return train_lib.train(
      state, step, data, batch_size=16, num_steps=30, key=jax.random.key(1), log_every=3,
      checkpoint_every=10, ckpt_dir=os.path.join(workdir, "ckpt"),
      metrics_path=os.path.join(workdir, "metrics.jsonl"),
      summary_dir=os.path.join(workdir, "tb", "train"),
      eval_fn=lambda s: train_lib.evaluate(model, s.params, s.model_state, data), eval_every=9,
      **kw)


def test_killed_run_resumes_without_duplicate_or_stale_points(tmp_path):
  full, killed = str(tmp_path / "full"), str(tmp_path / "killed")
  _train(full)
  _train(killed)
  # What a kill -9 just before the checkpoint of step 30 leaves: records and events of steps
  # 21..30 but a latest checkpoint at step 20. Rewrite those events with other values, so that
  # stale points would show.
  shutil.rmtree(os.path.join(killed, "ckpt", "30"))
  stale = summary.RunEvents(os.path.join(killed, "tb", "train"))
  for step in (21, 24, 27, 30):
    stale.add(step, {"train/loss": 123.0})
  _train(killed)
  records = io.read_jsonl(os.path.join(killed, "metrics.jsonl"))
  got = _scalars(os.path.join(killed, "tb", "train"))
  _no_duplicate_steps(got)
  assert got == _expected(records)
  assert [s for s, _ in got["train/loss"]] == list(range(3, 31, 3))
  assert [s for s, _ in got["eval/accuracy"]] == [9, 18, 27, 30]
  # The uninterrupted run's file is its records too. (The first record after a resume averages
  # fewer steps, so the two runs' records differ there, by design of the loop.)
  assert _scalars(os.path.join(full, "tb", "train")) == \
      _expected(io.read_jsonl(os.path.join(full, "metrics.jsonl")))


def test_summary_dir_needs_metrics_path(tmp_path):
  from lipprune import train as train_lib
  with pytest.raises(ValueError, match="summary_dir needs a metrics_path"):
    train_lib.train(None, None, {}, batch_size=1, num_steps=1, key=jax.random.key(0),
                    summary_dir=str(tmp_path / "tb"))
  assert not os.path.exists(tmp_path / "tb")


def test_pruning_study_dense_run_and_every_round(tmp_path):
  from experiments import prune
  from tests.test_prune import _tiny_config

  def config(**over):
    return _tiny_config(arms=("global_magnitude:weight_rewind@1", "global_magnitude:lr_rewind"),
                        log_every=2, **over)

  work = str(tmp_path / "sliced")
  for _ in range(10):  # stopped and resumed every 15 steps, mid-segment and mid-round
    if prune.run(config(stop_after_steps=15), work)["finished"]:
      break
  out = prune.run(config(), work)
  assert out["finished"]
  seed_dir = os.path.join(work, "seed_0")
  tb = os.path.join(work, "tb", "seed_0")
  # The dense run: two segments (the rewinding snapshot at step 11), one curve in one run dir.
  segments = sorted(glob.glob(os.path.join(seed_dir, "original", "metrics_seg_*.jsonl")))
  assert len(segments) == 2
  records = io.read_jsonl(segments[0]) + [
      {**r, "step": 11 + r["step"]} for r in io.read_jsonl(segments[1])]
  dense = _scalars(os.path.join(tb, "original"))
  _no_duplicate_steps(dense)
  row = io.read_json(os.path.join(seed_dir, "dense.json"))
  assert dense["result/test_accuracy"] == [(22, np.float32(row["test_accuracy"]))]
  assert {k: v for k, v in dense.items() if not k.startswith("result/")} == _expected(records)
  steps = [s for s, _ in dense["train/loss"]]
  assert steps[0] == 2 and 11 in steps and steps[-1] == 22  # both segments, on one step axis
  rounds = 0
  for arm in ("global_magnitude_weight_rewind_t1", "global_magnitude_lr_rewind"):
    for r in (1, 2):
      rdir = os.path.join(seed_dir, arm, f"round_{r}")
      got = _scalars(os.path.join(tb, arm, f"round_{r}"))
      _no_duplicate_steps(got)
      row = io.read_json(os.path.join(rdir, "result.json"))
      assert got["result/test_accuracy"] == [(row["retrain_steps"],
                                              np.float32(row["test_accuracy"]))]
      assert got["result/density"][0][1] == np.float32(row["density"])
      records = io.read_jsonl(os.path.join(rdir, "metrics.jsonl"))
      assert records and {k: v for k, v in got.items() if not k.startswith("result/")} == \
          _expected(records)
      rounds += 1
  assert rounds == 4


def test_fairness_sweep_table_as_scalars(tmp_path):
  from experiments import fairness
  items = [(0.0, (0.0, 1.0, 10.0)), (0.2, (0.2, 1.0, 10.0))]
  rows = [{"beta": v, "method": m, "test": "test", "grad_norm_max": 1e-5, "iterations_mean": 40.0,
           **{k: 0.1 * i + 0.01 * j for j, k in enumerate(fairness.TABLE_METRICS)}}
          for i, (v, _) in enumerate(items) for m in ("baseline", "oracle")]
  fairness.write_events(str(tmp_path), "beta", items, rows)
  fairness.write_events(str(tmp_path), "beta", items, rows)  # a rewrite adds no point
  got = _scalars(tmp_path / "tb" / "beta" / "oracle")
  assert set(got) == {f"test/{k}" for k in fairness.TABLE_METRICS} | {"fit/grad_norm_max",
                                                                      "fit/iterations_mean"}
  assert got["test/f1_z"] == [(0, np.float32(rows[0]["f1_z"])), (1, np.float32(rows[2]["f1_z"]))]
  assert got["fit/iterations_mean"] == [(0, 40.0), (1, 40.0)]
