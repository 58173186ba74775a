"""DDP training: two gloo processes on the CPU under torchrun end with identical weights."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from molvae.data.batching import BucketBatchSampler
from molvae.train.distributed import ShardedBatchSampler

WORKER = textwrap.dedent(
    """
    import os
    import sys
    from pathlib import Path

    import torch

    torch.set_num_threads(1)
    from molvae.data import Vocab, encode_all
    from molvae.model import VAEConfig
    from molvae.train import TrainConfig, train

    out = Path(sys.argv[1])
    smiles = ["CCO", "c1ccccc1", "CC(=O)O", "CCN", "CCCl", "C1CC1", "OCCO", "CC#N"] * 8
    vocab = Vocab.build(smiles)
    ids = encode_all(smiles, vocab)
    cfg = VAEConfig(len(vocab), emb_dim=8, enc_hidden=8, latent_dim=4, dec_hidden=8, dec_layers=1)
    tc = TrainConfig(epochs=2, batch_size=4, lr=1e-2, lr_warmup_steps=1, val_recon_samples=4,
                     num_threads=1)
    res = train(cfg, tc, vocab.tokens, ids, ids[:8], out / "run", progress=False)
    rank = os.environ["RANK"]
    torch.save({k: v.clone() for k, v in res.model.state_dict().items()}, out / f"rank{rank}.pt")
    (out / f"world{rank}.txt").write_text(str(res.world_size))
    """
)


def test_sharded_batches_are_disjoint_and_equal_in_number() -> None:
    lengths = np.random.default_rng(0).integers(3, 30, size=103)
    inner = BucketBatchSampler(lengths, batch_size=4, seed=1)
    inner.set_epoch(2)
    shards = [list(ShardedBatchSampler(inner, r, 2)) for r in range(2)]
    assert len(shards[0]) == len(shards[1]) == len(inner) // 2 == 13
    seen = [i for shard in shards for b in shard for i in b]
    assert len(seen) == len(set(seen))  # no molecule twice in an epoch
    # rank r takes batches r, r+2, ... of the single-process order
    assert shards[1][0] == inner.batches()[1]


@pytest.mark.slow
def test_two_gloo_processes_end_with_identical_weights(tmp_path: Path) -> None:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    run = subprocess.run(
        [*cmd, str(script), str(tmp_path)], env=env, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr[-3000:]
    w0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    w1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert (tmp_path / "world1.txt").read_text() == "2"
    for name in w0:
        assert torch.equal(w0[name], w1[name]), name
    # the ranks saw different batches (disjoint shards, tested above), so equal weights mean
    # the gradients were averaged;
    # and training moved the weights away from the (seeded) initialisation
    torch.manual_seed(0)
    from molvae.model import MolVAE, VAEConfig

    init = MolVAE(VAEConfig(len(w0["out.bias"]), emb_dim=8, enc_hidden=8, latent_dim=4,
                            dec_hidden=8, dec_layers=1)).state_dict()  # fmt: skip
    assert not torch.equal(init["out.weight"], w0["out.weight"])
    # only rank 0 wrote: one metrics row per epoch, checkpoints present
    metrics = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert metrics["epoch"].tolist() == [1, 2]
    assert (tmp_path / "run" / "best.pt").exists() and (tmp_path / "run" / "last.pt").exists()
    # 64 molecules in 16 batches of 4: each rank takes 8 per epoch
    assert metrics["step"].tolist() == [8, 16]
