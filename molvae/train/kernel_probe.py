"""The kernel reader's closed-form fit (`molvae.model.conditional.KernelReader`), made by
`molvae.train.probe` before fine-tuning and again in the final probe.

q(y|x)'s mean is kernel ridge regression of each standardized property on the standardized
encoder summary u, with the kernel ``c u.u' / in_dim + exp(-|u - u'|^2 / (2 l^2))``: a linear
read and a Gaussian-process one, fitted jointly (a ridge fit first and a kernel on what it left
read QED worse: docs/benchmarks/conditional.md). At a fixed size: the Gaussian part through m
inducing summaries, a seeded choice of the molecules (subset of regressors, Smola & Bartlett
2001), the linear part as weights on the summary, in closed form::

    min |y - b - U a - K_nm w|^2 + lambda (in_dim / c |a|^2 + w' K_mm w)

with l, c and lambda from `KERNEL_LENGTHSCALES`, `KERNEL_LINEAR` and `KERNEL_PENALTIES`.
"""

from __future__ import annotations

import math

import numpy as np
import torch

# the ridge penalties the probe chooses from by leave-one-out (`molvae.train.probe`)
ALPHAS = np.logspace(-3, 3, 13)

# the kernel reader's grid: lengthscales in units of sqrt(summary width) (the typical distance
# of standardized summaries), the linear kernel's weight beside the Gaussian one, and the noise
KERNEL_LENGTHSCALES = (0.5, 0.7, 1.0, 1.4, 2.0, 2.8)
KERNEL_LINEAR = (0.3, 1.0, 3.0)
KERNEL_PENALTIES = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0)


@torch.no_grad()
def fit_kernel_reader(
    feats: np.ndarray, props: np.ndarray, m: int, seed: int = 0
) -> tuple[dict[str, torch.Tensor], np.ndarray, np.ndarray, dict[str, list[float]]]:
    """q(y|x)'s mean fitted to the standardized labels ``props`` (``n x p``, NaN = unlabelled)
    on encoder summaries ``feats`` (``n x in_dim``), the Gaussian part through ``m`` inducing
    molecules (see the module docstring). A seeded tenth is held out to choose each property's
    settings; a property takes the fit only where it beats ridge there, refitted on all its
    molecules. Returns the `~molvae.model.conditional.KernelReader` state, the linear part in
    the summary's units (``p x in_dim`` weights, ``p`` biases; NaN rows where the ridge fit
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
        base, best = _choose(u, d2, d2_mm, y, fit, val)
        record["val_mse_ridge"].append(base)
        record["val_mse"].append(best[0])
        for key, value in zip(("lengthscale", "linear", "penalty"), best[1] or (math.nan,) * 3,
                              strict=True):  # fmt: skip
            record[key].append(value)
        if best[1] is None:  # no better than a ridge fit: q(y|x) keeps its ridge fit there
            continue
        ls, c, lam = best[1]
        rows = np.flatnonzero(ok)
        k_nm, k_mm = torch.exp(-d2[rows] / (2 * ls * ls)), torch.exp(-d2_mm / (2 * ls * ls))
        a, w, b = _JointSystem(u[rows], k_nm, y[rows]).solve(k_mm, c, lam)
        weight[: len(chosen), j] = w
        lengthscale[j] = ls
        lin_w[j] = (a / scale).numpy()  # on the raw summary: u = (h - center) / scale
        lin_b[j] = float(b - (a * center / scale).sum())
    state = {"center": center, "scale": scale, "inducing": inducing,
             "lengthscale": lengthscale, "weight": weight}  # fmt: skip
    return {k: v.float() for k, v in state.items()}, lin_w, lin_b, record


def _choose(
    u: torch.Tensor, d2: torch.Tensor, d2_mm: torch.Tensor, y: torch.Tensor,
    fit: np.ndarray, val: np.ndarray,
) -> tuple[float, tuple[float, tuple[float, float, float] | None]]:  # fmt: skip
    """A ridge fit's held-out error on rows ``val`` (fitted on ``fit``), and the best held-out
    error of the joint fits over the grid with its (lengthscale, c, lambda), None where no
    setting beat ridge."""
    from sklearn.linear_model import RidgeCV

    ridge = RidgeCV(alphas=ALPHAS).fit(u[fit].numpy(), y[fit].numpy())
    base = float(np.mean((ridge.predict(u[val].numpy()) - y[val].numpy()) ** 2))
    best: tuple[float, tuple[float, float, float] | None] = (base, None)
    for ell in KERNEL_LENGTHSCALES:
        ls = ell * math.sqrt(u.shape[1])
        k_nm, k_mm = torch.exp(-d2 / (2 * ls * ls)), torch.exp(-d2_mm / (2 * ls * ls))
        system = _JointSystem(u[fit], k_nm[fit], y[fit])
        for c in KERNEL_LINEAR:
            for lam in KERNEL_PENALTIES:
                a, w, b = system.solve(k_mm, c, lam)
                err = float((u[val] @ a + k_nm[val] @ w + b - y[val]).pow(2).mean())
                if err < best[0]:
                    best = (err, (ls, c, lam))
    return base, best


class _JointSystem:
    """The normal equations of ``min |y - b - u a - K_nm w|^2 + lam (in_dim / c |a|^2 +
    w' K_mm w)`` for one kernel matrix, built once and solved for any ``c`` and ``lam``."""

    def __init__(self, u: torch.Tensor, k_nm: torch.Tensor, y: torch.Tensor):
        self.d = u.shape[1]
        self.mu = torch.cat([u.mean(0), k_nm.mean(0)])
        phi = torch.cat([u, k_nm], dim=1) - self.mu  # the intercept, unpenalized, taken out
        self.y_mean = float(y.mean())
        self.gram, self.rhs = phi.T @ phi, phi.T @ (y - self.y_mean)

    def solve(
        self, k_mm: torch.Tensor, c: float, lam: float
    ) -> tuple[torch.Tensor, torch.Tensor, float]:
        """Linear weights ``a`` (``in_dim``), kernel weights ``w`` (``m``), intercept."""
        d, size = self.d, self.gram.shape[0]
        reg = torch.zeros(size, size, dtype=self.gram.dtype)
        reg[:d, :d] = torch.eye(d, dtype=self.gram.dtype) * (d / c)
        reg[d:, d:] = k_mm
        a_mat = self.gram + lam * reg
        a_mat = a_mat + 1e-8 * a_mat.diagonal().mean() * torch.eye(size, dtype=a_mat.dtype)
        coef = torch.linalg.solve(a_mat, self.rhs)
        return coef[:d], coef[d:], self.y_mean - float(self.mu @ coef)
