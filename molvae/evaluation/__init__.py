"""Evaluation of a generative model by the MOSES protocol, and its written report.

`evaluator` (EvaluateConfig, Sampler, ReferenceData, ``evaluate``: measures a model through
sample/reconstruct callables), `metrics` (MOSES metrics on lists of SMILES), `moses`
(fragments, scaffolds, filters and properties as MOSES defines them), `similarity` (exact
Tanimoto SNN and IntDiv on fingerprint matrices), `chemnet` (the fcd package's ChemNet, faster),
`reference` (test/train statistics, cached on disk), `reconstruction`, `published` (the
published rows, with sources) and `report` (``metrics.json``, ``metrics.md``, histograms).

Imports only `molvae.chem`, `molvae.io` and `molvae.resources` of molvae; must not import
`molvae.model`, `molvae.train`, `molvae.bo` or anything below them.
"""

from molvae.evaluation.evaluator import (
    EvaluateConfig,
    EvaluationResult,
    GenerationRow,
    ReferenceData,
    Sampler,
    evaluate,
)
from molvae.evaluation.metrics import (
    MOSES_FP_SIZE,
    fcd_score,
    internal_diversity,
    majority_reconstruction_accuracy,
    novelty,
    property_stats,
    reconstruction_accuracy,
    snn,
    uniqueness,
    validity,
)
from molvae.evaluation.published import GB_ROWS, MOSES_METRICS, MOSES_ROWS, RECON_ROWS
from molvae.evaluation.reconstruction import ReconstructionRow, Reconstructor
from molvae.evaluation.report import plot_property_histograms, render_markdown, write_evaluation

__all__ = [
    "GB_ROWS",
    "MOSES_FP_SIZE",
    "MOSES_METRICS",
    "MOSES_ROWS",
    "RECON_ROWS",
    "EvaluateConfig",
    "EvaluationResult",
    "GenerationRow",
    "ReconstructionRow",
    "Reconstructor",
    "ReferenceData",
    "Sampler",
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
    "uniqueness",
    "validity",
    "write_evaluation",
]
