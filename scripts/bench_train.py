"""Benchmark: jaxreg.train and jaxreg.train_many against hand-written baselines.

Prints, in one run (float32, CPU):

1. samples/s of minibatch SGD + weight decay (kernels only, MSE, ReLU) for
   124-100-10 at batch 10 and 128 and 784-512-512-10 at batch 1024:
   jaxreg.train vs (a) a hand-written JAX+optax ``lax.scan`` epoch using
   ``jax.value_and_grad``, (b) a vectorised NumPy minibatch loop, (c) a NumPy
   per-sample loop in the style of Nielsen's network2.py, (d) PyTorch eager
   (only if ``torch`` imports). Ratios are against baselines measured in
   this same run. The column "Model/MLP" is the time of jaxreg.train of the
   same network written as a ``jaxreg.Model`` (a hand-written loss,
   differentiated by ``jax.value_and_grad``) over the MLP path (closed-form
   backprop): the median of the two's ratio within each round.
2. GFLOP/s at 784-512-512-10 batch 1024 against a float32 matmul peak
   measured here. Matmul FLOPs per sample: forward 2·Σ n_in·n_out, backward
   twice that (weight gradients and input gradients), minus the first
   layer's input gradient, which nobody computes:
   2·(784·512 + 512·512 + 512·10)·3 − 2·784·512 = 3,209,216.
   The peak is the faster of NumPy's BLAS and XLA's own dot on a 2048x2048
   square; both are printed. A profile follows, by ablation (see
   ``step_ablations``): the same epoch scan doing only the step's eight
   matmuls, and only its batch gathers, timed in the same rounds; the rest
   of the step's time is its elementwise work and the optimizer update. The
   matmuls-only scan is the ceiling of any epoch built from XLA's dots.
3. nets×epochs/s of jaxreg.train_many for 1, 10, 100, 1000 TensorFlow-
   Playground nets (2-3-3-1 tanh, tanh output, MSE on ±1 labels, batch 10,
   circle data set of 500 points, 250 for training, 100 epochs) vs a plain
   hand-written ``jit(vmap(scan))``.

Every figure is the median of ``--repeats`` timed runs after one untimed
warm-up (compilation excluded); the candidates of one row are timed in
interleaved rounds, in reverse order every other round, so that load from
other processes (and the busy-waiting of a BLAS thread pool after the call
before) hits them alike.
``--quick`` shrinks everything for a smoke run.

Usage: python scripts/bench_train.py [--quick] [--repeats N]
"""

import argparse
import math
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxreg

# ----------------------------------------------------------------------------- setup
parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("--quick", action="store_true", help="tiny sizes, one repeat: a smoke run")
parser.add_argument("--repeats", type=int, default=3)
parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="wall: perf_counter; cpu: process_time, the CPU seconds this process "
                    "used (steadier on a machine shared with other jobs)")
parser.add_argument("--only", choices=("train", "big", "many"), default=None,
                    help="run one part: the three train cases, the 784-512-512-10 case alone, "
                    "or train_many")
args = parser.parse_args()
CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
QUICK = args.quick
REPEATS = 1 if QUICK else args.repeats
DTYPE = np.float32
WD, LR = 1e-4, 0.01


def median_time(fn, repeats=REPEATS):
  fn()  # warm-up (compiles)
  times = []
  for _ in range(repeats):
    t0 = CLOCK()
    fn()
    times.append(CLOCK() - t0)
  return statistics.median(times)


def timed_rounds(fns, repeats=REPEATS):
  """Seconds of each function in each of ``repeats`` interleaved rounds (the machine is shared)."""
  for fn in fns.values():
    fn()  # warm-up (compiles)
  times = {k: [] for k in fns}
  for r in range(repeats):
    for k in (list(fns) if r % 2 == 0 else list(fns)[::-1]):  # each neighbour on both sides
      t0 = CLOCK()
      fns[k]()
      times[k].append(CLOCK() - t0)
  return times


def compare(fns, repeats=REPEATS):
  """Median seconds of each function, timed in interleaved rounds."""
  return {k: statistics.median(v) for k, v in timed_rounds(fns, repeats).items()}


def paired_ratio(times, a, b):
  """Median over rounds of ``time[a] / time[b]`` within a round: both saw the same load."""
  return statistics.median(x / y for x, y in zip(times[a], times[b]))


def data(n, sizes, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(n, sizes[0])).astype(DTYPE)
  t = rng.normal(size=(n, sizes[-1])).astype(DTYPE)
  return x, t


def np_init(sizes, seed=0):
  rng = np.random.default_rng(seed)
  return [{"w": (rng.normal(size=(a, b)) / math.sqrt(a)).astype(DTYPE),
           "b": np.zeros(b, DTYPE)} for a, b in zip(sizes[:-1], sizes[1:])]


# ------------------------------------------------------------------- the candidates
def run_jaxreg(sizes, x, t, batch, epochs):
  net = jaxreg.MLP(sizes, "relu")
  cfg = jaxreg.TrainConfig(learning_rate=LR, batch_size=batch, epochs=epochs, weight_decay=WD)
  p0 = jax.tree.map(jnp.asarray, np_init(sizes))
  xj, tj = jnp.asarray(x), jnp.asarray(t)

  def go():
    p, _ = jaxreg.train(net, p0, (xj, tj), cfg, progress=False)
    jax.block_until_ready(p)
  return go


def relu_mse_loss(params, xb, tb):
  """The benchmark network written by hand: ReLU hidden layers, linear output, MSE."""
  a = xb
  for i, p in enumerate(params):
    a = a @ p["w"] + p["b"]
    if i < len(params) - 1:
      a = jax.nn.relu(a)
  return 0.5 * jnp.sum((a - tb) ** 2) / xb.shape[0]


HAVE_MODEL = hasattr(jaxreg, "Model")  # lets this script time the trainer before jaxreg.Model
RELU_MSE_MODEL = jaxreg.Model(relu_mse_loss) if HAVE_MODEL else None


def run_jaxreg_model(sizes, x, t, batch, epochs):
  """jaxreg.train of a jaxreg.Model: the same network, autodiff instead of closed form."""
  cfg = jaxreg.TrainConfig(learning_rate=LR, batch_size=batch, epochs=epochs, weight_decay=WD)
  p0 = jax.tree.map(jnp.asarray, np_init(sizes))
  xj, tj = jnp.asarray(x), jnp.asarray(t)

  def go():
    p, _ = jaxreg.train(RELU_MSE_MODEL, p0, (xj, tj), cfg, progress=False)
    jax.block_until_ready(p)
  return go


def run_jax_scan(sizes, x, t, batch, epochs):
  """(a) What a JAX user would write: value_and_grad + optax, one jitted scan per epoch."""
  tx = optax.chain(optax.add_decayed_weights(WD, lambda p: jax.tree.map(lambda a: a.ndim > 1, p)),
                   optax.sgd(LR))

  loss_fn = relu_mse_loss
  n, nb = x.shape[0], x.shape[0] // batch

  @jax.jit
  def epoch(params, opt_state, key, x, t):
    perm = jax.random.permutation(key, n)[:nb * batch].reshape(nb, batch)

    def step(carry, idx):
      params, opt_state = carry
      loss, g = jax.value_and_grad(loss_fn)(params, x[idx], t[idx])
      updates, opt_state = tx.update(g, opt_state, params)
      return (optax.apply_updates(params, updates), opt_state), loss
    (params, opt_state), losses = jax.lax.scan(step, (params, opt_state), perm)
    return params, opt_state, losses.mean()

  p0 = jax.tree.map(jnp.asarray, np_init(sizes))
  xj, tj = jnp.asarray(x), jnp.asarray(t)

  def go():
    params, opt_state = p0, tx.init(p0)
    for e in range(epochs):
      params, opt_state, loss = epoch(params, opt_state, jax.random.key(e), xj, tj)
      float(loss)  # a per-epoch loss, like jaxreg's history
    jax.block_until_ready(params)
  return go


def run_numpy(sizes, x, t, batch, epochs):
  """(b) Vectorised NumPy minibatch SGD + weight decay."""
  n, nb = x.shape[0], x.shape[0] // batch
  rng = np.random.default_rng(0)

  def go():
    params = np_init(sizes)
    L = len(params)
    for _ in range(epochs):
      perm = rng.permutation(n)
      for k in range(nb):
        idx = perm[k * batch:(k + 1) * batch]
        xb, tb = x[idx], t[idx]
        acts, a = [xb], xb
        for i, p in enumerate(params):
          a = a @ p["w"] + p["b"]
          if i < L - 1:
            a = np.maximum(a, 0)
          acts.append(a)
        g = (a - tb) / batch
        for i in reversed(range(L)):
          p = params[i]
          gw = acts[i].T @ g
          gb = g.sum(0)
          if i:
            g = (g @ p["w"].T) * (acts[i] > 0)
          p["w"] -= LR * (gw + WD * p["w"])
          p["b"] -= LR * gb
  return go


def run_numpy_per_sample(sizes, x, t, batch, epochs):
  """(c) network2.py style: per-sample backprop on column vectors, summed per minibatch."""
  n, nb = x.shape[0], x.shape[0] // batch
  rng = np.random.default_rng(0)
  xs, ts = [v[:, None] for v in x], [v[:, None] for v in t]

  def go():
    ws = [p["w"].T.copy() for p in np_init(sizes)]
    bs = [p["b"][:, None].copy() for p in np_init(sizes)]
    for _ in range(epochs):
      perm = rng.permutation(n)
      for k in range(nb):
        nw = [np.zeros_like(w) for w in ws]
        nbs = [np.zeros_like(b) for b in bs]
        for j in perm[k * batch:(k + 1) * batch]:
          a, acts, zs = xs[j], [xs[j]], []
          for i, (w, b) in enumerate(zip(ws, bs)):
            z = w @ a + b
            zs.append(z)
            a = np.maximum(z, 0) if i < len(ws) - 1 else z
            acts.append(a)
          d = a - ts[j]
          nbs[-1] += d
          nw[-1] += d @ acts[-2].T
          for l in range(2, len(ws) + 1):
            d = (ws[-l + 1].T @ d) * (zs[-l] > 0)
            nbs[-l] += d
            nw[-l] += d @ acts[-l - 1].T
        ws = [(1 - LR * WD) * w - (LR / batch) * g for w, g in zip(ws, nw)]
        bs = [b - (LR / batch) * g for b, g in zip(bs, nbs)]
  return go


def run_torch(sizes, x, t, batch, epochs):
  """(d) PyTorch eager, CPU."""
  import torch  # pylint: disable=import-outside-toplevel
  layers = []
  for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
    layers.append(torch.nn.Linear(a, b))
    if i < len(sizes) - 2:
      layers.append(torch.nn.ReLU())
  model = torch.nn.Sequential(*layers)
  decay = [p for n_, p in model.named_parameters() if n_.endswith("weight")]
  rest = [p for n_, p in model.named_parameters() if n_.endswith("bias")]
  opt = torch.optim.SGD([{"params": decay, "weight_decay": WD}, {"params": rest}], lr=LR)
  xt, tt = torch.from_numpy(x), torch.from_numpy(t)
  n, nb = x.shape[0], x.shape[0] // batch

  def go():
    for _ in range(epochs):
      perm = torch.randperm(n)
      for k in range(nb):
        idx = perm[k * batch:(k + 1) * batch]
        opt.zero_grad()
        loss = 0.5 * ((model(xt[idx]) - tt[idx]) ** 2).sum() / batch
        loss.backward()
        opt.step()
  return go


try:
  import torch  # noqa: F401  pylint: disable=unused-import
  HAVE_TORCH = True
except ImportError:
  HAVE_TORCH = False


MATMUL_N = 512 if QUICK else 2048
_a = np.random.default_rng(0).normal(size=(MATMUL_N, MATMUL_N)).astype(DTYPE)
_aj = jnp.asarray(_a)
_mm = jax.jit(lambda u: u @ u)


def step_ablations(sizes, x, batch, epochs):
  """An ablation profile of jaxreg's epoch: the same ``lax.scan`` over the same steps doing

  * ``"matmuls only"``: the step's eight products (forward, weight gradients,
    input gradients) on a fixed batch, carrying the weights (one cheap axpy
    each, so nothing is hoisted or dropped);
  * ``"batch gather only"``: the per-step gather of the shuffled batch.

  What the full step costs beyond these is the elementwise work (activations,
  their derivatives, the loss gradient) and the optimizer update.
  """
  n, nb = x.shape[0], x.shape[0] // batch
  p0 = [p["w"] for p in jax.tree.map(jnp.asarray, np_init(sizes))]
  xj = jnp.asarray(x)

  @jax.jit
  def dots(ws, xb):
    def step(ws, _):
      acts = [xb]
      for w in ws:
        acts.append(acts[-1] @ w)
      g, grads = acts[-1], []
      for l in reversed(range(len(ws))):
        grads.append(acts[l].T @ g)
        if l:
          g = g @ ws[l].T
      return [w - 1e-9 * dw for w, dw in zip(ws, reversed(grads))], None
    return jax.lax.scan(step, ws, None, length=nb)[0]

  @jax.jit
  def gather(key, x):
    perm = jax.random.permutation(key, n)[:nb * batch].reshape(nb, batch)
    def step(c, idx):
      return c + x.at[idx].get(mode="promise_in_bounds")[0, 0], None
    return jax.lax.scan(step, jnp.zeros((), x.dtype), perm)[0]

  def run_dots():
    ws = p0
    for _ in range(epochs):
      ws = dots(ws, xj[:batch])
    jax.block_until_ready(ws)

  def run_gather():
    for e in range(epochs):
      gather(jax.random.key(e), xj).block_until_ready()

  return {"matmuls only": run_dots, "batch gather only": run_gather}


def matmul_jax():
  _mm(_aj).block_until_ready()


def matmul_numpy():
  _a @ _a  # pylint: disable=pointless-statement


def gflops(seconds):
  return 2 * MATMUL_N ** 3 / seconds / 1e9


def flops_per_sample(sizes):
  fwd = 2 * sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
  return 3 * fwd - 2 * sizes[0] * sizes[1]


# ------------------------------------------------------------------------ part 1 and 2
CASES = [((124, 100, 10), 10, 20_000, 3), ((124, 100, 10), 128, 51_200, 3),
         ((784, 512, 512, 10), 1024, 16_384, 3)]
if QUICK:
  CASES = [(s, b, n // 10 if b < 1024 else 4096, 1) for s, b, n, _ in CASES]
if args.only == "big":
  CASES = CASES[2:]
elif args.only == "many":
  CASES = []
PER_SAMPLE_N = 2_000 if not QUICK else 200

print(f"jax {jax.__version__}, optax {optax.__version__}, numpy {np.__version__}, "
      f"backend {jax.default_backend()}, float32, medians of {REPEATS} after a warm-up, "
      f"{args.clock} clock"
      + (", torch " + __import__("torch").__version__ if HAVE_TORCH else ", torch not installed"))
t = compare({"jax": matmul_jax, "numpy": matmul_numpy}, repeats=max(REPEATS, 3))
peak = max(gflops(v) for v in t.values())
print(f"float32 matmul peak at the start ({MATMUL_N}x{MATMUL_N}, best of jitted JAX and NumPy): "
      f"{peak:.1f} GFLOP/s")
print()
head = (f"{'model':<18}{'batch':>6}  {'jaxreg.train':>13}  {'(a) JAX scan':>15}  "
        f"{'(b) NumPy vec':>15}  {'(c) NumPy/sample':>16}  {'(d) torch':>15}  {'Model/MLP':>9}")
print("samples/s (ratio = jaxreg / baseline)")
print(head)
print("-" * len(head))
results = {}
for sizes, batch, n, epochs in CASES:
  x, t = data(n, sizes)
  samples = epochs * (n // batch) * batch
  fns = {"jaxreg": run_jaxreg(sizes, x, t, batch, epochs)}
  if HAVE_MODEL:  # right next to the MLP path, so that the pair sees the same load
    fns["model"] = run_jaxreg_model(sizes, x, t, batch, epochs)
  fns["jax"] = run_jax_scan(sizes, x, t, batch, epochs)
  fns["numpy"] = run_numpy(sizes, x, t, batch, epochs)
  work = {k: samples for k in fns}
  if sizes[0] < 500:
    m = PER_SAMPLE_N
    fns["per_sample"] = run_numpy_per_sample(sizes, x[:m], t[:m], batch, 1)
    work["per_sample"] = (m // batch) * batch
  if HAVE_TORCH:
    fns["torch"] = run_torch(sizes, x, t, batch, epochs)
    work["torch"] = samples
  if sizes[0] > 500:  # the peak and the step's matmuls, measured in the same rounds as this case
    fns["peak_jax"], fns["peak_numpy"] = matmul_jax, matmul_numpy
    fns.update(step_ablations(sizes, x, batch, epochs))
  rounds = timed_rounds(fns)
  secs = {k: statistics.median(v) for k, v in rounds.items()}
  row = {k: work[k] / secs[k] for k in work}
  if sizes[0] > 500:
    row["peak_jax"], row["peak_numpy"] = gflops(secs["peak_jax"]), gflops(secs["peak_numpy"])
    row["peak"] = max(row["peak_jax"], row["peak_numpy"])
  results[(sizes, batch)] = row
  name = "-".join(map(str, sizes))
  cell = lambda k: (f"{row[k]:>9,.0f}" if k in row else f"{'—':>9}")  # noqa: E731
  ratio = lambda k: (f" {row['jaxreg'] / row[k]:5.2f}x" if k in row else "       ")  # noqa: E731
  row["ablation"] = {k: secs[k] for k in ("matmuls only", "batch gather only") if k in secs}
  row["epochs_s"], row["samples"] = secs["jaxreg"], samples
  print(f"{name:<18}{batch:>6}  {row['jaxreg']:>13,.0f}  {cell('jax')}{ratio('jax')}"
        f"  {cell('numpy')}{ratio('numpy')}  {cell('per_sample')}{ratio('per_sample')}"
        f"  {cell('torch')}{ratio('torch')}  "
        + (f"{paired_ratio(rounds, 'model', 'jaxreg'):8.2f}x" if HAVE_MODEL else f"{'—':>9}"))

sizes = (784, 512, 512, 10)
fps = flops_per_sample(sizes)
peak = results[(sizes, 1024)]["peak"] if (sizes, 1024) in results else float("nan")
print()
if (sizes, 1024) in results:
  print(f"784-512-512-10 batch 1024: {fps:,} matmul FLOPs/sample; float32 matmul peak measured "
        f"in the same rounds: {peak:.1f} GFLOP/s (2048x2048: NumPy's BLAS "
        f"{results[(sizes, 1024)]['peak_numpy']:.1f}, XLA's own dot "
        f"{results[(sizes, 1024)]['peak_jax']:.1f} = {results[(sizes, 1024)]['peak_jax'] / peak:.1%})")
  for k, label in (("jaxreg", "jaxreg.train"), ("model", "jaxreg Model"), ("jax", "(a) JAX scan"),
                   ("numpy", "(b) NumPy vec"), ("torch", "(d) torch")):
    if k in results[(sizes, 1024)]:
      g = results[(sizes, 1024)][k] * fps / 1e9
      print(f"  {label:<14} {g:7.1f} GFLOP/s = {g / peak:5.1%} of the measured peak")
  row = results[(sizes, 1024)]
  full, ab = row["epochs_s"], row["ablation"]
  flops = fps * row["samples"]
  print(f"profile (ablation, same rounds): the whole run {full:.3f} s; the same scan doing only")
  print(f"  its matmuls      {ab['matmuls only']:.3f} s = {ab['matmuls only'] / full:5.1%} "
        f"(XLA runs these shapes at {flops / ab['matmuls only'] / 1e9:.1f} GFLOP/s = "
        f"{flops / ab['matmuls only'] / 1e9 / peak:5.1%} of the square-matmul peak)")
  print(f"  its batch gather {ab['batch gather only']:.3f} s = {ab['batch gather only'] / full:5.1%}")
  rest = full - ab["matmuls only"] - ab["batch gather only"]
  print(f"  the rest (elementwise work, loss gradient, optimizer update, metrics) {rest:.3f} s "
        f"= {rest / full:5.1%}")
  ceiling = flops / ab["matmuls only"] / 1e9
  print(f"  so an epoch of XLA's matmuls tops out at {ceiling / peak:5.1%} of the peak; "
        f"jaxreg.train runs at {row['jaxreg'] * fps / 1e9 / ceiling:5.1%} of that ceiling")

# ----------------------------------------------------------------------------- part 3
def circle(n=500, seed=0):
  """TF Playground's circle: positives r ~ U(0, 2.5), negatives r ~ U(3.5, 5); labels ±1."""
  rng = np.random.default_rng(seed)
  r = np.concatenate([rng.uniform(0, 2.5, n // 2), rng.uniform(3.5, 5, n - n // 2)])
  a = rng.uniform(0, 2 * np.pi, n)
  x = np.stack([r * np.sin(a), r * np.cos(a)], 1).astype(DTYPE)
  y = np.concatenate([np.ones(n // 2), -np.ones(n - n // 2)])[:, None].astype(DTYPE)
  perm = rng.permutation(n)
  return x[perm], y[perm]


PG_SIZES, PG_EPOCHS, PG_BATCH, PG_LR = (2, 3, 3, 1), (10 if QUICK else 100), 10, 0.03
xc, yc = circle()
xtr, ytr = xc[:250], yc[:250]
pg_net = jaxreg.MLP(PG_SIZES, ["tanh", "tanh", "tanh"])
pg_cfg = jaxreg.TrainConfig(learning_rate=PG_LR, batch_size=PG_BATCH, epochs=PG_EPOCHS)


def plain_vmap_scan(n_nets):
  """A plain jit(vmap(scan)) over nets: what ANCHORS.md measured at 21–23k nets×epochs/s."""
  tx = optax.sgd(PG_LR)
  nb = 250 // PG_BATCH

  def loss_fn(params, xb, tb):
    a = xb
    for p in params:
      a = jnp.tanh(a @ p["w"] + p["b"])
    return 0.5 * jnp.sum((a - tb) ** 2) / xb.shape[0]

  def one(key):
    params = pg_net.init(key, jnp.float32)

    def epoch(carry, k):
      def step(c, idx):
        p, s = c
        loss, g = jax.value_and_grad(loss_fn)(p, xj[idx], tj[idx])
        u, s = tx.update(g, s, p)
        return (optax.apply_updates(p, u), s), loss
      perm = jax.random.permutation(k, 250)[:nb * PG_BATCH].reshape(nb, PG_BATCH)
      carry, losses = jax.lax.scan(step, carry, perm)
      return carry, losses.mean()
    keys = jax.random.split(key, PG_EPOCHS)
    (p, _), hist = jax.lax.scan(epoch, (params, tx.init(params)), keys)
    return p, hist

  xj, tj = jnp.asarray(xtr), jnp.asarray(ytr)
  f = jax.jit(jax.vmap(one))
  keys = jax.vmap(jax.random.key)(jnp.arange(n_nets))
  return lambda: jax.block_until_ready(f(keys))


def jaxreg_many(n_nets):
  return lambda: jax.block_until_ready(
      jaxreg.train_many(pg_net, (xtr, ytr), pg_cfg, seeds=range(n_nets))[0])


if args.only in (None, "many"):
  print()
  print(f"train_many: Playground nets 2-3-3-1 tanh, batch {PG_BATCH}, 250 training samples, "
        f"{PG_EPOCHS} epochs; nets×epochs/s")
  print(f"{'nets':>6}  {'jaxreg.train_many':>18}  {'plain jit(vmap(scan))':>22}  {'ratio':>6}")
  for n_nets in ((1, 10, 100) if QUICK else (1, 10, 100, 1000)):
    secs = compare({"jaxreg": jaxreg_many(n_nets), "plain": plain_vmap_scan(n_nets)})
    tm, tp = secs["jaxreg"], secs["plain"]
    a, b = n_nets * PG_EPOCHS / tm, n_nets * PG_EPOCHS / tp
    print(f"{n_nets:>6}  {a:>18,.0f}  {b:>22,.0f}  {a / b:5.2f}x")

  # The same number of nets as a search (S4.8): seeds × learning rate × L2 weight decay.
  g = 3 if QUICK else 10
  grid = {"learning_rate": list(np.geomspace(0.003, 0.3, g)), "weight_decay": list(np.linspace(0, 1e-2, g))}
  t_grid = compare({"grid": lambda: jax.block_until_ready(jaxreg.train_many(
      pg_net, (xtr, ytr), pg_cfg, seeds=range(g), grid=grid)[0])})["grid"]
  print(f"{g ** 3:>6}  {g ** 3 * PG_EPOCHS / t_grid:>18,.0f}  "
        f"  (as {g} seeds x {g} learning rates x {g} weight decays: init, shuffles and batches "
        "computed once per seed)")
