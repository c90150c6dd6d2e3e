"""Run with KERAS_BACKEND=jax or torch by test_other_backends.py (one backend
a process).

Builds the residual CNN in Keras 3, loads the weights the parent test wrote,
and writes what that backend gives: the groups, MACs, the largest
materialize-vs-mask difference, every criterion's scores, how the
activation criteria reduce their feature maps (no `tf.function`; the
statistics are the backend's arrays), `prune`'s keep
sets, a `.keras` save/load round trip after `recalibrate_bn`, sensitivity,
iterative pruning, distillation and re-initialisation, the error TFLite
conversion gives off TensorFlow, the weight-gradient criteria's scores
of a net with a Dropout, and every criterion's scores of a net of two
inputs for the data criteria (x as a list, and as a dict, in reversed order, for a few).
"""

import json
import sys

import numpy as np


def main(weights_path, out_path, backend):
  import keras  # pylint: disable=g-import-not-at-top
  import tfprune_survey as tps  # pylint: disable=g-import-not-at-top
  from tfprune_survey import zoo  # pylint: disable=g-import-not-at-top
  assert keras.backend.backend() == backend, keras.backend.backend()
  to_np = keras.ops.convert_to_numpy
  data = np.load(weights_path)
  model = zoo.residual_cnn(input_shape=(12, 12, 1), width=8,
                           framework="keras3")
  model.set_weights([data[f"w{i}"] for i in range(len(model.weights))])
  x, y = data["x"], data["y"]
  graph = tps.ChannelGraph(model)
  out = {"backend": keras.backend.backend(),
         "groups": sorted((g.id, g.size, g.prunable) for g in graph.groups),
         "macs": tps.count_macs(model), "params": tps.count_params(model)}
  keep = {g.id: list(range(0, g.size, 2)) for g in graph.prunable_groups}
  masked = to_np(tps.mask_channels(model, keep, graph=graph)(x[:4]))
  slim_model = tps.materialize(model, keep, graph=graph)
  slim = to_np(slim_model(x[:4]))
  out["exact_rel"] = float(np.abs(masked - slim).max() /
                           np.abs(masked).max())
  out["slim_macs"] = tps.count_macs(slim_model)
  # Built with zero initializers on JAX (fast), but given the model's own.
  out["initializers_kept"] = all(
      layer.get_config()[k] == model.get_layer(layer.name).get_config()[k]
      for layer in slim_model.layers for k in layer.get_config()
      if k.endswith("_initializer"))
  out["scores"] = {name: {k: v.tolist() for k, v in
                          tps.score(model, name, (x, y)).items()}
                   for name in tps.criteria.names()}
  out.update(_activation_stats_off_tensorflow(tps, model, x, y))
  # Gradients of weights beside a random layer's integer seed state.
  drop = dropout_model(keras)
  out["dropout_scores"] = {name: {k: v.tolist() for k, v in tps.score(
      drop, name, (x, y)).items()} for name in DROPOUT_CRITERIA}
  # A model of two inputs, x as a list and as a dict by input name.
  two = two_input_model(keras)
  pair = [x, x[:, ::-1]]
  out["two_input_scores"] = {name: {k: v.tolist() for k, v in tps.score(
      two, name, (pair, y)).items()} for name in TWO_INPUT_CRITERIA}
  out["two_input_dict_scores"] = {name: {k: v.tolist() for k, v in tps.score(
      two, name, ({"b": pair[1], "a": pair[0]}, y)).items()}
                                  for name in TWO_INPUT_DICT_CRITERIA}
  result = tps.prune(model, "taylor", data=(x, y), target_macs=0.5,
                     recalibrate=x)
  out["prune_keep"] = {k: v.tolist() for k, v in result.keep.items()}
  out["prune_module"] = type(result.model).__module__
  path = out_path + ".keras"
  result.model.save(path)
  loaded = keras.saving.load_model(path)
  out["reload_diff"] = float(np.abs(to_np(loaded(x[:4])) -
                                    to_np(result.model(x[:4]))).max())
  # Recovery tools: sensitivity, iterative pruning, distillation, reinit.
  sens = tps.sensitivity(model, "l1", ratios=(0.5,), eval_data=(x, y))
  out["sensitivity_groups"] = sorted(sens.table)
  out["sensitivity_baseline"] = sens.baseline
  it = tps.iterative_prune(model, "l1", target_macs=0.3, rounds=2,
                           finetune={"x": x, "y": y, "epochs": 1,
                                     "batch_size": 32})
  out["iterative_reduction"] = it.macs_reduction
  student = result.model
  before = [np.array(w) for w in student.get_weights()]
  dm = tps.DistillationModel(student, model, temperature=4.0, alpha=0.9)
  dm.compile("adam")
  dm.fit(x, y, epochs=1, batch_size=32, verbose=0)
  out["distill_student_changed"] = any(
      not np.array_equal(a, b) for a, b in zip(before, student.get_weights()))
  out["teacher_unchanged"] = all(
      np.array_equal(a, data[f"w{i}"]) for i, a in enumerate(
          model.get_weights()))
  fresh = tps.reinitialize(model, seed=1)
  out["reinit_same_shapes"] = [tuple(w.shape) for w in fresh.weights] == [
      tuple(w.shape) for w in model.weights]
  import tflite_export  # pylint: disable=g-import-not-at-top
  try:
    tflite_export.convert(result.model, out_path + ".tflite")
    out["tflite_error"] = None
  except NotImplementedError as e:
    out["tflite_error"] = str(e)
  with open(out_path, "w") as f:
    json.dump(out, f)


DROPOUT_CRITERIA = ("taylor", "taylor_fo", "obd")


def dropout_model(keras):
  """A small Keras 3 net with a Dropout (a seed generator), fixed weights."""
  L = keras.layers
  inp = keras.Input((12, 12, 1))
  h = L.Conv2D(6, 3, padding="same", activation="relu", name="d1")(inp)
  h = L.Dropout(0.3, seed=1, name="drop")(h)
  h = L.Conv2D(6, 3, padding="same", activation="relu", name="d2")(h)
  h = L.GlobalAveragePooling2D()(h)
  model = keras.Model(inp, L.Dense(10, name="head")(h))
  rng = np.random.default_rng(1)
  model.set_weights([rng.standard_normal(w.shape).astype("float32") * 0.3
                     for w in model.weights])
  return model


# The criteria that read data (the others never see x).
TWO_INPUT_CRITERIA = ("apoz", "entropy", "variance", "taylor", "taylor_fo",
                      "obd", "kfac_obd", "thinet", "lasso")
TWO_INPUT_DICT_CRITERIA = ("apoz", "taylor", "taylor_fo", "thinet")


def two_input_model(keras):
  """A small Keras 3 net of two image inputs ('a', 'b'), fixed weights."""
  L = keras.layers
  a = keras.Input((12, 12, 1), name="a")
  b = keras.Input((12, 12, 1), name="b")
  ha = L.ReLU()(L.Conv2D(6, 3, padding="same", name="ta")(a))
  hb = L.ReLU()(L.Conv2D(5, 3, padding="same", name="tb")(b))
  h = L.Concatenate(name="cat")([ha, hb])
  h = L.ReLU()(L.Conv2D(6, 3, padding="same", name="mix")(h))
  h = L.GlobalAveragePooling2D()(h)
  model = keras.Model([a, b], L.Dense(10, name="head")(h))
  rng = np.random.default_rng(2)
  model.set_weights([rng.standard_normal(w.shape).astype("float32") * 0.3
                     for w in model.weights])
  return model


def _activation_stats_off_tensorflow(tps, model, x, y):
  """How apoz, entropy, variance and taylor reduce their feature maps here:
  the number of `tf.function`s made while they score, and the modules of
  the per-batch statistics their `batch_stats` return (the backend's own
  arrays when the reduction runs in `keras.ops` on the backend)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tfprune_survey.criteria import collector  # pylint: disable=g-import-not-at-top
  made, modules = [], set()
  real_function, real_accumulate = tf.function, collector._accumulate  # pylint: disable=protected-access

  def spy_function(*args, **kwargs):
    made.append(1)
    return real_function(*args, **kwargs)

  def spy_accumulate(criterion, ctx, points, run, fw, **kwargs):
    def spied(xb, yb):
      stats = run(xb, yb)
      modules.update(type(v).__module__.split(".")[0]
                     for s in stats for v in s.values())
      return stats
    return real_accumulate(criterion, ctx, points, spied, fw, **kwargs)

  tf.function, collector._accumulate = spy_function, spy_accumulate  # pylint: disable=protected-access
  try:
    for name in ("apoz", "entropy", "variance", "taylor"):
      tps.score(model, name, (x, y))
  finally:
    tf.function, collector._accumulate = real_function, real_accumulate  # pylint: disable=protected-access
  return {"activation_tf_functions": len(made),
          "activation_stat_modules": sorted(modules)}


def sequential_model(keras):
  """A small Keras 3 Sequential net (conv, BN, fused ReLU), fixed weights."""
  L = keras.layers
  model = keras.Sequential([
      keras.Input((8, 8, 1)),
      L.Conv2D(6, 3, padding="same", name="s1"),
      L.BatchNormalization(name="sbn"), L.ReLU(name="srelu"),
      L.Conv2D(5, 3, padding="same", activation="relu", name="s2"),
      L.GlobalAveragePooling2D(), L.Dense(4, name="shead")], name="seq")
  rng = np.random.default_rng(3)
  model.set_weights([rng.standard_normal(w.shape).astype("float32") * 0.3
                     if "variance" not in w.path else
                     rng.random(w.shape).astype("float32") + 0.5
                     for w in model.weights])
  return model


def linear_producer_model(keras):
  """A small Keras 3 net whose convs have no fused activation."""
  L = keras.layers
  inp = keras.Input((8, 8, 1))
  h = L.ReLU()(L.Conv2D(4, 3, padding="same", name="l1")(inp))
  h = L.ReLU()(L.Conv2D(5, 3, padding="same", name="l2")(h))
  model = keras.Model(inp, L.Dense(4, name="lhead")(
      L.GlobalAveragePooling2D()(h)))
  rng = np.random.default_rng(5)
  model.set_weights([rng.standard_normal(w.shape).astype("float32") * 0.3
                     for w in model.weights])
  return model


# Read with uint8 images for a float32 Input: kfac_obd differentiates at
# the model's input, which was left uint8 off TensorFlow (jax.grad refused).
UINT8_CRITERIA = ("kfac_obd", "taylor")


def fused_activation_model(keras):
  """A small Keras 3 net whose producers have fused activations."""
  L = keras.layers
  inp = keras.Input((8, 8, 1))
  h = L.Conv2D(4, 3, padding="same", activation="tanh", name="f1")(inp)
  h = L.Conv2D(5, 3, strides=2, activation="relu", name="f2")(h)
  h = L.Dense(6, activation="swish", name="f3")(L.GlobalAveragePooling2D()(h))
  model = keras.Model(inp, L.Dense(4, name="fhead")(h))
  rng = np.random.default_rng(6)
  model.set_weights([rng.standard_normal(w.shape).astype("float32") * 0.5
                     for w in model.weights])
  return model


def int_input_model(keras):
  """A small Keras 3 net whose Dense producer reads an int32 Input."""
  L = keras.layers
  inp = keras.Input((6,), dtype="int32")
  h = L.ReLU()(L.Dense(8, name="i1")(inp))
  model = keras.Model(inp, L.Dense(4, name="ihead")(h))
  rng = np.random.default_rng(7)
  model.set_weights([rng.standard_normal(w.shape).astype("float32") * 0.5
                     for w in model.weights])
  return model


# The criteria that read weight gradients (of a frozen layer here).
FROZEN_CRITERIA = ("taylor_fo", "obd")


def rnn_model(keras):
  """A small Keras 3 net with an LSTM and a GRU between pruned layers."""
  L = keras.layers
  inp = keras.Input((10, 4))
  h = L.Conv1D(6, 3, padding="same", activation="relu", name="rc1")(inp)
  h = L.LSTM(5, return_sequences=True, kernel_initializer="he_normal",
             name="lstm")(h)
  h = L.GRU(5, recurrent_initializer="glorot_normal", name="gru")(h)
  h = L.Dense(7, activation="relu", name="rd1")(h)
  model = keras.Model(inp, L.Dense(3, name="rhead")(h))
  rng = np.random.default_rng(8)
  model.set_weights([rng.standard_normal(w.shape).astype("float32") * 0.5
                     for w in model.weights])
  return model


def rnn_data():
  return np.random.default_rng(9).random((6, 10, 4)).astype("float32")


def edge_data():
  rng = np.random.default_rng(4)
  return (rng.random((24, 8, 8, 1)).astype("float32"),
          rng.integers(0, 4, 24))


# The criteria that run a Sequential model's graph node by node off
# TensorFlow (they failed there: a Sequential has no `_nodes_by_depth`).
SEQUENTIAL_CRITERIA = ("apoz", "variance", "taylor", "thinet")


def edge_main(out_path, backend):
  """Scores of edge-case models, for `test_edge_cases_match_tensorflow`."""
  import keras  # pylint: disable=g-import-not-at-top
  import tfprune_survey as tps  # pylint: disable=g-import-not-at-top
  assert keras.backend.backend() == backend, keras.backend.backend()
  x, y = edge_data()
  out = {}
  seq = sequential_model(keras)
  out["sequential_scores"] = {name: {k: v.tolist() for k, v in tps.score(
      seq, name, (x, y)).items()} for name in SEQUENTIAL_CRITERIA}
  lin = linear_producer_model(keras)
  x8 = (x * 255).astype("uint8")
  out["uint8_scores"] = {name: {k: v.tolist() for k, v in tps.score(
      lin, name, (x8, y)).items()} for name in UINT8_CRITERIA}
  # kfac_obd through fused activations (NotImplementedError off TensorFlow).
  out["fused_scores"] = {
      key: {k: v.tolist() for k, v in tps.score(
          model, "kfac_obd", (x, y)).items()}
      for key, model in (("sequential", seq),
                         ("functional", fused_activation_model(keras)))}
  # kfac_obd taps the int Input (no gradient there: jax.grad refused it).
  ints = (np.arange(24 * 6).reshape(24, 6) % 5).astype("int64")
  out["int_input_scores"] = {k: v.tolist() for k, v in tps.score(
      int_input_model(keras), "kfac_obd", (ints, y)).items()}
  # Weight gradients of a frozen layer (torch: they required no grad).
  frozen = linear_producer_model(keras)
  frozen.get_layer("l1").trainable = False
  out["frozen_scores"] = {name: {k: v.tolist() for k, v in tps.score(
      frozen, name, (x, y)).items()} for name in FROZEN_CRITERIA}
  # LSTM/GRU keep their initializers on their cell: materialize, mask and
  # prune failed off TensorFlow (the zero-initializer rebuild set them).
  rnn, xr = rnn_model(keras), rnn_data()
  graph = tps.ChannelGraph(rnn)
  keep = {g.id: list(range(0, g.size, 2)) for g in graph.prunable_groups}
  masked = keras.ops.convert_to_numpy(
      tps.mask_channels(rnn, keep, graph=graph)(xr))
  slim = tps.materialize(rnn, keep, graph=graph)
  out["rnn_mask_vs_slim"] = float(np.abs(
      masked - keras.ops.convert_to_numpy(slim(xr))).max())
  out["rnn_initializers_kept"] = all(
      layer.get_config()[k] == rnn.get_layer(layer.name).get_config()[k]
      for layer in slim.layers for k in layer.get_config()
      if k.endswith("_initializer"))
  out["rnn_prune_keep"] = {k: v.tolist() for k, v in tps.prune(
      rnn, "l1", target_macs=0.05).keep.items()}
  with open(out_path, "w") as f:
    json.dump(out, f)


if __name__ == "__main__":
  if sys.argv[1] == "edge":
    edge_main(sys.argv[2], sys.argv[3])
  else:
    main(sys.argv[1], sys.argv[2], sys.argv[3])
