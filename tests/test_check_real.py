"""`jaxreg.check` on hand-written backprop in the style of public course solutions.

Written afresh in the shape students write it: the CS231n-style modular
layers (``affine_backward``, ``relu_backward``, ``softmax_loss``, ``svm_loss``
naive and vectorised, ``batchnorm_backward`` staged and simplified,
``layernorm_backward`` by transposing, ``dropout_backward``), whole-model
``loss()`` methods, Nielsen's ``network.py`` backprop (column vectors, one
example at a time) and a micrograd-style scalar engine. Every correct version
must come out ``ok`` (or ``kink`` where the data put a ReLU or a hinge at
exactly 0); every planted slip must be ``wrong`` with ``first_wrong`` naming the
step it breaks.

Data are passed positionally (the checker's own options are keywords).
"""

import functools

import jax.numpy as jnp
import numpy as np
import pytest

import jaxreg

# ============================================================ layers, course style


def affine_forward(x, w, b):
  out = x.reshape(x.shape[0], -1) @ w + b
  return out, (x, w, b)


def affine_backward(dout, cache):
  x, w, _ = cache
  dx = (dout @ w.T).reshape(x.shape)
  dw = x.reshape(x.shape[0], -1).T @ dout
  db = jnp.sum(dout, axis=0)
  return dx, dw, db


def relu_forward(x):
  return jnp.maximum(0, x), x


def relu_backward(dout, cache):
  return dout * (cache > 0)


def relu_backward_gates_on_dout(dout, cache):        # slip: gates on the upstream gradient
  return dout * (dout > 0)


def softmax_loss(x, y):
  n = x.shape[0]
  shifted = x - jnp.max(x, axis=1, keepdims=True)
  log_probs = shifted - jnp.log(jnp.sum(jnp.exp(shifted), axis=1, keepdims=True))
  loss = -jnp.sum(log_probs[jnp.arange(n), y]) / n
  dx = jnp.exp(log_probs).at[jnp.arange(n), y].add(-1.0) / n
  return loss, dx


def softmax_loss_no_mean(x, y):                      # slip: the gradient is not divided by N
  loss, dx = softmax_loss(x, y)
  return loss, dx * x.shape[0]


def svm_loss(x, y):
  n = x.shape[0]
  correct = x[jnp.arange(n), y][:, None]
  margins = jnp.maximum(0, x - correct + 1.0).at[jnp.arange(n), y].set(0.0)
  loss = jnp.sum(margins) / n
  pos = (margins > 0).astype(x.dtype)
  dx = pos.at[jnp.arange(n), y].add(-jnp.sum(pos, axis=1))
  return loss, dx / n


def batchnorm_forward(x, gamma, beta, eps=1e-5):
  mu = jnp.mean(x, axis=0)
  xc = x - mu
  var = jnp.mean(xc ** 2, axis=0)
  std = jnp.sqrt(var + eps)
  xhat = xc / std
  return gamma * xhat + beta, (xhat, xc, var, std, gamma, eps)


def batchnorm_backward(dout, cache):
  """The staged computational graph: through xhat, var and mu."""
  xhat, xc, var, std, gamma, eps = cache
  n = dout.shape[0]
  dgamma = jnp.sum(dout * xhat, axis=0)
  dbeta = jnp.sum(dout, axis=0)
  dxhat = dout * gamma
  dvar = jnp.sum(dxhat * xc, axis=0) * -0.5 * (var + eps) ** -1.5
  dmu = jnp.sum(-dxhat / std, axis=0) + dvar * jnp.mean(-2.0 * xc, axis=0)
  dx = dxhat / std + dvar * 2.0 * xc / n + dmu / n
  return dx, dgamma, dbeta


def batchnorm_backward_drops_zero_term(dout, cache):
  """Also correct: ``dvar · mean(−2(x − μ))`` is 0, so leaving it out changes nothing."""
  xhat, xc, var, std, gamma, eps = cache
  n = dout.shape[0]
  dxhat = dout * gamma
  dvar = jnp.sum(dxhat * xc, axis=0) * -0.5 * (var + eps) ** -1.5
  dmu = jnp.sum(-dxhat / std, axis=0)
  dx = dxhat / std + dvar * 2.0 * xc / n + dmu / n
  return dx, jnp.sum(dout * xhat, axis=0), jnp.sum(dout, axis=0)


def batchnorm_backward_no_var(dout, cache):          # slip: forgot the path through var
  xhat, xc, var, std, gamma, eps = cache
  n = dout.shape[0]
  dxhat = dout * gamma
  dmu = jnp.sum(-dxhat / std, axis=0)
  dx = dxhat / std + dmu / n
  return dx, jnp.sum(dout * xhat, axis=0), jnp.sum(dout, axis=0)


def batchnorm_backward_alt(dout, cache):
  """The simplified formula: dx = (N·dxhat − Σdxhat − xhat·Σ(dxhat·xhat)) / (N·std)."""
  xhat, _, _, std, gamma, _ = cache
  n = dout.shape[0]
  dxhat = dout * gamma
  dx = (n * dxhat - jnp.sum(dxhat, axis=0) - xhat * jnp.sum(dxhat * xhat, axis=0)) / (n * std)
  return dx, jnp.sum(dout * xhat, axis=0), jnp.sum(dout, axis=0)


def batchnorm_backward_alt_sign(dout, cache):        # slip: + instead of − on the xhat term
  xhat, _, _, std, gamma, _ = cache
  n = dout.shape[0]
  dxhat = dout * gamma
  dx = (n * dxhat - jnp.sum(dxhat, axis=0) + xhat * jnp.sum(dxhat * xhat, axis=0)) / (n * std)
  return dx, jnp.sum(dout * xhat, axis=0), jnp.sum(dout, axis=0)


def batchnorm_backward_dgamma_slip(dout, cache):     # slip: dgamma without xhat
  dx, _, dbeta = batchnorm_backward_alt(dout, cache)
  return dx, jnp.sum(dout, axis=0), dbeta


def layernorm_forward(x, gamma, beta, eps=1e-5):
  """Batch norm of the transposed input, with gamma and beta applied per feature after."""
  ones = jnp.ones(x.shape[0], x.dtype)
  xhat_t, cache = batchnorm_forward(x.T, ones, jnp.zeros_like(ones), eps)
  return gamma * xhat_t.T + beta, (cache, xhat_t.T, gamma)


def layernorm_backward(dout, cache):
  bn_cache, xhat, gamma = cache
  dgamma = jnp.sum(dout * xhat, axis=0)
  dbeta = jnp.sum(dout, axis=0)
  dx_t, _, _ = batchnorm_backward_alt((dout * gamma).T, bn_cache)
  return dx_t.T, dgamma, dbeta


def layernorm_backward_wrong_axis(dout, cache):      # slip: the sums run over the batch axis
  bn_cache, xhat, gamma = cache
  std = bn_cache[3]                                  # one per example
  n_feat = dout.shape[1]
  dxhat = dout * gamma
  dx = (n_feat * dxhat - jnp.sum(dxhat, axis=0) - xhat * jnp.sum(dxhat * xhat, axis=0)) / (
      n_feat * std[:, None])
  return dx, jnp.sum(dout * xhat, axis=0), jnp.sum(dout, axis=0)


def dropout_forward(x, mask, p):
  """Inverted dropout: keep with probability p and scale by 1/p (mask is the 0/1 draw)."""
  return x * mask / p, (mask, p)


def dropout_backward(dout, cache):
  mask, p = cache
  return dout * mask / p


def dropout_backward_no_scale(dout, cache):          # slip: forgot the 1/p
  mask, _ = cache
  return dout * mask


# ============================================================ data


def _two_layer_data(seed=0, n=6, d=4, h=5, c=3):
  """Integer-valued inputs; sample 0 is all zeros and b1[1] = 0, so relu sees one exact 0."""
  rng = np.random.default_rng(seed)
  x = rng.integers(-2, 3, size=(n, d)).astype(np.float64)
  x[0] = 0.0
  p = {"W1": rng.normal(size=(d, h)) * 0.5, "b1": rng.normal(size=h) * 0.3,
       "W2": rng.normal(size=(h, c)) * 0.5, "b2": rng.normal(size=c) * 0.3}
  p["b1"][1] = 0.0
  y = rng.integers(0, c, size=n)
  return p, x, y


def _svm_data(seed=0, n=6, d=4, c=3):
  """Integer-valued X and half-integer W with exactly one hinge margin at exactly 0."""
  for k in range(200):
    rng = np.random.default_rng([seed, k])
    x = rng.integers(-2, 3, size=(n, d)).astype(np.float64)
    w = rng.integers(-2, 3, size=(d, c)) / 2.0
    y = rng.integers(0, c, size=n)
    s = x @ w
    m = s - s[np.arange(n), y][:, None] + 1.0
    m[np.arange(n), y] = np.nan
    if int(np.sum(m == 0)) == 1:
      return {"W": w}, x, y
  raise RuntimeError("no draw with exactly one zero margin")


# ============================================================ 1. two-layer net, softmax head


def two_layer_loss(p, x, y, reg):
  a1 = jaxreg.tap("a1", x @ p["W1"] + p["b1"])
  h = jaxreg.tap("h", jnp.maximum(0, a1))
  scores = jaxreg.tap("scores", h @ p["W2"] + p["b2"])
  data_loss, _ = softmax_loss(scores, y)
  return data_loss + 0.5 * reg * (jnp.sum(p["W1"] ** 2) + jnp.sum(p["W2"] ** 2))


def _two_layer_grads(p, x, y, reg, relu_bw=relu_backward, head=softmax_loss, reg_w1=True):
  a1, fc1 = affine_forward(x, p["W1"], p["b1"])
  h, rc = relu_forward(a1)
  scores, fc2 = affine_forward(h, p["W2"], p["b2"])
  _, dscores = head(scores, y)
  dh, dw2, db2 = affine_backward(dscores, fc2)
  da1 = relu_bw(dh, rc)
  _, dw1, db1 = affine_backward(da1, fc1)
  dw2 = dw2 + reg * p["W2"]
  if reg_w1:
    dw1 = dw1 + reg * p["W1"]
  return {"scores": dscores, "h": dh, "a1": da1,
          "params": {"W1": dw1, "b1": db1, "W2": dw2, "b2": db2}}


two_layer_grads = _two_layer_grads
two_layer_grads_relu_slip = functools.partial(_two_layer_grads, relu_bw=relu_backward_gates_on_dout)
two_layer_grads_no_mean = functools.partial(_two_layer_grads, head=softmax_loss_no_mean)
two_layer_grads_no_reg_w1 = functools.partial(_two_layer_grads, reg_w1=False)


def test_two_layer_net_correct_with_relu_at_zero_is_kink():
  p, x, y = _two_layer_data()
  r = jaxreg.check(two_layer_grads, two_layer_loss, p, x, y, 0.1)
  assert r.ok, str(r)
  # relu_backward takes relu'(0) = 0, jnp.maximum's autodiff 0.5: a kink, not an error
  assert r.row("a1").verdict == "kink" and r.row("a1").n_kink == 1
  assert r.row("params['b1']").verdict == "kink"
  assert r.row("scores").verdict == r.row("h").verdict == "ok"


@pytest.mark.parametrize("deriv, first", [
    (two_layer_grads_relu_slip, "a1"),
    (two_layer_grads_no_mean, "scores"),
    (two_layer_grads_no_reg_w1, "params['W1']"),
])
def test_two_layer_net_slips_found_at_their_step(deriv, first):
  p, x, y = _two_layer_data()
  r = jaxreg.check(deriv, two_layer_loss, p, x, y, 0.1)
  assert not r.ok and r.first_wrong == first, str(r)
  assert r.row(first).verdict == "wrong"


# ============================================================ 2. linear SVM, naive and vectorised


def svm_linear_loss(p, x, y, reg):
  scores = jaxreg.tap("scores", x @ p["W"])
  data_loss, _ = svm_loss(scores, y)
  return data_loss + reg * jnp.sum(p["W"] * p["W"])


def svm_loss_naive(p, x, y, reg, correct_class_term=True):
  """Two loops over examples and classes, as in the course's first version."""
  w = p["W"]
  dw = jnp.zeros_like(w)
  n, c = x.shape[0], w.shape[1]
  x_np, y_np = np.asarray(x), np.asarray(y)
  scores = np.asarray(x @ w)
  for i in range(n):
    for j in range(c):
      if j == y_np[i]:
        continue
      margin = scores[i, j] - scores[i, y_np[i]] + 1.0
      if margin > 0:
        dw = dw.at[:, j].add(x_np[i])
        if correct_class_term:
          dw = dw.at[:, y_np[i]].add(-x_np[i])
  return {"params": {"W": dw / n + 2 * reg * w}}


svm_loss_naive_no_correct_class = functools.partial(svm_loss_naive, correct_class_term=False)


def svm_loss_vectorized(p, x, y, reg, reg_factor=2.0):
  scores = x @ p["W"]
  _, dscores = svm_loss(scores, y)
  return {"scores": dscores, "params": {"W": x.T @ dscores + reg_factor * reg * p["W"]}}


svm_loss_vectorized_half_reg = functools.partial(svm_loss_vectorized, reg_factor=1.0)


def svm_loss_vectorized_no_mean(p, x, y, reg):
  scores = x @ p["W"]
  _, dscores = svm_loss(scores, y)
  dscores = dscores * x.shape[0]                      # slip: forgot the 1/N
  return {"scores": dscores, "params": {"W": x.T @ dscores / x.shape[0] + 2 * reg * p["W"]}}


@pytest.mark.parametrize("deriv", [svm_loss_naive, svm_loss_vectorized])
def test_svm_correct_with_margin_at_zero_is_kink(deriv):
  p, x, y = _svm_data()
  r = jaxreg.check(deriv, svm_linear_loss, p, x, y, 0.05)
  assert r.ok, str(r)
  assert r.n_kink >= 1          # hinge'(0) = 0 here, 0.5 in jnp.maximum's autodiff


@pytest.mark.parametrize("deriv, first", [
    (svm_loss_naive_no_correct_class, "params['W']"),
    (svm_loss_vectorized_half_reg, "params['W']"),
    (svm_loss_vectorized_no_mean, "scores"),
])
def test_svm_slips_found_at_their_step(deriv, first):
  p, x, y = _svm_data()
  r = jaxreg.check(deriv, svm_linear_loss, p, x, y, 0.05)
  assert not r.ok and r.first_wrong == first, str(r)


# ============================================================ 3. affine → batch norm → relu → affine → softmax


def _bn_data(seed=1, n=8, d=4, h=5, c=3, bias=True):
  rng = np.random.default_rng(seed)
  p = {"W1": rng.normal(size=(d, h)), "gamma1": rng.uniform(0.5, 1.5, h),
       "beta1": rng.normal(size=h) * 0.3, "W2": rng.normal(size=(h, c)),
       "b2": rng.normal(size=c) * 0.3}
  if bias:
    p["b1"] = rng.normal(size=h)
  return p, rng.normal(size=(n, d)), rng.integers(0, c, size=n)


def bn_net_loss(p, x, y):
  a1 = x @ p["W1"] + p["b1"] if "b1" in p else x @ p["W1"]
  a1 = jaxreg.tap("a1", a1)
  bn, _ = batchnorm_forward(a1, p["gamma1"], p["beta1"])
  bn = jaxreg.tap("bn", bn)
  h = jaxreg.tap("h", jnp.maximum(0, bn))
  scores = jaxreg.tap("scores", h @ p["W2"] + p["b2"])
  return softmax_loss(scores, y)[0]


def _bn_net_grads(p, x, y, bn_bw=batchnorm_backward):
  b1 = p["b1"] if "b1" in p else jnp.zeros(p["W1"].shape[1])
  a1, fc1 = affine_forward(x, p["W1"], b1)
  bn, bc = batchnorm_forward(a1, p["gamma1"], p["beta1"])
  h, rc = relu_forward(bn)
  scores, fc2 = affine_forward(h, p["W2"], p["b2"])
  _, dscores = softmax_loss(scores, y)
  dh, dw2, db2 = affine_backward(dscores, fc2)
  dbn = relu_backward(dh, rc)
  da1, dgamma, dbeta = bn_bw(dbn, bc)
  _, dw1, db1 = affine_backward(da1, fc1)
  grads = {"W1": dw1, "gamma1": dgamma, "beta1": dbeta, "W2": dw2, "b2": db2}
  if "b1" in p:
    grads["b1"] = db1
  return {"scores": dscores, "h": dh, "bn": dbn, "a1": da1, "params": grads}


bn_net_grads_staged = _bn_net_grads
bn_net_grads_alt = functools.partial(_bn_net_grads, bn_bw=batchnorm_backward_alt)
bn_net_grads_drops_zero_term = functools.partial(_bn_net_grads,
                                                 bn_bw=batchnorm_backward_drops_zero_term)
bn_net_grads_no_var = functools.partial(_bn_net_grads, bn_bw=batchnorm_backward_no_var)
bn_net_grads_alt_sign = functools.partial(_bn_net_grads, bn_bw=batchnorm_backward_alt_sign)
bn_net_grads_dgamma_slip = functools.partial(_bn_net_grads, bn_bw=batchnorm_backward_dgamma_slip)

BN_CORRECT = [bn_net_grads_staged, bn_net_grads_alt, bn_net_grads_drops_zero_term]


@pytest.mark.parametrize("deriv", BN_CORRECT, ids=["staged", "simplified", "staged_minus_0"])
def test_batchnorm_correct_without_bias_before_is_ok(deriv):
  p, x, y = _bn_data(bias=False)
  r = jaxreg.check(deriv, bn_net_loss, p, x, y)
  assert r.ok, str(r)
  assert all(row.verdict == "ok" for row in r.rows)


@pytest.mark.parametrize("deriv", BN_CORRECT[:2], ids=["staged", "simplified"])
def test_batchnorm_correct_with_bias_before_is_ok(deriv):
  p, x, y = _bn_data(bias=True)
  r = jaxreg.check(deriv, bn_net_loss, p, x, y)
  assert r.ok, str(r)
  assert abs(r.row("params['b1']").worst_ref or 0.0) < 1e-12   # the true gradient is 0


@pytest.mark.parametrize("deriv, first, bias", [
    (bn_net_grads_no_var, "a1", False), (bn_net_grads_no_var, "a1", True),
    (bn_net_grads_alt_sign, "a1", False),
    (bn_net_grads_dgamma_slip, "params['gamma1']", False),
    (bn_net_grads_dgamma_slip, "params['gamma1']", True),
])
def test_batchnorm_slips_found_at_their_step(deriv, first, bias):
  p, x, y = _bn_data(bias=bias)
  r = jaxreg.check(deriv, bn_net_loss, p, x, y)
  assert not r.ok and r.first_wrong == first, str(r)


# ============================================================ 4. layer norm (by transposing batch norm)


def ln_net_loss(p, x, y):
  a1 = jaxreg.tap("a1", x @ p["W1"] + p["b1"])
  ln, _ = layernorm_forward(a1, p["gamma1"], p["beta1"])
  ln = jaxreg.tap("ln", ln)
  h = jaxreg.tap("h", jnp.maximum(0, ln))
  scores = jaxreg.tap("scores", h @ p["W2"] + p["b2"])
  return softmax_loss(scores, y)[0]


def _ln_net_grads(p, x, y, ln_bw=layernorm_backward):
  a1, fc1 = affine_forward(x, p["W1"], p["b1"])
  ln, lc = layernorm_forward(a1, p["gamma1"], p["beta1"])
  h, rc = relu_forward(ln)
  scores, fc2 = affine_forward(h, p["W2"], p["b2"])
  _, dscores = softmax_loss(scores, y)
  dh, dw2, db2 = affine_backward(dscores, fc2)
  dln = relu_backward(dh, rc)
  da1, dgamma, dbeta = ln_bw(dln, lc)
  _, dw1, db1 = affine_backward(da1, fc1)
  return {"scores": dscores, "h": dh, "ln": dln, "a1": da1,
          "params": {"W1": dw1, "b1": db1, "gamma1": dgamma, "beta1": dbeta, "W2": dw2,
                     "b2": db2}}


ln_net_grads = _ln_net_grads
ln_net_grads_wrong_axis = functools.partial(_ln_net_grads, ln_bw=layernorm_backward_wrong_axis)


def test_layernorm_correct_with_bias_before_is_ok():
  # A per-feature bias before layer norm has a nonzero gradient (its entries sum to 0).
  p, x, y = _bn_data(bias=True)
  r = jaxreg.check(ln_net_grads, ln_net_loss, p, x, y)
  assert r.ok, str(r)
  assert all(row.verdict == "ok" for row in r.rows)


def test_layernorm_normalised_over_the_wrong_axis_is_wrong_at_its_input():
  p, x, y = _bn_data(bias=True)
  r = jaxreg.check(ln_net_grads_wrong_axis, ln_net_loss, p, x, y)
  assert not r.ok and r.first_wrong == "a1", str(r)
  assert r.row("ln").verdict == "ok"


# ============================================================ 5. dropout


def _dropout_data(seed=2, n=6, d=4, h=6, c=3):
  p, x, y = _two_layer_data(seed, n, d, h, c)
  mask = (np.random.default_rng(seed + 100).random((n, h)) < 0.75).astype(np.float64)
  return p, x, y, mask


def dropout_net_loss(p, x, y, mask):
  a1 = jaxreg.tap("a1", x @ p["W1"] + p["b1"])
  h = jaxreg.tap("h", jnp.maximum(0, a1))
  hd = jaxreg.tap("hd", dropout_forward(h, mask, 0.75)[0])
  scores = jaxreg.tap("scores", hd @ p["W2"] + p["b2"])
  return softmax_loss(scores, y)[0]


def _dropout_net_grads(p, x, y, mask, drop_bw=dropout_backward):
  a1, fc1 = affine_forward(x, p["W1"], p["b1"])
  h, rc = relu_forward(a1)
  hd, dc = dropout_forward(h, mask, 0.75)
  scores, fc2 = affine_forward(hd, p["W2"], p["b2"])
  _, dscores = softmax_loss(scores, y)
  dhd, dw2, db2 = affine_backward(dscores, fc2)
  dh = drop_bw(dhd, dc)
  da1 = relu_backward(dh, rc)
  _, dw1, db1 = affine_backward(da1, fc1)
  return {"scores": dscores, "hd": dhd, "h": dh, "a1": da1,
          "params": {"W1": dw1, "b1": db1, "W2": dw2, "b2": db2}}


dropout_net_grads = _dropout_net_grads
dropout_net_grads_no_scale = functools.partial(_dropout_net_grads, drop_bw=dropout_backward_no_scale)


def test_dropout_correct_is_ok():
  p, x, y, mask = _dropout_data()
  r = jaxreg.check(dropout_net_grads, dropout_net_loss, p, x, y, mask)
  assert r.ok, str(r)


def test_dropout_without_the_scale_is_wrong_at_its_input():
  p, x, y, mask = _dropout_data()
  r = jaxreg.check(dropout_net_grads_no_scale, dropout_net_loss, p, x, y, mask)
  assert not r.ok and r.first_wrong == "h", str(r)


# ============================================================ 6. FullyConnectedNet.loss()


class FullyConnectedNet:
  """{affine − [norm] − relu − [dropout]} × (L − 1) − affine − softmax, with L2 on the weights."""

  def __init__(self, dims, normalization=None, keep=1.0, reg=0.0, skip_reg_last=False):
    self.dims, self.normalization, self.keep, self.reg = tuple(dims), normalization, keep, reg
    self.skip_reg_last = skip_reg_last
    self.n_layers = len(dims) - 1

  def init(self, seed):
    rng = np.random.default_rng(seed)
    p = {}
    for i in range(1, self.n_layers + 1):
      p[f"W{i}"] = rng.normal(size=self.dims[i - 1:i + 1]) / np.sqrt(self.dims[i - 1])
      p[f"b{i}"] = rng.normal(size=self.dims[i]) * 0.2
      if self.normalization and i < self.n_layers:
        p[f"gamma{i}"] = rng.uniform(0.5, 1.5, self.dims[i])
        p[f"beta{i}"] = rng.normal(size=self.dims[i]) * 0.2
    return p

  def _forward(self, p, x, masks, tap):
    caches = []
    h = x
    for i in range(1, self.n_layers):
      a, fc = affine_forward(h, p[f"W{i}"], p[f"b{i}"])
      a = tap(f"a{i}", a)
      nc = None
      if self.normalization == "batchnorm":
        a, nc = batchnorm_forward(a, p[f"gamma{i}"], p[f"beta{i}"])
        a = tap(f"n{i}", a)
      elif self.normalization == "layernorm":
        a, nc = layernorm_forward(a, p[f"gamma{i}"], p[f"beta{i}"])
        a = tap(f"n{i}", a)
      h, rc = relu_forward(a)
      h = tap(f"h{i}", h)
      dc = None
      if self.keep < 1.0:
        h, dc = dropout_forward(h, masks[i - 1], self.keep)
        h = tap(f"d{i}", h)
      caches.append((fc, nc, rc, dc))
    scores, fc = affine_forward(h, p[f"W{self.n_layers}"], p[f"b{self.n_layers}"])
    return tap("scores", scores), caches, fc

  def loss(self, p, x, y, masks):
    scores, _, _ = self._forward(p, x, masks, jaxreg.tap)
    data_loss, _ = softmax_loss(scores, y)
    return data_loss + 0.5 * self.reg * sum(
        jnp.sum(p[f"W{i}"] ** 2) for i in range(1, self.n_layers + 1))

  def grads(self, p, x, y, masks):
    scores, caches, fc = self._forward(p, x, masks, lambda name, v: v)
    steps, grads = {}, {}
    _, dout = softmax_loss(scores, y)
    steps["scores"] = dout
    last = self.n_layers
    dout, grads[f"W{last}"], grads[f"b{last}"] = affine_backward(dout, fc)
    for i in reversed(range(1, self.n_layers)):
      fc_i, nc, rc, dc = caches[i - 1]
      if dc is not None:
        steps[f"d{i}"] = dout
        dout = dropout_backward(dout, dc)
      steps[f"h{i}"] = dout
      dout = relu_backward(dout, rc)
      if self.normalization == "batchnorm":
        steps[f"n{i}"] = dout
        dout, grads[f"gamma{i}"], grads[f"beta{i}"] = batchnorm_backward(dout, nc)
      elif self.normalization == "layernorm":
        steps[f"n{i}"] = dout
        dout, grads[f"gamma{i}"], grads[f"beta{i}"] = layernorm_backward(dout, nc)
      steps[f"a{i}"] = dout
      dout, grads[f"W{i}"], grads[f"b{i}"] = affine_backward(dout, fc_i)
    for i in range(1, self.n_layers + 1):
      if not (self.skip_reg_last and i == last):
        grads[f"W{i}"] = grads[f"W{i}"] + self.reg * p[f"W{i}"]
    return {**steps, "params": grads}


_FC_DIMS = (4, 5, 4, 3)


@functools.cache
def _fc_net(normalization, keep, skip_reg_last=False):
  return FullyConnectedNet(_FC_DIMS, normalization, keep, reg=0.05, skip_reg_last=skip_reg_last)


def _fc_data(net, seed=3, n=7):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(n, _FC_DIMS[0]))
  y = rng.integers(0, _FC_DIMS[-1], size=n)
  masks = [(rng.random((n, d)) < net.keep).astype(np.float64) for d in _FC_DIMS[1:-1]]
  return net.init(seed), x, y, masks


@pytest.mark.parametrize("normalization, keep", [
    (None, 0.8), ("layernorm", 1.0), ("layernorm", 0.8),
    ("batchnorm", 0.8),
])
def test_fully_connected_net_loss_method_is_ok(normalization, keep):
  net = _fc_net(normalization, keep)
  p, x, y, masks = _fc_data(net)
  r = jaxreg.check(net.grads, net.loss, p, x, y, masks)
  assert r.ok, str(r)
  assert not r.unchecked          # every tapped step was given and compared


def test_fully_connected_net_without_reg_on_last_layer_is_wrong_there():
  net = _fc_net("layernorm", 0.8, skip_reg_last=True)
  p, x, y, masks = _fc_data(net)
  r = jaxreg.check(net.grads, net.loss, p, x, y, masks)
  assert not r.ok and r.first_wrong == "params['W3']", str(r)


# ============================================================ 7. Nielsen's network.py


def sigmoid(z):
  return 1.0 / (1.0 + jnp.exp(-z))


def sigmoid_prime(z):
  return sigmoid(z) * (1 - sigmoid(z))


def nielsen_loss(p, x, y):
  """Quadratic cost summed over the mini-batch; examples are columns (features, examples)."""
  a = x
  for l, (w, b) in enumerate(zip(p["weights"], p["biases"]), start=1):
    z = jaxreg.tap(f"z{l}", w @ a + b)
    a = jaxreg.tap(f"a{l}", sigmoid(z))
  return 0.5 * jnp.sum((a - y) ** 2)


def _nielsen_backprop(p, x, y, slip=None):
  """network.py's backprop(x, y) for one example (column vectors), summed over the batch."""
  nabla_b = [jnp.zeros_like(b) for b in p["biases"]]
  nabla_w = [jnp.zeros_like(w) for w in p["weights"]]
  n_layers = len(p["weights"]) + 1
  deltas = {f"z{l}": [] for l in range(1, n_layers)}
  dacts = []
  for k in range(x.shape[1]):
    activation = x[:, k:k + 1]
    activations, zs = [activation], []
    for b, w in zip(p["biases"], p["weights"]):
      z = w @ activation + b
      zs.append(z)
      activation = sigmoid(z)
      activations.append(activation)
    cost_derivative = activations[-1] - y[:, k:k + 1]
    dacts.append(cost_derivative)
    if slip == "sigmoid_prime_of_a":
      delta = cost_derivative * sigmoid_prime(activations[-1])
    else:
      delta = cost_derivative * sigmoid_prime(zs[-1])
    deltas[f"z{n_layers - 1}"].append(delta)
    nabla_b[-1] = nabla_b[-1] + delta
    nabla_w[-1] = nabla_w[-1] + delta @ activations[-2].T
    for l in range(2, n_layers):
      delta = (p["weights"][-l + 1].T @ delta) * sigmoid_prime(zs[-l])
      deltas[f"z{n_layers - l}"].append(delta)
      nabla_b[-l] = nabla_b[-l] + delta
      nabla_w[-l] = nabla_w[-l] + delta @ activations[-l - 1].T
  steps = {name: jnp.concatenate(cols, axis=1) for name, cols in deltas.items()}
  steps[f"a{n_layers - 1}"] = jnp.concatenate(dacts, axis=1)
  return {**steps, "params": {"biases": nabla_b, "weights": nabla_w}}


nielsen_backprop = _nielsen_backprop
nielsen_backprop_prime_of_a = functools.partial(_nielsen_backprop, slip="sigmoid_prime_of_a")


def _nielsen_data(sizes=(3, 4, 2), m=5, seed=4):
  rng = np.random.default_rng(seed)
  p = {"biases": [rng.normal(size=(s, 1)) for s in sizes[1:]],
       "weights": [rng.normal(size=(t, s)) for s, t in zip(sizes[:-1], sizes[1:])]}
  return p, rng.normal(size=(sizes[0], m)), rng.uniform(0, 1, size=(sizes[-1], m))


def test_nielsen_backprop_is_ok():
  p, x, y = _nielsen_data()
  r = jaxreg.check(nielsen_backprop, nielsen_loss, p, x, y)
  assert r.ok, str(r)
  assert all(row.verdict == "ok" for row in r.rows)


def test_nielsen_sigmoid_prime_of_the_activation_is_wrong_at_the_last_z():
  p, x, y = _nielsen_data()
  r = jaxreg.check(nielsen_backprop_prime_of_a, nielsen_loss, p, x, y)
  assert not r.ok and r.first_wrong == "z2", str(r)
  assert r.row("a2").verdict == "ok"


# ============================================================ 8. micrograd-style scalar engine


class Value:
  """A scalar with a gradient and the closure that sends it back to its operands."""

  slip = None

  def __init__(self, data, children=()):
    self.data, self.grad = data, 0.0
    self._backward = lambda: None
    self._prev = children

  def __add__(self, other):
    other = other if isinstance(other, Value) else Value(other)
    out = Value(self.data + other.data, (self, other))

    def _backward():
      if Value.slip == "assign_in_add":            # slip: = instead of += (a reused node)
        self.grad = out.grad
        other.grad = out.grad
      else:
        self.grad += out.grad
        other.grad += out.grad
    out._backward = _backward
    return out

  def __mul__(self, other):
    other = other if isinstance(other, Value) else Value(other)
    out = Value(self.data * other.data, (self, other))

    def _backward():
      self.grad += other.data * out.grad
      other.grad += self.data * out.grad
    out._backward = _backward
    return out

  def __pow__(self, k):
    out = Value(self.data ** k, (self,))

    def _backward():
      self.grad += k * self.data ** (k - 1) * out.grad
    out._backward = _backward
    return out

  def relu(self):
    out = Value(jnp.maximum(self.data, 0.0), (self,))

    def _backward():
      self.grad += (out.data > 0) * out.grad
    out._backward = _backward
    return out

  def tanh(self):
    t = jnp.tanh(self.data)
    out = Value(t, (self,))

    def _backward():
      self.grad += (1 - t ** 2) * out.grad
    out._backward = _backward
    return out

  def __neg__(self):
    return self * -1.0

  def __sub__(self, other):
    return self + (-other)

  __radd__ = __add__
  __rmul__ = __mul__

  def backward(self):
    topo, seen = [], set()

    def build(v):
      if id(v) not in seen:
        seen.add(id(v))
        for child in v._prev:
          build(child)
        topo.append(v)
    build(self)
    self.grad = 1.0
    for v in reversed(topo):
      v._backward()


def micro_loss(p, x, y, alpha):
  """2 → 3 (tanh) → 1 scores; max-margin loss mean(relu(1 − y·score)) + α Σ p²."""
  h = jnp.tanh(x @ p["w1"].T + p["b1"])
  score = jaxreg.tap("score", h @ p["w2"][0] + p["b2"][0])
  data_loss = jnp.mean(jnp.maximum(0.0, 1.0 - y * score))
  return data_loss + alpha * sum(jnp.sum(v * v) for v in p.values())


def _micro_grads(p, x, y, alpha, slip=None):
  Value.slip = slip
  try:
    vp = {k: [Value(a.ravel()[i]) for i in range(a.size)] for k, a in p.items()}
    w1 = [vp["w1"][r * 2:(r + 1) * 2] for r in range(3)]
    scores, losses = [], []
    for i in range(x.shape[0]):
      xi = [x[i, 0], x[i, 1]]
      hid = [sum((wj * xj for wj, xj in zip(w1[r], xi)), vp["b1"][r]).tanh() for r in range(3)]
      s = sum((wj * hj for wj, hj in zip(vp["w2"], hid)), vp["b2"][0])
      scores.append(s)
      losses.append((1 + -y[i] * s).relu())
    total = sum(losses) * (1.0 / x.shape[0]) + alpha * sum(v * v for vs in vp.values() for v in vs)
    total.backward()
    grads = {k: jnp.stack([jnp.asarray(v.grad, p[k].dtype) for v in vs]).reshape(p[k].shape)
             for k, vs in vp.items()}
    return {"score": jnp.stack([jnp.asarray(s.grad, p["w1"].dtype) for s in scores]),
            "params": grads}
  finally:
    Value.slip = None


micro_grads = _micro_grads
micro_grads_assign = functools.partial(_micro_grads, slip="assign_in_add")


def _micro_data(seed=5, n=5):
  rng = np.random.default_rng(seed)
  p = {"w1": rng.normal(size=(3, 2)), "b1": rng.normal(size=3) * 0.3,
       "w2": rng.normal(size=(1, 3)), "b2": rng.normal(size=1) * 0.3}
  x = rng.normal(size=(n, 2))
  y = np.where(rng.random(n) < 0.5, -1.0, 1.0)
  return p, x, y


def test_micrograd_engine_is_ok():
  p, x, y = _micro_data()
  r = jaxreg.check(micro_grads, micro_loss, p, x, y, 1e-3)
  assert r.ok, str(r)
  assert all(row.verdict == "ok" for row in r.rows)


def test_micrograd_assign_instead_of_accumulate_is_wrong_at_a_reused_parameter():
  p, x, y = _micro_data()
  r = jaxreg.check(micro_grads_assign, micro_loss, p, x, y, 1e-3)
  # each score is used once (its row stays right); parameters are reused by every example
  assert r.row("score").verdict == "ok"
  assert not r.ok and r.first_wrong == "params['b1']", str(r)
