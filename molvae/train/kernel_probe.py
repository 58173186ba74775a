"""The kernel reader's closed-form fit (`molvae.model.conditional.KernelReader`), made by
`molvae.train.probe` before fine-tuning and again in the final probe.

q(y|x)'s mean is kernel ridge regression of each standardized property on the standardized
encoder summary u, with the kernel ``c u.u' / in_dim + exp(-|u - u'|^2 / (2 l^2))``: a linear
read and a Gaussian-process one, fitted jointly (a ridge fit first and a kernel on what it left
read QED worse: docs/benchmarks/conditional.md). At a fixed size: the Gaussian part through m
inducing summaries, a seeded choice of the molecules (subset of regressors, Smola & Bartlett
2001), the linear part as weights on the summary, in closed form::

    min |y - b - U a - K_nm w|^2 + lambda (in_dim / c |a|^2 + w' K_mm w)

where l, c and lambda are chosen per property by type-II maximum likelihood: the exact GP with
kernel ``s_lin u.u' / in_dim + s_rbf exp(-|u - u'|^2 / (2 l^2))`` and noise ``sigma^2`` on up to
`ML_ROWS` labelled molecules, its log marginal likelihood maximized by L-BFGS
(`ml_hyperparameters`); then ``c = s_lin / s_rbf`` and ``lambda = sigma^2 / s_rbf``, which makes
the fit above the GP's posterior mean when every labelled molecule is an inducing one. With 2,375
labels that exact GP read QED at R^2 0.665 where the 1,024-point fit read 0.647
(docs/benchmarks/conditional.md); the likelihood replaced a grid of 108 fits a property, which
was as good but too slow for thousands of inducing molecules.
"""

from __future__ import annotations

import math

import numpy as np
import torch

# the ridge penalties the probe chooses from by leave-one-out (`molvae.train.probe`)
ALPHAS = np.logspace(-3, 3, 13)

# labelled molecules whose exact GP chooses a property's kernel (its cost grows as the cube)
ML_ROWS = 1500
# where L-BFGS starts, as (s_lin, s_rbf, l in units of sqrt(in_dim), sigma^2) on standardized
# labels: the typical distance of standardized summaries is sqrt(2 in_dim)
ML_START = (1.0, 0.5, 1.0, 0.1)


@torch.no_grad()
def fit_kernel_reader(
    feats: np.ndarray, props: np.ndarray, m: int, seed: int = 0
) -> tuple[dict[str, torch.Tensor], np.ndarray, np.ndarray, dict[str, list[float]]]:
    """q(y|x)'s mean fitted to the standardized labels ``props`` (``n x p``, NaN = unlabelled)
    on encoder summaries ``feats`` (``n x in_dim``), the Gaussian part through ``m`` inducing
    molecules (see the module docstring). Each property's kernel is chosen by its likelihood
    outside a seeded tenth, which is held out: a property takes the fit only where it beats
    ridge there, refitted on all its molecules. Returns the
    `~molvae.model.conditional.KernelReader` state, the linear part in the summary's units
    (``p x in_dim`` weights, ``p`` biases; NaN rows where the ridge fit
    stays) and, per property, the held-out errors and the chosen settings."""

    x = torch.as_tensor(feats, dtype=torch.float64)
    n, d = x.shape
    p = props.shape[1]
    rng = np.random.default_rng(seed)
    center, scale = x.mean(0), x.std(0).clamp_min(1e-6)
    u = (x - center) / scale
    chosen = torch.as_tensor(rng.choice(n, size=min(m, n), replace=False))
    inducing = torch.zeros(m, d, dtype=torch.float64)
    inducing[: len(chosen)] = u[chosen]
    d2 = torch.cdist(u, u[chosen]).pow(2)  # n x m'
    d2_mm = d2[chosen]
    is_val = np.zeros(n, dtype=bool)
    is_val[rng.permutation(n)[: max(1, n // 10)]] = True
    weight = torch.zeros(m, p, dtype=torch.float64)
    lengthscale = torch.full((p,), math.sqrt(d), dtype=torch.float64)
    lin_w = np.full((p, d), np.nan)
    lin_b = np.full(p, np.nan)
    record: dict[str, list[float]] = {"val_mse_ridge": [], "val_mse": [], "lengthscale": [],
                                      "linear": [], "penalty": []}  # fmt: skip
    for j in range(p):
        y = torch.as_tensor(props[:, j], dtype=torch.float64)
        ok = torch.isfinite(y).numpy()
        fit, val = np.flatnonzero(ok & ~is_val), np.flatnonzero(ok & is_val)
        if len(fit) < 3 or not len(val):
            for key in record:
                record[key].append(math.nan)
            continue
        base, best = _choose(u, d2, d2_mm, y, fit, val, rng)
        record["val_mse_ridge"].append(base)
        record["val_mse"].append(best[0])
        for key, value in zip(("lengthscale", "linear", "penalty"), best[1] or (math.nan,) * 3,
                              strict=True):  # fmt: skip
            record[key].append(value)
        if best[1] is None:  # no better than a ridge fit: q(y|x) keeps its ridge fit there
            continue
        ls, c, lam = best[1]
        a, w, b = _joint_fit(u, d2, d2_mm, y, np.flatnonzero(ok), ls, c, lam)
        weight[: len(chosen), j] = w
        lengthscale[j] = ls
        lin_w[j] = (a / scale).numpy()  # on the raw summary: u = (h - center) / scale
        lin_b[j] = float(b - (a * center / scale).sum())
    state = {"center": center, "scale": scale, "inducing": inducing,
             "lengthscale": lengthscale, "weight": weight}  # fmt: skip
    return {k: v.float() for k, v in state.items()}, lin_w, lin_b, record


def _choose(
    u: torch.Tensor, d2: torch.Tensor, d2_mm: torch.Tensor, y: torch.Tensor,
    fit: np.ndarray, val: np.ndarray, rng: np.random.Generator,
) -> tuple[float, tuple[float, tuple[float, float, float] | None]]:  # fmt: skip
    """A ridge fit's held-out error on rows ``val`` (fitted on ``fit``), and the joint fit's with
    its (lengthscale, c, lambda) from `ml_hyperparameters` on up to `ML_ROWS` of ``fit``; None
    where it did not beat ridge (or the likelihood could not be maximized)."""
    from sklearn.linear_model import RidgeCV

    ridge = RidgeCV(alphas=ALPHAS).fit(u[fit].numpy(), y[fit].numpy())
    base = float(np.mean((ridge.predict(u[val].numpy()) - y[val].numpy()) ** 2))
    rows = torch.as_tensor(np.sort(rng.permutation(fit)[:ML_ROWS]))
    try:
        s_lin, s_rbf, ell, noise = ml_hyperparameters(u[rows], y[rows])
    except torch.linalg.LinAlgError:
        return base, (base, None)
    ls, c, lam = ell * math.sqrt(u.shape[1]), s_lin / s_rbf, noise / s_rbf
    a, w, b = _joint_fit(u, d2, d2_mm, y, fit, ls, c, lam)
    k_val = torch.exp(-d2[val] / (2 * ls * ls))
    err = float((u[val] @ a + k_val @ w + b - y[val]).pow(2).mean())
    return base, (err, (ls, c, lam)) if err < base else (base, None)


def gp_nll(
    theta: torch.Tensor, gram: torch.Tensor, d2: torch.Tensor, y: torch.Tensor
) -> torch.Tensor:
    """The exact GP's negative log marginal likelihood of ``y`` (``n``, zero mean) less its
    constant ``n log(2 pi) / 2``, with ``theta`` the logs of (s_lin, s_rbf, l, sigma^2), ``gram``
    the summaries' inner products over ``in_dim`` and ``d2`` their squared distances over
    ``in_dim`` (``n x n``)."""
    s_lin, s_rbf, ell, noise = theta.clamp(-9.0, 9.0).exp()  # keeps the Cholesky factor finite
    k = s_lin * gram + s_rbf * torch.exp(-d2 / (2 * ell * ell))
    k = k + (noise + 1e-6) * torch.eye(len(y), dtype=k.dtype)
    chol = torch.linalg.cholesky(k)
    alpha = torch.cholesky_solve(y[:, None], chol)[:, 0]
    return 0.5 * (y @ alpha) + chol.diagonal().log().sum()


@torch.enable_grad()  # `fit_kernel_reader` runs under no_grad
def ml_hyperparameters(
    u: torch.Tensor, y: torch.Tensor, max_iter: int = 50
) -> tuple[float, float, float, float]:
    """(s_lin, s_rbf, l, sigma^2), l in units of sqrt(in_dim), maximizing the exact GP's log
    marginal likelihood of ``y`` (``n``, its mean taken out) on the standardized summaries ``u``
    (``n x in_dim``), by L-BFGS from `ML_START`. Raises ``torch.linalg.LinAlgError`` where a
    kernel matrix is not positive definite."""
    u, y = u.double(), y.double()
    d = u.shape[1]
    gram, d2 = u @ u.T / d, torch.cdist(u, u).pow(2) / d
    y = y - y.mean()
    theta = torch.tensor([math.log(v) for v in ML_START], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([theta], lr=0.5, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = gp_nll(theta, gram, d2, y)
        loss.backward()
        return loss

    opt.step(closure)
    return tuple(float(v) for v in theta.detach().clamp(-9.0, 9.0).exp())  # type: ignore[return-value]


def _joint_fit(
    u: torch.Tensor, d2: torch.Tensor, d2_mm: torch.Tensor, y: torch.Tensor, rows: np.ndarray,
    ls: float, c: float, lam: float,
) -> tuple[torch.Tensor, torch.Tensor, float]:  # fmt: skip
    """``min |y - b - u a - K_nm w|^2 + lam (in_dim / c |a|^2 + w' K_mm w)`` over molecules
    ``rows`` at lengthscale ``ls``, from the squared distances to the inducing summaries (``d2``,
    ``n x m'``; ``d2_mm`` among them): linear weights ``a`` (``in_dim``), kernel weights ``w``
    (``m'``), intercept."""
    k_nm, k_mm = torch.exp(-d2[rows] / (2 * ls * ls)), torch.exp(-d2_mm / (2 * ls * ls))
    d = u.shape[1]
    mu = torch.cat([u[rows].mean(0), k_nm.mean(0)])
    phi = torch.cat([u[rows], k_nm], dim=1) - mu  # the intercept, unpenalized, taken out
    y_mean = float(y[rows].mean())
    size = phi.shape[1]
    reg = torch.zeros(size, size, dtype=phi.dtype)
    reg[:d, :d] = torch.eye(d, dtype=phi.dtype) * (d / c)
    reg[d:, d:] = k_mm
    a_mat = phi.T @ phi + lam * reg
    a_mat = a_mat + 1e-8 * a_mat.diagonal().mean() * torch.eye(size, dtype=a_mat.dtype)
    coef = torch.linalg.solve(a_mat, phi.T @ (y[rows] - y_mean))
    return coef[:d], coef[d:], y_mean - float(mu @ coef)
