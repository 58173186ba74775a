"""molvae: latent-space molecular design with a SMILES GRU VAE and Bayesian optimization."""

__version__ = "0.1.0"
