"""ResNet-50 on ImageNet (ILSVRC-2012), streamed: the recipe Renda et al. (ICLR 2020) train and
prune (Goyal et al. 2017 large-batch SGD): 90 epochs, batch 1024, SGD with Nesterov momentum 0.9,
LR 0.4 (= 0.1 x 1024/256) with a 5-epoch linear warmup, divided by 10 at epochs 30, 60 and 80,
weight decay 1e-4; 224 x 224 inputs; bfloat16 compute (float32 parameters).

Input pipeline: ``streaming=True`` reads tfds ``imagenet2012`` (prepared once as ArrayRecord:
``tfds build imagenet2012 --file_format=array_record --manual_dir=...``) batch by batch; every image
is resized (shorter side 256) and center-cropped to 224 on the host, then ``crop_flip`` pads by 4,
randomly crops and flips on the device. That is lighter than the usual random-resized-crop, so
expect top-1 a little below the paper's ~76%. Evaluation streams the 50,000-image ``validation``
split (ImageNet's test labels are not public). TPU-pod / multi-GPU scale: each process reads its
share of every batch.
"""
from lipprune import cli

mnist5k_mlp = cli.sibling_config(__file__, "mnist5k_mlp")


def get_config():
  c = mnist5k_mlp.get_config()
  # Data.
  c.dataset = "imagenet2012"
  c.streaming = True
  c.train_split = "train"
  c.eval_split = "validation"
  c.image_size = 224
  c.crop_fraction = 0.875  # resize the shorter side to 224 / 0.875 = 256, then center-crop
  c.stream_threads = 16  # host threads decoding JPEGs per batch
  c.stream_prefetch = 2  # batches read ahead while the device trains
  c.validation_size = 0
  c.augment = "crop_flip"
  # Model.
  c.model = "resnet50"
  c.model_kwargs = {}
  c.compute_dtype = "bfloat16"
  # Optimization.
  c.batch_size = 1024
  c.num_epochs = 90
  c.optimizer = "sgd"
  c.momentum = 0.9
  c.nesterov = True
  c.weight_decay = 1e-4
  c.learning_rate = 0.4
  c.lr_schedule = "step"
  c.lr_boundaries_epochs = (30, 60, 80)
  c.lr_decay_factor = 0.1
  c.warmup_epochs = 5
  # Bookkeeping.
  c.log_every = 100
  c.eval_every = 5000
  c.eval_batch_size = 1024
  c.checkpoint_every = 1000
  return c
