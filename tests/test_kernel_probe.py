"""molvae.train.kernel_probe: the kernel reader's likelihood against GPyTorch's, and its choice
of hyperparameters on data drawn from a known GP."""

from __future__ import annotations

import math

import gpytorch
import numpy as np
import torch

from molvae.train.kernel_probe import gp_nll, ml_hyperparameters


def _reference_nll(u: torch.Tensor, y: torch.Tensor, theta: torch.Tensor) -> float:
    """GPyTorch's exact marginal likelihood of the same kernel, as a negative log less the
    constant: inputs scaled by 1/sqrt(in_dim) make its linear and RBF kernels ours."""
    s_lin, s_rbf, ell, noise = theta.exp().tolist()
    x = u / math.sqrt(u.shape[1])

    class GP(gpytorch.models.ExactGP):
        def __init__(self, lik: gpytorch.likelihoods.GaussianLikelihood):
            super().__init__(x, y, lik)
            self.mean = gpytorch.means.ZeroMean()
            self.lin = gpytorch.kernels.LinearKernel()
            self.rbf = gpytorch.kernels.ScaleKernel(gpytorch.kernels.RBFKernel())

        def forward(self, z: torch.Tensor) -> gpytorch.distributions.MultivariateNormal:
            return gpytorch.distributions.MultivariateNormal(
                self.mean(z), self.lin(z) + self.rbf(z)
            )

    lik = gpytorch.likelihoods.GaussianLikelihood(
        noise_constraint=gpytorch.constraints.GreaterThan(1e-8)
    ).double()
    model = GP(lik).double()
    model.lin.variance = s_lin
    model.rbf.outputscale = s_rbf
    model.rbf.base_kernel.lengthscale = ell
    lik.noise = noise + 1e-6  # gp_nll's jitter
    model.train()
    lik.train()
    with torch.no_grad(), gpytorch.settings.max_cholesky_size(10_000):
        mll = gpytorch.mlls.ExactMarginalLogLikelihood(lik, model)(model(x), y)
    n = len(y)
    return float(-mll * n - 0.5 * n * math.log(2 * math.pi))


def test_gp_nll_is_gpytorchs_exact_marginal_likelihood() -> None:
    gen = torch.Generator().manual_seed(0)
    u = torch.randn(80, 5, generator=gen, dtype=torch.float64)
    y = torch.sin(u[:, 0]) + 0.1 * torch.randn(80, generator=gen, dtype=torch.float64)
    d = u.shape[1]
    gram, d2 = u @ u.T / d, torch.cdist(u, u).pow(2) / d
    for values in ((1.0, 0.5, 1.0, 0.1), (0.2, 2.0, 0.4, 0.01)):
        theta = torch.tensor([math.log(v) for v in values], dtype=torch.float64)
        ours = float(gp_nll(theta, gram, d2, y))
        assert math.isclose(ours, _reference_nll(u, y, theta), rel_tol=1e-6, abs_tol=1e-6)


def test_ml_hyperparameters_recover_a_known_gp() -> None:
    rng = np.random.default_rng(0)
    n, d = 500, 4
    u = torch.as_tensor(rng.normal(size=(n, d)))
    truth = (0.3, 1.0, 0.5, 0.05)  # s_lin, s_rbf, l (units of sqrt(d)), noise
    gram, d2 = u @ u.T / d, torch.cdist(u, u).pow(2) / d
    k = truth[0] * gram + truth[1] * torch.exp(-d2 / (2 * truth[2] ** 2))
    k = k + truth[3] * torch.eye(n, dtype=torch.float64)
    y = torch.linalg.cholesky(k) @ torch.as_tensor(rng.normal(size=n))
    s_lin, s_rbf, ell, noise = ml_hyperparameters(u, y)
    assert abs(math.log(noise / truth[3])) < math.log(1.5)
    assert abs(math.log(ell / truth[2])) < math.log(1.3)
    assert abs(math.log(s_rbf / truth[1])) < math.log(2.0)
    # and better than where it started, by the likelihood it maximizes
    start = torch.tensor([math.log(v) for v in (1.0, 0.5, 1.0, 0.1)], dtype=torch.float64)
    found = torch.tensor([math.log(v) for v in (s_lin, s_rbf, ell, noise)], dtype=torch.float64)
    assert gp_nll(found, gram, d2, y - y.mean()) < gp_nll(start, gram, d2, y - y.mean())
