"""The SMILES grammar and grammar-constrained decoding: which next tokens can still lead to a
valid SMILES, and the batched lanes that decode under that constraint.

Owns: `SmilesGrammar`/`GrammarConfig` (`smiles`), the token classes (`atoms`), a row's
incremental state (`state`), the verdict tables per state view (`tables`), the valence and
ring checks (`checks`), the partialsmiles reference (`reference`), and the constrained decoding
state and its lanes (`constrained`, `lanes`). Knows token ids and strings, not the network:
`molvae.model.decoding` runs a model through these. Imports only `molvae.chem`, `molvae.data`,
`molvae.io`.
"""

from molvae.grammar.smiles import GrammarConfig, SmilesGrammar

__all__ = ["GrammarConfig", "SmilesGrammar"]
