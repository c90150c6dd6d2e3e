"""Small reference architectures used by the demo, tests and benchmarks."""

import numbers

from tfprune_survey import frameworks


def _keras(framework):
  """(keras module, layers) of 'tf_keras' or 'keras3'."""
  keras = frameworks.get(framework).keras
  return keras, keras.layers


def _ints(values, name, minimum=1):
  """`values` as a non-empty tuple of ints >= minimum; errors name `name`."""
  from tfprune_survey import planning  # pylint: disable=g-import-not-at-top
  if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
    raise TypeError(f"`{name}` must be a sequence of ints >= {minimum}, got "
                    f"{values!r}")
  values = tuple(values)
  if not values:
    raise ValueError(f"`{name}` must not be empty")
  return tuple(planning.check_int(v, f"{name}[{i}]", minimum)
               for i, v in enumerate(values))


def _check(input_shape, pools, **counts):
  """Checks the arguments a zoo model shares; errors name the argument.

  `input_shape` is (H, W, C) with C an int >= 1 and H, W ints, or None (a
  free size); a fixed H or W must survive `pools` 2x2 max poolings.
  Every entry of `counts` must be an int >= 1.
  """
  from tfprune_survey import planning  # pylint: disable=g-import-not-at-top
  shape = tuple(input_shape) if hasattr(input_shape, "__iter__") else None
  if shape is None or len(shape) != 3:
    raise ValueError(f"`input_shape` must be (height, width, channels), got "
                     f"{input_shape!r}")
  planning.check_int(shape[2], "input_shape[2] (channels)", 1)
  least = 2 ** pools
  for i in (0, 1):
    if shape[i] is not None and planning.check_int(
        shape[i], f"input_shape[{i}]", 1) < least:
      raise ValueError(
          f"`input_shape` {shape} is too small: this model halves height "
          f"and width {pools} times with 2x2 max pooling, so each must be at "
          f"least {least}")
  for name, value in counts.items():
    planning.check_int(value, name, 1)
  return shape


def residual_cnn(input_shape=(32, 32, 3), classes=10, width=32,
                 stem_pool=False, framework="tf_keras"):
  """A small CNN with BatchNormalization and one residual block.

  Args:
    input_shape: (H, W, C) of one image. Defaults to (32, 32, 3).
    classes: number of output logits. Defaults to 10.
    width: channels of the first stage (the head has 2x). Defaults to 32.
    stem_pool: max-pool after the stem, so the block runs at half
      resolution (4x fewer MACs there). Defaults to False.

    framework: 'tf_keras' (default) or 'keras3' (`import keras`).
  Returns:
    A Functional model of `framework` producing logits.

  Raises:
    ValueError, TypeError: for a bad argument (the message names it).
  """
  keras, L = _keras(framework)
  input_shape = _check(input_shape, 1 + bool(stem_pool), classes=classes,
                       width=width)
  inp = keras.Input(input_shape, name="image")
  x = L.Conv2D(width, 3, padding="same", use_bias=False, name="stem_conv")(inp)
  x = L.BatchNormalization(name="stem_bn")(x)
  x = L.ReLU(name="stem_relu")(x)
  if stem_pool:
    x = L.MaxPooling2D(name="stem_pool")(x)
  y = L.Conv2D(width, 3, padding="same", use_bias=False,
               name="block_conv1")(x)
  y = L.BatchNormalization(name="block_bn1")(y)
  y = L.ReLU(name="block_relu1")(y)
  y = L.Conv2D(width, 3, padding="same", use_bias=False,
               name="block_conv2")(y)
  y = L.BatchNormalization(name="block_bn2")(y)
  x = L.Add(name="block_add")([x, y])
  x = L.ReLU(name="block_relu2")(x)
  x = L.MaxPooling2D(name="pool")(x)
  x = L.Conv2D(2 * width, 3, padding="same", use_bias=False,
               name="head_conv")(x)
  x = L.BatchNormalization(name="head_bn")(x)
  x = L.ReLU(name="head_relu")(x)
  x = L.GlobalAveragePooling2D(name="gap")(x)
  x = L.Dense(classes, name="logits")(x)
  return keras.Model(inp, x, name="residual_cnn")


def resnet_cifar(depth=56, input_shape=(32, 32, 3), classes=10,
                 widths=(16, 32, 64), framework="tf_keras"):
  """A CIFAR ResNet (He et al. 2016) of basic blocks, 6n+2 layers deep.

  Downsampling shortcuts are 1x1 convolutions with BN (option B).

  Args:
    depth: 6n+2 (20, 32, 44, 56, 110). Defaults to 56.
    input_shape: defaults to (32, 32, 3).
    classes: defaults to 10.
    widths: channels of the three stages. Defaults to (16, 32, 64).

    framework: 'tf_keras' (default) or 'keras3' (`import keras`).
  Returns:
    A Functional model of `framework` producing logits.

  Raises:
    ValueError: if `depth` is not 6n+2, or for another bad argument (the
      message names it).
    TypeError: for an argument of the wrong type (e.g. depth=20.0).
  """
  keras, L = _keras(framework)
  if isinstance(depth, bool) or not isinstance(depth, numbers.Integral):
    raise TypeError(f"`depth` must be an int 6n+2 (e.g. 20, 56), got "
                    f"{depth!r} of type {type(depth).__name__}")
  depth = int(depth)
  if (depth - 2) % 6 or depth < 8:
    raise ValueError(f"`depth` must be 6n+2 (e.g. 20, 56), got {depth}")
  widths = _ints(widths, "widths")
  input_shape = _check(input_shape, 0, classes=classes)
  n = (depth - 2) // 6
  inp = keras.Input(input_shape, name="image")
  x = L.Conv2D(widths[0], 3, padding="same", use_bias=False, name="conv1")(inp)
  x = L.BatchNormalization(name="bn1")(x)
  x = L.ReLU(name="relu1")(x)
  for s, w in enumerate(widths):
    for b in range(n):
      stride = 2 if (s > 0 and b == 0) else 1
      name = f"s{s + 1}b{b + 1}"
      y = L.Conv2D(w, 3, strides=stride, padding="same", use_bias=False,
                   name=name + "_conv1")(x)
      y = L.BatchNormalization(name=name + "_bn1")(y)
      y = L.ReLU(name=name + "_relu1")(y)
      y = L.Conv2D(w, 3, padding="same", use_bias=False,
                   name=name + "_conv2")(y)
      y = L.BatchNormalization(name=name + "_bn2")(y)
      if stride != 1 or x.shape[-1] != w:
        x = L.Conv2D(w, 1, strides=stride, use_bias=False,
                     name=name + "_short")(x)
        x = L.BatchNormalization(name=name + "_short_bn")(x)
      x = L.Add(name=name + "_add")([x, y])
      x = L.ReLU(name=name + "_relu2")(x)
  x = L.GlobalAveragePooling2D(name="gap")(x)
  x = L.Dense(classes, name="logits")(x)
  return keras.Model(inp, x, name=f"resnet{depth}")


def vgg_small(input_shape=(32, 32, 3), classes=10, widths=(32, 64, 128),
              fc=128, framework="tf_keras"):
  """A VGG-style net: two 3x3 conv+BN+ReLU per stage, max pooling, Flatten.

  Raises:
    ValueError, TypeError: for a bad argument (the message names it), e.g.
      an input too small for one 2x2 max pooling per stage.
  """
  keras, L = _keras(framework)
  widths = _ints(widths, "widths")
  input_shape = _check(input_shape, len(widths), classes=classes, fc=fc)
  inp = keras.Input(input_shape, name="image")
  x = inp
  for s, w in enumerate(widths):
    for c in range(2):
      x = L.Conv2D(w, 3, padding="same", use_bias=False,
                   name=f"s{s + 1}_conv{c + 1}")(x)
      x = L.BatchNormalization(name=f"s{s + 1}_bn{c + 1}")(x)
      x = L.ReLU(name=f"s{s + 1}_relu{c + 1}")(x)
    x = L.MaxPooling2D(name=f"s{s + 1}_pool")(x)
  x = L.Flatten(name="flatten")(x)
  x = L.Dense(fc, activation="relu", name="fc1")(x)
  x = L.Dense(classes, name="logits")(x)
  return keras.Model(inp, x, name="vgg_small")


VGG16_CIFAR = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512,
               "M", 512, 512, 512, "M")


def vgg_cifar(cfg=VGG16_CIFAR, input_shape=(32, 32, 3), classes=10, fc=512,
              framework="tf_keras"):
  """The CIFAR VGG-16 of Li et al. 2017: 13 conv+BN+ReLU, one hidden FC.

  Args:
    cfg: conv widths, with "M" for a 2x2 max pooling. Defaults to VGG-16's.
    input_shape: defaults to (32, 32, 3).
    classes: defaults to 10.
    fc: width of the hidden fully connected layer. Defaults to 512.

    framework: 'tf_keras' (default) or 'keras3' (`import keras`).
  Returns:
    A Functional model of `framework` producing logits.

  Raises:
    ValueError, TypeError: for a bad argument (the message names it), e.g.
      a `cfg` entry that is neither a width nor "M", or an input too small
      for its poolings.
  """
  from tfprune_survey import planning  # pylint: disable=g-import-not-at-top
  keras, L = _keras(framework)
  cfg = tuple(cfg)
  for i, c in enumerate(cfg):
    if c != "M":
      if isinstance(c, str):
        raise ValueError(f"`cfg[{i}]` must be a width or \"M\" (a 2x2 max "
                         f"pooling), got {c!r}")
      planning.check_int(c, f"cfg[{i}]", 1)
  input_shape = _check(input_shape, cfg.count("M"), classes=classes, fc=fc)
  inp = keras.Input(input_shape, name="image")
  x = inp
  for i, c in enumerate(cfg):
    if c == "M":
      x = L.MaxPooling2D(name=f"pool{i}")(x)
      continue
    x = L.Conv2D(c, 3, padding="same", use_bias=False, name=f"conv{i}")(x)
    x = L.BatchNormalization(name=f"bn{i}")(x)
    x = L.ReLU(name=f"relu{i}")(x)
  x = L.Flatten(name="flatten")(x)
  x = L.Dense(fc, use_bias=False, name="fc1")(x)
  x = L.BatchNormalization(name="fc1_bn")(x)
  x = L.ReLU(name="fc1_relu")(x)
  x = L.Dense(classes, name="logits")(x)
  return keras.Model(inp, x, name="vgg16_cifar")


def resnext_small(input_shape=(32, 32, 3), classes=10, widths=(64, 128),
                  cardinality=8, group_width=4, blocks=1,
                  framework="tf_keras"):
  """A small ResNeXt (Xie et al. 2017) of bottleneck blocks with grouped convs.

  Each block is 1x1 conv -> 3x3 conv with `groups=cardinality` -> 1x1 conv,
  each followed by BN (and ReLU but the last), plus a shortcut (a strided
  1x1 conv with BN where the width or the resolution changes). Stage `s`
  has `widths[s]` output channels and a bottleneck of
  `cardinality * group_width * 2**s` channels; every stage after the first
  halves the resolution.

  Args:
    input_shape: defaults to (32, 32, 3).
    classes: defaults to 10.
    widths: output channels of the stages. Defaults to (64, 128).
    cardinality: the grouped convs' `groups`. Defaults to 8.
    group_width: channels of one group in the first stage. Defaults to 4.
    blocks: blocks per stage. Defaults to 1.
    framework: 'tf_keras' (default) or 'keras3' (`import keras`).

  Returns:
    A Functional model of `framework` producing logits.

  Raises:
    ValueError, TypeError: for a bad argument (the message names it).
  """
  keras, L = _keras(framework)
  widths = _ints(widths, "widths")
  input_shape = _check(input_shape, 0, classes=classes,
                       cardinality=cardinality, group_width=group_width,
                       blocks=blocks)
  inp = keras.Input(input_shape, name="image")
  x = L.Conv2D(32, 3, padding="same", use_bias=False, name="stem_conv")(inp)
  x = L.BatchNormalization(name="stem_bn")(x)
  x = L.ReLU(name="stem_relu")(x)
  for s, w in enumerate(widths):
    inner = cardinality * group_width * 2 ** s
    for b in range(blocks):
      stride = 2 if (s > 0 and b == 0) else 1
      name = f"s{s + 1}b{b + 1}"
      y = L.Conv2D(inner, 1, use_bias=False, name=name + "_reduce")(x)
      y = L.BatchNormalization(name=name + "_reduce_bn")(y)
      y = L.ReLU(name=name + "_reduce_relu")(y)
      y = L.Conv2D(inner, 3, strides=stride, padding="same",
                   groups=cardinality, use_bias=False,
                   name=name + "_group_conv")(y)
      y = L.BatchNormalization(name=name + "_group_bn")(y)
      y = L.ReLU(name=name + "_group_relu")(y)
      y = L.Conv2D(w, 1, use_bias=False, name=name + "_expand")(y)
      y = L.BatchNormalization(name=name + "_expand_bn")(y)
      if stride != 1 or x.shape[-1] != w:
        x = L.Conv2D(w, 1, strides=stride, use_bias=False,
                     name=name + "_short")(x)
        x = L.BatchNormalization(name=name + "_short_bn")(x)
      x = L.Add(name=name + "_add")([x, y])
      x = L.ReLU(name=name + "_relu")(x)
  x = L.GlobalAveragePooling2D(name="gap")(x)
  x = L.Dense(classes, name="logits")(x)
  return keras.Model(inp, x, name="resnext_small")
