"""The training settings, in a module of their own so the schedules, the validation and the loop
all read them without importing each other."""

from __future__ import annotations

from dataclasses import dataclass

# The batching of every run written before `TrainConfig.batching` existed: a resumed run whose
# ``last.pt`` does not record its batching goes on with this one.
LEGACY_BATCHING = {"batching": "bucket", "bucket_chunk_batches": 50}

# The settings that define what a run minimizes: its ``last.pt`` records them, and a resumed
# run trains on with the recorded ones, whatever the command line or a newer default says.
OBJECTIVE_FIELDS = (
    "beta_max", "kl_schedule", "kl_warmup_epochs", "kl_cycle_epochs", "kl_cycle_ramp",
    "free_bits", "prop_weight", "adversary_weight", "consistency_weight",
    "consistency_temperature", "consistency_edit_fraction", "consistency_edit_range",
)  # fmt: skip


@dataclass
class TrainConfig:
    """Optimisation settings. ``best.pt`` is the epoch with the lowest validation loss
    ``recon + beta_max * kl + prop_weight * prop`` (a fixed beta, so epochs compare fairly)."""

    epochs: int = 10
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.0  # AdamW's decoupled decay
    grad_clip: float = 50.0
    kl_schedule: str = "linear"  # "linear" | "sigmoid" | "constant" | "cyclical"
    beta_max: float = 0.5  # weight on the per-molecule KL at the end of the warm-up
    kl_warmup_epochs: float = 3.0
    # "cyclical" (Fu et al. 2019): beta ramps 0 -> beta_max over the first `kl_cycle_ramp` of
    # each cycle of `kl_cycle_epochs` epochs, then holds beta_max until the cycle ends.
    kl_cycle_epochs: float = 1.0
    kl_cycle_ramp: float = 0.5
    # Free bits (Kingma et al. 2016): each latent dimension's KL, averaged over the batch, counts
    # at least this many nats in the loss (0 = off). Metrics report the true KL.
    free_bits: float = 0.0
    prop_weight: float = 1.0
    # conditional models: weight of the z adversary's error in the encoder's loss (it maximizes
    # it up to a constant guess's, so z leaves the properties to y; 0 = no adversary)
    adversary_weight: float = 1.0
    # conditional models: weight of the decoder's consistency loss (`molvae.model.conditional.
    # consistency_loss`: decoded from another molecule's y, q(y|x) must read that y back), which
    # makes the decoder read y; 0 = off. Costs a second teacher-forced decoder pass a batch
    # (about 1.5x the step time). Weight 1 for an epoch moved decoded logP by 0.4 between y's
    # logP at 1 and at 5, weight 10 by 1.1 (and 1.2 after a second epoch)
    consistency_weight: float = 10.0
    consistency_temperature: float = 1.0
    # the share of a batch whose asked-for y is its own with one property moved by
    # U(-range, range) standard deviations (`molvae.model.conditional.asked_properties`); the
    # rest asks for another molecule's y
    consistency_edit_fraction: float = 0.0
    consistency_edit_range: float = 2.5
    # conditional models: the adversary starts fresh on a trained encoder, so it learns at lr
    # times this (q(y|x) starts from a ridge fit instead: `molvae.train.probe`)
    head_lr_scale: float = 10.0
    # conditional models with labels: after the last epoch, q(y|x) in best.pt is fitted again
    # to its final encoder (ridge, then the MLP part; `molvae.train.probe`): fine-tuning moves
    # the summaries it reads, and a fresh fit reads them better than the fine-tuned head
    final_probe: bool = True
    lr_decay: str = "cosine"  # "cosine" (to 0 over all steps, after warm-up) | "none"
    lr_warmup_steps: int = 200  # linear learning-rate warm-up
    device: str = "auto"  # auto = cuda if available else cpu
    amp: bool = True  # bf16 autocast where it is fast (`molvae.model.fast_bf16`), else fp32
    seed: int = 0
    max_steps_per_epoch: int | None = None  # smoke runs
    val_recon_samples: int = 1000  # val molecules for greedy string-level reconstruction
    num_threads: int | None = None  # torch.set_num_threads on CPU when given
    max_nonfinite_steps: int = 20  # consecutive NaN/inf losses tolerated before stopping
    val_batch_size: int = 1024
    # last.pt is also written inside an epoch when this many minutes passed since the last
    # write (0 = only at epoch ends), so a killed run loses at most that much work.
    checkpoint_minutes: float = 5.0
    # How an epoch is cut into batches (`molvae.data.batching`). "bucket": shuffle, sort each
    # chunk of `bucket_chunk_batches` batches by length, shuffle the batch order. A resumed run
    # keeps the batching its last.pt records.
    batching: str = "bucket"
    bucket_chunk_batches: int = 50
    # The GRUs' teacher-forced passes: "fused" = `molvae.model.gru` (same weights and function,
    # its backward written out: faster on the CPU in fp32; under bf16 autocast its products run
    # in bf16, its states in fp32), "native" = torch's nn.GRU kernels, "auto" = fused on the CPU
    # in fp32, native under bf16 autocast and on CUDA (cuDNN).
    rnn: str = "auto"
    # On the CPU, keep freed memory in the process (glibc mallopt) so the large per-step tensors
    # are reused instead of being mapped and zeroed by the kernel again at every step.
    retain_memory: bool = True

    def batching_state(self) -> dict:
        """The settings that decide an epoch's batches, as saved in ``last.pt``."""
        return {"batching": self.batching, "bucket_chunk_batches": self.bucket_chunk_batches}

    def objective_state(self) -> dict:
        """The loss settings (`OBJECTIVE_FIELDS`), as saved in ``last.pt``."""
        return {k: getattr(self, k) for k in OBJECTIVE_FIELDS}
