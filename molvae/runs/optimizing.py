"""`molvae optimize` as a run: a BO or random-search campaign with a checkpoint's codec."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from molvae.bo import BOConfig, CampaignResult, random_search, run_campaign
from molvae.bo.gradient import GradientConfig, gradient_campaign
from molvae.chem import get_objective
from molvae.chem.cache import OracleCache
from molvae.chem.constraints import parse_constraints
from molvae.chem.distributed import Cluster, connect
from molvae.data import FilterConfig, load_smiles
from molvae.io import file_sha256
from molvae.model import GrammarConfig, LatentCodec
from molvae.resources import DEFAULT_MODEL, resolve_model
from molvae.runs.callables import (
    CampaignCallables,
    campaign_callables,
    init_data_table,
    resolve_prior,
)
from molvae.runs.common import environment
from molvae.runs.gradient import head_predictor
from molvae.runs.retraining import campaign_retraining
from molvae.train import FinetuneConfig

log = logging.getLogger(__name__)


@dataclass
class OptimizeRunConfig:
    """What a campaign optimizes and with which model/data (the BO settings are `BOConfig`)."""

    model: str = DEFAULT_MODEL
    # one spec, or several (a multi-objective campaign: `molvae.bo.pareto`, all maximized)
    objective: str | list[str] = "qed"
    data: str = "zinc"  # initial design pool
    out_dir: str = "campaigns/run"
    method: str = "bo"  # "bo" | "random" | "gradient" (ascent on the property head)
    device: str = "auto"
    threads: int | None = None  # torch CPU threads (1 is fastest on a busy machine)
    constrained: bool = True  # decode through the SMILES grammar (`GrammarConfig` defaults)
    # latent prior for random search and the latent box: "auto" = the checkpoint's learned prior
    # when it has one (the box then comes from its samples), else N(0, I) (the box from data)
    prior: str = "auto"
    # what a reported molecule must also satisfy (`molvae.chem.constraints`: "sa<=4.5",
    # "mw>=250", "filters", ...); a molecule that misses one is scored but "infeasible"
    constraints: list[str] = field(default_factory=list)
    # molecules already measured (CSV: smiles, a score column, optional status): the initial
    # design's first rows, at no oracle cost; the directory is pinned to the file's sha256
    init_data: str | None = None
    init_score_column: str = "score"
    # a Dask scheduler (tcp://HOST:PORT) whose workers make the objective calls; None: local
    # processes (BOConfig.n_jobs). Not pinned: a campaign may move to a cluster on resume.
    scheduler: str | None = None
    # the oracle cache file ("": the default one; None: none): objective outcomes are looked up
    # there first and stored as they finish, so a rerun after a kill calls nothing twice
    cache: str | None = None
    # asynchronous BO: with BOConfig.async_workers 0, as many calls in flight as the Dask
    # cluster has worker threads (scheduler), else BOConfig.n_jobs; without a scheduler the
    # calls run in that many local processes
    async_bo: bool = False


# What a campaign directory is bound to besides its BOConfig: a resume with another model,
# objective, pool, method or decoding would mix two experiments in one history. The model is
# pinned by its bytes (sha256), not its name: "default" after the bundled model changed is
# another model, and the same file under another path is the same one.
_RUN_PINNED = ("objective", "data", "method", "constrained", "constraints")


def pinned_settings(
    run: OptimizeRunConfig,
    model_sha256: str,
    grammar: GrammarConfig | None,
    prior: str | None = None,
) -> dict[str, Any]:
    """The settings outside `BOConfig` that a campaign directory is bound to; ``prior`` is the
    resolved prior ("learned" or "gaussian"), so "auto" and the prior it chose agree."""
    return {
        "model_sha256": model_sha256,
        **{k: getattr(run, k) for k in _RUN_PINNED},
        "grammar": asdict(grammar) if grammar else None,
        **({"prior": prior} if prior else {}),
    }


def _init_data(run: OptimizeRunConfig) -> tuple[pd.DataFrame | None, dict[str, Any]]:
    """The run's init data (None without) and what the campaign is pinned to for it: the
    file's sha256 and the score column."""
    if not run.init_data:
        return None, {}
    data = init_data_table(run.init_data, run.init_score_column, run.constraints)
    return data, {"init_data_sha256": file_sha256(run.init_data),
                  "init_score_column": run.init_score_column}  # fmt: skip


def _metadata(
    run: OptimizeRunConfig,
    model_path: Path,
    grammar: GrammarConfig | None,
    prior: str,
    objective_description: str,
    pinned: dict[str, Any],
) -> dict[str, Any]:
    """The campaign's ``metadata``: the run, what its directory is pinned to (``pinned`` adds to
    `pinned_settings`), the model and the environment."""
    model_sha256 = file_sha256(model_path)
    return {
        "run": asdict(run),
        "pinned": {**pinned_settings(run, model_sha256, grammar, prior), **pinned},
        "prior": prior,
        "grammar": asdict(grammar) if grammar else None,
        "model_path": str(model_path.resolve()),
        "model_sha256": model_sha256,
        "objective_description": objective_description,
        "environment": environment(),
    }


def optimize(
    run: OptimizeRunConfig,
    bo_config: BOConfig | None = None,
    progress: bool = True,
    gradient: GradientConfig | None = None,
    finetune: FinetuneConfig | None = None,
) -> CampaignResult:
    """Run (or resume) a latent-space campaign; returns its `CampaignResult` (report written).
    ``gradient``: the ascent's settings for ``method="gradient"`` (default `GradientConfig`).
    ``finetune``: the fine-tuning's settings when ``bo_config.retrain_every`` is set (weighted
    retraining, BO only; default `FinetuneConfig`); they are pinned like the model. With
    ``run.scheduler`` the objective calls run on that Dask cluster's workers."""
    bo_config = bo_config or BOConfig()
    if run.method not in ("bo", "random", "gradient"):
        raise ValueError(f"unknown method {run.method!r} (use 'bo', 'random' or 'gradient')")
    if run.threads:
        torch.set_num_threads(run.threads)
    # fails early, before any model is loaded
    objectives = [get_objective(spec) for spec in _specs(run.objective)]
    run, bo_config = _objectives(run, bo_config, len(objectives))
    run = replace(run, constraints=[c.spec for c in parse_constraints(run.constraints)])
    model_path = resolve_model(run.model)
    grammar = GrammarConfig() if run.constrained else None
    codec = LatentCodec.from_checkpoint(model_path, device=run.device, grammar=grammar)
    # a model without a head, or a head that cannot predict the objective: one sentence, now
    predict = head_predictor(codec.model, run.objective) if run.method == "gradient" else None
    prior = resolve_prior(codec, run.prior)
    if prior == "learned":  # the latent box from the prior the model was fitted with
        bo_config = replace(bo_config, bounds="prior")
    with contextlib.ExitStack() as stack:
        cluster = stack.enter_context(connect(run.scheduler)) if run.scheduler else None
        bo_config = _async_workers(run, bo_config, cluster)
        executor = cluster.executor if cluster is not None else None
        if bo_config.async_workers and executor is None:  # one process per call in flight
            executor = stack.enter_context(ProcessPoolExecutor(bo_config.async_workers))
        cache = None if run.cache is None else stack.enter_context(OracleCache(run.cache or None))
        fns = campaign_callables(codec, run.objective, bo_config, prior, run.constraints, executor,
                                 cache)  # fmt: skip
        # retrained models decode like this one; their prior is N(0, I) (`molvae.runs.retraining`)
        retrain, retrain_pinned = campaign_retraining(
            run.method, bo_config, model_path, codec,
            lambda c: campaign_callables(c, run.objective, bo_config, "gaussian",
                                         run.constraints, executor, cache),
            finetune,
        )  # fmt: skip
        init_data, data_pinned = _init_data(run)  # a bad file: one sentence, before any call
        description = "; ".join(o.description for o in objectives)
        metadata = _metadata(run, model_path, grammar, prior, description,
                             {**retrain_pinned, **data_pinned})  # fmt: skip
        # Every method starts from the same initial design (data molecules, scored and encoded
        # once), so their traces compare; the campaign draws `init_pool` of these at random.
        init, _ = load_smiles(
            run.data,
            vocab=codec.vocab,
            config=FilterConfig(max_tokens=codec.max_len - 2, dedupe=True),
            limit=max(5 * (bo_config.init_pool or 0), 10_000),
        )
        common = dict(init_smiles=init, progress=progress, metadata=metadata, init_data=init_data)
        return _launch(run, bo_config, fns, retrain, predict, gradient, common)


def _specs(objective: str | Sequence[str]) -> list[str]:
    specs = [objective] if isinstance(objective, str) else list(objective)
    if not specs or len(set(specs)) < len(specs):
        raise ValueError(f"give one objective or several different ones, not {specs!r}")
    return specs


def _objectives(
    run: OptimizeRunConfig, cfg: BOConfig, n: int
) -> tuple[OptimizeRunConfig, BOConfig]:
    """The run with one objective as a string (as directories have always pinned it) and
    ``cfg.n_objectives`` set; several objectives with what cannot rank by one: one line."""
    if n == 1:
        run = replace(run, objective=_specs(run.objective)[0])
        if cfg.n_objectives != 1:
            raise ValueError(f"n_objectives is {cfg.n_objectives} but one objective was given")
        return run, cfg
    if run.method == "gradient":
        raise ValueError("--method gradient ascends one property head: give one objective "
                         "(several need --method bo or random)")  # fmt: skip
    if run.init_data:
        raise ValueError("--init-data has one score column: it cannot start a campaign with "
                         "several objectives yet")  # fmt: skip
    if cfg.n_objectives not in (1, n):
        raise ValueError(f"n_objectives is {cfg.n_objectives} but {n} objectives were given")
    return replace(run, objective=_specs(run.objective)), replace(cfg, n_objectives=n)


def _async_workers(run: OptimizeRunConfig, cfg: BOConfig, cluster: Cluster | None) -> BOConfig:
    """``cfg`` with ``async_workers`` sized when ``run.async_bo`` leaves it to the run: the
    cluster's worker threads, else ``n_jobs``."""
    if run.method == "gradient" and (run.async_bo or cfg.async_workers):
        raise ValueError("asynchronous BO is for method 'bo' or 'random', not 'gradient'")
    if not run.async_bo or cfg.async_workers:
        return cfg
    n = cluster.n_threads() if cluster is not None else cfg.n_jobs
    if n < 1:
        raise ValueError(f"the Dask cluster at {run.scheduler} has no worker yet: give "
                         "--async N")  # fmt: skip
    return replace(cfg, async_workers=n)


def _launch(
    run: OptimizeRunConfig,
    bo_config: BOConfig,
    fns: CampaignCallables,
    retrain: Any,
    predict: Callable | None,
    gradient: GradientConfig | None,
    common: dict[str, Any],
) -> CampaignResult:
    """The campaign of ``run.method`` with everything bound."""
    t0 = time.perf_counter()
    if run.method == "random":
        result = random_search(bo_config, fns.decode, fns.prior, fns.objective, run.out_dir,
                               encode_fn=fns.encode, **common)  # fmt: skip
    elif run.method == "gradient":
        result = gradient_campaign(bo_config, gradient or GradientConfig(), fns.decode,
                                   fns.encode, predict, fns.objective, out_dir=run.out_dir,
                                   prior_fn=fns.prior, **common)  # fmt: skip
    else:
        result = run_campaign(bo_config, fns.decode, fns.encode, fns.objective,
                              out_dir=run.out_dir, prior_fn=fns.prior, retrain_fn=retrain,
                              slack_fn=fns.slack, known_fn=fns.known, **common)  # fmt: skip
    log.info("campaign finished in %.1f s (%s)", time.perf_counter() - t0, result.stop_reason)
    return result
