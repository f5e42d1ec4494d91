"""Actor-critic adversarial text generation (MaskGAN-style, unconditional).

MaskGAN (Fedus et al. 2018) trains the generator with per-token rewards from a discriminator
that scores every prefix, and a learned critic as the baseline. Here (no in-filling mask: every
token is generated), per generator step with N = ``batch_size`` samples x ~ p_θ:

    r_t   = log D(x_{≤t})                      dense reward (``rnn`` discriminator, transform ``log``)
    R_t   = Σ_{s=t}^{L-1} γ^{s-t} r_s          discounted return (γ = ``gamma``)
    V_t   = V_φ(h_t)                            critic: an MLP value head on the generator's hidden
                                                state h_t (the state in which x_t is chosen, i.e.
                                                after reading x_{<t}), detached from θ
    A_t   = clip(R_t - V_t, -c, c)              advantage, c = ``adv_clip`` (MaskGAN's
                                                ``advantage_clipping``; 0 disables clipping)
    L_G(θ) = - Σ_{i,t<L_i} A_{i,t} log p_θ(x_{i,t} | x_{i,<t}) / Σ_i L_i
    L_V(φ) =   Σ_{i,t<L_i} (R_{i,t} - V_{i,t})² / Σ_i L_i
    θ ← Adam_θ(∇L_G) (``gen_lr``),  φ ← Adam_φ(∇L_V) (``critic_lr``), both every step (joint).

``discriminator="oracle"``: r_t = log p_oracle(x_t | x_<t), so R_0 (γ = 1) is the sequence's
oracle log-likelihood.

The fields added to :mod:`agents.adversarial`'s are :class:`ActorCriticConfig`'s.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Dict, Optional

import torch
from torch import nn

from agents.adversarial import (
    AdversarialAgent,
    AdversarialConfig,
    check_discriminator,
    check_transform,
    discounted_returns,
    resolve_transform,
)
from agents.config import MASKGAN, at_least, nonnegative, param, positive, unit
from agents.mle import check_finite, derive_seed
from discriminators.base import load_optimizer_state, seeded
from textgym.masks import length_mask, masked_mean
from textgym.rewards import DenseReward


class Critic(nn.Module):
    """V_φ(h): an MLP value head on generator hidden states, (..., H) -> (...)."""

    def __init__(self, hidden_dim: int, width: int = 64, seed: int = 0) -> None:
        super().__init__()
        with seeded(seed):
            self.net = nn.Sequential(nn.Linear(hidden_dim, width), nn.Tanh(), nn.Linear(width, 1))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h).squeeze(-1)


@dataclass
class ActorCriticConfig(AdversarialConfig):
    """Fields of the MaskGAN-style actor-critic."""

    discriminator: Any = param("rnn", "a discriminators registry name with per-prefix scores, 'oracle', or an object of "
                                      "the Discriminator protocol", check=check_discriminator, source=MASKGAN)
    transform: Optional[str] = param("log", "reward transform of the discriminator's prefix logits (log: log D)",
                                     check=check_transform, source=MASKGAN)
    gamma: float = param(0.89, "discount (rl_discount_rate; the maskgan preset: 0.89072)", check=unit, source=MASKGAN)
    adv_clip: float = param(5.0, "advantage clipping c (0: none)", check=nonnegative, source=MASKGAN)
    critic_lr: float = param(5e-3, "Adam learning rate of the critic (critic_learning_rate)", check=positive,
                             source=MASKGAN)
    critic_hidden: int = param(64, "hidden units of the critic's MLP", check=at_least(1))
    critic_warmup: int = param(50, "critic-only updates before the first actor update (a calibrated baseline from the "
                                   "start; our choice, not the paper's)", check=at_least(0))


class ActorCriticAgent(AdversarialAgent):
    """MaskGAN-style actor-critic (the update rule is in the module docstring)."""

    name = "maskgan"
    Config: ClassVar[type] = ActorCriticConfig
    config: ActorCriticConfig

    def __init__(self, data, config=None, device="cpu", seed=0) -> None:
        super().__init__(data, config, device, seed)
        c = self.config
        self.critic = Critic(c.hidden_dim, c.critic_hidden, seed=derive_seed(seed, "critic-init")).to(self.device)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=c.critic_lr)

    def check_scorer(self) -> None:
        transform = "identity" if self.config.oracle_reward else resolve_transform(self.config.transform)
        # DenseReward refuses scorers without per-prefix scores and bad transforms.
        self.reward = DenseReward(self.scorer, transform)
        self.reward.bind(self.data.vocab_size, self.data.eos_id, self.data.pad_id)

    def adversarial_step(self) -> Dict[str, float]:
        if self.iteration == self.adv_start:  # the critic learns V before the actor follows its advantages
            for _ in range(self.config.critic_warmup):
                self.generator_step(actor=False)
        return super().adversarial_step()

    def generator_step(self, actor: bool = True) -> Dict[str, float]:
        gen, T, c = self._generator, self.data.max_length, self.config
        tokens, lengths = gen.sample_with_lengths(c.batch_size, temperature=c.temperature, generator=self.sample_rng)
        mask = length_mask(lengths, T)
        with torch.no_grad():
            r = self.reward.sequence_rewards(tokens, lengths)                  # r_t = log D(x_{≤t})
            R = discounted_returns(r, lengths, c.gamma)                       # R_t
        logits, hidden = gen(tokens)
        lp = gen.token_log_probs(logits, tokens)                              # log p_θ(x_t | x_<t)
        V = self.critic(hidden.detach())                                      # V_φ(h_t)
        A = (R - V).detach()
        if c.adv_clip > 0:
            A = A.clamp(-c.adv_clip, c.adv_clip)                              # clip(R_t - V_t, -c, c)
        g_loss = -masked_mean(A * lp, mask)
        v_loss = masked_mean((R - V) ** 2, mask)
        g_value = self.optimizer_step(self.gen_opt, g_loss, "g_loss") if actor else float(g_loss.detach())
        v_value = check_finite(v_loss.detach(), "critic_loss", self.iteration)
        self.critic_opt.zero_grad(set_to_none=True)
        v_loss.backward()
        self.critic_opt.step()
        return {
            "g_loss": g_value,
            "critic_loss": v_value,
            "reward": float(masked_mean(r, mask)),
            "return": float(masked_mean(R, mask)),
            "advantage": float(masked_mean(A, mask)),
            "sample_length": float(lengths.float().mean()),
        }

    def state_dict(self) -> Dict[str, Any]:
        state = super().state_dict()
        state["critic"] = self.critic.state_dict()
        state["critic_opt"] = self.critic_opt.state_dict()
        return state

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.critic.load_state_dict(state["critic"])
        load_optimizer_state(self.critic_opt, state["critic_opt"])
