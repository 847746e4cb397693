"""experiments.train with ``streaming=True`` on a tiny tfds dataset built here without TensorFlow.

The reference is the in-memory path of the same job on the generator's own arrays (``data.load``
replaced by a function returning them), and, for evaluation, numpy on the model's logits.
"""
import io as bytes_io

import jax
import numpy as np
import pytest

tfds = pytest.importorskip("tensorflow_datasets")
PIL_Image = pytest.importorskip("PIL.Image")

from experiments import train as train_job  # noqa: E402
from experiments.configs import imagenet_resnet50, mnist5k_mlp  # noqa: E402
from lipprune import data as data_lib  # noqa: E402
from lipprune import models  # noqa: E402
from lipprune import train as train_lib  # noqa: E402
from lipprune.data import loader  # noqa: E402
from lipprune.data.streaming import StreamingSource  # noqa: E402
from lipprune.train import io, loop  # noqa: E402
from lipprune.train.checkpoint import Checkpointer  # noqa: E402

NAME = "lipprune_stream_train_tiny"
SIZES = {"train": 64, "test": 32}
SIDE, NUM_CLASSES = 8, 3


def _png(image: np.ndarray) -> bytes:
  buf = bytes_io.BytesIO()
  PIL_Image.fromarray(image).save(buf, format="PNG")
  return buf.getvalue()


def examples(split: str):
  """The uint8 images and int32 labels the builder writes for ``split``; labels follow the mean
  brightness of the red channel, so a model can learn something."""
  rng = np.random.default_rng(SIZES[split])
  images = rng.integers(0, 256, (SIZES[split], SIDE, SIDE, 3), dtype=np.uint8)
  labels = np.minimum(images[..., 0].mean((1, 2)) // (256 / NUM_CLASSES), NUM_CLASSES - 1)
  return images, labels.astype(np.int32)


class LippruneStreamTrainTiny(tfds.core.GeneratorBasedBuilder):
  """64 train and 32 test random 8x8x3 images in 3 classes."""

  VERSION = tfds.core.Version("1.0.0")
  code_path = None  # no checksums file, no module-path probe

  def _info(self):
    # disable_shuffling: records stay in generation order, so examples() is the reference.
    return tfds.core.DatasetInfo(builder=self, disable_shuffling=True,
                                 features=tfds.features.FeaturesDict({
                                     "image": tfds.features.Image(shape=(SIDE, SIDE, 3)),
                                     "label": tfds.features.ClassLabel(num_classes=NUM_CLASSES)}))

  def _split_generators(self, dl_manager):
    return {split: self._generate_examples(split) for split in SIZES}

  def _generate_examples(self, split):
    for i, (image, label) in enumerate(zip(*examples(split))):
      yield i, {"image": _png(image), "label": int(label)}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  root = tmp_path_factory.mktemp("tfds")
  LippruneStreamTrainTiny(data_dir=str(root), file_format="array_record").download_and_prepare()
  return str(root)


def _dataset(split):
  images, labels = examples(split)
  x = images.astype(np.float32)
  x /= np.float32(255.0)
  return data_lib.Dataset(x=x, y=labels, num_classes=NUM_CLASSES, name=NAME)


def _config(data_dir, **overrides):
  c = mnist5k_mlp.get_config()
  c.dataset = NAME
  c.data_dir = data_dir
  c.streaming = True
  c.stream_threads = 2
  c.stream_prefetch = 1
  c.augment = "crop_flip"  # the device-side preprocess sees the same batches and keys
  c.model_kwargs.hidden = (16,)
  c.batch_size = 16
  c.num_epochs = 2  # 8 steps
  c.learning_rate = 0.05
  c.log_every = 4
  c.eval_every = 4
  c.checkpoint_every = 4
  c.eval_batch_size = 12  # padded last batches: 64 = 5 x 12 + 4, 32 = 2 x 12 + 8
  for k, v in overrides.items():
    setattr(c, k, v)
  return c


def _final_params(config, workdir):
  """The parameters in the run's last checkpoint (restored with a freshly built template)."""
  init_key, _ = jax.random.split(jax.random.key(config.seed))
  _, template, *_ = train_job.build(config, _dataset("train"), init_key)
  ckpt = Checkpointer(f"{workdir}/checkpoints")
  progress, state = ckpt.restore(template)
  ckpt.close()
  return progress, jax.device_get(state.params)


@pytest.mark.parametrize("validation_size", [0, 10])
def test_streamed_run_equals_in_memory_run(data_dir, tmp_path, monkeypatch, validation_size):
  config = _config(data_dir, validation_size=validation_size)
  streamed = train_job.train_and_evaluate(config, str(tmp_path / "streamed"))

  # The in-memory job on the same examples: data.load returns the generator's arrays.
  monkeypatch.setattr(data_lib, "NAMES", data_lib.NAMES + (NAME,))
  monkeypatch.setattr(data_lib, "load", lambda name, split, **kw: _dataset(split))
  memory_config = _config(data_dir, validation_size=validation_size, streaming=False)
  in_memory = train_job.train_and_evaluate(memory_config, str(tmp_path / "memory"))

  assert streamed["steps"] == in_memory["steps"] == 8
  assert streamed == in_memory  # same batches, keys and eval batches: the same floats
  assert streamed == io.read_json(str(tmp_path / "streamed" / "results.json"))
  # The reported test set excludes the held-out examples in both paths: accuracy is a multiple of
  # 1 / (32 - validation_size).
  n_test = SIZES["test"] - validation_size
  assert abs(streamed["test_accuracy"] * n_test - round(streamed["test_accuracy"] * n_test)) < 1e-6

  # Same batches, same keys: bit-equal parameters, and the same logged metrics along the way.
  p_stream, params_stream = _final_params(config, str(tmp_path / "streamed"))
  p_memory, params_memory = _final_params(memory_config, str(tmp_path / "memory"))
  assert p_stream == p_memory == 8
  jax.tree.map(np.testing.assert_array_equal, params_stream, params_memory)
  init_key, _ = jax.random.split(jax.random.key(config.seed))
  _, state0, *_ = train_job.build(config, _dataset("train"), init_key)
  assert all(jax.tree.leaves(jax.tree.map(lambda a, b: not np.array_equal(a, b),
                                          jax.device_get(state0.params), params_stream)))

  def records(name):
    rows = io.read_jsonl(str(tmp_path / name / "metrics.jsonl"))
    return [{k: v for k, v in r.items() if k != "steps_per_sec"} for r in rows]

  got, want = records("streamed"), records("memory")
  assert len(got) == len(want) and any("eval/accuracy" in r for r in got)
  assert got == want


@pytest.mark.parametrize("batch_size,prefetch", [(12, True), (5, False), (1000, True)])
def test_evaluate_source_equals_evaluate_and_numpy(data_dir, batch_size, prefetch):
  model = models.create("mlp", NUM_CLASSES, hidden=(8,))
  test = _dataset("test")
  params, model_state = model.init(jax.random.key(1), test.x[:1])
  source = StreamingSource(NAME, split="test", data_dir=data_dir, batch_size=None, key=None)
  assert len(source) == SIZES["test"] and source.num_classes == NUM_CLASSES
  got = loop.evaluate_source(model, params, model_state, source, batch_size=batch_size,
                             prefetch=prefetch)
  want = train_lib.evaluate(model, params, model_state, test.arrays(), batch_size=batch_size)
  assert got == want  # same batches and padding: the same floats

  # Independent: numpy softmax cross-entropy and argmax on the logits of every example.
  logits, _ = model.apply(params, model_state, test.x, train=False)
  logits = np.asarray(logits, np.float64)
  logz = np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1)) + logits.max(1)
  ce = logz - logits[np.arange(len(test)), test.y]
  assert got["loss"] == pytest.approx(ce.mean(), rel=1e-5)
  assert got["accuracy"] == pytest.approx((logits.argmax(1) == test.y).mean(), abs=1e-9)

  # A subset of indices (the holdout path) equals evaluate on those rows.
  rest, held = loader.holdout_indices(len(test), 7, 0)
  assert len(held) == 7 and len(rest) == 25 and not set(held) & set(rest)
  got = loop.evaluate_source(model, params, model_state, source, batch_size=batch_size,
                             indices=rest, prefetch=prefetch)
  want = train_lib.evaluate(model, params, model_state, test.take(rest).arrays(),
                            batch_size=batch_size)
  assert got == want
  rest_ds, held_ds = loader.holdout(test, 7, 0)
  np.testing.assert_array_equal(rest_ds.y, test.y[rest])
  np.testing.assert_array_equal(held_ds.y, test.y[held])


def test_read_only_source_has_no_batches(data_dir):
  source = StreamingSource(NAME, split="test", data_dir=data_dir, batch_size=None, key=None)
  np.testing.assert_array_equal(source.read([3, 1])["y"], examples("test")[1][[3, 1]])
  with pytest.raises(ValueError, match="read-only"):
    source.batch(0)
  with pytest.raises(ValueError, match="both"):
    StreamingSource(NAME, split="test", data_dir=data_dir, batch_size=4, key=None)


def test_imagenet_in_memory_fails_fast_saying_to_stream():
  assert "imagenet2012" in loader.STREAMING_NAMES and "imagenet2012" not in data_lib.NAMES
  with pytest.raises(ValueError, match=r"--config\.streaming=True"):
    data_lib.load("imagenet2012", "train")
  config = imagenet_resnet50.get_config()
  config.streaming = False
  config.image_size = None
  with pytest.raises(ValueError, match=r"config\.dataset='imagenet2012'.*--config\.streaming=True"):
    train_job.validate_config(config)


def test_streaming_of_missing_data_fails_before_compute(tmp_path):
  config = _config(str(tmp_path / "empty"), dataset="lipprune_not_prepared_anywhere")
  with pytest.raises(Exception, match="lipprune_not_prepared_anywhere"):
    train_job.train_and_evaluate(config, str(tmp_path / "run"))
  assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize("field,value,streaming,match", [
    ("streaming", "yes", False, "config.streaming"),
    ("dataset", "", True, "config.dataset"),
    ("image_size", -1, True, "config.image_size"),
    ("image_size", 8, False, r"config\.image_size=8 applies only with config\.streaming=True"),
    ("crop_fraction", 1.5, True, "config.crop_fraction"),
    ("stream_threads", 0, True, "config.stream_threads"),
    ("stream_prefetch", -1, True, "config.stream_prefetch"),
    ("dataset", NAME, False, r"config\.dataset='lipprune_stream_train_tiny' is not valid"),
])
def test_validation_names_the_field(tmp_path, field, value, streaming, match):
  config = _config(str(tmp_path), streaming=streaming,
                   **({} if streaming else {"dataset": "digits"}))  # otherwise valid
  if field in config:
    del config[field]  # a fresh field takes any type (ConfigDict would reject "yes" for a bool)
  config[field] = value
  with pytest.raises(ValueError, match=match):
    train_job.train_and_evaluate(config, str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()  # rejected before the workdir is touched


def test_load_data_refuses_streaming_configs(data_dir):
  with pytest.raises(ValueError, match="streaming"):
    train_job.load_data(_config(data_dir))


def test_imagenet_resnet50_config_validates_and_schedules():
  config = imagenet_resnet50.get_config()
  train_job.validate_config(config)  # touches no data
  assert (config.dataset, config.model, config.streaming) == ("imagenet2012", "resnet50", True)
  assert (config.optimizer, config.momentum, config.nesterov) == ("sgd", 0.9, True)
  assert (config.batch_size, config.num_epochs, config.weight_decay) == (1024, 90, 1e-4)
  assert (config.image_size, config.augment, config.eval_split) == (224, "crop_flip", "validation")
  # The learning rate: 0.4 after a 5-epoch linear warmup, x0.1 at epochs 30, 60 and 80.
  spe = 1_281_167 // 1024
  _, sched, num_steps = train_job.build_optimizer(config, spe)
  assert num_steps == 90 * spe
  lr = lambda s: float(sched(s))  # noqa: E731
  assert lr(0) == pytest.approx(0.4 / (5 * spe), rel=1e-5)
  assert lr(5 * spe // 2 - 1) == pytest.approx(0.2, rel=1e-3)
  for step, want in [(5 * spe, 0.4), (30 * spe - 1, 0.4), (30 * spe, 0.04), (60 * spe, 0.004),
                     (80 * spe - 1, 0.004), (80 * spe, 0.0004), (num_steps - 1, 0.0004)]:
    assert lr(step) == pytest.approx(want, rel=1e-5), step
