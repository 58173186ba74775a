"""The training settings, in a module of their own so the schedules, the validation and the loop
all read them without importing each other."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TrainConfig:
    """Optimisation settings. ``best.pt`` is the epoch with the lowest validation loss
    ``recon + beta_max * kl + prop_weight * prop`` (a fixed beta, so epochs compare fairly)."""

    epochs: int = 10
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.0  # AdamW's decoupled decay
    grad_clip: float = 50.0
    kl_schedule: str = "linear"  # "linear" | "sigmoid" | "constant"
    beta_max: float = 0.5  # weight on the per-molecule KL at the end of the warm-up
    kl_warmup_epochs: float = 3.0
    prop_weight: float = 1.0
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
