"""Latent-space Bayesian optimization campaigns, from settings to report.

Owns: the settings and callable types (``config``), the oracle-call accounting
(``accounting``), the latent GP surrogate (``surrogate``) and its batch proposals
(``acquisition``), the fingerprint GP (``fingerprint``) and the molecules it ranks
(``candidates``, the default proposals), several objectives (``pareto``: the Pareto set and
hypervolume; ``multi_objective`` and ``mo_acquisition``: qLogNEHVI on the fingerprint and latent
GPs; ``pareto_charts``: the report's front), the TuRBO-style trust region (``trust_region``),
the crash-safe campaign directory and reading it back (``store``), the initial design
(``design``), decoding and scoring a batch with re-drawing of known molecules (``scoring``),
where the trust region sits and restarts (``regions``), weighted retraining's schedule
(``retrain``) and data (``retrain_data``), when a campaign stops (``stopping``), one iteration
(``iteration``), the loop with ``run_campaign`` and ``random_search`` (``loop``),
property-guided latent ascent (``gradient``), best / top-10 / PMO top-10 AUC (``metrics``), the
report (``report``; its offline HTML page ``html_report``, with ``html_page``, ``depictions``,
``substructures``, ``trace_chart``, ``latent_map``, ``svg_plot``, ``iteration_table``), and
the ``molvae.chem``-backed default callables (``chemistry``).

Must not import ``molvae.model``, ``molvae.train``, ``molvae.evaluation``, ``molvae.runs`` or
``molvae.cli``: the loop never sees the VAE, it gets decode/encode/objective callables. It may
import ``molvae.io``, ``molvae.resources``, ``molvae.chem`` and ``molvae.data``.
"""

from molvae.bo.acquisition import ACQ_ERRORS, Proposal, propose_batch, sobol_in_box
from molvae.bo.candidates import MoleculeProposal, propose_molecules
from molvae.bo.chemistry import chem_objective, default_canonical
from molvae.bo.config import (
    ACQUISITIONS,
    CONSTRAINT_MODELS,
    FP_KINDS,
    SURROGATES,
    BOConfig,
    CanonicalFn,
    DecodeFn,
    EncodeFn,
    ObjectiveFn,
    PriorFn,
    SampleFn,
    SlackFn,
    iteration_seed,
)
from molvae.bo.fingerprint import TanimotoKernel, fingerprints, fit_fingerprint_gp
from molvae.bo.gradient import (
    GradientConfig,
    PredictFn,
    ascent_path,
    ascent_step,
    gradient_campaign,
)
from molvae.bo.html_report import read_campaign, write_html_report
from molvae.bo.loop import random_search, run_campaign
from molvae.bo.metrics import campaign_metrics, top_k_auc, top_k_mean
from molvae.bo.multi_objective import propose_pareto_molecules
from molvae.bo.observations import observations
from molvae.bo.pareto import (
    hypervolume,
    hypervolume_trace,
    infer_ref_point,
    pareto_mask,
    pareto_table,
)
from molvae.bo.regions import restart_region
from molvae.bo.report import (
    best_so_far,
    compare_traces,
    plot_top_molecules,
    plot_trace,
    summary_markdown,
    write_report,
)
from molvae.bo.retrain_data import RetrainedModel, RetrainFn, rank_weights, retraining_set
from molvae.bo.scoring import choose_decoded, resolve_batch
from molvae.bo.stopping import iteration_cap, stop_reason
from molvae.bo.store import (
    EVAL_COLUMNS,
    FORMAT,
    STATUSES,
    CampaignResult,
    CampaignStore,
    best_of,
    empty_history,
    known_scores,
    load_campaign,
    read_table,
    top_molecules,
    z_columns,
)
from molvae.bo.surrogate import (
    GP_ERRORS,
    fit_gp,
    gpytorch_jitter,
    lengthscales,
    select_gp_points,
)
from molvae.bo.trust_region import (
    TrustRegionState,
    latent_bounds,
    prior_bounds,
    trust_region_box,
    update_trust_region,
)

__all__ = [
    "ACQUISITIONS",
    "ACQ_ERRORS",
    "CONSTRAINT_MODELS",
    "EVAL_COLUMNS",
    "FORMAT",
    "FP_KINDS",
    "GP_ERRORS",
    "STATUSES",
    "SURROGATES",
    "BOConfig",
    "CampaignResult",
    "CampaignStore",
    "CanonicalFn",
    "DecodeFn",
    "EncodeFn",
    "GradientConfig",
    "MoleculeProposal",
    "ObjectiveFn",
    "PredictFn",
    "PriorFn",
    "Proposal",
    "RetrainFn",
    "RetrainedModel",
    "SampleFn",
    "SlackFn",
    "TanimotoKernel",
    "TrustRegionState",
    "ascent_path",
    "ascent_step",
    "best_of",
    "best_so_far",
    "campaign_metrics",
    "chem_objective",
    "choose_decoded",
    "compare_traces",
    "default_canonical",
    "empty_history",
    "fingerprints",
    "fit_fingerprint_gp",
    "fit_gp",
    "gpytorch_jitter",
    "gradient_campaign",
    "hypervolume",
    "hypervolume_trace",
    "infer_ref_point",
    "iteration_cap",
    "iteration_seed",
    "known_scores",
    "latent_bounds",
    "lengthscales",
    "load_campaign",
    "observations",
    "pareto_mask",
    "pareto_table",
    "plot_top_molecules",
    "plot_trace",
    "prior_bounds",
    "propose_batch",
    "propose_molecules",
    "propose_pareto_molecules",
    "random_search",
    "rank_weights",
    "read_campaign",
    "read_table",
    "resolve_batch",
    "restart_region",
    "retraining_set",
    "run_campaign",
    "select_gp_points",
    "sobol_in_box",
    "stop_reason",
    "summary_markdown",
    "top_k_auc",
    "top_k_mean",
    "top_molecules",
    "trust_region_box",
    "update_trust_region",
    "write_html_report",
    "write_report",
    "z_columns",
]
