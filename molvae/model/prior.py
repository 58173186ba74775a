"""A learned prior over the latent space, fitted after training to the aggregate posterior.

The decoder is good where the encoder puts molecules, q(z) = mean over training x of q(z|x), and
poor in the holes between them, where N(0, I) samples mostly land. A `LatentPrior` is a density
fitted to codes ``z = mu + smoothing * sigma * eps`` of training molecules: a normalizing flow
(zuko's MAF or neural spline flow), a Gaussian mixture (scikit-learn's EM), or the smoothed
aggregate posterior itself (one component per training code). It lives in the checkpoint under
"prior" as ``{"kind", "config", "state"}``: a string, primitives and tensors, so the file still
loads with ``torch.load(weights_only=True)``. Knows tensors only, no SMILES.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import Tensor

KINDS = ("flow", "gmm", "posterior")


@dataclass(frozen=True)
class PriorConfig:
    """How a prior is fitted and sampled (primitives only: it is stored in the checkpoint)."""

    # The defaults are the prior `pipelines/fit_prior.py` chose for the bundled model: the
    # aggregate posterior of 10,000 training codes, smoothed 2x in its tight dimensions.
    kind: str = "posterior"  # flow | gmm | posterior (the smoothed aggregate posterior itself)
    smoothing: float = 2.0  # fit on z = mu + smoothing * sigma * eps
    max_scale: float = 1.0  # > 0: smoothing * sigma capped at max(sigma, max_scale) per dimension
    temperature: float = 1.0  # at sampling: base noise (flow) or component scales (gmm) x this
    seed: int = 0
    flow: str = "maf"  # flow: maf (affine autoregressive) | nsf (rational-quadratic splines)
    transforms: int = 3  # flow: autoregressive transforms, each a MADE of two hidden layers
    hidden: int = 128
    epochs: int = 30
    batch_size: int = 512
    lr: float = 1e-3
    components: int = 10_000  # gmm: mixture components; posterior: training codes kept
    covariance: str = "full"  # gmm: full | diag
    codes_per_molecule: int = 1  # gmm: noisy codes drawn per training molecule

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown prior kind {self.kind!r}; choose one of {KINDS}")
        if self.flow not in ("maf", "nsf"):
            raise ValueError(f"flow must be 'maf' or 'nsf', not {self.flow!r}")
        if self.covariance not in ("full", "diag"):
            raise ValueError(f"covariance must be 'full' or 'diag', not {self.covariance!r}")
        if self.smoothing <= 0 or self.temperature <= 0:
            raise ValueError("smoothing and temperature must be positive")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PriorConfig:
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown PriorConfig fields: {sorted(unknown)}")
        return cls(**d)


class LatentPrior:
    """A density over latents: ``sample(n) -> n x d`` and ``log_prob(z) -> n`` (float32, cpu).

    Build one with `fit_prior`, or from a checkpoint entry with `from_dict`.
    """

    def __init__(self, config: PriorConfig, state: dict[str, Tensor]):
        self.config = config
        self.state = {k: v.detach().cpu() for k, v in state.items()}
        self._flow = _build_flow(config, self.state) if config.kind == "flow" else None

    @property
    def kind(self) -> str:
        return self.config.kind

    @property
    def dim(self) -> int:
        return int(self.state["loc" if self._flow is not None else "means"].shape[-1])

    def with_temperature(self, temperature: float) -> LatentPrior:
        """The same fit, sampled (and scored) at another temperature."""
        cfg = PriorConfig.from_dict({**self.config.to_dict(), "temperature": temperature})
        return LatentPrior(cfg, self.state)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n x d`` latents; the same seeded generator gives the same latents."""
        t, s = self.config.temperature, self.state
        if self._flow is not None:
            eps = torch.randn(n, self.dim, generator=generator) * t
            return self._flow().transform.inv(eps) * s["scale"] + s["loc"]
        k = torch.multinomial(s["logits"].softmax(0), n, replacement=True, generator=generator)
        eps = torch.randn(n, self.dim, generator=generator) * t
        if "scale_tril" in s:
            return s["means"][k] + (s["scale_tril"][k] @ eps.unsqueeze(-1)).squeeze(-1)
        return s["means"][k] + s["scales"][k] * eps

    @torch.no_grad()
    def sample_given(
        self,
        given: dict[int, float],
        n: int,
        generator: torch.Generator | None = None,
        bandwidth: float = 0.2,
    ) -> Tensor:
        """``n x d`` draws with the columns of ``given`` (index -> value) fixed, the others from
        the mixture given them: a component is chosen with its weight times how near its mean
        is to the given values (a Gaussian kernel of width ``bandwidth`` on those columns),
        then the other columns are drawn from it. Mixture kinds with diagonal components only
        (``posterior``, diagonal ``gmm``); a ``ValueError`` for the others."""
        s = self.state
        if self._flow is not None or "scales" not in s:
            raise ValueError(f"a {self.kind} prior with full covariances cannot be conditioned; "
                             "fit a posterior or diagonal gmm prior")  # fmt: skip
        cols = torch.tensor(sorted(given), dtype=torch.long)
        values = torch.tensor([given[int(j)] for j in cols], dtype=torch.float32)
        d2 = ((s["means"][:, cols] - values) / bandwidth).pow(2).sum(1)
        logits = s["logits"].log_softmax(0) - 0.5 * d2
        k = torch.multinomial(logits.softmax(0), n, replacement=True, generator=generator)
        eps = torch.randn(n, self.dim, generator=generator) * self.config.temperature
        out = s["means"][k] + s["scales"][k] * eps
        out[:, cols] = values
        return out

    @torch.no_grad()
    def log_prob(self, z: Tensor) -> Tensor:
        """Log density of each row of ``z`` (``n x d``) -> ``n``."""
        z = z.detach().float().cpu()
        k = len(self.state["logits"]) if "logits" in self.state else 1
        batch_size = max(1, min(1024, 4_000_000 // k))  # rows x components stays ~16 MB
        if len(z) == 0:
            return torch.zeros(0)
        return torch.cat(
            [self._log_prob(z[i : i + batch_size]) for i in range(0, len(z), batch_size)]
        )

    def _log_prob(self, z: Tensor) -> Tensor:
        t, s, d = self.config.temperature, self.state, self.dim
        if self._flow is not None:
            x = (z - s["loc"]) / s["scale"]
            e, ladj = self._flow().transform.call_and_ladj(x)
            return _std_normal(e / t) - d * math.log(t) + ladj - s["scale"].log().sum()
        log_w = s["logits"].log_softmax(0)
        if "scale_tril" in s:
            dist = torch.distributions.MultivariateNormal(
                s["means"], scale_tril=t * s["scale_tril"]
            )
            per = dist.log_prob(z.unsqueeze(1))  # n x K
        else:  # diag, as matrix products: K may be thousands of training codes
            inv = 1.0 / (t * s["scales"]) ** 2  # K x d
            maha = (
                z.pow(2) @ inv.T - 2 * z @ (s["means"] * inv).T + (s["means"].pow(2) * inv).sum(1)
            )
            log_det = (t * s["scales"]).log().sum(1)
            per = -0.5 * maha - log_det - 0.5 * d * math.log(2 * math.pi)
        return torch.logsumexp(per + log_w, dim=1)

    def to_dict(self) -> dict[str, Any]:
        """The checkpoint entry: ``{"kind", "config", "state"}`` of primitives and tensors."""
        return {"kind": self.kind, "config": self.config.to_dict(), "state": dict(self.state)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LatentPrior:
        """Inverse of `to_dict`; a malformed entry raises ``ValueError`` in one line."""
        try:
            config = PriorConfig.from_dict(dict(d["config"]))
            state = dict(d["state"])
        except (KeyError, TypeError) as e:
            raise ValueError(f"malformed prior entry: {e!r}") from None
        if d.get("kind") != config.kind:
            raise ValueError(f"prior kind {d.get('kind')!r} does not match its config")
        need = ("loc", "scale") if config.kind == "flow" else ("logits", "means")
        if not all(isinstance(state.get(k), Tensor) for k in need):
            raise ValueError(f"prior state lacks the tensors {need}")
        try:
            return cls(config, state)
        except (RuntimeError, KeyError) as e:
            raise ValueError(f"prior state does not fit its config: {_first_line(e)}") from None

    def __repr__(self) -> str:
        return f"LatentPrior(kind={self.kind!r}, dim={self.dim}, config={self.config})"


def fit_prior(z_mu: Tensor, z_logvar: Tensor, config: PriorConfig | None = None) -> LatentPrior:
    """Fit a prior to the codes of training molecules (posterior means and log-variances, n x d).

    Codes are drawn as ``mu + smoothing * sigma * eps``; seeded by ``config.seed``, so the same
    inputs and config give the same prior.
    """
    config = config or PriorConfig()
    mu, sigma = z_mu.detach().float().cpu(), (0.5 * z_logvar.detach().float().cpu()).exp()
    if mu.ndim != 2 or mu.shape != sigma.shape or len(mu) < 2:
        raise ValueError(f"need n x d means and log-variances, n >= 2; got {tuple(mu.shape)}")
    if config.max_scale > 0:  # smooth the tight (active) dimensions, not the N(0, 1)-like ones
        cap = sigma.clamp_min(config.max_scale) / config.smoothing
        sigma = torch.minimum(sigma, cap)
    gen = torch.Generator().manual_seed(config.seed)
    if config.kind == "posterior":
        keep = torch.randperm(len(mu), generator=gen)[: config.components]
        state = {"logits": torch.zeros(len(keep)), "means": mu[keep]}
        state["scales"] = config.smoothing * sigma[keep]
        return LatentPrior(config, state)
    if config.kind == "gmm":
        return LatentPrior(config, _fit_gmm(mu, sigma, config, gen))
    return _fit_flow(mu, sigma, config, gen)


def _codes(mu: Tensor, sigma: Tensor, smoothing: float, gen: torch.Generator) -> Tensor:
    return mu + smoothing * sigma * torch.randn(mu.shape, generator=gen)


def _fit_gmm(mu: Tensor, sigma: Tensor, config: PriorConfig, gen: torch.Generator) -> dict:
    from sklearn.mixture import GaussianMixture

    reps = max(1, config.codes_per_molecule)
    codes = _codes(mu.repeat(reps, 1), sigma.repeat(reps, 1), config.smoothing, gen)
    gmm = GaussianMixture(
        config.components,
        covariance_type=config.covariance,
        reg_covar=1e-4,
        max_iter=200,
        random_state=config.seed,
    ).fit(codes.double().numpy())
    state = {
        "logits": torch.from_numpy(gmm.weights_).log(),
        "means": torch.from_numpy(gmm.means_),
    }
    cov = torch.from_numpy(gmm.covariances_)
    if config.covariance == "full":
        state["scale_tril"] = torch.linalg.cholesky(cov)
    else:
        state["scales"] = cov.sqrt()
    return {k: v.float() for k, v in state.items()}


def _make_flow(config: PriorConfig, dim: int) -> torch.nn.Module:
    import zuko

    cls = zuko.flows.MAF if config.flow == "maf" else zuko.flows.NSF
    return cls(features=dim, transforms=config.transforms, hidden_features=[config.hidden] * 2)


def _build_flow(config: PriorConfig, state: dict[str, Tensor]) -> torch.nn.Module:
    flow = _make_flow(config, int(state["loc"].shape[-1]))
    flow.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("flow.")})
    return flow.eval()


def _fit_flow(mu: Tensor, sigma: Tensor, config: PriorConfig, gen: torch.Generator) -> LatentPrior:
    """Maximum likelihood on fresh noisy codes each epoch; keeps the epoch best on held-out codes.

    Codes are standardized per dimension first (stored as ``loc``/``scale``) so the flow sees
    unit-scale inputs (the NSF's splines act on [-5, 5]).
    """
    perm = torch.randperm(len(mu), generator=gen)
    n_val = max(1, len(mu) // 10)
    val, fit = perm[:n_val], perm[n_val:]
    val_codes = _codes(mu[val], sigma[val], config.smoothing, gen)
    all_codes = _codes(mu, sigma, config.smoothing, gen)
    loc, scale = all_codes.mean(0), all_codes.std(0).clamp_min(1e-3)
    with torch.random.fork_rng():
        torch.manual_seed(config.seed)
        flow = _make_flow(config, mu.shape[1])
    opt = torch.optim.Adam(flow.parameters(), lr=config.lr)
    best, best_state = math.inf, None
    for _ in range(config.epochs):
        flow.train()
        codes = (_codes(mu[fit], sigma[fit], config.smoothing, gen) - loc) / scale
        order = torch.randperm(len(codes), generator=gen)
        for i in range(0, len(codes), config.batch_size):
            loss = -flow().log_prob(codes[order[i : i + config.batch_size]]).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        flow.eval()
        with torch.no_grad():
            nll = -flow().log_prob((val_codes - loc) / scale).mean().item()
        if nll < best:
            best = nll
            best_state = {k: v.detach().clone() for k, v in flow.state_dict().items()}
    if best_state is None:  # every epoch diverged (NaN): refuse rather than store garbage
        raise ValueError("the flow did not train: held-out likelihood was never finite")
    state = {"loc": loc, "scale": scale, **{f"flow.{k}": v for k, v in best_state.items()}}
    return LatentPrior(config, state)


def _std_normal(e: Tensor) -> Tensor:
    return -0.5 * (e.pow(2).sum(-1) + e.shape[-1] * math.log(2 * math.pi))


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__
