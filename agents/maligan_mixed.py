"""MaliGAN's sequential algorithm with mixed MLE training (Che et al. 2017, Algorithm 2).

:class:`MixedMaliGANAgent` clamps the first N tokens of real sequences, samples m completions
of each prefix, takes the MLE gradient on the clamped part and the MaliGAN gradient
(normalized over the m samples of a prefix) on the rest, and lowers N from T by K during
training (:func:`clamp_length`). The schedule and discriminator are :mod:`agents.adversarial`'s;
the fields added here are :class:`MixedMaliGANConfig`'s.

Not checked against the paper's text (only secondary descriptions of Algorithm 2 were at hand):
the values K = 2 and m = 8; N = T for the first ``mixed_every`` steps (the algorithm may lower N
before its first update); lowering N every ``mixed_every`` steps rather than every iteration;
the generator update before the discriminator's in each step.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Dict, Literal, Optional

import torch

from agents.adversarial import AdversarialAgent, AdversarialConfig, maligan_scorer
from agents.config import MALIGAN, SIZE, at_least, param
from textgym import scorers
from textgym.masks import length_mask
from textgym.rewards import finish_sequences, maligan_weights


def clamp_length(iteration: int, T: int, K: int, every: int) -> int:
    """MaliGAN-mixed schedule: N = max(0, T - K · ⌊iteration / every⌋) real tokens clamped.

    ``iteration`` counts adversarial iterations from 0: N = T for the first ``every`` of them
    (pure MLE), then T - K, T - 2K, ... down to 0 (pure MaliGAN).
    """
    if iteration < 0 or T < 0 or K < 1 or every < 1:
        raise ValueError(f"clamp_length needs iteration >= 0, T >= 0, K >= 1, every >= 1; got {iteration}, {T}, {K}, {every}")
    return max(0, T - K * (iteration // every))


@dataclass
class MixedMaliGANConfig(AdversarialConfig):
    """Fields of MaliGAN's Algorithm 2 (the clamp schedule and the samples per real prefix)."""

    mixed_K: int = param(2, "N (clamped real tokens) decreases by K ... (our value: not checked against the paper's "
                            "experiments)", check=at_least(1))
    mixed_every: int = param(10, "... every this many adversarial steps (scaled with adv_steps under a budget)",
                             kind=SIZE, check=at_least(1), scale_with="adv_steps")
    mixed_m: int = param(8, "generator completions per real prefix (our value: not checked against the paper's "
                            "experiments)", check=at_least(1))
    baseline: Literal["none", "mean"] = param("mean", "b: none (0) or the mean weight of a prefix's group (1)",
                                              source=MALIGAN)


class MixedMaliGANAgent(AdversarialAgent):
    """MaliGAN's sequential algorithm with mixed MLE training (Che et al. 2017, Algorithm 2).

    With N = :func:`clamp_length` (adversarial iteration, T, ``mixed_K``, ``mixed_every``), per
    generator step:

    1. draw B = ``batch_size`` real sequences x_i; clamp their first N tokens;
    2. draw m = ``mixed_m`` completions per prefix, x^{ij}_{N+1:T} ~ p_θ(· | x^i_{1:N}), with
       the current generator's batched :meth:`~agents.generator.Generator.rollout`
       (:meth:`mixed_batch`; a real sequence shorter than N is clamped whole);
    3. weights normalized over the m samples of each prefix:
       w_ij = m · r_D(x^{ij}) / Σ_k r_D(x^{ik}) (``maligan_weights`` per row), minus b = mean_j w_ij = 1
       (``baseline="mean"``; ``"none"``: b = 0);
    4. update θ by descending

           L(θ) = - 1/(B·m·T) Σ_{i,j} [ Σ_{t≤N} log p_θ(x^i_t | x^i_{<t})                (MLE on the clamped part)
                                       + (w_ij - b) Σ_{t>N} log p_θ(x^{ij}_t | x^{ij}_{<t}) ]  (MaliGAN on the rest)

       The paper's estimator is Σ_i [ Σ_{t≤N} ∇log p_θ(x^i_t|·) + Σ_j (r_D(x^{ij}) / Σ_k r_D(x^{ik}) - b')
       Σ_{t>N} ∇log p_θ(x^{ij}_t|·) ]; with w_ij = m · r_D / Σ_k r_D and b = m·b', the gradient of
       L is that estimator times m / (B·m·T) = 1 / (B·T): the same weighting of the two terms,
       scaled to a per-token mean (each prefix appears m times, so the first term of L is m
       times the MLE loss of the real prefixes, as the second is m times the weighted sum).

    N = T is pure MLE on real data; N = 0 is MaliGAN with m samples per group. The
    discriminator is trained on real sequences against mixed samples
    (:meth:`discriminator_fakes`, the paper's lines 6-8).
    No public code base implements this algorithm; this follows the paper's description.
    """

    name = "maligan-mixed"
    Config: ClassVar[type] = MixedMaliGANConfig
    config: MixedMaliGANConfig

    def check_scorer(self) -> None:
        self.scorer = maligan_scorer(self)

    def clamp_length(self) -> int:
        """N for the current iteration (adversarial iterations count from 0)."""
        c = self.config
        return clamp_length(max(0, self.iteration - self.adv_start), self.data.max_length, c.mixed_K, c.mixed_every)

    @torch.no_grad()
    def mixed_batch(self, real: torch.Tensor, real_lengths: torch.Tensor, N: int,
                    m: Optional[int] = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Clamp the first N tokens of each real row and sample m (default ``mixed_m``) completions of each.

        real (B, T), real_lengths (B,) -> tokens (B·m, T) (row i·m + j: prefix i, sample j;
        padded after EOS), lengths (B·m,), clamped (B·m, T) bool (True on the real tokens).
        """
        m = self.config.mixed_m if m is None else m
        rows = real.repeat_interleave(m, dim=0)
        plen = real_lengths.repeat_interleave(m).clamp(max=N)
        full = self._generator.rollout(rows, plen, temperature=self.config.temperature, generator=self.sample_rng)
        tokens, lengths = finish_sequences(full, self.data.eos_id, self.data.pad_id)
        return tokens, lengths, length_mask(plen, real.shape[1])

    def discriminator_fakes(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Algorithm 2, lines 6-8: the discriminator's negatives are mixed samples, the first N
        tokens of real sequences completed by p_θ. While N = T (discriminator pretraining, the
        pure-MLE start) a mixed sample would be a real sequence, so free samples are used; a real
        sequence no longer than N (corpora) is replaced by a free sample for the same reason."""
        N, T = self.clamp_length(), self.data.max_length
        if self.phase() != "adv" or N >= T:
            return self.fake_batch(n)
        real, real_len = self.real_batch(n)
        tokens, lengths, _ = self.mixed_batch(real, real_len, N, m=1)
        whole = real_len <= N
        if bool(whole.any()):
            free, free_len = self.fake_batch(int(whole.sum()))
            tokens[whole], lengths[whole] = free, free_len
        return tokens, lengths

    def generator_step(self) -> Dict[str, float]:
        gen, T = self._generator, self.data.max_length
        B, m = self.config.batch_size, self.config.mixed_m
        N = self.clamp_length()
        real, real_len = self.real_batch(B)
        if N >= T:  # nothing generated: MLE on the real batch
            loss = self.mle_loss(real, real_len)
            return {"g_loss": self.optimizer_step(self.gen_opt, loss, "g_loss"), "clamp_length": float(N),
                    "mle_loss": float(loss.detach())}
        tokens, lengths, clamped = self.mixed_batch(real, real_len, N)
        valid = length_mask(lengths, T)
        mle_part, gen_part = clamped & valid, ~clamped & valid
        logits = scorers.score(self.scorer, tokens, lengths).to(self.device).view(B, m)
        w = maligan_weights(logits)                                         # (B, m), each row mean 1
        b = w.mean(1, keepdim=True) if self.config.baseline == "mean" else torch.zeros_like(w[:, :1])
        adv = (w - b).reshape(B * m)                                        # w_ij - b
        lp = gen.log_probs(tokens)                                          # (B·m, T)
        mle_sum = (lp * mle_part).sum()
        mali_sum = (adv * (lp * gen_part).sum(1)).sum()
        loss = -(mle_sum + mali_sum) / (B * m * T)
        g_loss = self.optimizer_step(self.gen_opt, loss, "g_loss")
        stats = {"g_loss": g_loss, "clamp_length": float(N), "weight_max": float(w.max())}
        if bool(mle_part.any()):  # with N = 0 no token is clamped: no MLE loss (0 would read as a perfect fit)
            stats["mle_loss"] = float(-(mle_sum / mle_part.sum()).detach())
        return stats
