"""tps.cluster_prune: merge redundant channels by agglomerative clustering.

The survey's similarity and clustering family (Vadera and Ameen 2021,
Sec. 4): the channels of each prunable group are clustered by how alike they
are, and every cluster becomes one channel. Its producer slice is the
cluster's mean (RoyChowdhury et al. 2017) or one member (Ayinde et al. 2019),
and every consumer reads the sum of the members' input slices, so exact
duplicates merge exactly.
"""

import contextlib
import numbers

import numpy as np

from tfprune_survey import data as data_lib
from tfprune_survey import frameworks
from tfprune_survey import planning
from tfprune_survey.bn import recalibrate_bn
from tfprune_survey.criteria.context import ScoringContext
from tfprune_survey.graph.channel_graph import ChannelGraph
from tfprune_survey.metrics.macs import count_macs
from tfprune_survey.metrics.macs_model import MacsModel
from tfprune_survey.pruner import _check_recalibrate
from tfprune_survey.pruner import PruneReport
from tfprune_survey.pruner import PruneResult
from tfprune_survey.strip import branches
from tfprune_survey.strip.materialize import materialize
from tfprune_survey.strip.surgery import grouped_weight

METRICS = ("cosine", "euclidean", "correlation")
LINKAGES = ("average", "complete", "single")
MERGES = ("mean", "first", "random")
# Distances within this of the cut still merge (float rounding of duplicates).
_CUT_TOLERANCE = 1e-6
_KERNELS = ("kernel", "pointwise_kernel")


def cluster_prune(model, *, threshold=None, ratio=None, target_macs=None,
                  metric="cosine", linkage="average", merge="mean", data=None,
                  scope="local", seed=0, steps=None, recalibrate=None,
                  verbose=0):
  """Clusters each group's channels and merges every cluster into one.

  What is clustered: within each prunable group, either the channels'
  producer filters (the default) or, with `data`, their feature maps.
  A channel's filter is the affine map to its pre-activation output: the
  rows of its coupled producers' kernels, concatenated, each multiplied by
  gamma / sqrt(moving_variance + epsilon) of the BatchNormalization that
  follows that producer (where there is one), with the effective bias
  scale * (bias - moving_mean) + beta appended (each producer takes the
  first BN that reads its output channels; a BN after an Add counts as
  reading the first branch's). A feature map is what the activation criteria read
  (`criteria.collector.observation_points`), summarised in one pass over
  `data` by its (C, C) Gram matrix, channel sums and row count; a group
  seen at several points pools them, and a group no point shows is
  clustered by its filters. On data, prefer `metric='correlation'`: maps
  after a ReLU are all positive, so their cosine is high for any pair.
  Two all-zero vectors (dead channels) have similarity 1, a zero and a
  non-zero one 0. Clusters come from scipy's agglomerative `linkage`.

  How a cluster becomes one channel: the kept channel (the cluster's lowest
  index, or with `merge='random'` a seeded random member) takes the mean of
  the members' producer slices (`merge='mean'`, RoyChowdhury et al. 2017)
  or keeps its own (`'first'`, `'random'`, Ayinde et al. 2019); per-channel
  parameters after the producer (bias, BN gamma/beta/mean/variance, PReLU
  alpha, depthwise kernels) are merged the same way; every consumer's input
  slice for the kept channel becomes the sum of the members' slices.

  When merging is exact: when the members are exact duplicates up to the
  consumers, i.e. the same filters, the same bias, the same parameters in
  every BatchNormalization, PReLU or depthwise layer the group passes
  through, so their feature maps are identical after any activation; then
  the merged model computes the same function with fewer channels (any
  `merge`). Otherwise it only approximates: merging channels whose BN
  parameters differ is not exact even when their filters agree (a
  nonlinearity after different affine maps does not add up), and
  near-duplicates give an error that grows with their distance.

  Grouped convolutions: a group read or written by a conv with `groups` > 1
  (`ChannelGroup.blocks`) is clustered within each block (conv group), since
  channels of different blocks meet different filters, and every block
  merges the same number of channels, so the conv keeps its groups. With
  `threshold`, each block merges as many as its worst block's dendrogram
  allows under the cut.

  Args:
    model: a Sequential/Functional model of tf_keras or Keras 3. Not
      modified.
    threshold: the cut of every group's dendrogram. For 'cosine' and
      'correlation', a minimum similarity in [-1, 1]: clusters whose
      (linkage) similarity is at least this merge (1.0 merges only
      duplicates, within 1e-6). For 'euclidean', a maximum distance >= 0,
      in the units of the filters (or, with `data`, of the feature maps'
      root-mean-square difference). Each group loses as many channels as
      its redundancy gives, as Ayinde et al. do.
    ratio: fraction of the prunable channels removed, in [0, 1). 'local'
      scope cuts every group's dendrogram at that fraction; 'global' uses
      one similarity (distance) cut across groups, which removes at least
      that fraction overall (a grouped conv merges whole rounds, one
      channel per block, so it may remove up to a round more).
    target_macs: fraction of the model's MACs to remove, in (0, 1): the
      cut ('global': one distance across groups; 'local': one fraction in
      every group) is searched by bisection with MACs re-counted, as in
      `tps.prune`. Exactly one of `threshold`, `ratio` and `target_macs`.
    metric: 'cosine' (default), 'euclidean' or 'correlation' (Pearson).
    linkage: 'average' (default), 'complete' or 'single'.
    merge: 'mean' (default), 'first' or 'random'.
    data: optional data (as for `tps.score`); its feature maps are then
      clustered instead of the filters. Labels are not needed.
    scope: 'local' (default) or 'global'; see `ratio`. Not used with
      `threshold`, which is one cut for every group anyway.
    seed: int >= 0 seeding `merge='random'`. Defaults to 0.
    steps: optional maximum number of data batches.
    recalibrate: optional data on which the merged model's BN statistics are
      re-estimated (`tps.recalibrate_bn`).
    verbose: 1 shows a progress bar while data is streamed. An int >= 0
      or a bool.

  Returns:
    A `PruneResult`: `.model` (the merged slim model, of the model's
    Keras), `.keep` ({group_id: kept indices}, the clusters'
    representatives), `.report` and `.scores` ({group_id: per-channel
    redundancy score, higher = more unique}: minus the largest similarity
    to another channel of the group for 'cosine' and 'correlation', the
    smallest distance to another channel for 'euclidean'; a group of one
    channel scores 1, resp. inf).

  Raises:
    TypeError: for an argument of the wrong type, or a model of neither
      Keras.
    ValueError: for not exactly one of threshold/ratio/target_macs, a value
      out of range, an unknown metric, linkage, merge or scope, data that
      does not fit the model (`recalibrate` is checked before any
      clustering, for a model of several inputs too, and the message names
      it), or an unreachable `target_macs`.
    UnsupportedModelError: for a subclassed or unbuilt model.

  Example:
    >>> result = tps.cluster_prune(model, threshold=0.95)   # per-layer cut
    >>> result = tps.cluster_prune(model, target_macs=0.5, data=x,
    ...                            metric="correlation", scope="global")
    >>> print(result.report)
  """
  frameworks.check_model(model)
  given = [n for n, v in (("threshold", threshold), ("ratio", ratio),
                          ("target_macs", target_macs)) if v is not None]
  if len(given) != 1:
    raise ValueError("give exactly one of `threshold` (dendrogram cut), "
                     "`ratio` (fraction of channels) and `target_macs` "
                     f"(fraction of MACs to remove); got {given or 'none'}")
  metric = planning.check_choice(metric, "metric", METRICS)
  linkage = planning.check_choice(linkage, "linkage", LINKAGES)
  merge = planning.check_choice(merge, "merge", MERGES)
  args = planning.check_plan_args(
      ratio=ratio, target_macs=target_macs, scope=scope,
      target="none" if threshold is not None else "one")
  cut = None if threshold is None else _check_threshold(threshold, metric)
  seed = planning.check_int(seed, "seed", 0)
  verbose = planning.check_verbose(verbose)
  if steps is not None:
    planning.check_int(steps, "steps", 1)
  if data is not None:
    data = data_lib.checked(model, data)
  if recalibrate is not None:  # before any clustering, naming it
    data_lib.check_data_now(model, recalibrate, "recalibrate")
    recalibrate = _check_recalibrate(model, recalibrate)

  # Residual branches scaled by exactly 0 (SSS) add nothing: cluster the
  # model materialize builds without them (their layers are not in it).
  live, _ = branches.remove_dead_branches(model)
  graph = ChannelGraph(live)
  groups = graph.prunable_groups
  stats = (_map_stats(live, graph, data, steps, verbose)
           if data is not None else {})
  ctx = ScoringContext(live, graph)
  dists, scores = {}, {}
  with _one_blas_thread():
    for g in groups:
      if g.id in stats:
        _check_finite(live, g, np.diag(stats[g.id][0]), "feature maps")
        d = _stat_distances(stats[g.id], metric)
      else:
        features = _weight_features(graph, ctx, g)
        _check_finite(live, g, features, "filters")
        d = _feature_distances(features, metric)
      dists[g.id] = d
      scores[g.id] = _redundancy(d, metric)
  # Per group, one dendrogram per block: [(first channel, linkage), ...].
  trees = {}
  for g in groups:
    per = g.size // g.blocks
    trees[g.id] = [(b * per, _linkage(dists[g.id][b * per:(b + 1) * per,
                                                  b * per:(b + 1) * per],
                                      linkage))
                   for b in range(g.blocks)]

  macs_before = count_macs(model)
  if cut is not None:
    merges = {gid: len(blocks) * min(
        int(np.count_nonzero(z[:, 2] <= cut + _CUT_TOLERANCE))
        for _, z in blocks) for gid, blocks in trees.items()}
  else:
    planner = _merge_planner(graph, trees)
    if args.ratio is not None:
      counts = (planner.counts_local(args.ratio) if args.scope == "local"
                else planner.counts_removing(
                    int(round(args.ratio * planner.total))))
    else:
      counts = planning.search_macs(planner, MacsModel(live, graph),
                                    macs_before, args.target_macs, args.scope)
    merges = {g.id: g.size - counts[g.id] for g in planner.groups}

  rng = np.random.default_rng(seed)
  clusters, keep = {}, {}
  for g in groups:
    per_block = merges.get(g.id, 0) // g.blocks
    members = []
    for first, z in trees[g.id]:
      labels = _flat_clusters(z, g.size // g.blocks, per_block)
      members += [first + np.flatnonzero(labels == lab)
                  for lab in np.unique(labels)]
    members.sort(key=lambda m: m[0])
    if len(members) == g.size:
      continue
    reps = [int(rng.choice(m)) if merge == "random" else int(m[0])
            for m in members]
    clusters[g.id] = list(zip(reps, members))
    keep[g.id] = np.sort(np.asarray(reps, np.int64))

  slim = materialize(live, keep, graph=graph)
  _write_merged(graph, slim, clusters, keep, merge)
  if recalibrate is not None:
    recalibrate_bn(slim, recalibrate)
  report = PruneReport(
      criterion=f"cluster({metric}, {linkage}, {merge})",
      params_before=int(model.count_params()),
      params_after=int(slim.count_params()),
      macs_before=macs_before, macs_after=count_macs(slim),
      groups=[(g.id, len(keep[g.id]) if g.id in keep else g.size, g.size)
              for g in groups])
  return PruneResult(slim, keep, report, scores)


def _check_threshold(threshold, metric):
  """The distance at which the dendrograms are cut."""
  if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real):
    raise TypeError(f"`threshold` must be a number, got {threshold!r} of type "
                    f"{type(threshold).__name__}")
  t = float(threshold)
  if metric == "euclidean":
    if not 0.0 <= t < float("inf"):
      raise ValueError("`threshold` is a maximum distance for metric "
                       f"'euclidean' and must be finite and >= 0, got {t!r}")
    return t
  if not -1.0 <= t <= 1.0:
    raise ValueError(f"`threshold` is a minimum similarity for metric "
                     f"'{metric}' and must be in [-1, 1], got {t!r}")
  return 1.0 - t


def _one_blas_thread():
  """Limits BLAS to one thread, where threadpoolctl is installed.

  The Gram matrices here are small (channels x fan-in); on a busy machine
  a multi-threaded BLAS spent 0.1 s handing a 64 x 577 product between its
  threads, against 60 us on one.
  """
  try:
    from threadpoolctl import threadpool_limits  # pylint: disable=g-import-not-at-top
  except ImportError:
    return contextlib.nullcontext()
  return threadpool_limits(limits=1, user_api="blas")


# ---- what is clustered ------------------------------------------------------

def _weight_features(graph, ctx, group):
  """(size, d): each channel's BN-folded filters and effective bias."""
  n = group.size
  kernels, biases, bns = [], {}, {}
  for sl, base, seg in graph.group_segments(group):
    lay = sl.layout
    if sl.role == "producer" and sl.weight in _KERNELS:
      w = _effective_kernel(ctx.weights(sl.path), sl.weight,
                            graph.layer(sl.path))
      rows = np.moveaxis(w, sl.axis, 0).reshape(w.shape[sl.axis], -1)
      kernels.append((sl.path, seg.var, rows[base:base + n]))
    elif sl.role == "producer" and sl.weight == "bias":
      biases[sl.path] = ctx.weights(sl.path)["bias"][base:base + n]
    elif (sl.role == "param" and seg.repeat == 1 and lay.spatial == 1 and
          type(graph.layer(sl.path)).__name__ == "BatchNormalization"):
      bns.setdefault(seg.var, (sl.path, base))
  parts = []
  for path, var, rows in kernels:
    rows = np.asarray(rows, np.float64)
    bias = np.asarray(biases.get(path, np.zeros(n)), np.float64)
    if var in bns:  # the BN that reads this producer's own channels
      bn_path, base = bns[var]
      w = {k: np.asarray(v[base:base + n], np.float64)
           for k, v in ctx.weights(bn_path).items()}
      scale = w.get("gamma", np.ones(n)) / np.sqrt(
          w["moving_variance"] + float(graph.layer(bn_path).epsilon))
      rows = rows * scale[:, None]
      bias = scale * (bias - w["moving_mean"]) + w.get("beta", np.zeros(n))
    parts.append(np.concatenate([rows, bias[:, None]], axis=1))
  if not parts:
    raise ValueError(f"channel group '{group.id}' has no producer kernel to "
                     "compare its channels by; pass `data` to cluster its "
                     "feature maps")
  return np.concatenate(parts, axis=1)


def _effective_kernel(weights, name, layer):
  """The kernel a layer computes with: Keras 3 LoRA adds its low-rank part.

  With LoRA enabled, the layer uses kernel + (lora_alpha / lora_rank) *
  lora_kernel_a @ lora_kernel_b, and two channels are alike only if these
  effective filters are.
  """
  w = weights[name]
  if name != "kernel" or "lora_kernel_b" not in weights:
    return w
  rank = float(layer.lora_rank)
  # Older Keras 3 versions have no lora_alpha: their scale is 1.
  scale = float(getattr(layer, "lora_alpha", None) or rank) / rank
  return w + scale * np.matmul(np.asarray(weights["lora_kernel_a"], np.float64),
                               np.asarray(weights["lora_kernel_b"], np.float64))


def _check_finite(model, group, values, what):
  """Raises, naming the group and the cause, unless `values` is finite.

  `values` holds a row per channel (filters, or the maps' squared sums): a
  NaN would make a channel look unlike every other one (cosine) or fail
  in scipy without naming anything (euclidean).
  """
  values = np.asarray(values)
  bad = ~np.isfinite(values.reshape(values.shape[0], -1)).all(axis=1)
  if not bad.any():
    return
  from tfprune_survey.scoring import _non_finite_weights  # pylint: disable=g-import-not-at-top
  weights = _non_finite_weights(model)
  if weights:
    shown = weights[:3] + (["..."] if len(weights) > 3 else [])
    why = (f"model '{model.name}' has NaN or inf in weight(s) {shown}; "
           "restore finite weights (e.g. from a checkpoint before training "
           "diverged) before clustering")
  else:
    why = ("neither the data nor the weights hold NaN or inf, so the "
           "statistics overflowed (e.g. very large inputs)")
  raise ValueError(f"cannot compare the channels of group '{group.id}': "
                   f"the {what} of {int(bad.sum())} of its {group.size} "
                   f"channels are not finite (NaN or inf): {why}")


def _map_stats(model, graph, data, steps, verbose):
  """{group_id: (gram, sums, count)} of the groups' feature maps over data.

  `gram` is the (size, size) sum over samples and positions of y y^T,
  `sums` the sum of y, `count` the number of (sample, position) rows; the
  points that show a group add up.
  """
  from tfprune_survey.criteria import collector  # pylint: disable=g-import-not-at-top
  points = collector.observation_points(graph)
  if not points:
    return {}
  fw = frameworks.of(model)
  probe = fw.keras.Model(model.inputs, [p.tensor for p in points])
  widths = [p.layout.width for p in points]
  step = _stats_step(fw, probe, widths)
  acc = [[0.0, 0.0, 0] for _ in points]
  for x, _ in data_lib.batches_with_progress(data, steps, verbose,
                                             fw.keras):
    for a, (gram, sums, count) in zip(acc, step(x)):
      a[0] = a[0] + np.asarray(gram, np.float64)
      a[1] = a[1] + np.asarray(sums, np.float64)
      a[2] += int(count)
  out = {}
  for p, (gram, sums, count) in zip(points, acc):
    base = 0
    for seg in p.layout.segments:
      g = graph.group_of_var(seg.var)
      if g.prunable and seg.repeat == 1:
        sl = slice(base, base + g.size)
        prev = out.get(g.id, (0.0, 0.0, 0))
        out[g.id] = (prev[0] + gram[sl, sl], prev[1] + sums[sl],
                     prev[2] + count)
      base += seg.width
  return out


def _stats_step(fw, probe, widths):
  """x -> [(gram, sums, rows)] per observed point, on the model's backend."""
  if fw.backend() == "tensorflow":
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    @tf.function(reduce_retracing=True)
    def step(x):
      outs = probe(x, training=False)
      outs = outs if isinstance(outs, (list, tuple)) else [outs]
      res = []
      for f, w in zip(outs, widths):
        # float64, as the eager path: 'correlation' and 'euclidean' subtract
        # large sums (sum y^2 - (sum y)^2 / n), which float32 loses for maps
        # of a large mean and a small spread.
        y = tf.reshape(tf.cast(f, tf.float64), [-1, w])
        res.append((tf.matmul(y, y, transpose_a=True), tf.reduce_sum(y, 0),
                    tf.shape(y)[0]))
      return res

    def run(x):
      return [tuple(t.numpy() for t in r) for r in step(x)]
    return run

  def run_eager(x):
    outs = probe(x, training=False)
    outs = outs if isinstance(outs, (list, tuple)) else [outs]
    res = []
    for f, w in zip(outs, widths):
      if hasattr(f, "detach"):
        f = f.detach().cpu()
      y = np.asarray(f, np.float64).reshape(-1, w)
      res.append((y.T @ y, y.sum(0), y.shape[0]))
    return res
  return run_eager


# ---- distances and clusters ----------------------------------------------

def _similarity(gram):
  """Cosine similarities from a Gram matrix (two all-zero rows: 1)."""
  d = np.sqrt(np.maximum(np.diag(gram), 0.0))
  denom = np.outer(d, d)
  zero = d == 0
  with np.errstate(invalid="ignore", divide="ignore"):
    sim = np.where(denom > 0, gram / np.where(denom > 0, denom, 1.0), 0.0)
  sim[np.ix_(zero, zero)] = 1.0
  return np.clip(sim, -1.0, 1.0)


def _feature_distances(x, metric):
  """(n, n) distances between the rows of `x`."""
  if metric == "euclidean":
    from scipy.spatial import distance  # pylint: disable=g-import-not-at-top
    return distance.squareform(distance.pdist(x, "euclidean"))
  if metric == "correlation":
    x = x - x.mean(axis=1, keepdims=True)
  return 1.0 - _similarity(x @ x.T)


def _stat_distances(stats, metric):
  """(n, n) distances between feature maps from their streamed moments."""
  gram, sums, count = stats
  if metric == "euclidean":
    d = np.diag(gram)
    return np.sqrt(np.maximum(d[:, None] + d[None, :] - 2 * gram, 0.0) /
                   max(count, 1))
  if metric == "correlation":
    gram = gram - np.outer(sums, sums) / max(count, 1)
  return 1.0 - _similarity(gram)


def _redundancy(dist, metric):
  """Per channel: minus the largest similarity, or the smallest distance."""
  n = dist.shape[0]
  if n < 2:
    return np.full(n, np.inf if metric == "euclidean" else 1.0)
  d = dist + np.diag(np.full(n, np.inf))
  nearest = d.min(axis=1)
  return nearest if metric == "euclidean" else nearest - 1.0


def _linkage(dist, method):
  """scipy's linkage matrix (n - 1, 4) of a full distance matrix."""
  n = dist.shape[0]
  if n < 2:
    return np.zeros((0, 4))
  from scipy.cluster import hierarchy  # pylint: disable=g-import-not-at-top
  from scipy.spatial import distance  # pylint: disable=g-import-not-at-top
  dist = np.maximum((dist + dist.T) / 2.0, 0.0)
  np.fill_diagonal(dist, 0.0)
  return hierarchy.linkage(distance.squareform(dist, checks=False),
                           method=method)


def _flat_clusters(tree, n, merges):
  """Cluster label of each of `n` leaves after the first `merges` merges."""
  parent = np.arange(2 * n - 1)
  for i in range(merges):
    a, b = int(tree[i, 0]), int(tree[i, 1])
    parent[a] = parent[b] = n + i
  labels = np.empty(n, np.int64)
  for leaf in range(n):
    node = leaf
    while parent[node] != node:
      node = parent[node]
    labels[leaf] = node
  return labels


def _merge_planner(graph, trees):
  """A `Planner` whose removal orders are the dendrograms' merges.

  Removing a channel of a group means applying its next merge: 'global'
  order takes merges by height across groups, 'local' interleaves them so
  every group has merged about the same fraction at any point. A group of
  several blocks merges in rounds, one merge per block, at the height of
  the round's highest merge (the Planner keeps its counts multiples of the
  block count).
  """
  planner = planning.Planner(
      graph, {gid: np.zeros(graph.group(gid).size) for gid in trees})
  order, local = [], []
  for gi, g in enumerate(planner.groups):
    blocks = trees[g.id]
    heights = np.max([z[:, 2] for _, z in blocks], axis=0)
    for i, height in enumerate(heights):
      for b in range(len(blocks)):
        order.append((float(height), gi, i * len(blocks) + b))
        local.append(((i + 1) * len(blocks) / g.size, gi,
                      i * len(blocks) + b))
  planner.order = sorted(order)
  planner.local_order = sorted(local)
  return planner


# ---- merging ----------------------------------------------------------------

def _write_merged(graph, slim, clusters, keep, merge):
  """Writes the merged slices into the materialized `slim` model."""
  if not clusters:
    return
  keep_of = graph.keep_resolver(keep)
  merged_roots = {graph.group(gid).root: gid for gid in clusters}
  by_path, grouped = {}, {}
  for sl in graph.weight_slices:
    by_path.setdefault(sl.path, []).append(sl)
  for gs in graph.grouped_slices:
    grouped.setdefault(gs.path, []).append(gs)
    by_path.setdefault(gs.path, [])
  names_of = {c.path: c.names for c in graph.calls}
  for path, slices in by_path.items():
    if not any(graph.root_of(seg.var) in merged_roots
               for sl in slices + grouped.get(path, [])
               for seg in sl.layout.segments):
      continue
    layer = graph.layer(path)
    names = [frameworks.Framework.short_name(w) for w in layer.weights]
    values = [np.array(v, copy=True) for v in layer.get_weights()]
    summed = {sl.weight for sl in slices if sl.role == "producer"}
    if "kernel" in summed:  # Keras 3 LoRA: a's rows are the kernel's inputs
      summed.add("lora_kernel_a")
    for sl in slices:
      i = names.index(sl.weight)
      # A consumer that mixes channels (its weight also makes the layer's
      # own outputs) reads the members' sum; anything per-channel (BN,
      # depthwise kernels, biases, the producer itself) is merged.
      how = ("sum" if sl.role == "consumer" and sl.weight in summed else
             merge)
      values[i] = _merge_axis(values[i], sl, graph, clusters, merged_roots,
                              how)
    for sl in slices:
      i = names.index(sl.weight)
      values[i] = np.take(values[i], sl.layout.indices(keep_of), axis=sl.axis)
    for gs in grouped.get(path, ()):
      i = names.index(gs.weight)
      values[i] = grouped_weight(
          _merge_grouped_inputs(values[i], gs, graph, clusters, merged_roots),
          gs, keep_of, "slice")
    target = slim
    for name in names_of[path]:
      target = target.get_layer(name)
    target.set_weights(values)


def _merge_grouped_inputs(value, gs, graph, clusters, merged_roots):
  """A grouped conv's kernel whose kept inputs read their clusters' sum.

  Every cluster lies in one block (conv group k): the representative's
  in-group position, for group k's output channels, takes the sum of the
  members' positions.
  """
  value = np.array(value, copy=True)
  per_in = value.shape[gs.axis]
  per_out = value.shape[gs.out_axis] // gs.groups
  lay, base = gs.layout, 0
  for seg in lay.segments:
    gid = merged_roots.get(graph.root_of(seg.var))
    if gid is not None:
      for rep, members in clusters[gid]:
        if len(members) < 2:
          continue
        for r in range(seg.repeat):
          chans = base + np.asarray(members) * seg.repeat + r
          k = int(chans[0] // per_in)
          outs = np.arange(k * per_out, (k + 1) * per_out)
          part = np.take(value, outs, axis=gs.out_axis)
          src = np.take(part, chans - k * per_in, axis=gs.axis).sum(
              gs.axis, keepdims=True)
          index = [slice(None)] * value.ndim
          index[gs.out_axis] = outs
          index[gs.axis] = slice(int(base + rep * seg.repeat + r - k * per_in),
                                 int(base + rep * seg.repeat + r - k * per_in)
                                 + 1)
          value[tuple(index)] = src
    base += seg.width
  return value


def _merge_axis(value, sl, graph, clusters, merged_roots, how):
  """`value` with each cluster's members merged into its representative."""
  if how in ("first", "random"):
    return value  # the representative keeps its own slice
  lay = sl.layout
  moved = np.moveaxis(value, sl.axis, 0)
  base = 0
  for seg in lay.segments:
    gid = merged_roots.get(graph.root_of(seg.var))
    if gid is not None:
      offsets = (np.arange(lay.spatial)[:, None] * lay.channels + base +
                 np.arange(seg.repeat)[None, :]).ravel()
      for rep, members in clusters[gid]:
        if len(members) < 2:
          continue
        src = moved[members[:, None] * seg.repeat + offsets[None, :]]
        merged = src.sum(0) if how == "sum" else src.mean(0)
        moved[rep * seg.repeat + offsets] = merged.astype(value.dtype)
    base += seg.width
  return value
