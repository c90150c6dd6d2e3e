"""tps.cluster_prune: clustering redundant channels and merging them."""

import numpy as np
import pytest

import tfprune_survey as tps
from tfprune_survey import frameworks
from tfprune_survey import zoo
from tests.conftest import max_rel_diff
from tests.conftest import same_weights
from tests.conftest import to_numpy
from tests.conftest import weights_of
from tests.conftest import dead_branch_model
from tests.conftest import two_input_model

FRAMEWORKS = ("tf_keras", "keras3")


def keras_of(framework):
  return frameworks.get(framework).keras


def conv_model(framework, widths=(8, 8), units=6, seed=0):
  """conv+BN+ReLU (x2), GAP, Dense+ReLU, Dense: all but the last prunable."""
  keras = keras_of(framework)
  L = keras.layers
  keras.utils.set_random_seed(seed)
  inp = keras.Input((8, 8, 3))
  x = inp
  for i, w in enumerate(widths):
    x = L.Conv2D(w, 3, padding="same", name=f"c{i + 1}")(x)
    x = L.BatchNormalization(name=f"bn{i + 1}")(x)
    x = L.ReLU(name=f"relu{i + 1}")(x)
  x = L.GlobalAveragePooling2D()(x)
  x = L.Dense(units, activation="relu", bias_initializer="ones",
              name="d1")(x)
  model = keras.Model(inp, L.Dense(3, name="out")(x))
  rng = np.random.default_rng(seed)
  for i in range(len(widths)):   # BN parameters that are not the defaults
    bn = model.get_layer(f"bn{i + 1}")
    bn.set_weights([rng.uniform(0.5, 1.5, v.shape).astype(np.float32)
                    if j != 2 else rng.normal(0, 0.1, v.shape).astype(
                        np.float32) for j, v in enumerate(bn.get_weights())])
  return model


def copy_channels(model, copies, noise=0.0, seed=0):
  """Makes channel `dst` of each group a copy of channel `src`, in place.

  Every producer and per-channel slice of the group is copied (filters,
  biases, BN vectors, depthwise kernels), consumers that mix channels are
  left as they are; `noise`
  adds that much relative Gaussian noise to the copies' producer kernels.

  Args:
    copies: {group_id: [(src, dst), ...]}.
  """
  graph = tps.ChannelGraph(model)
  rng = np.random.default_rng(seed)
  # Consumers that mix channels (the weight also makes the layer's outputs)
  # stay; per-channel ones (depthwise kernels) are copied.
  mixing = {(sl.path, sl.weight) for sl in graph.weight_slices
            if sl.role == "producer"}
  for gid, pairs in copies.items():
    for sl, base, seg in graph.group_segments(graph.group(gid)):
      if sl.role == "consumer" and (sl.path, sl.weight) in mixing:
        continue
      layer = graph.layer(sl.path)
      names = [frameworks.Framework.short_name(w) for w in layer.weights]
      values = layer.get_weights()
      v = np.moveaxis(values[names.index(sl.weight)], sl.axis, 0)
      for src, dst in pairs:
        v[base + dst] = v[base + src]
        if noise and sl.role == "producer" and v.ndim > 1:
          v[base + dst] += noise * np.abs(v[base + src]).mean() * (
              rng.standard_normal(v[base + dst].shape))
      layer.set_weights(values)
  return model


def halves(n):
  return [(j, j + n // 2) for j in range(n // 2)]


def inputs(n=16, shape=(8, 8, 3), seed=1):
  return np.random.default_rng(seed).normal(size=(n,) + shape).astype(
      np.float32)


def outputs_diff(a, b, x):
  ref = to_numpy(a(x, training=False))
  assert np.ptp(ref, axis=0).max() > 1e-3, "the reference output is constant"
  return max_rel_diff(ref, to_numpy(b(x, training=False)))


# ---- exact merging ------------------------------------------------------

@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("merge", ["mean", "first", "random"])
def test_exact_duplicates_merge_to_half_width_with_same_outputs(framework,
                                                                merge):
  model = copy_channels(conv_model(framework), {
      "c1": halves(8), "c2": halves(8), "d1": halves(6)})
  before = weights_of(model)
  result = tps.cluster_prune(model, threshold=1.0, merge=merge)
  slim = result.model
  assert slim.get_layer("c1").filters == 4
  assert slim.get_layer("c2").filters == 4
  assert slim.get_layer("d1").units == 3
  x = inputs()
  assert outputs_diff(model, slim, x) <= 1e-5
  # Dropping the copies without summing the consumers' slices is far off.
  plain = tps.materialize(model, result.keep)
  assert outputs_diff(model, plain, x) > 1e-2
  assert same_weights(before, weights_of(model))
  assert type(slim).__module__.split(".")[0] == type(
      model).__module__.split(".")[0]


def branchy_model(framework):
  """Two branches concatenated, then BN, depthwise and separable convs."""
  keras = keras_of(framework)
  L = keras.layers
  inp = keras.Input((8, 8, 1))
  a = L.ReLU()(L.BatchNormalization(name="bn_a")(L.Conv2D(
      4, 3, padding="same", name="a")(inp)))
  b = L.ReLU()(L.Conv2D(6, 3, padding="same", name="b")(inp))
  x = L.BatchNormalization(name="bn_cat")(L.Concatenate()([a, b]))
  x = L.ReLU()(L.DepthwiseConv2D(3, padding="same", name="dw")(x))
  x = L.SeparableConv2D(8, 3, padding="same", name="sep")(x)
  x = L.ReLU()(L.BatchNormalization(name="bn_sep")(x))
  x = L.GlobalAveragePooling2D()(x)
  model = keras.Model(inp, L.Dense(3, name="out")(x))
  rng = np.random.default_rng(0)
  for name in ("bn_a", "bn_cat", "bn_sep"):
    bn = model.get_layer(name)
    bn.set_weights([rng.uniform(0.5, 1.5, v.shape).astype(np.float32)
                    for v in bn.get_weights()])
  graph = tps.ChannelGraph(model)
  assert sorted(g.id for g in graph.prunable_groups) == ["a", "b", "sep"]
  return copy_channels(model, {g.id: halves(g.size)
                               for g in graph.prunable_groups})


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_exact_merging_through_residual_and_flatten(framework):
  """Residual streams, Flatten->Dense rows, Concatenate offsets, a BN after
  the concatenation, depthwise and separable convs merge exactly too."""
  res = zoo.residual_cnn(input_shape=(8, 8, 1), width=8, framework=framework)
  graph = tps.ChannelGraph(res)
  copy_channels(res, {g.id: halves(g.size) for g in graph.prunable_groups})
  vgg = zoo.vgg_small(input_shape=(8, 8, 1), widths=(4, 8, 8), fc=8,
                      framework=framework)
  graph = tps.ChannelGraph(vgg)
  copy_channels(vgg, {g.id: halves(g.size) for g in graph.prunable_groups})
  x = inputs(8, (8, 8, 1))
  for model in (res, vgg, branchy_model(framework)):
    result = tps.cluster_prune(model, threshold=1.0)
    assert result.report.groups and all(
        kept == total // 2 for _, kept, total in result.report.groups)
    assert outputs_diff(model, result.model, x) <= 1e-5


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_different_bn_parameters_do_not_merge_exactly(framework):
  x = inputs()
  errors = []
  for shift in (0.0, 0.3):
    model = copy_channels(conv_model(framework, widths=(4,)), {
        "c1": [(0, 1)], "d1": halves(6)})
    bn = model.get_layer("bn1")
    values = bn.get_weights()
    # The same filter, centred at 0; beta differs by `shift`, so the ReLU
    # cuts the two channels at different places.
    values[2][:2] = 0.0
    values[1][:2] = [0.0, shift]
    bn.set_weights(values)
    result = tps.cluster_prune(model, ratio=0.25, scope="local")
    assert list(result.keep["c1"]) == [0, 2, 3]
    errors.append(outputs_diff(model, result.model, x))
  assert errors[0] <= 1e-5 < 1e-3 < errors[1]


def test_keras3_lora_layers_merge_by_their_effective_kernels():
  """LoRA's kernel is kernel + alpha/rank * a @ b: a consumer's a-rows are
  summed like its kernel rows, and filters are compared with the LoRA part."""
  keras = keras_of("keras3")
  L = keras.layers
  keras.utils.set_random_seed(0)
  inp = keras.Input((5,))
  h = L.Dense(6, activation="relu", name="d1")(inp)
  model = keras.Model(inp, L.Dense(3, name="d2")(h))
  rng = np.random.default_rng(0)
  for name in ("d1", "d2"):
    layer = model.get_layer(name)
    layer.enable_lora(2)
    for v in (layer.lora_kernel_a, layer.lora_kernel_b):
      v.assign(rng.normal(size=v.shape).astype(np.float32))
  d1 = model.get_layer("d1")
  k, b, a, lb = d1.get_weights()
  k[:, 3], b[3], lb[:, 3] = k[:, 0], b[0], lb[:, 0]   # unit 3 copies unit 0
  d1.set_weights([k, b, a, lb])
  x = rng.normal(size=(16, 5)).astype(np.float32)
  result = tps.cluster_prune(model, threshold=1.0)
  assert list(result.keep["d1"]) == [0, 1, 2, 4, 5]
  assert outputs_diff(model, result.model, x) <= 1e-5
  # The same base kernel but another LoRA column is no duplicate.
  lb[:, 3] = lb[:, 0] + 1.0
  d1.set_weights([k, b, a, lb])
  assert tps.cluster_prune(model, threshold=1.0).keep == {}


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_residual_branch_scaled_by_zero_is_dropped_not_a_crash(framework):
  """A branch whose shared ChannelScale is 0 (SSS) adds nothing: materialize
  removes it, and merging must not look for its layers in the slim model."""
  model = dead_branch_model(framework, conv_after_add=False)
  copy_channels(model, {"stem": halves(8), "b1": halves(6)})
  before = weights_of(model)
  result = tps.cluster_prune(model, threshold=1.0)
  assert {g: len(k) for g, k in result.keep.items()} == {"stem": 4}
  assert [g for g, _, _ in result.report.groups] == ["stem"]
  assert "b1" not in [layer.name for layer in result.model.layers]
  assert result.report.macs_after == tps.count_macs(result.model)
  assert outputs_diff(model, result.model, inputs(8, (6, 6, 3))) <= 1e-5
  assert same_weights(before, weights_of(model))


# ---- approximate merging ----------------------------------------------

@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_near_duplicates_merge_with_a_small_error(framework):
  copies = {"c1": halves(8), "c2": halves(8)}
  exact = copy_channels(conv_model(framework), copies)
  near = copy_channels(conv_model(framework), copies, noise=1e-3)
  x = inputs()
  result = tps.cluster_prune(near, threshold=0.999)
  assert {g: len(k) for g, k in result.keep.items()} == {"c1": 4, "c2": 4}
  err = outputs_diff(near, result.model, x)
  assert 1e-7 < err < 1e-2
  # The error comes from the noise: exact copies merge within 1e-5.
  assert outputs_diff(exact, tps.cluster_prune(exact, threshold=0.999).model,
                      x) <= 1e-5
  # 'mean' (the cluster's average filter) does no worse than 'first' here.
  first = tps.cluster_prune(near, threshold=0.999, merge="first")
  assert err <= 2 * outputs_diff(near, first.model, x)


# ---- how much merges ----------------------------------------------------

@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_threshold_gives_each_layer_its_own_ratio(framework):
  # c1: 4 pairs of duplicates; c2: two filters, four copies of each.
  model = copy_channels(conv_model(framework), {
      "c1": halves(8),
      "c2": [(0, 2), (0, 4), (0, 6), (1, 3), (1, 5), (1, 7)]})
  result = tps.cluster_prune(model, threshold=0.99)
  kept = {gid: k for gid, k, _ in result.report.groups}
  assert kept == {"c1": 4, "c2": 2, "d1": 6}
  assert list(result.keep["c2"]) == [0, 1]
  assert outputs_diff(model, result.model, inputs()) <= 1e-5
  # A lower similarity merges more; -1 merges every group into one channel.
  looser = tps.cluster_prune(model, threshold=0.0)
  assert all(k <= kept[g] for g, k, _ in looser.report.groups)
  one = tps.cluster_prune(model, threshold=-1.0)
  assert {g: len(k) for g, k in one.keep.items()} == {
      "c1": 1, "c2": 1, "d1": 1}


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_euclidean_threshold_is_a_maximum_distance(framework):
  model = copy_channels(conv_model(framework), {"c1": [(0, 1)]})
  graph = tps.ChannelGraph(model)
  assert graph.group("c1").size == 8
  result = tps.cluster_prune(model, threshold=0.0, metric="euclidean")
  assert {g: list(k) for g, k in result.keep.items()} == {
      "c1": [0, 2, 3, 4, 5, 6, 7]}
  assert result.scores["c1"][0] == result.scores["c1"][1] == 0.0
  assert (result.scores["c1"][2:] > 0).all()


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_ratio_local_and_global(framework):
  model = conv_model(framework, widths=(8, 12), units=10)
  local = tps.cluster_prune(model, ratio=0.5, scope="local")
  assert {g: len(k) for g, k in local.keep.items()} == {
      "c1": 4, "c2": 6, "d1": 5}
  glob = tps.cluster_prune(model, ratio=0.5, scope="global")
  assert sum(k for _, k, _ in glob.report.groups) == 15


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("scope", ["local", "global"])
def test_target_macs_is_reached(framework, scope):
  model = zoo.vgg_small(input_shape=(16, 16, 3), widths=(8, 16, 16), fc=16,
                        framework=framework)
  result = tps.cluster_prune(model, target_macs=0.4, scope=scope)
  reduction = result.report.macs_reduction
  assert 0.4 <= reduction <= 0.45, reduction
  assert result.report.macs_after == tps.count_macs(result.model)


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("name", ["resnet20", "vgg"])
def test_zoo_nets_at_half_the_macs(framework, name):
  """The settings survey_comparison.py runs, on both zoo nets."""
  model = (zoo.resnet_cifar(20, input_shape=(16, 16, 3), framework=framework)
           if name == "resnet20" else
           zoo.vgg_small(input_shape=(16, 16, 3), framework=framework))
  before = weights_of(model)
  x = inputs(4, (16, 16, 3))
  for merge, scope in (("mean", "global"), ("random", "local"),
                       ("mean", "local"), ("random", "global")):
    result = tps.cluster_prune(model, target_macs=0.5, merge=merge,
                               scope=scope)
    assert 0.5 <= result.report.macs_reduction <= 0.53
    out = to_numpy(result.model(x, training=False))
    assert out.shape == (4, 10) and np.isfinite(out).all()
  assert same_weights(before, weights_of(model))


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_grouped_convs_merge_within_blocks_exactly(framework):
  """ResNeXt: channels cluster within each conv group, equally per group."""
  model = zoo.resnext_small(input_shape=(8, 8, 3), widths=(16, 32),
                            framework=framework)
  graph = tps.ChannelGraph(model)
  assert graph.group("s1b1_reduce").blocks == 8
  per = 4  # 32 channels in 8 blocks, for both grouped groups of stage 1
  # One duplicate in every block of the group conv's input and output; one
  # more in block 0 only, which the other blocks cannot match.
  model = copy_channels(model, {
      "s1b1_reduce": [(b * per, b * per + 1) for b in range(8)] + [(2, 3)],
      "s1b1_group_conv": [(b * per + 2, b * per + 3) for b in range(8)]})
  before = weights_of(model)
  result = tps.cluster_prune(model, threshold=1.0)
  kept = {g: len(k) for g, k in result.keep.items()}
  assert kept == {"s1b1_reduce": 24, "s1b1_group_conv": 24}
  for gid in kept:   # every block keeps 3 and none of the copies
    blocks = np.asarray(result.keep[gid]) // per
    assert np.bincount(blocks, minlength=8).tolist() == [3] * 8
  slim = result.model
  assert slim.get_layer("s1b1_group_conv").groups == 8
  x = inputs(8, (8, 8, 3))
  assert outputs_diff(model, slim, x) <= 1e-5
  # Without summing the grouped conv's input positions it is far off.
  plain = tps.materialize(model, result.keep)
  assert outputs_diff(model, plain, x) > 1e-3
  assert same_weights(before, weights_of(model))
  # Ratio and MACs cuts keep equal blocks too, and the model runs.
  for kwargs in (dict(ratio=0.3), dict(target_macs=0.3, scope="global")):
    r = tps.cluster_prune(model, **kwargs)
    for gid in ("s1b1_reduce", "s1b1_group_conv", "s2b1_reduce"):
      if gid in r.keep:
        counts = np.bincount(np.asarray(r.keep[gid]) //
                             (graph.group(gid).size // 8), minlength=8)
        assert len(set(counts.tolist())) == 1, (kwargs, gid, counts)
    assert np.isfinite(to_numpy(r.model(x, training=False))).all()


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_global_ratio_removes_at_least_that_fraction_with_grouped_convs(
    framework):
  """Grouped-conv blocks round merges back up; 'global' ratio still removes
  at least round(ratio * total) channels, and fewer than one block more."""
  keras = keras_of(framework)
  L = keras.layers
  keras.utils.set_random_seed(0)
  inp = keras.Input((8, 8, 4))
  x = L.Conv2D(8, 3, padding="same", name="c1")(inp)
  x = L.Conv2D(8, 3, padding="same", groups=4, name="g")(x)
  x = L.Conv2D(6, 1, name="c3")(x)
  x = L.GlobalAveragePooling2D()(x)
  model = keras.Model(inp, L.Dense(3, name="out")(x))
  graph = tps.ChannelGraph(model)
  assert [(g.id, g.size, g.blocks) for g in graph.prunable_groups] == [
      ("c1", 8, 4), ("g", 8, 4), ("c3", 6, 1)]
  total = 22   # c1 and g keep one channel per block, c3 one: 13 may go
  for ratio in (0.1, 0.2, 0.25, 0.3, 0.4, 0.5):
    result = tps.cluster_prune(model, ratio=ratio, scope="global")
    kept = sum(result.model.get_layer(n).filters for n in ("c1", "g", "c3"))
    asked = int(round(ratio * total))
    assert asked <= total - kept < asked + 4, (ratio, kept)


# ---- merge='random' ------------------------------------------------------

@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_random_merge_is_seeded(framework):
  model = conv_model(framework, widths=(16,), units=4)
  runs = {s: tps.cluster_prune(model, ratio=0.5, merge="random", seed=s)
          for s in (0, 1, 2)}
  again = tps.cluster_prune(model, ratio=0.5, merge="random", seed=0)
  assert same_weights(weights_of(runs[0].model), weights_of(again.model))
  first = tps.cluster_prune(model, ratio=0.5, merge="first")
  keeps = [tuple(r.keep["c1"]) for r in runs.values()]
  assert len(set(keeps + [tuple(first.keep["c1"])])) > 1
  # Every run keeps one channel of each of the same clusters.
  assert all(len(k) == 8 for k in keeps)


# ---- the data path -------------------------------------------------------

@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_data_clusters_duplicated_feature_maps(framework):
  model = copy_channels(conv_model(framework), {"c1": halves(8)})
  x = inputs(32)
  before = weights_of(model)
  # Feature maps after ReLU are all positive: their cosine is high for any
  # pair (d1's units reach 0.9999); correlation tells duplicates apart.
  result = tps.cluster_prune(model, threshold=0.9999, data=x,
                             metric="correlation")
  assert {g: list(k) for g, k in result.keep.items()} == {"c1": [0, 1, 2, 3]}
  assert outputs_diff(model, result.model, x) <= 1e-5
  assert same_weights(before, weights_of(model))


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_data_path_reads_feature_maps_not_filters(framework):
  """Two dead channels (different filters, ReLU always 0) are duplicates."""
  model = conv_model(framework, widths=(6,))
  bn = model.get_layer("bn1")
  values = bn.get_weights()
  values[1][2] = -100.0           # beta: channel 2 never passes the ReLU
  values[0][4] = values[1][4] = 0.0   # gamma = beta = 0: channel 4 is 0
  bn.set_weights(values)
  x = inputs(16)
  by_data = tps.cluster_prune(model, threshold=0.9999, data=x,
                              metric="correlation")
  assert list(by_data.keep["c1"]) == [0, 1, 2, 3, 5]
  assert outputs_diff(model, by_data.model, x) <= 1e-5
  by_weights = tps.cluster_prune(model, threshold=0.9999)
  assert by_weights.keep == {}


# ---- scores against numpy references -----------------------------------

def reference_filters(model, conv, bn):
  k, b = model.get_layer(conv).get_weights()
  gamma, beta, mean, var = model.get_layer(bn).get_weights()
  eps = model.get_layer(bn).epsilon
  s = gamma / np.sqrt(var.astype(np.float64) + eps)
  rows = k.reshape(-1, k.shape[-1]).T.astype(np.float64) * s[:, None]
  return np.concatenate([rows, (s * (b - mean) + beta)[:, None]], axis=1)


def reference_scores(x, metric):
  x = np.asarray(x, np.float64)
  n = x.shape[0]
  if metric == "euclidean":
    d = np.linalg.norm(x[:, None] - x[None], axis=-1)
    return (d + np.diag(np.full(n, np.inf))).min(1)
  if metric == "correlation":
    sim = np.corrcoef(x)
  else:
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    sim = u @ u.T
  return -(sim - np.diag(np.full(n, np.inf))).max(1)


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("metric", ["cosine", "correlation", "euclidean"])
def test_weight_scores_match_numpy(framework, metric):
  model = conv_model(framework)
  result = tps.cluster_prune(model, ratio=0.25, metric=metric)
  ref = reference_scores(reference_filters(model, "c1", "bn1"), metric)
  np.testing.assert_allclose(result.scores["c1"], ref, rtol=1e-6, atol=1e-9)
  k, b = model.get_layer("d1").get_weights()
  ref = reference_scores(np.concatenate([k.T, b[:, None]], 1), metric)
  np.testing.assert_allclose(result.scores["d1"], ref, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("metric", ["cosine", "correlation", "euclidean"])
def test_data_scores_match_numpy(framework, metric):
  model = conv_model(framework)
  keras = keras_of(framework)
  x = inputs(24)
  maps = to_numpy(keras.Model(model.input, model.get_layer(
      "relu1").output)(x, training=False)).reshape(-1, 8)
  result = tps.cluster_prune(model, ratio=0.25, metric=metric, data=x)
  ref = reference_scores(maps.T, metric)
  if metric == "euclidean":
    ref = ref / np.sqrt(maps.shape[0])   # root-mean-square difference
  np.testing.assert_allclose(result.scores["c1"], ref, rtol=2e-4, atol=1e-6)


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("metric", ["correlation", "euclidean"])
def test_data_scores_of_maps_with_a_large_mean(framework, metric):
  """Maps of mean 10 and spread 0.01: the centred moments subtract sums of
  about 4e5 to get about 0.4, which float32 batch statistics lost."""
  keras = keras_of(framework)
  L = keras.layers
  keras.utils.set_random_seed(0)
  inp = keras.Input((8, 8, 3))
  c = L.Conv2D(4, 3, padding="same", name="c1")(inp)
  y = L.GlobalAveragePooling2D()(L.Conv2D(3, 1, name="c2")(c))
  model = keras.Model(inp, L.Dense(2, name="out")(y))
  k, b = model.get_layer("c1").get_weights()
  model.get_layer("c1").set_weights([k * 0.01, np.full_like(b, 10.0)])
  x = inputs(64)
  maps = to_numpy(keras.Model(inp, c)(x, training=False)).reshape(-1, 4)
  result = tps.cluster_prune(model, ratio=0.25, metric=metric, data=x)
  ref = reference_scores(maps.T, metric)
  if metric == "euclidean":
    ref = ref / np.sqrt(maps.shape[0])   # root-mean-square difference
  np.testing.assert_allclose(result.scores["c1"], ref, rtol=1e-4)


# ---- bad input ----------------------------------------------------------

@pytest.mark.parametrize("kwargs,exc,words", [
    (dict(threshold=0.9, target_macs=0.5), ValueError, ["threshold",
                                                        "target_macs"]),
    (dict(threshold=0.9, ratio=0.5), ValueError, ["exactly one"]),
    (dict(), ValueError, ["exactly one"]),
    (dict(ratio=0.5, metric="manhattan"), ValueError, ["metric",
                                                       "manhattan"]),
    (dict(ratio=0.5, linkage="ward"), ValueError, ["linkage", "ward"]),
    (dict(ratio=0.5, merge="max"), ValueError, ["merge", "max"]),
    (dict(ratio=0.5, scope="galactic"), ValueError, ["scope"]),
    (dict(ratio=1.5), ValueError, ["ratio"]),
    (dict(target_macs=0.0), ValueError, ["target_macs"]),
    (dict(target_macs=0.999), ValueError, ["unreachable"]),
    (dict(threshold=1.5), ValueError, ["threshold", "[-1, 1]"]),
    (dict(threshold=-0.1, metric="euclidean"), ValueError, ["threshold",
                                                            ">= 0"]),
    (dict(threshold="high"), TypeError, ["threshold"]),
    (dict(ratio=0.5, metric=None), TypeError, ["metric"]),
    (dict(ratio=0.5, seed=-1), ValueError, ["seed"]),
    (dict(ratio=0.5, seed=1.5), TypeError, ["seed"]),
    (dict(ratio=0.5, data=np.zeros((4, 5, 5, 3), np.float32)), ValueError,
     ["data"]),
    (dict(ratio=0.5, data=np.zeros((4, 8, 8, 3), np.float32), steps=0),
     ValueError, ["steps"]),
    # A string verbose was truthy: '0' showed the progress bar.
    (dict(ratio=0.5, data=np.zeros((4, 8, 8, 3), np.float32), verbose="0"),
     TypeError, ["`verbose` must be 0 (quiet) or 1 (progress)", "'0'"]),
    (dict(threshold=0.9, verbose=-1), ValueError, ["`verbose`", "-1"]),
])
def test_bad_input_is_rejected(kwargs, exc, words):
  model = conv_model("tf_keras", widths=(4,), units=4)
  before = weights_of(model)
  with pytest.raises(exc) as info:
    tps.cluster_prune(model, **kwargs)
  for w in words:
    assert w in str(info.value)
  assert same_weights(before, weights_of(model))


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("metric", ["cosine", "correlation", "euclidean"])
def test_nan_weights_are_named(framework, metric):
  # cosine/correlation read a NaN filter as unlike any other (silently
  # kept), euclidean failed in scipy ("The condensed distance matrix must
  # contain only finite values").
  model = conv_model(framework, widths=(4, 8), units=4)
  k, b = model.get_layer("c2").get_weights()
  k[0, 0, 0, 3] = np.nan
  model.get_layer("c2").set_weights([k, b])
  with pytest.raises(ValueError, match=r"group 'c2'.*1 of its 8 channels "
                     r"are not finite.*NaN or inf in weight\(s\) "
                     r"\['c2/kernel"):
    tps.cluster_prune(model, ratio=0.5, metric=metric)


def test_not_a_model_is_rejected():
  with pytest.raises(TypeError):
    tps.cluster_prune("model", ratio=0.5)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_recalibrate_and_progress_bar(framework, capsys):
  model = conv_model(framework)
  x = inputs(16)
  plain = tps.cluster_prune(model, ratio=0.5, data=x, steps=1)
  again = tps.cluster_prune(model, ratio=0.5, data=x, steps=1,
                            recalibrate=x, verbose=1)
  out = capsys.readouterr().out
  assert "1/1" in out and "/batch" in out, out
  assert {g: list(k) for g, k in plain.keep.items()} == {
      g: list(k) for g, k in again.keep.items()}
  bn_plain = plain.model.get_layer("bn2").get_weights()[2:]
  bn_again = again.model.get_layer("bn2").get_weights()[2:]
  assert all(not np.allclose(a, b) for a, b in zip(bn_plain, bn_again))
  # The recalibrated statistics are those of the merged model's own maps.
  keras = keras_of(framework)
  pre = to_numpy(keras.Model(again.model.input, again.model.get_layer(
      "c2").output)(x, training=False)).reshape(-1, bn_again[0].shape[0])
  np.testing.assert_allclose(bn_again[0], pre.mean(0), rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("feed,steps,shown", [("numpy", None, "2/2"),
                                              ("unsized", 10, "2/10")])
def test_progress_bar_ends_its_line_at_the_batches_read(framework, feed, steps,
                                                        shown, capsys):
  # 64 samples are 2 batches; without `steps` (or with more) the bar never
  # reached its target, so it stayed at "1/Unknown" or "1/10" and whatever
  # was printed next continued its line. Numpy data has a known batch count,
  # the bar's target (it showed "2/Unknown"); a generator's is unknown.
  model = conv_model(framework)
  x = inputs(64)
  data = x
  if feed == "unsized":
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    data = tf.data.Dataset.from_generator(
        lambda: (x[i:i + 32] for i in range(0, 64, 32)),
        output_signature=tf.TensorSpec((None,) + x.shape[1:], tf.float32))
  tps.cluster_prune(model, ratio=0.5, data=data, steps=steps, verbose=1)
  out = capsys.readouterr().out
  assert shown in out, out
  assert out.endswith("\n"), repr(out[-80:])
  if feed == "numpy":
    assert "Unknown" not in out, out


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_malformed_recalibrate_of_a_two_input_model_fails_first(framework,
                                                               monkeypatch):
  # `recalibrate` meets the model only after the merging; a list read as
  # (x=xa, y=xb) gives one array for two inputs.
  import sys  # pylint: disable=g-import-not-at-top
  model = two_input_model(keras_of(framework))
  xa = inputs(8, (6, 6, 3))
  xb = inputs(8, (6, 6, 2))

  def no_work(*args, **kwargs):
    raise AssertionError("the channels were clustered before the check")

  monkeypatch.setattr(sys.modules["tfprune_survey.cluster"], "ChannelGraph",
                      no_work)
  with pytest.raises(ValueError, match="`recalibrate` gives one input array"):
    tps.cluster_prune(model, ratio=0.5, recalibrate=[xa, xb])
  with pytest.raises(ValueError, match=r"`recalibrate` gives inputs \['a'\]"):
    tps.cluster_prune(model, ratio=0.5, recalibrate=({"a": xa},))
