"""The data stage: SMILES files in, token-id arrays and batches out.

Owns reading SMILES files (paths or data names) and latent arrays (`readers`), filtering with a
drop report and seeded splits (`filtering`), the bundled and fetched ZINC data names (`zinc`;
the bundled names themselves are `molvae.resources.BUNDLED_DATA`), the SMILES tokenizer and
`Vocab` (`tokens`), the memory-mapped token cache (`token_cache`) and length-bucketed batches
(`batching`).

Imports only `molvae.io`, `molvae.resources` and `molvae.chem`; must not import `molvae.model`,
`molvae.train`, `molvae.evaluation`, `molvae.bo`, `molvae.runs` or `molvae.cli`.
"""

from molvae.data.batching import (
    BucketBatchSampler,
    IdDataset,
    PadCollate,
    make_loader,
    padding_fraction,
)
from molvae.data.cache import TOKEN_CACHE_FORMAT, TokenCache, token_cache
from molvae.data.errors import DataError
from molvae.data.filtering import (
    DropReport,
    FilterConfig,
    encode_all,
    filter_smiles,
    load_smiles,
    split,
)
from molvae.data.readers import (
    SMILES_COLUMNS,
    read_latents,
    read_smiles,
    read_table,
    resolve_data,
)
from molvae.data.tokens import BOS, EOS, PAD, SMILES_REGEX, SPECIALS, UNK, Vocab, tokenize
from molvae.data.zinc import (
    FETCHED,
    MOSES_SPLITS,
    MOSES_WHEEL,
    MOSES_WHEEL_FILE,
    MOSES_WHEEL_SHA256,
    fetch_moses,
    fetch_moses_wheel,
)
from molvae.resources import BUNDLED_DATA, cache_dir, data_dir

BUNDLED = BUNDLED_DATA  # the old name of `molvae.resources.BUNDLED_DATA`

__all__ = [
    "BOS",
    "BUNDLED",
    "EOS",
    "FETCHED",
    "MOSES_SPLITS",
    "MOSES_WHEEL",
    "MOSES_WHEEL_FILE",
    "MOSES_WHEEL_SHA256",
    "PAD",
    "SMILES_COLUMNS",
    "SMILES_REGEX",
    "SPECIALS",
    "TOKEN_CACHE_FORMAT",
    "UNK",
    "BucketBatchSampler",
    "DataError",
    "DropReport",
    "FilterConfig",
    "IdDataset",
    "PadCollate",
    "TokenCache",
    "Vocab",
    "cache_dir",
    "data_dir",
    "encode_all",
    "fetch_moses",
    "fetch_moses_wheel",
    "filter_smiles",
    "load_smiles",
    "make_loader",
    "padding_fraction",
    "read_latents",
    "read_smiles",
    "read_table",
    "resolve_data",
    "split",
    "token_cache",
    "tokenize",
]
