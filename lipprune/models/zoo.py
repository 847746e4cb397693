"""Imports every model file so that each registers its names with `lipprune.models.registry`.

Registered models (``lipprune.models.create(name, num_classes, **kwargs)``):

* ``logistic``, ``mlp`` (LeNet-300-100 by default), ``lenet5``: `lipprune.models.simple`.
* ``conv2``, ``conv4``, ``conv6`` (Frankle & Carbin 2019), ``vgg16`` (Li et al. 2017):
  `lipprune.models.convnets`.
* ``resnet20``, ``resnet56``, ``resnet110`` (He et al. 2016, CIFAR): `lipprune.models.resnet_cifar`.
* ``wrn`` (Zagoruyko & Komodakis 2016): `lipprune.models.wrn`.
* ``resnet50`` (ImageNet, v1.5): `lipprune.models.resnet_imagenet`.

Every module is called as ``module(x, train: bool)`` and takes a ``dtype`` kwarg (compute dtype;
params stay float32, logits come back float32). Shared conventions: `lipprune.models.layers`.
"""
from lipprune.models import convnets  # noqa: F401
from lipprune.models import resnet_cifar  # noqa: F401
from lipprune.models import resnet_imagenet  # noqa: F401
from lipprune.models import simple  # noqa: F401
from lipprune.models import wrn  # noqa: F401
