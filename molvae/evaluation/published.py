"""Published numbers printed beside ours, each with its source.

MOSES rows: the metrics table of the MOSES README (molecularsets/moses, commit ffbc4dbad1af,
Polykovskiy et al. 2020, Front. Pharmacol.), means over 3 runs of 30,000 samples; the rounded
Test columns are also in ``../shared/REFERENCES.md``. Reconstruction and sample statistics:
``../shared/REFERENCES.md`` (Kusner et al. 2017, Jin et al. 2018, Gómez-Bombarelli et al. 2018).
"""

from __future__ import annotations

MOSES_SOURCE = "MOSES README (molecularsets/moses @ ffbc4db; Polykovskiy et al. 2020)"

# Metric keys in the order of the MOSES table; the same keys as ``GenerationRow.metrics``.
MOSES_METRICS = (
    "valid", "unique@1k", "unique@10k",
    "FCD/Test", "SNN/Test", "Frag/Test", "Scaf/Test",
    "FCD/TestSF", "SNN/TestSF", "Frag/TestSF", "Scaf/TestSF",
    "IntDiv", "IntDiv2", "Filters", "Novelty",
)  # fmt: skip

MOSES_ROWS: dict[str, tuple[float, ...]] = {
    # name: values in MOSES_METRICS order
    "MOSES train set": (1.0, 1.0, 1.0, 0.008, 0.6419, 1.0, 0.9907, 0.4755, 0.5859, 0.9986, 0.0,
                      0.8567, 0.8508, 1.0, 1.0),
    "MOSES VAE": (0.9767, 1.0, 0.9984, 0.099, 0.6257, 0.9994, 0.9386, 0.567, 0.5783, 0.9984,
                  0.0588, 0.8558, 0.8498, 0.997, 0.6949),
    "MOSES CharRNN": (0.9748, 1.0, 0.9994, 0.0732, 0.6015, 0.9998, 0.9242, 0.5204, 0.5649,
                      0.9983, 0.1101, 0.8562, 0.8503, 0.9943, 0.8419),
    "MOSES AAE": (0.9368, 1.0, 0.9973, 0.5555, 0.6081, 0.991, 0.9022, 1.0572, 0.5677, 0.9905,
                  0.0789, 0.8557, 0.8499, 0.996, 0.7931),
    "MOSES JTN-VAE": (1.0, 1.0, 0.9996, 0.3954, 0.5477, 0.9965, 0.8964, 0.9382, 0.5194, 0.9947,
                      0.1009, 0.8551, 0.8493, 0.976, 0.9143),
    "MOSES LatentGAN": (0.8966, 1.0, 0.9968, 0.2968, 0.5371, 0.9986, 0.8867, 0.8281, 0.5132,
                        0.9972, 0.1072, 0.8565, 0.8505, 0.9735, 0.9498),
}  # fmt: skip

RECON_SOURCE = "ZINC-250k, Kusner et al. 2017 / Jin et al. 2018 (../shared/REFERENCES.md)"
RECON_ROWS = (  # model, reconstruction, valid prior samples
    ("Character VAE (Gómez-Bombarelli et al.)", "44.6%", "0.7%"),
    ("Grammar VAE", "53.7%", "7.2%"),
    ("SD-VAE", "76.2%", "43.5%"),
    ("JT-VAE", "76.7%", "100%"),
)

GB_SOURCE = "Gómez-Bombarelli et al. 2018, Table 1 (../shared/REFERENCES.md)"
GB_ROWS = (  # source, logP, SAS, QED as "mean (std)"; MW not published
    ("ZINC data (published)", "2.46 (1.43)", "3.05 (0.83)", "0.73 (0.14)"),
    ("Gómez-Bombarelli VAE samples (published)", "2.67 (1.46)", "3.18 (0.86)", "0.70 (0.14)"),
)
