"""Evaluation of a generative model: MOSES metrics, `evaluate` and its written report.

Owns `metrics` (validity, unique@k, novelty, IntDiv, SNN, FCD, reconstruction accuracy, property
statistics with the MOSES definitions), `evaluate` (EvaluateConfig, EvaluationResult and
``evaluate``, which measures a model through sample/reconstruct callables) and `report`
(``metrics.json``, ``metrics.md`` and the property histograms next to the published numbers).

Imports only `molvae.chem`, `molvae.io` and `molvae.resources` of molvae; must not import
`molvae.model`, `molvae.train`, `molvae.bo` or anything below them.
"""

from molvae.evaluation.evaluator import EvaluateConfig, EvaluationResult, Timing, evaluate
from molvae.evaluation.metrics import (
    MOSES_FP_SIZE,
    fcd_score,
    internal_diversity,
    majority_reconstruction_accuracy,
    novelty,
    property_stats,
    reconstruction_accuracy,
    snn,
    summarize_properties,
    uniqueness,
    validity,
)
from molvae.evaluation.report import (
    GB_ROWS,
    MOSES_ROWS,
    RECON_ROWS,
    plot_property_histograms,
    render_markdown,
    write_evaluation,
)

__all__ = [
    "GB_ROWS",
    "MOSES_FP_SIZE",
    "MOSES_ROWS",
    "RECON_ROWS",
    "EvaluateConfig",
    "EvaluationResult",
    "Timing",
    "evaluate",
    "fcd_score",
    "internal_diversity",
    "majority_reconstruction_accuracy",
    "novelty",
    "plot_property_histograms",
    "property_stats",
    "reconstruction_accuracy",
    "render_markdown",
    "snn",
    "summarize_properties",
    "uniqueness",
    "validity",
    "write_evaluation",
]
