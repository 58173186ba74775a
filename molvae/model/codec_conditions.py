"""What a `~molvae.model.codec.LatentCodec` of a conditional model adds: the properties its
latents carry, and latents edited to other property values (a mixin over ``self.model``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from molvae.model import conditional as cond
from molvae.model.property_head import PropertyScale

if TYPE_CHECKING:
    from molvae.model.prior import LatentPrior
    from molvae.model.vae import MolVAE


class Conditions:
    """Methods over ``self.model``, a `MolVAE`; with an unconditional model each raises a
    ``ValueError`` that says how to get a conditional one."""

    model: MolVAE
    prior: LatentPrior | None

    @property
    def condition_names(self) -> list[str]:
        """The properties a conditional model is conditioned on (empty for other models)."""
        return cond.label_names(self.model.condition_scale)

    def _scale(self) -> PropertyScale:
        scale = self.model.condition_scale
        if self.model.config.condition_dim == 0 or scale is None:
            raise ValueError(
                "this model is not conditional: train one with `molvae train --conditional "
                "--properties ...`, or use --model conditional (docs/guides/conditional.md)"
            )
        return scale

    def with_condition(
        self, z: Tensor, condition: dict[str, float], relative: bool = False
    ) -> Tensor:
        """Latents ``n x latent_dim`` of a conditional model with the named properties set to
        the given values (in their units; with ``relative``, moved by them), z and the other
        properties kept: "this molecule, with logP 4" or "this molecule, 1 logP unit more"."""
        scale = self._scale()
        out = z.clone().float()
        d = self.model.config.latent_dim
        if relative:
            for name, delta in condition.items():
                j = cond.index_of(scale, name)
                out[:, d + j] += float(delta) / scale.std[j]
            return out
        for j, v in cond.standardized(scale, condition).items():
            out[:, d + j] = v
        return out

    def properties(self, z: Tensor) -> Tensor:
        """The properties a conditional model's latents ``n x latent_dim`` carry, in their units
        (``n x condition_dim``, columns `condition_names`)."""
        scale = self._scale()
        return scale.to_units(z[:, self.model.config.latent_dim :].float())

    def _with_y(
        self, z: Tensor, condition: dict[str, float] | None, generator: torch.Generator | None
    ) -> Tensor:
        """Prior draws of z (``n x latent_dim``) completed with y drawn from p(y) given
        ``condition`` (a conditional model); z itself for other models, which take none."""
        if self.model.config.condition_dim == 0:
            if condition:
                self._scale()  # the clear error
            return z
        given = cond.standardized(self._scale(), condition or {})
        y = cond.conditional_prior(self.model.y_prior_cov, given, len(z), generator)
        return torch.cat([z, y], dim=-1)

    def _joint(self, prior: str) -> bool:
        """Whether latents come from a learned prior over [z, y] (a conditional model's)."""
        learned = getattr(self, "prior", None)
        c = self.model.config
        return (prior != "gaussian" and learned is not None and c.condition_dim > 0
                and learned.dim == self.model.code_dim)  # fmt: skip

    def _sample_joint(
        self,
        n: int,
        condition: dict[str, float] | None,
        generator: torch.Generator | None,
        temperature: float | None = None,
    ) -> Tensor:
        """[z, y] from the learned joint prior (the training molecules' codes), given the
        ``condition`` when there is one (`LatentPrior.sample_given`): z comes from molecules
        whose properties are near those asked, y is set to them. ``temperature``: the prior's
        component scales times this (None: the prior's own)."""
        d = self.model.config.latent_dim
        prior = self.prior if temperature is None else self.prior.with_temperature(temperature)
        if not condition:
            return prior.sample(n, generator=generator).float()
        given = cond.standardized(self._scale(), condition)
        return prior.sample_given({d + j: v for j, v in given.items()}, n, generator)
