"""l1, l2 and fpgm with include='group' against numpy references, both Kerases.

The references read the weights by name and slice every parameter a group
removes by hand: producer kernels and biases, BN gamma and beta, a
consumer's input slice, and a Dense consumer's rows after a Flatten.
"""

import numpy as np
import pytest

import tfprune_survey as tps
from tfprune_survey import frameworks

RTOL = 1e-6
FRAMEWORKS = ("tf_keras", "keras3")
# Per-filter references of the producer criteria, on (filters, fan-in) rows.
FILTER_REFS = {
    "l1": lambda f: np.abs(f).sum(1),
    "l2": lambda f: np.linalg.norm(f, axis=1),
    "fpgm": lambda f: np.array([np.linalg.norm(f - r, axis=1).sum()
                                for r in f])}


def build(framework, seed=0):
  """c1 -> bn1 -> relu, + shortcut sc; -> c2 (stride 2) -> flatten -> d1 -> head.

  Groups: 'c1' (c1, sc, bn1; consumer c2), 'c2' (consumer d1 after a
  Flatten of 3x3 positions), 'd1' (consumer head).
  """
  keras = frameworks.get(framework).keras
  L = keras.layers
  inp = keras.Input((6, 6, 2))
  x = L.Conv2D(4, 3, padding="same", name="c1")(inp)
  x = L.BatchNormalization(name="bn1")(x)
  x = L.ReLU(name="r1")(x)
  s = L.Conv2D(4, 1, name="sc")(inp)
  x = L.Add(name="add")([x, s])
  x = L.Conv2D(3, 3, strides=2, padding="same", activation="relu",
               name="c2")(x)
  x = L.Flatten(name="flat")(x)
  x = L.Dense(5, activation="relu", name="d1")(x)
  out = L.Dense(2, name="head")(x)
  model = keras.Model(inp, out)
  rng = np.random.default_rng(seed)
  for layer in model.layers:
    ws = layer.get_weights()
    if ws:
      layer.set_weights([rng.standard_normal(w.shape).astype("float32")
                         for w in ws])
  return model


def w(model, layer, index):
  return model.get_layer(layer).get_weights()[index].astype(np.float64)


def group_rows(model):
  """{group: [(size, k) per-channel rows of every slice]}, sliced by hand."""
  c2k = w(model, "c2", 0)                      # (3, 3, 4, 3)
  d1k = w(model, "d1", 0)                      # (27, 5): rows (h, w, c)
  return {
      "c1": [w(model, "c1", 0).reshape(-1, 4).T, w(model, "c1", 1)[:, None],
             w(model, "bn1", 0)[:, None], w(model, "bn1", 1)[:, None],
             w(model, "sc", 0).reshape(-1, 4).T, w(model, "sc", 1)[:, None],
             np.transpose(c2k, (2, 0, 1, 3)).reshape(4, -1)],
      "c2": [c2k.reshape(-1, 3).T, w(model, "c2", 1)[:, None],
             np.stack([d1k[np.arange(9) * 3 + c].ravel() for c in range(3)])],
      "d1": [d1k.T, w(model, "d1", 1)[:, None], w(model, "head", 0)],
  }


def reference(rows, p, reduction="mean"):
  parts = np.stack([(np.abs(r) ** p).sum(axis=1) for r in rows])
  s = {"mean": parts.mean(0), "sum": parts.sum(0), "max": parts.max(0)}[
      reduction]
  return s / s.mean()


def fpgm_reference(rows):
  v = np.concatenate(rows, axis=1)
  s = np.array([sum(np.linalg.norm(v[i] - v[j]) for j in range(len(v)))
                for i in range(len(v))])
  return s / s.mean()


@pytest.fixture(scope="module", params=FRAMEWORKS)
def model(request):
  return build(request.param)


def test_the_hand_slicing_covers_the_groups(model):
  graph = tps.ChannelGraph(model)
  assert {g.id for g in graph.prunable_groups} == {"c1", "c2", "d1"}
  assert sorted(graph.group("c1").producers) == ["c1", "sc"]


@pytest.mark.parametrize("name,p", [("l1", 1), ("l2", 2)])
def test_group_norms_match_reference(model, name, p):
  crit = tps.criteria.deserialize({"class_name": name,
                                   "config": {"include": "group"}})
  got = tps.score(model, crit)
  for gid, rows in group_rows(model).items():
    np.testing.assert_allclose(got[gid], reference(rows, p), rtol=RTOL)


def test_group_reduction_max(model):
  got = tps.score(model, tps.criteria.L2Norm(reduction="max",
                                             include="group"))
  for gid, rows in group_rows(model).items():
    np.testing.assert_allclose(got[gid], reference(rows, 2, "max"),
                               rtol=RTOL)


def test_group_fpgm_matches_reference(model):
  got = tps.score(model, tps.criteria.FPGM(include="group"))
  for gid, rows in group_rows(model).items():
    np.testing.assert_allclose(got[gid], fpgm_reference(rows), rtol=RTOL)


def test_producers_is_the_default_and_unchanged(model):
  k1, ks = w(model, "c1", 0).reshape(-1, 4), w(model, "sc", 0).reshape(-1, 4)
  for crit in ("l2", tps.criteria.L2Norm(include="producers")):
    got = tps.score(model, crit)
    np.testing.assert_allclose(
        got["c1"], (np.linalg.norm(k1, axis=0) + np.linalg.norm(ks, axis=0))
        / 2, rtol=RTOL)
  got = tps.score(model, "l1")
  np.testing.assert_allclose(got["d1"], np.abs(w(model, "d1", 0)).sum(0),
                             rtol=RTOL)
  assert tps.criteria.get("fpgm").get_config() == {"reduction": "mean",
                                                   "include": "producers"}


def test_prune_with_group_l2_keeps_the_top_scores(model):
  result = tps.prune(model, tps.criteria.L2Norm(include="group"), ratio=0.5,
                     scope="local")
  refs = {gid: reference(rows, 2) for gid, rows in group_rows(model).items()}
  assert result.keep
  for gid, kept in result.keep.items():
    order = np.argsort(-refs[gid])
    assert sorted(kept) == sorted(order[:len(kept)]), gid


@pytest.mark.parametrize("cls", ["L1Norm", "L2Norm", "FPGM"])
def test_unknown_include_is_a_value_error_naming_it(cls):
  with pytest.raises(ValueError, match="`include`.*'everything'"):
    getattr(tps.criteria, cls)(include="everything")
  name = {"L1Norm": "l1", "L2Norm": "l2", "FPGM": "fpgm"}[cls]
  with pytest.raises(ValueError, match="`include`"):
    tps.criteria.deserialize({"class_name": name,
                              "config": {"include": "consumers"}})


@pytest.mark.parametrize("name", ["l1", "l2", "fpgm"])
def test_config_round_trip(name):
  crit = tps.criteria.deserialize({"class_name": name,
                                   "config": {"include": "group"}})
  assert crit.include == "group"
  again = tps.criteria.deserialize(tps.criteria.serialize(crit))
  assert again.get_config() == {"reduction": "mean", "include": "group"}


def test_producer_scores_read_the_lora_effective_kernel():
  """With Keras 3 LoRA a layer computes with kernel + alpha/rank * a @ b;
  l1, l2 and fpgm score those filters, not the frozen base kernel."""
  keras = frameworks.get("keras3").keras
  L = keras.layers
  inp = keras.Input((6, 6, 2))
  x = L.Conv2D(4, 3, padding="same", activation="relu", name="c1")(inp)
  x = L.Conv2D(3, 1, name="c2")(x)
  x = L.GlobalAveragePooling2D()(x)
  x = L.Dense(5, activation="relu", name="d1")(x)
  model = keras.Model(inp, L.Dense(2, name="head")(x))
  rng = np.random.default_rng(0)
  model.get_layer("c1").enable_lora(2, lora_alpha=6)   # scale 3
  model.get_layer("d1").enable_lora(3)                 # scale 1
  for layer in model.layers:
    for v in layer.weights:
      v.assign(rng.standard_normal(v.shape).astype("float32"))
  filters = {}
  for gid, axis in (("c1", 3), ("d1", 1)):
    k = np.asarray(model.get_layer(gid).kernel, np.float64)   # Keras' own
    base = w(model, gid, 0)
    assert np.abs(k - base).max() > 0.5     # the LoRA part is not negligible
    filters[gid] = np.moveaxis(k, axis, 0).reshape(k.shape[axis], -1)
  for name, ref in FILTER_REFS.items():
    got = tps.score(model, name)
    for gid, f in filters.items():
      np.testing.assert_allclose(got[gid], ref(f), rtol=1e-5,
                                 err_msg=f"{name} {gid}")


def _int8_model(kind):
  """A Keras 3 Dense MLP or small CNN, quantized with model.quantize('int8').

  Returns (model, {Dense name: its float kernel before quantizing}).
  Keras 3.15 quantizes Dense layers only, so the CNN's convs stay float.
  """
  keras = frameworks.get("keras3").keras
  L = keras.layers
  if kind == "mlp":
    inp = keras.Input((8,))
    x = L.Dense(16, activation="relu", name="d1")(inp)
    x = L.Dense(12, activation="relu", name="d2")(x)
  else:
    inp = keras.Input((6, 6, 2))
    x = L.Conv2D(4, 3, activation="relu", name="c1")(inp)
    x = L.Conv2D(3, 3, activation="relu", name="c2")(x)
    x = L.Flatten()(x)
    x = L.Dense(5, activation="relu", name="d2")(x)
  model = keras.Model(inp, L.Dense(2, name="head")(x))
  rng = np.random.default_rng(1)
  for layer in model.layers:
    for v in layer.weights:
      # columns of very different magnitudes: their int8 scales differ
      v.assign((rng.standard_normal(v.shape) *
                rng.uniform(0.01, 3.0, v.shape[-1])).astype("float32"))
  floats = {layer.name: np.asarray(layer.kernel, np.float64)
            for layer in model.layers
            if isinstance(layer, L.Dense)}
  model.quantize("int8")
  return model, floats


def _dequantized(model, name):
  layer = model.get_layer(name)
  return (np.asarray(layer._kernel, np.float64) /   # pylint: disable=protected-access
          np.asarray(layer.kernel_scale, np.float64))


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_scores_read_the_dequantized_int8_kernel(kind):
  """A Dense quantized with model.quantize('int8') holds int8 values and a
  per-output kernel_scale, and computes with int8 / kernel_scale; l1, l2
  and fpgm (producers, and include='group' over every slice) score that
  kernel, not the raw int8 values (which rank a column of small weights
  like one of large weights), and never the scales themselves."""
  model, floats = _int8_model(kind)
  dense = "d1" if kind == "mlp" else "d2"
  deq = {n: _dequantized(model, n) for n in floats}
  for n, k in deq.items():   # what the layer computes with: the float kernel
    step = np.abs(floats[n]).max(axis=0) / 127
    assert (np.abs(k - floats[n]) <= step * 0.51 + 1e-6).all(), n
  assert str(model.get_layer(dense)._kernel.dtype) == "int8"  # pylint: disable=protected-access
  filters = {dense: deq[dense].T}
  if kind == "mlp":
    filters["d2"] = deq["d2"].T
  else:
    filters["c1"] = w(model, "c1", 0).reshape(-1, 4).T
    filters["c2"] = w(model, "c2", 0).reshape(-1, 3).T
  for name, ref in FILTER_REFS.items():
    got = tps.score(model, name)
    assert set(got) == set(filters)
    for gid, f in filters.items():
      np.testing.assert_allclose(got[gid], ref(f), rtol=1e-5,
                                 err_msg=f"{name} {gid}")
  bias = model.get_layer(dense).bias.numpy().astype(np.float64)[:, None]
  rows = [deq[dense].T, bias, deq["head"]]
  if kind == "mlp":
    rows[2] = deq["d2"]
  got = tps.score(model, tps.criteria.L1Norm(include="group"))[dense]
  np.testing.assert_allclose(got, reference(rows, 1), rtol=1e-5)
  if kind == "cnn":    # c2's consumer: d2's dequantized rows after Flatten
    c2k = w(model, "c2", 0)
    c2rows = [c2k.reshape(-1, 3).T, w(model, "c2", 1)[:, None],
              np.stack([deq["d2"][np.arange(4) * 3 + c].ravel()
                        for c in range(3)])]
    got = tps.score(model, tps.criteria.L1Norm(include="group"))["c2"]
    np.testing.assert_allclose(got, reference(c2rows, 1), rtol=1e-5)


def test_scores_read_the_float8_quantize_dequantized_kernel():
  """A Dense quantized with model.quantize('float8') keeps a float kernel
  but computes with it quantize-dequantized to float8_e4m3fn at its
  per-tensor kernel_scale; l1 scores that kernel (Keras' own
  quantize_and_dequantize is the reference)."""
  keras = frameworks.get("keras3").keras
  L = keras.layers
  inp = keras.Input((8,))
  x = L.Dense(6, activation="relu", name="d1")(inp)
  model = keras.Model(inp, L.Dense(2, name="head")(x))
  model.quantize("float8")
  layer = model.get_layer("d1")
  rng = np.random.default_rng(2)
  layer._kernel.assign(   # pylint: disable=protected-access
      (rng.standard_normal((8, 6)) * 40).astype("float32"))
  layer.kernel_scale.assign(0.05)   # values beyond 448 * 0.05 clip
  k = np.asarray(layer._kernel)     # pylint: disable=protected-access
  qdq = np.asarray(keras.quantizers.quantize_and_dequantize(
      k, np.float32(0.05), "float8_e4m3fn", "float32"), np.float64)
  assert np.abs(qdq - k).max() > 1.0        # clipped and rounded
  np.testing.assert_allclose(tps.score(model, "l1")["d1"],
                             np.abs(qdq).sum(0), rtol=1e-6)
