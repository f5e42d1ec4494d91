"""Policy-gradient (REINFORCE) adversarial text generation: SeqGAN, MaliGAN-basic, ScratchGAN.

Every agent here generates whole sequences as one batched tensor operation
(:meth:`agents.generator.Generator.sample_with_lengths`), scores them with textgym's reward
code (:mod:`textgym.rewards`: ``MCReward.sequence_rewards``, ``DenseReward.sequence_rewards``
and, for terminal rewards, :func:`textgym.scorers.score` + the reward's transform), so that
there is one implementation of each reward mode, and takes one policy-gradient step:

    R_{i,t}  = Q̂(x_{i,<t}, x_{i,t})                          reward='mc' (SeqGAN eq. 4: the MC
                                                              rollout estimate is the return)
    R_{i,t}  = Σ_{s=t}^{L_i-1} γ^{s-t} r_{i,s}               reward='dense' or 'terminal'
                                                              (terminal: r only at s = L_i - 1)
    R_{i,t} -= β Σ_{s=t}^{L_i-1} γ^{s-t} k_{i,s}             KL shaping (kl_beta > 0): k = log p_θ -
                                                              log p_ref at the sampled tokens, p_ref
                                                              the generator when adversarial steps
                                                              begin (textgym.rewards.kl_shaped per
                                                              token, then discounted)
    A_{i,t}  = R_{i,t} - b                                    baseline b: none (0), mean (batch
                                                              mean of R), ema (b ← d·b + (1-d)·mean R,
                                                              updated before use, as ScratchGAN)
    L(θ)     = - Σ_{i,t<L_i} A_{i,t} log p_θ(x_{i,t} | x_{i,<t}) / Σ_i L_i
    θ ← Adam(θ, ∇L(θ)), gradient norm clipped to ``grad_clip``

Presets (``agents.PRESETS``) and what they mean:

- ``seqgan`` (Yu et al. 2017): MLE pretraining, D pretraining, then per adversarial step
  ``g_steps`` PG steps with MC rewards (16 rollouts by the delayed rollout policy β,
  β ← 0.8β + 0.2θ after each generator update, :class:`agents.generator.RolloutCopy`), D = P(real)
  (transform ``prob``), no baseline, then ``d_steps`` × (``d_samples`` fresh negatives,
  ``d_epochs`` epochs) of discriminator training.
- ``maligan`` (Che et al. 2017, MaliGAN-basic, :class:`MaliGANAgent`): terminal reward
  w_i = m · r_D(x_i) / Σ_j r_D(x_j), r_D = D/(1-D) = exp(logit) (``maligan_weights``),
  minus the baseline b, rising from 0 to 1 over ``baseline_rise`` updates (``baseline="rise"``,
  the preset; ``"mean"`` is b = mean of w = 1), so the update is mean_i (w_i - b) ∇log p_θ(x_i)
  (per token: divided by the mean length).
- ``maligan-mixed``: MaliGAN's Algorithm 2 is in :mod:`agents.maligan_mixed`.
- ``scratchgan`` (de Masson d'Autume et al. 2019): dense per-prefix rewards 2·D(x_{≤t}) - 1
  from the ``rnn`` discriminator (transform ``centered_prob``, defined here), discount
  γ = 0.23, EMA baseline (decay 0.08), batch 512, Adam β1 = 0.5, no pretraining.
- ``reinforce``: plain REINFORCE with a terminal reward and a batch-mean baseline.

The schedule (MLE, discriminator pretraining, adversarial steps) and the discriminator are
:mod:`agents.adversarial`'s; the fields added here are :class:`ReinforceConfig`'s.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, ClassVar, Dict, Literal, Optional

import torch

from agents.adversarial import AdversarialAgent, AdversarialConfig, discounted_returns, maligan_scorer, resolve_transform
from agents.config import RUN, SEQGAN, SIZE, KLConfig, at_least, param, unit
from agents.generator import Generator, RolloutCopy
from agents.mle import check_finite
from textgym import scorers
from textgym.masks import length_mask, masked_mean
from textgym.rewards import DenseReward, KLController, MCReward, kl_shaped, make_reward


def terminal_rewards(final: torch.Tensor, lengths: torch.Tensor, T: int) -> torch.Tensor:
    """final (N,) -> (N, T) rewards with final[i] at step L_i - 1 and 0 elsewhere."""
    r = torch.zeros(final.shape[0], T, device=final.device, dtype=final.dtype)
    return r.scatter_(1, (lengths.to(final.device) - 1)[:, None], final[:, None])


# ---------------------------------------------------------------------- REINFORCE (SeqGAN, ScratchGAN)
@dataclass
class ReinforceConfig(KLConfig, AdversarialConfig):
    """Fields of the REINFORCE family (SeqGAN, MaliGAN-basic, ScratchGAN, plain REINFORCE)."""

    reward: Literal["mc", "terminal", "dense"] = param("mc", "reward mode: mc (SeqGAN's rollouts), terminal or dense",
                                                      source=SEQGAN)
    n_rollouts: int = param(16, "Monte-Carlo completions per prefix (reward='mc')", kind=SIZE, check=at_least(1),
                            source=SEQGAN)
    mc_cuda_graph: bool = param(False, "replay the MC reward's rollouts and scoring as captured CUDA graphs (MCReward's "
                                       "cuda_graph; CUDA only)", kind=RUN)
    gamma: float = param(1.0, "discount of dense and terminal returns", check=unit)
    baseline: Literal["none", "mean", "ema", "rise"] = param(
        "none", "baseline b: none, the batch mean of R (over tokens), an EMA of it, or rise (b = min(1, k / "
                "baseline_rise) after k generator updates, 0 at the first, for weights of mean 1)", source=SEQGAN)
    baseline_rise: int = param(100, "generator updates over which baseline='rise' goes from 0 to 1", kind=SIZE,
                               check=at_least(1), scale_with="adv_steps")
    baseline_decay: float = param(0.9, "EMA decay d of baseline='ema' (b <- d b + (1 - d) mean R)", check=unit)
    rollout_rate: float = param(0.8, "delayed rollout policy: beta <- rate beta + (1 - rate) theta", check=unit,
                                source=SEQGAN)
    rollout_update: Literal["mix", "hard"] = param("mix", "rollout policy rule: mix (above) or hard (beta <- theta "
                                                          "every rollout_every updates)", source=SEQGAN)
    rollout_every: int = param(1, "period of rollout_update='hard'", check=at_least(1))


class ReinforceAgent(AdversarialAgent):
    """REINFORCE with MC, dense or terminal rewards (the update rule is in the module docstring)."""

    name = "reinforce"
    Config: ClassVar[type] = ReinforceConfig
    config: ReinforceConfig

    def __init__(self, data, config=None, device="cpu", seed=0) -> None:
        super().__init__(data, config, device, seed)
        c = self.config
        self.ema_baseline = 0.0
        self.g_updates = 0
        self.rollout_copy: Optional[RolloutCopy] = None
        if c.reward == "mc":
            self.rollout_copy = RolloutCopy(self._generator, c.rollout_rate, c.rollout_update, c.rollout_every)
        self.kl: Optional[KLController] = c.kl_controller()
        self.kl_reference: Optional[Generator] = None  # a frozen copy of the generator, set when adversarial steps begin

    def reward_transform(self) -> Any:
        """The transform applied to scorer outputs (identity in oracle mode)."""
        if self.config.oracle_reward:
            return "identity"
        return resolve_transform(self.config.transform)

    def check_scorer(self) -> None:
        c = self.config
        kwargs = {}
        if c.reward == "mc":
            kwargs = {"n_rollouts": c.n_rollouts, "temperature": c.temperature, "cuda_graph": c.mc_cuda_graph}
        # textgym refuses bad combinations (a probability transform on a plain score, dense
        # rewards without per-prefix scores, a batch transform outside terminal rewards).
        self.reward = make_reward(c.reward, self.scorer, self.reward_transform(), **kwargs)
        self.reward.bind(self.data.vocab_size, self.data.eos_id, self.data.pad_id)

    # ------------------------------------------------------------------ returns and baseline
    @torch.no_grad()
    def returns(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """R (N, T) of finished sequences, 0 beyond each length (see the module docstring)."""
        T = tokens.shape[1]
        if isinstance(self.reward, MCReward):
            assert self.rollout_copy is not None  # made with the MC reward
            self.reward.set_rollout_policy(self.rollout_copy)
            return self.reward.sequence_rewards(tokens, lengths, generator=self.sample_rng)
        if isinstance(self.reward, DenseReward):
            r = self.reward.sequence_rewards(tokens, lengths)
        else:
            final = self.reward.transform(scorers.score(self.reward.scorer, tokens, lengths).to(tokens.device))
            r = terminal_rewards(final, lengths, T)
        return discounted_returns(r, lengths, self.config.gamma)

    def baseline(self, returns: torch.Tensor, mask: torch.Tensor) -> float:
        """b for this batch: 0, the batch mean of R over valid tokens, the EMA updated with it
        first, or the rising baseline min(1, k / baseline_rise) (k: generator updates so far)."""
        kind = self.config.baseline
        if kind == "none":
            return 0.0
        if kind == "rise":
            return min(1.0, self.g_updates / self.config.baseline_rise)
        # in float64: a float32 sum of equal returns (a no-information control's log ½) is off by an ulp,
        # and Adam would turn the ±1e-7 advantages into full steps
        mean = float(masked_mean(returns.double(), mask))
        if kind == "mean":
            return mean
        d = self.config.baseline_decay
        self.ema_baseline = d * self.ema_baseline + (1.0 - d) * mean
        return self.ema_baseline

    # ------------------------------------------------------------------ one update
    def adversarial_step(self) -> Dict[str, float]:
        if self.iteration == self.adv_start:
            if self.rollout_copy is not None:
                self.rollout_copy.sync(self._generator)         # Algorithm 1, line 3: β ← θ after pretraining
            if self.kl is not None:
                self.kl_reference = copy.deepcopy(self._generator).requires_grad_(False)
        return super().adversarial_step()

    def generator_step(self) -> Dict[str, float]:
        gen, T = self._generator, self.data.max_length
        tokens, lengths = gen.sample_with_lengths(
            self.config.batch_size, temperature=self.config.temperature, generator=self.sample_rng
        )
        mask = length_mask(lengths, T)
        R = self.returns(tokens, lengths)                       # (N, T)
        lp = gen.log_probs(tokens)                              # log p_θ(x_{i,t} | x_{i,<t})
        kl_stats: Dict[str, float] = {}
        if self.kl is not None and self.kl_reference is not None:
            with torch.no_grad():  # both through one code path, so that k is exactly 0 while θ = θ_ref (Adam
                ours = gen.token_log_probs(gen(tokens)[0], tokens)  # would turn rounding noise into full steps)
                ref = self.kl_reference.token_log_probs(self.kl_reference(tokens)[0], tokens)
            zero = torch.zeros_like(R)
            penalty = kl_shaped(zero, ours, ref, self.kl.beta) * mask   # -β k_{i,t}
            R = R + discounted_returns(penalty, lengths, self.config.gamma)
            kl = float(masked_mean(ours - ref, mask))
            kl_stats = {"kl": kl, "kl_beta": self.kl.beta}
            self.kl.update(kl, int(mask.sum()))
        b = self.baseline(R, mask)
        A = R - b                                               # A_{i,t} = R_{i,t} - b
        loss = -masked_mean(A * lp, mask)                       # - Σ A log p / Σ L_i
        g_loss = self.optimizer_step(self.gen_opt, loss, "g_loss")
        self.g_updates += 1
        if self.rollout_copy is not None:
            self.rollout_copy.update(gen)                       # β ← rate·β + (1-rate)·θ
        return {
            "g_loss": g_loss,
            "reward": check_finite(masked_mean(R, mask), "reward", self.iteration),
            "baseline": b,
            "sample_length": float(lengths.float().mean()),
            **kl_stats,
        }

    def state_dict(self) -> Dict[str, Any]:
        state = super().state_dict()
        state["ema_baseline"] = self.ema_baseline
        state["g_updates"] = self.g_updates
        if self.rollout_copy is not None:
            state["rollout_copy"] = self.rollout_copy.state_dict()
        if self.kl is not None:
            state["kl"] = {"controller": self.kl.state_dict(),
                           "reference": None if self.kl_reference is None else self.kl_reference.state_dict()}
        return state

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.ema_baseline = float(state["ema_baseline"])
        self.g_updates = int(state["g_updates"])
        if self.rollout_copy is not None:
            self.rollout_copy.load_state_dict(state["rollout_copy"])
        if self.kl is not None:
            self.kl.load_state_dict(state["kl"]["controller"])
            if state["kl"]["reference"] is not None:
                self.kl_reference = copy.deepcopy(self._generator).requires_grad_(False)
                self.kl_reference.load_state_dict(state["kl"]["reference"])


# ---------------------------------------------------------------------- MaliGAN-basic
class MaliGANAgent(ReinforceAgent):
    """MaliGAN-basic (Che et al. 2017, Algorithm 1).

    Per step, m = ``batch_size`` samples x_i ~ p_θ, logits s_i of D(x_i), and

        w_i = r_D(x_i) / Σ_j r_D(x_j) · m,   r_D = D/(1-D) = exp(s_i)   (maligan_weights, mean 1)
        ∇θ ≈ (1/m) Σ_i (w_i - b) ∇θ log p_θ(x_i)

    with the paper's baseline b that rises slowly from 0 towards 1 (``baseline="rise"``: b =
    min(1, k / ``baseline_rise``) after k updates, 0 at the first; the paper says only that b rises slowly,
    the linear ramp over half of the adversarial steps is our choice), or the zero-sum
    ``baseline="mean"``, b = mean_i w_i = 1 (a mean over sequences, not tokens). Implemented as
    the REINFORCE loss with the terminal reward w_i and γ = 1 (every token of x_i gets R = w_i):
    -Σ_{i,t} (w_i - b) log p_θ(x_{i,t}|x_{i,<t}) / Σ_i L_i, i.e. the paper's gradient divided by
    the mean length.
    ``discriminator="oracle"`` uses the optimal discriminator :class:`agents.adversarial.OracleRatioScorer`.
    """

    name = "maligan"

    def reward_transform(self) -> Any:
        return "maligan"

    def baseline(self, returns: torch.Tensor, mask: torch.Tensor) -> float:
        if self.config.baseline == "mean":
            return float(returns[:, 0].mean())  # mean_i w_i over sequences (R_{i,0} = w_i)
        return super().baseline(returns, mask)

    def check_scorer(self) -> None:
        c = self.config
        if c.reward != "terminal" or c.transform not in (None, "maligan") or c.gamma != 1.0:
            raise ValueError(
                f"maligan uses reward='terminal', transform='maligan', gamma=1 (got reward={c.reward!r}, "
                f"transform={c.transform!r}, gamma={c.gamma}); use agent 'reinforce' for other rewards"
            )
        self.scorer = maligan_scorer(self)
        super().check_scorer()
