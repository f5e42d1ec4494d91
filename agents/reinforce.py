"""Policy-gradient (REINFORCE) adversarial text generation: SeqGAN, MaliGAN, MaliGAN-mixed, ScratchGAN.

Every agent here generates whole sequences as one batched tensor operation
(:meth:`agents.generator.Generator.sample_with_lengths`), scores them with textgym's reward
code (:mod:`textgym.rewards`: ``MCReward.sequence_rewards``, ``DenseReward.sequence_rewards``
and, for terminal rewards, :func:`textgym.scorers.score` + the reward's transform), so that
there is one implementation of each reward mode, and takes one policy-gradient step:

    R_{i,t}  = Q̂(x_{i,<t}, x_{i,t})                          reward='mc' (SeqGAN eq. 4: the MC
                                                              rollout estimate is the return)
    R_{i,t}  = Σ_{s=t}^{L_i-1} γ^{s-t} r_{i,s}               reward='dense' or 'terminal'
                                                              (terminal: r only at s = L_i - 1)
    A_{i,t}  = R_{i,t} - b                                    baseline b: none (0), mean (batch
                                                              mean of R), ema (b ← d·b + (1-d)·mean R,
                                                              updated before use, as ScratchGAN)
    L(θ)     = - Σ_{i,t<L_i} A_{i,t} log p_θ(x_{i,t} | x_{i,<t}) / Σ_i L_i
    θ ← Adam(θ, ∇L(θ)), gradient norm clipped to ``grad_clip``

Presets (``agents.AGENTS``) and what they mean:

- ``seqgan`` (Yu et al. 2017): MLE pretraining, D pretraining, then per adversarial step
  ``g_steps`` PG steps with MC rewards (16 rollouts by the delayed rollout policy β,
  β ← 0.8β + 0.2θ after each generator update, :class:`agents.generator.RolloutCopy`), D = P(real)
  (transform ``prob``), no baseline, then ``d_steps`` × (``d_samples`` fresh negatives,
  ``d_epochs`` epochs) of discriminator training.
- ``maligan`` (Che et al. 2017, MaliGAN-basic, :class:`MaliGANAgent`): terminal reward
  w_i = m · r_D(x_i) / Σ_j r_D(x_j), r_D = D/(1-D) = exp(logit) (``maligan_weights``),
  minus the baseline b (mean of w: 1), so the update is mean_i (w_i - b) ∇log p_θ(x_i)
  (per token: divided by the mean length).
- ``maligan-mixed`` (:class:`MixedMaliGANAgent`): MaliGAN's Algorithm 2, see its docstring.
- ``scratchgan`` (de Masson d'Autume et al. 2019): dense per-prefix rewards 2·D(x_{≤t}) - 1
  from the ``rnn`` discriminator (transform ``centered_prob``, defined here), discount
  γ = 0.23, EMA baseline (decay 0.08), batch 512, Adam β1 = 0.5, no pretraining.
- ``reinforce``: plain REINFORCE with a terminal reward and a batch-mean baseline.

``reward_scorer="oracle"`` (oracle data only) replaces the discriminator by the oracle's
log-likelihood (the "perfect discriminator"; no discriminator is built or trained, the
``transform`` key is ignored and the reward is the plain log-likelihood: mean per token for
terminal and MC rewards, log p_oracle(x_t | x_<t) per token for dense rewards). For MaliGAN it
is the optimal discriminator's logit log D*/(1 - D*) = log p_oracle(x) - log p_θ(x).

Config keys read here, on top of :mod:`agents.mle`'s (defaults in each class's ``DEFAULTS``,
presets override them):

====================== ============ ===========================================================
key                    default      meaning
====================== ============ ===========================================================
``adv_steps``          200          adversarial steps (SeqGAN's TOTAL_BATCH)
``g_steps``            1            generator PG steps per adversarial step
``gen_lr``             0.01         Adam learning rate of adversarial generator updates
``adam_beta1``         0.9          Adam β1 of the adversarial generator optimizer
``batch_size``         64           sequences per PG step (and per MLE minibatch)
``temperature``        1.0          sampling temperature of training samples and rollouts
``discriminator``      cnn          a ``discriminators`` registry name, or an object of the
                                    Discriminator protocol (trained if it is a torch module,
                                    else used as a fixed scorer)
``discriminator_options`` {}        keyword options of ``discriminators.make``
``d_lr``               1e-4         discriminator learning rate (DiscriminatorTrainer)
``d_batch_size``       64           discriminator minibatch size
``d_steps``            5            per adversarial step: rounds of fresh negatives
``d_epochs``           3            epochs over each round's real + fake set (trainer's ``k``)
``d_samples``          10000        negatives (and as many real sequences) per round
``d_pretrain_steps``   50           discriminator pretraining rounds (one per iteration)
``reward_scorer``      discriminator ``discriminator`` or ``oracle`` (oracle data only)
``reward``             mc           ``mc``, ``terminal`` or ``dense``
``transform``          None         reward transform name (``textgym.rewards.TRANSFORMS`` or
                                    ``centered_prob``); None: ``prob`` for probabilistic scorers
``n_rollouts``         16           MC completions per prefix
``gamma``              1.0          discount of dense/terminal returns
``baseline``           none         ``none``, ``mean`` or ``ema``
``baseline_decay``     0.9          EMA decay d
``rollout_rate``       0.8          β ← rate·β + (1-rate)·θ
``rollout_update``     mix          ``mix`` or ``hard`` (β ← θ every ``rollout_every`` updates)
``rollout_every``      1            see above
``mixed_K``            2            maligan-mixed: N decreases by K ...
``mixed_every``        10           ... every ``mixed_every`` adversarial iterations
``mixed_m``            8            maligan-mixed: completions per real prefix
====================== ============ ===========================================================

Iterations: ``total_iterations = mle_epochs + d_pretrain_steps + adv_steps`` (the middle term
is 0 with ``reward_scorer="oracle"``); ``train_iteration()`` reports ``phase`` = ``"mle"``,
``"d_pretrain"`` or ``"adv"``. Non-finite losses raise FloatingPointError naming the quantity
and the iteration.
"""
from __future__ import annotations

from typing import Any, ClassVar, Dict, List, Optional

import torch

from agents.generator import RolloutCopy
from agents.mle import (
    NONNEG_INT, POSITIVE_FLOAT, POSITIVE_INT, UNIT_FLOAT, MLEAgent, Spec, check_finite, derive_seed, length_mask,
    masked_mean, one_of,
)
from textgym import scorers
from textgym.data import OracleData
from textgym.oracle import _strip
from textgym.rewards import TRANSFORMS, Transform, finish_sequences, make_reward, maligan_weights

# ScratchGAN's reward 2·D - 1 ("MaskGAN uses log(D), but this is more stable empirically").
CENTERED_PROB = Transform("centered_prob", lambda s: 2.0 * torch.sigmoid(s) - 1.0, needs_probability=True)
EXTRA_TRANSFORMS: Dict[str, Transform] = {CENTERED_PROB.name: CENTERED_PROB}


def resolve_transform(name: Optional[str]) -> Any:
    """A transform name -> a name textgym resolves, or one of ``EXTRA_TRANSFORMS``."""
    if name is None or name in TRANSFORMS:
        return name
    if name in EXTRA_TRANSFORMS:
        return EXTRA_TRANSFORMS[name]
    raise ValueError(f"unknown reward transform {name!r}; valid: {sorted([*TRANSFORMS, *EXTRA_TRANSFORMS])}")


# ---------------------------------------------------------------------- pure functions
def discounted_returns(rewards: torch.Tensor, lengths: torch.Tensor, gamma: float) -> torch.Tensor:
    """R_t = Σ_{s=t}^{L-1} γ^{s-t} r_s: rewards (N, T), lengths (N,) -> (N, T), 0 beyond each length."""
    N, T = rewards.shape
    mask = length_mask(lengths.to(rewards.device), T)
    r = rewards * mask
    out = torch.empty_like(r)
    acc = torch.zeros(N, device=r.device, dtype=r.dtype)
    for t in range(T - 1, -1, -1):
        acc = r[:, t] + gamma * acc
        out[:, t] = acc
    return out * mask


def terminal_rewards(final: torch.Tensor, lengths: torch.Tensor, T: int) -> torch.Tensor:
    """final (N,) -> (N, T) rewards with final[i] at step L_i - 1 and 0 elsewhere."""
    r = torch.zeros(final.shape[0], T, device=final.device, dtype=final.dtype)
    return r.scatter_(1, (lengths.to(final.device) - 1)[:, None], final[:, None])


def maligan_advantages(logits: torch.Tensor, baseline: str = "mean") -> torch.Tensor:
    """MaliGAN-basic's per-sequence coefficients w_i - b.

    logits (m,) of D(x_i) -> (m,): w_i = m · r_D(x_i) / Σ_j r_D(x_j) with r_D = D/(1-D) = exp(logit)
    (:func:`textgym.rewards.maligan_weights`, normalized in log space), minus b = mean_i w_i = 1
    (``baseline="mean"``) or b = 0 (``"none"``).
    """
    w = maligan_weights(logits)
    if baseline == "mean":
        return w - w.mean()
    if baseline == "none":
        return w
    raise ValueError(f"maligan baseline must be 'mean' or 'none', got {baseline!r}")


def clamp_length(iteration: int, T: int, K: int, every: int) -> int:
    """MaliGAN-mixed schedule: N = max(0, T - K · ⌊iteration / every⌋) real tokens clamped.

    ``iteration`` counts adversarial iterations from 0: N = T for the first ``every`` of them
    (pure MLE), then T - K, T - 2K, ... down to 0 (pure MaliGAN).
    """
    if iteration < 0 or T < 0 or K < 1 or every < 1:
        raise ValueError(f"clamp_length needs iteration >= 0, T >= 0, K >= 1, every >= 1; got {iteration}, {T}, {K}, {every}")
    return max(0, T - K * (iteration // every))


class OracleRatioScorer:
    """The optimal discriminator on the oracle benchmark, as logits: log p_oracle(x) - log p_θ(x).

    D*(x) = p_data(x) / (p_data(x) + p_θ(x)), so logit D* = log p_data(x) - log p_θ(x) and
    r_D* = D*/(1 - D*) = p_data(x) / p_θ(x): MaliGAN's importance weight with a perfect D.
    Log-likelihoods are sums over the valid positions of each sequence.
    """

    is_probabilistic = True
    supports_prefixes = False

    def __init__(self, oracle: Any, generator: Any) -> None:
        self.oracle, self.generator = oracle, generator
        self.vocab_size = oracle.vocab_size

    @torch.no_grad()
    def score(self, tokens: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        T = tokens.shape[1]
        mask = torch.ones_like(tokens, dtype=torch.bool) if lengths is None else length_mask(lengths, T)
        lo = self.oracle.log_probs(_strip(tokens, lengths, self.vocab_size)).to(tokens.device)
        lg = self.generator.log_probs(tokens).to(tokens.device)
        return ((lo - lg) * mask).sum(1)

    __call__ = score


# ---------------------------------------------------------------------- the shared adversarial loop
class AdversarialAgent(MLEAgent):
    """MLE pretraining, discriminator pretraining, then adversarial steps.

    Subclasses implement :meth:`generator_step` (one generator update; returns stats).
    An adversarial step is ``g_steps`` generator steps followed by ``d_steps`` discriminator
    rounds (skipped with ``reward_scorer="oracle"``).
    """

    name = "adversarial"
    DEFAULTS: ClassVar[Dict[str, Any]] = {
        "adv_steps": 200,
        "g_steps": 1,
        "gen_lr": 0.01,
        "adam_beta1": 0.9,
        "temperature": 1.0,
        "discriminator": "cnn",
        "discriminator_options": {},
        "d_lr": 1e-4,
        "d_batch_size": 64,
        "d_steps": 5,
        "d_epochs": 3,
        "d_samples": 10_000,
        "d_pretrain_steps": 50,
        "reward_scorer": "discriminator",
    }
    SPECS: ClassVar[Dict[str, Spec]] = {
        "adv_steps": NONNEG_INT,
        "g_steps": POSITIVE_INT,
        "gen_lr": POSITIVE_FLOAT,
        "adam_beta1": ((int, float), lambda v: 0 <= v < 1, "a number in [0, 1)"),
        "temperature": POSITIVE_FLOAT,
        "discriminator_options": (dict, lambda v: True, "a dict of keyword options"),
        "d_lr": POSITIVE_FLOAT,
        "d_batch_size": POSITIVE_INT,
        "d_steps": NONNEG_INT,
        "d_epochs": POSITIVE_INT,
        "d_samples": POSITIVE_INT,
        "d_pretrain_steps": NONNEG_INT,
        "reward_scorer": one_of("discriminator", "oracle"),
        "transform": (object, lambda v: v is None or v in TRANSFORMS or v in EXTRA_TRANSFORMS,
                      f"None or one of {sorted([*TRANSFORMS, *EXTRA_TRANSFORMS])}"),
    }

    def __init__(self, data, config=None, device="cpu", seed=0) -> None:
        super().__init__(data, config, device, seed)
        c = self.config
        self.gen_opt = torch.optim.Adam(self._generator.parameters(), lr=c["gen_lr"], betas=(c["adam_beta1"], 0.999))
        self.discriminator: Any = None
        self.d_trainer: Any = None
        if c["reward_scorer"] == "oracle":
            if not isinstance(self.data, OracleData):
                raise ValueError(
                    f"reward_scorer='oracle' needs the synthetic oracle data (data='oracle'), not {self.data.name!r}"
                )
            self.scorer: Any = scorers.OracleScorer(self.data.oracle)
        else:
            self.scorer = self.discriminator = self._build_discriminator()
        self.check_scorer()
        self.d_rng = torch.Generator().manual_seed(derive_seed(seed, "discriminator-dropout"))
        if self.discriminator is not None:
            self.d_trainer = self._build_trainer(self.discriminator)

    # ------------------------------------------------------------------ discriminator
    def _build_discriminator(self) -> Any:
        d = self.config["discriminator"]
        if not isinstance(d, str):
            return d  # an object of the Discriminator protocol
        import discriminators

        with torch.random.fork_rng(devices=[]):  # a seeded initialization that leaves the global RNG alone
            torch.manual_seed(derive_seed(self.seed, "discriminator-init"))
            disc = discriminators.make(
                d, vocab_size=self.data.vocab_size, max_length=self.data.max_length, **self.config["discriminator_options"]
            )
        return disc.to(self.device)

    def _build_trainer(self, disc: Any) -> Any:
        """A DiscriminatorTrainer for torch-module discriminators; None (a fixed scorer) otherwise."""
        if not isinstance(disc, torch.nn.Module):
            return None
        import discriminators

        return discriminators.DiscriminatorTrainer(
            disc, lr=self.config["d_lr"], batch_size=self.config["d_batch_size"], seed=self._d_seed()
        )

    def _d_seed(self) -> int:
        return derive_seed(self.seed, "discriminator")

    def check_scorer(self) -> None:
        """Subclasses refuse scorers that cannot give their reward (ValueError)."""

    @property
    def trains_discriminator(self) -> bool:
        return self.d_trainer is not None

    def real_batch(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """n training sequences drawn without replacement (with, if n exceeds the set) by ``data_rng``."""
        M = self.train_tokens.shape[0]
        if n <= M:
            idx = torch.randperm(M, generator=self.data_rng)[:n]
        else:
            idx = torch.randint(M, (n,), generator=self.data_rng)
        idx = idx.to(self.device)
        return self.train_tokens[idx], self.train_lengths[idx]

    @torch.no_grad()
    def fake_batch(self, n: int, chunk: int = 2048) -> tuple[torch.Tensor, torch.Tensor]:
        """n generator samples at temperature 1 (chunks of ``chunk`` rows to bound memory)."""
        parts = [self._generator.sample_with_lengths(min(chunk, n - i), generator=self.sample_rng) for i in range(0, n, chunk)]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    def discriminator_round(self) -> Dict[str, float]:
        """One round: ``d_samples`` fresh negatives and as many real sequences, ``d_epochs`` epochs."""
        n = int(self.config["d_samples"])
        fake, fake_len = self.fake_batch(n)
        real, real_len = self.real_batch(n)
        # Dropout inside the discriminator draws from the global RNG: fork it and seed it from
        # this agent's own stream so that discriminator training is reproducible and resumable.
        seed = int(torch.randint(0, 2**62, (1,), generator=self.d_rng))
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            out = self.d_trainer.step(real, real_len, fake, fake_len, k=int(self.config["d_epochs"]))
        return {f"d_{k}": check_finite(torch.as_tensor(float(out[k])), f"d_{k}", self.iteration)
                for k in ("loss", "acc_real", "acc_fake") if k in out}

    # ------------------------------------------------------------------ schedule
    @property
    def n_mle(self) -> int:
        return int(self.config["mle_epochs"])

    @property
    def n_d_pretrain(self) -> int:
        return int(self.config["d_pretrain_steps"]) if self.trains_discriminator else 0

    @property
    def adv_start(self) -> int:
        """The iteration at which adversarial training starts."""
        return self.n_mle + self.n_d_pretrain

    @property
    def total_iterations(self) -> int:
        """``mle_epochs + d_pretrain_steps + adv_steps`` (no D pretraining in oracle mode)."""
        return self.adv_start + int(self.config["adv_steps"])

    def phase(self) -> str:
        if self.iteration < self.n_mle:
            return "mle"
        if self.iteration < self.adv_start:
            return "d_pretrain"
        return "adv"

    def train_iteration(self) -> Dict[str, Any]:
        phase = self.phase()
        if phase == "mle":
            stats = self.mle_epoch()
        elif phase == "d_pretrain":
            stats = self.discriminator_round()
        else:
            stats = self.adversarial_step()
        self.iteration += 1
        return {"phase": phase, **stats}

    def adversarial_step(self) -> Dict[str, float]:
        g_stats: List[Dict[str, float]] = [self.generator_step() for _ in range(int(self.config["g_steps"]))]
        stats = {k: sum(s[k] for s in g_stats) / len(g_stats) for k in g_stats[0]}
        if self.trains_discriminator:
            for _ in range(int(self.config["d_steps"])):
                stats.update(self.discriminator_round())  # d_loss, d_acc_real, d_acc_fake of the last round
        return stats

    def generator_step(self) -> Dict[str, float]:
        raise NotImplementedError

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> Dict[str, Any]:
        state = super().state_dict()
        state["gen_opt"] = self.gen_opt.state_dict()
        state["d_rng"] = self.d_rng.get_state()
        if self.discriminator is not None and hasattr(self.discriminator, "state_dict"):
            state["discriminator"] = self.discriminator.state_dict()
        if self.d_trainer is not None:
            state["d_trainer"] = self.d_trainer.state_dict()
        return state

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.gen_opt.load_state_dict(state["gen_opt"])
        self.d_rng.set_state(state["d_rng"])
        if "discriminator" in state and self.discriminator is not None:
            self.discriminator.load_state_dict(state["discriminator"])
        if "d_trainer" in state and self.d_trainer is not None:
            self.d_trainer.load_state_dict(state["d_trainer"])


# ---------------------------------------------------------------------- REINFORCE (SeqGAN, ScratchGAN)
class ReinforceAgent(AdversarialAgent):
    """REINFORCE with MC, dense or terminal rewards (the update rule is in the module docstring)."""

    name = "reinforce"
    DEFAULTS: ClassVar[Dict[str, Any]] = {
        "reward": "mc",
        "transform": None,
        "n_rollouts": 16,
        "gamma": 1.0,
        "baseline": "none",
        "baseline_decay": 0.9,
        "rollout_rate": 0.8,
        "rollout_update": "mix",
        "rollout_every": 1,
    }
    SPECS: ClassVar[Dict[str, Spec]] = {
        "reward": one_of("mc", "terminal", "dense"),
        "n_rollouts": POSITIVE_INT,
        "gamma": UNIT_FLOAT,
        "baseline": one_of("none", "mean", "ema"),
        "baseline_decay": UNIT_FLOAT,
        "rollout_rate": UNIT_FLOAT,
        "rollout_update": one_of(*RolloutCopy.RULES),
        "rollout_every": POSITIVE_INT,
    }

    def __init__(self, data, config=None, device="cpu", seed=0) -> None:
        super().__init__(data, config, device, seed)
        c = self.config
        self.ema_baseline = 0.0
        self.rollout_copy: Optional[RolloutCopy] = None
        if c["reward"] == "mc":
            self.rollout_copy = RolloutCopy(self._generator, c["rollout_rate"], c["rollout_update"], c["rollout_every"])

    def reward_transform(self) -> Any:
        """The transform applied to scorer outputs (identity in oracle mode)."""
        if self.config["reward_scorer"] == "oracle":
            return "identity"
        return resolve_transform(self.config["transform"])

    def check_scorer(self) -> None:
        c = self.config
        kwargs = {}
        if c["reward"] == "mc":
            kwargs = {"n_rollouts": c["n_rollouts"], "temperature": c["temperature"]}
        # textgym refuses bad combinations (a probability transform on a plain score, dense
        # rewards without per-prefix scores, a batch transform outside terminal rewards).
        self.reward = make_reward(c["reward"], self.scorer, self.reward_transform(), **kwargs)
        self.reward.bind(self.data.vocab_size, self.data.eos_id, self.data.pad_id)

    # ------------------------------------------------------------------ returns and baseline
    @torch.no_grad()
    def returns(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """R (N, T) of finished sequences, 0 beyond each length (see the module docstring)."""
        T = tokens.shape[1]
        mode = self.config["reward"]
        if mode == "mc":
            self.reward.set_rollout_policy(self.rollout_copy)
            return self.reward.sequence_rewards(tokens, lengths, generator=self.sample_rng)
        if mode == "dense":
            r = self.reward.sequence_rewards(tokens, lengths)
        else:
            final = self.reward.transform(scorers.score(self.reward.scorer, tokens, lengths).to(tokens.device))
            r = terminal_rewards(final, lengths, T)
        return discounted_returns(r, lengths, float(self.config["gamma"]))

    def baseline(self, returns: torch.Tensor, mask: torch.Tensor) -> float:
        """b for this batch: 0, the batch mean of R, or the EMA updated with it first."""
        kind = self.config["baseline"]
        if kind == "none":
            return 0.0
        mean = float(masked_mean(returns, mask))
        if kind == "mean":
            return mean
        d = float(self.config["baseline_decay"])
        self.ema_baseline = d * self.ema_baseline + (1.0 - d) * mean
        return self.ema_baseline

    # ------------------------------------------------------------------ one update
    def generator_step(self) -> Dict[str, float]:
        gen, T = self._generator, self.data.max_length
        tokens, lengths = gen.sample_with_lengths(
            int(self.config["batch_size"]), temperature=float(self.config["temperature"]), generator=self.sample_rng
        )
        mask = length_mask(lengths, T)
        R = self.returns(tokens, lengths)                       # (N, T)
        b = self.baseline(R, mask)
        A = R - b                                               # A_{i,t} = R_{i,t} - b
        lp = gen.log_probs(tokens)                              # log p_θ(x_{i,t} | x_{i,<t})
        loss = -masked_mean(A * lp, mask)                       # - Σ A log p / Σ L_i
        g_loss = self.optimizer_step(self.gen_opt, loss, "g_loss")
        if self.rollout_copy is not None:
            self.rollout_copy.update(gen)                       # β ← rate·β + (1-rate)·θ
        return {
            "g_loss": g_loss,
            "reward": check_finite(masked_mean(R, mask), "reward", self.iteration),
            "baseline": b,
            "sample_length": float(lengths.float().mean()),
        }

    def state_dict(self) -> Dict[str, Any]:
        state = super().state_dict()
        state["ema_baseline"] = self.ema_baseline
        if self.rollout_copy is not None:
            state["rollout_copy"] = self.rollout_copy.state_dict()
        return state

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.ema_baseline = float(state["ema_baseline"])
        if self.rollout_copy is not None:
            self.rollout_copy.load_state_dict(state["rollout_copy"])


# ---------------------------------------------------------------------- MaliGAN-basic
class MaliGANAgent(ReinforceAgent):
    """MaliGAN-basic (Che et al. 2017, Algorithm 1).

    Per step, m = ``batch_size`` samples x_i ~ p_θ, logits s_i of D(x_i), and

        w_i = r_D(x_i) / Σ_j r_D(x_j) · m,   r_D = D/(1-D) = exp(s_i)   (maligan_weights, mean 1)
        ∇θ ≈ (1/m) Σ_i (w_i - b) ∇θ log p_θ(x_i),   b = mean_i w_i = 1 (``baseline="mean"``)

    implemented as the REINFORCE loss with the terminal reward w_i, γ = 1 (every token of x_i
    gets R = w_i) and a batch-mean baseline: -Σ_{i,t} (w_i - b) log p_θ(x_{i,t}|x_{i,<t}) / Σ_i L_i.
    ``reward_scorer="oracle"`` uses the optimal discriminator :class:`OracleRatioScorer`.
    """

    name = "maligan"
    DEFAULTS: ClassVar[Dict[str, Any]] = {"reward": "terminal", "transform": "maligan", "gamma": 1.0, "baseline": "mean"}

    def reward_transform(self) -> Any:
        return "maligan"

    def check_scorer(self) -> None:
        c = self.config
        if c["reward"] != "terminal" or c["transform"] not in (None, "maligan") or float(c["gamma"]) != 1.0:
            raise ValueError(
                f"maligan uses reward='terminal', transform='maligan', gamma=1 (got reward={c['reward']!r}, "
                f"transform={c['transform']!r}, gamma={c['gamma']}); use agent 'reinforce' for other rewards"
            )
        if c["reward_scorer"] == "oracle":
            self.scorer = OracleRatioScorer(self.data.oracle, self._generator)
        if not getattr(self.scorer, "is_probabilistic", True):
            raise ValueError(
                f"maligan needs a probabilistic discriminator (logits of P(real)) for r_D = D/(1-D); "
                f"{type(self.scorer).__name__} gives plain scores"
            )
        super().check_scorer()


# ---------------------------------------------------------------------- MaliGAN with mixed MLE training
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

       (each prefix appears m times, so the first term is the MLE loss of the real prefixes;
       1/T makes the scale that of a per-token mean).

    N = T is pure MLE on real data; N = 0 is MaliGAN with m samples per group. The
    discriminator is trained on real sequences against free generator samples.
    No public code base implements this algorithm; this follows the paper's description.
    """

    name = "maligan-mixed"
    DEFAULTS: ClassVar[Dict[str, Any]] = {"mixed_K": 2, "mixed_every": 10, "mixed_m": 8, "baseline": "mean"}
    SPECS: ClassVar[Dict[str, Spec]] = {
        "mixed_K": POSITIVE_INT,
        "mixed_every": POSITIVE_INT,
        "mixed_m": POSITIVE_INT,
        "baseline": one_of("none", "mean"),
    }

    def check_scorer(self) -> None:
        if self.config["reward_scorer"] == "oracle":
            self.scorer = OracleRatioScorer(self.data.oracle, self._generator)
        if not getattr(self.scorer, "is_probabilistic", True):
            raise ValueError(
                f"maligan-mixed needs a probabilistic discriminator (logits of P(real)) for r_D = D/(1-D); "
                f"{type(self.scorer).__name__} gives plain scores"
            )

    def clamp_length(self) -> int:
        """N for the current iteration (adversarial iterations count from 0)."""
        c = self.config
        return clamp_length(max(0, self.iteration - self.adv_start), self.data.max_length, c["mixed_K"], c["mixed_every"])

    @torch.no_grad()
    def mixed_batch(self, real: torch.Tensor, real_lengths: torch.Tensor, N: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Clamp the first N tokens of each real row and sample m completions of each.

        real (B, T), real_lengths (B,) -> tokens (B·m, T) (row i·m + j: prefix i, sample j;
        padded after EOS), lengths (B·m,), clamped (B·m, T) bool (True on the real tokens).
        """
        m = int(self.config["mixed_m"])
        rows = real.repeat_interleave(m, dim=0)
        plen = real_lengths.repeat_interleave(m).clamp(max=N)
        full = self._generator.rollout(rows, plen, temperature=float(self.config["temperature"]), generator=self.sample_rng)
        tokens, lengths = finish_sequences(full, self.data.eos_id, self.data.pad_id)
        return tokens, lengths, length_mask(plen, real.shape[1])

    def generator_step(self) -> Dict[str, float]:
        gen, T = self._generator, self.data.max_length
        B, m = int(self.config["batch_size"]), int(self.config["mixed_m"])
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
        w = torch.stack([maligan_weights(row) for row in logits])          # (B, m), each row mean 1
        b = w.mean(1, keepdim=True) if self.config["baseline"] == "mean" else torch.zeros_like(w[:, :1])
        adv = (w - b).reshape(B * m)                                        # w_ij - b
        lp = gen.log_probs(tokens)                                          # (B·m, T)
        mle_sum = (lp * mle_part).sum()
        mali_sum = (adv * (lp * gen_part).sum(1)).sum()
        loss = -(mle_sum + mali_sum) / (B * m * T)
        g_loss = self.optimizer_step(self.gen_opt, loss, "g_loss")
        return {
            "g_loss": g_loss,
            "clamp_length": float(N),
            "mle_loss": float(-(mle_sum / mle_part.sum().clamp(min=1)).detach()),
            "weight_max": float(w.max()),
        }
