"""In-filling: a seq2seq generator fills the blanks of a masked sequence (MaskGAN, Fedus et al. 2018).

Registered as ``mle-infill`` and ``maskgan-infill`` (``train.py --agent maskgan --task infill``).
Each training sequence x gets fresh blanks from :func:`textgym.infill.make_blanks` (the
agent's own seeded stream); the context ``m(x)`` is x with ``MASK`` at the blanks.

**Generator** (:class:`Seq2SeqGenerator`, :class:`discriminators.infill.Seq2Seq` with a softmax
head): p_θ(x_t | m(x), x_<t) at every position; at a blank the token is drawn from it, elsewhere
the context's token is copied.

**MLE** (``mle-infill``, and the first phase of ``maskgan-infill``): teacher forcing on the
blanks only,

    L(θ) = - Σ_{i,t ∈ blanks} log p_θ(x_{i,t} | m(x_i), x_{i,<t}) / #blanks

**MaskGAN** (``maskgan-infill``), per adversarial step with N = ``batch_size`` real sequences:

    1. x̂ ~ p_θ(· | m(x)) at the blanks                                 fills (p_θ at ``temperature`` τ:
                                                                       softmax(logits / τ), here and in 5.)
    2. r_t = log D_φ(x̂_t | m(x), x̂_≤t) at the blanks, 0 elsewhere      reward (``transform="log"``)
    3. R_t = Σ_{s≥t} γ^{s-t} r_s                                        discounted return (γ = 0.89072)
    4. A_t = clip(R_t - V_ψ(d_t), -c, c)                               advantage from the critic
    5. L_G(θ) = - Σ_{blanks} A_t log p_θ(x̂_t | m(x), x̂_<t) / #blanks   REINFORCE with a critic baseline
    6. L_V(ψ) = Σ_{blanks} (R_t - V_ψ(d_t))² / #blanks
    7. ``d_steps`` updates of D on fresh fills: :meth:`Seq2SeqDiscriminator.loss` (the blanks only)

``discriminator="oracle"`` (oracle data) replaces log D by the oracle's per-token
log-likelihood of the completed sequence, paid as :class:`textgym.infill.InfillVecEnv`'s dense
oracle reward does; ``"constant"`` is the no-information control (r_t = log 1/2).

Recipe (the GAN-mode command of the authors' code for PTB): batch 128, generator lr 3.8877e-5,
discount 0.89072, discriminator lr 5e-4 with 2 updates per generator update, contiguous blanks
at a present rate of 0.5 (``mask_rate`` 0.5), advantage clipping 5. MLE: lr 7.4876e-4 (their
pretraining command; batch 20 there, ours 64 for ``mle-infill`` and 128 in ``maskgan-infill``'s
MLE phase). Deviations, for CPU budgets: one-layer LSTMs of
32 units without attention and variational dropout (theirs: 2 x 650, Luong attention), whose
decoders also read the context token (:mod:`discriminators.infill`), with an untied output layer
(theirs: tied to the embedding); the critic is an MLP on the generator's decoder state with lr
5e-3 and 50 warm-up updates (theirs: an RNN head with lr 5.18e-7), updated with G on G's batch
(theirs: with D, on each D batch); per-blank mean losses, G's gradient clipped at 5 and D's and
the critic's unclipped (theirs: sums, all three clipped at 10); each step updates G, then D
(theirs: D and the critic, then G).

Training stats: ``nll_train`` (and ``g_loss``) in MLE iterations is the mean over the epoch's
batches of each batch's NLL per blank, weighted by the batch's token count (the MLE pass's
weighting; with a fixed ``mask_rate`` a batch's blanks are about that share of its tokens).

Evaluation (:meth:`InfillAgent.evaluate_task`): ``nll_infill``, the generator's NLL per blank
of the true tokens of test sequences (blanks from a fixed seed, the same for every run);
``nll_oracle`` (oracle data), the oracle's per-token NLL of test sequences with their blanks
filled by sampling (``nll_oracle_true``: the same for the true sequences); ``unique2..4``,
:func:`textgym.infill.unique_ngram_share` of those fills. At a temperature τ (the study's sweep)
the fills are drawn from softmax(logits / τ) and ``nll_infill`` is computed under it, the
in-filling analogue of NLL-test along a quality-diversity frontier.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Dict, List, Optional, Tuple

import torch
from torch import nn

from agents.actor_critic import Critic
from agents.adversarial import discounted_returns
from agents.config import MASKGAN, SIZE, at_least, nonnegative, param, positive, unit
from agents.mle import MLEAgent, MLEAgentConfig, MLEConfig, check_finite, derive_seed
from discriminators.base import load_optimizer_state
from discriminators.infill import Seq2Seq, Seq2SeqDiscriminator
from textgym.data import OracleData
from textgym.infill import (
    MASK_MODES,
    ConstantInfillScorer,
    check_mask_options,
    make_blanks,
    maskable_lengths,
    unique_ngram_share,
)
from textgym.masks import length_mask, masked_mean, strip_padding
from textgym.sampling import check_temperature, sample_logits

#: blanks of the evaluation come from this seed: every run is scored on the same blanks
EVAL_MASK_SEED = 20_180_101


class Seq2SeqGenerator(Seq2Seq):
    """p_θ(x_t | m(x), x_<t): :class:`Seq2Seq` with a softmax head over the V tokens.

    ``log_probs(context, filled) -> (N, L)`` teacher-forced log-probabilities of ``filled``
    (differentiable); ``forward`` also returns the decoder states (N, L, H) (the critic's input);
    ``sample(context, lengths)`` fills the blanks (no gradient).
    """

    def build_head(self) -> None:
        self.out = nn.Linear(self.hidden_dim, self.vocab_size)

    def forward(self, context: torch.Tensor, filled: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Teacher forcing: (logits (N, L, V), decoder states (N, L, H))."""
        self.check(context, filled)
        inputs = torch.cat([torch.full_like(filled[:, :1], self.pad_id), filled[:, :-1]], 1)
        states, _ = self.decode(inputs, context, self.encode(context))
        return self.out(states), states

    def log_probs(self, context: torch.Tensor, filled: torch.Tensor) -> torch.Tensor:
        return self.token_log_probs(self(context, filled)[0], filled)

    def token_log_probs(self, logits: torch.Tensor, filled: torch.Tensor) -> torch.Tensor:
        """logits (N, L, V) -> (N, L) log-probabilities of ``filled`` (PAD positions read id V-1:
        callers mask them)."""
        return torch.log_softmax(logits, -1).gather(2, filled.clamp(max=self.vocab_size - 1)[..., None]).squeeze(-1)

    @torch.no_grad()
    def sample(self, context: torch.Tensor, lengths: torch.Tensor, temperature: float = 1.0,
               generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Fill the blanks (``MASK`` in ``context``) left to right: (N, L) complete sequences."""
        N, L = context.shape
        state = self.encode(context)
        y = torch.full((N,), self.pad_id, dtype=torch.long, device=context.device)
        out = context.clone()
        for t in range(L):
            h, state = self.decode(y[:, None], context[:, t : t + 1], state)
            blank = context[:, t] == self.mask_id
            if bool(blank.any()):
                draw = sample_logits(self.out(h[blank.nonzero().squeeze(1), 0]), temperature, generator=generator)
                out[blank, t] = draw
            y = out[:, t]
        return out.masked_fill(~length_mask(lengths, L), self.pad_id)


@dataclass
class InfillConfig(MLEConfig):
    """Fields of the in-filling agents: :class:`agents.mle.MLEConfig` and the blanks."""

    mask_rate: float = param(0.5, "share of each sequence's tokens blanked out, in (0, 1) (1 - is_present_rate)",
                             check=lambda v: None if 0 < v < 1 else "a value in (0, 1)", source=MASKGAN)
    mask_mode: str = param("contiguous", f"how blanks are placed: one of {MASK_MODES}",
                           check=lambda v: None if v in MASK_MODES else f"one of {MASK_MODES}", source=MASKGAN)
    mask_span: Optional[int] = param(None, "contiguous mode: a fixed span length instead of mask_rate", check=at_least(1))
    temperature: float = param(1.0, "sampling temperature of the fills in training and evaluation", check=positive)


@dataclass
class MLEInfillConfig(InfillConfig, MLEAgentConfig):
    """Fields of ``mle-infill``: :class:`InfillConfig` and the ``mle`` agent's early stopping and
    short iterations (:class:`agents.mle.MLEAgentConfig`)."""


@dataclass
class MaskGANInfillConfig(InfillConfig):
    """Fields of ``maskgan-infill`` (the update is in the module docstring)."""

    adv_steps: int = param(200, "adversarial steps", kind=SIZE, check=at_least(0))
    g_steps: int = param(1, "generator updates per adversarial step", check=at_least(1))
    gen_lr: float = param(3.8877e-5, "Adam learning rate of adversarial generator updates (gen_learning_rate)",
                          check=positive, source=MASKGAN)
    gamma: float = param(0.89072, "discount (rl_discount_rate)", check=unit, source=MASKGAN)
    adv_clip: float = param(5.0, "advantage clipping c (0: none)", check=nonnegative, source=MASKGAN)
    critic_lr: float = param(5e-3, "Adam learning rate of the critic (theirs: 5.18e-7 for an RNN critic)", check=positive)
    critic_hidden: int = param(64, "hidden units of the critic's MLP", check=at_least(1))
    critic_warmup: int = param(50, "critic-only updates before the first actor update (our choice)", check=at_least(0))
    discriminator: str = param("seq2seq", "'seq2seq' (context-conditioned, trained), 'constant' (no-information "
                                          "control) or 'oracle' (oracle data)", source=MASKGAN)
    d_lr: float = param(5e-4, "Adam learning rate of the discriminator (dis_learning_rate)", check=positive,
                        source=MASKGAN)
    d_steps: int = param(2, "discriminator updates per adversarial step (dis_train_iterations)", kind=SIZE,
                         check=at_least(0), source=MASKGAN)
    d_pretrain_steps: int = param(50, "discriminator pretraining iterations (each d_steps updates)", kind=SIZE,
                                  check=at_least(0))
    d_emb_dim: int = param(32, "discriminator embedding size", check=at_least(1))
    d_hidden_dim: int = param(32, "discriminator LSTM size", check=at_least(1))


class InfillAgent(MLEAgent):
    """``mle-infill``: teacher-forced MLE of :class:`Seq2SeqGenerator` on the blanks."""

    name = "mle-infill"
    Config: ClassVar[type] = MLEInfillConfig
    config: InfillConfig

    def __init__(self, data, config=None, device="cpu", seed=0) -> None:
        super().__init__(data, config, device, seed)
        c = self.config
        check_mask_options(c.mask_rate, c.mask_mode, c.mask_span, self.data.max_length)
        self.check_span("training", self.train_tokens, self.train_lengths)
        if self.val_size:
            self.check_span("validation", self.val_tokens, self.val_lengths)
        self.mask_rng = torch.Generator(device=self.device).manual_seed(derive_seed(seed, "blanks"))
        self.pad_id, self.mask_id = self.data.vocab_size, self.data.vocab_size + 1

    def check_span(self, what: str, tokens: torch.Tensor, lengths: torch.Tensor) -> None:
        """ValueError naming ``what`` when ``mask_span`` is longer than one of these sequences'
        maskable tokens (:func:`~textgym.infill.maskable_lengths`: a sentence cut at max_length has
        no ``<eos>`` to spare)."""
        span = self.config.mask_span
        if span is not None and len(lengths):
            shortest = int(maskable_lengths(lengths.cpu(), self.data.eos_id, tokens.cpu()).min())
            if span > shortest:
                raise ValueError(f"mask_span={span} is longer than the shortest {what} sequence ({shortest} maskable "
                                 "tokens)")

    def check_evaluation(self, test_size: Optional[int]) -> Tuple[torch.Tensor, torch.Tensor]:
        """The sequences :meth:`evaluate_task` scores with ``test_size`` (tokens, lengths): the test
        set's first ``test_size`` (all with None; the training set's without a test set). ValueError
        when ``mask_span`` does not fit one of them; the driver calls it before training starts."""
        data = self.data
        test, test_len = (data.test, data.test_lengths) if data.test is not None else (data.train, data.train_lengths)
        assert test_len is not None
        k = min(len(test), test_size or len(test))
        self.check_span("evaluated test" if data.test is not None else "evaluated training", test[:k], test_len[:k])
        return test[:k], test_len[:k]

    def build_generator(self) -> Seq2SeqGenerator:
        c = self.config
        gen = Seq2SeqGenerator(self.data.vocab_size, self.data.max_length, emb_dim=c.emb_dim, hidden_dim=c.hidden_dim,
                               seed=derive_seed(self.seed, "generator-init"))
        if c.init == "seqgan":
            with torch.no_grad():
                g = torch.Generator().manual_seed(derive_seed(self.seed, "generator-init"))
                for p in gen.parameters():
                    p.copy_(torch.randn(p.shape, generator=g) * 0.1)
        return gen

    @property
    def generator(self) -> Any:
        return self._generator

    # ------------------------------------------------------------------ blanks
    def blanks_for(self, tokens: torch.Tensor, lengths: torch.Tensor,
                   generator: Optional[torch.Generator] = None) -> torch.Tensor:
        c = self.config
        return make_blanks(lengths, self.data.max_length, c.mask_rate, c.mask_mode, c.mask_span, eos_id=self.data.eos_id,
                           tokens=tokens, generator=self.mask_rng if generator is None else generator)

    def context_of(self, tokens: torch.Tensor, lengths: torch.Tensor, blanks: torch.Tensor) -> torch.Tensor:
        """The masked sequence m(x): MASK at the blanks, PAD beyond the length."""
        valid = length_mask(lengths, tokens.shape[1])
        return tokens.masked_fill(~valid, self.pad_id).masked_fill(blanks, self.mask_id)

    # ------------------------------------------------------------------ MLE on the blanks
    def blank_nll(self, tokens: torch.Tensor, lengths: torch.Tensor, blanks: torch.Tensor) -> torch.Tensor:
        """Mean NLL of the true tokens at the blanks (differentiable)."""
        real = tokens.masked_fill(~length_mask(lengths, tokens.shape[1]), self.pad_id)
        lp = self._generator.log_probs(self.context_of(tokens, lengths, blanks), real)
        return -masked_mean(lp, blanks)

    def mle_loss(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.blank_nll(tokens, lengths, self.blanks_for(tokens, lengths))

    def validation_nll(self) -> float:
        g = torch.Generator(device=self.device).manual_seed(EVAL_MASK_SEED)
        with torch.no_grad():
            return float(self.blank_nll(self.val_tokens, self.val_lengths, self.blanks_for(self.val_tokens, self.val_lengths, g)))

    # ------------------------------------------------------------------ evaluation (the driver calls it)
    @torch.no_grad()
    def evaluate_task(self, n_samples: int, test_size: Optional[int], seed: int,
                      temperature: Optional[float] = None) -> Tuple[Dict[str, float], List[str]]:
        """The in-filling metrics (module docstring) and lines of text showing fills in [brackets].

        ``temperature`` (default: the config's) is the fills' sampling temperature τ, and
        ``nll_infill`` is the NLL of the true blank tokens under the same tempered distribution,
        -log softmax(logits / τ), as NLL-test at a temperature for free generation: a sweep over τ
        traces the frontier of ``nll_oracle`` (quality) against ``nll_infill`` (coverage). The
        sequences are the test set's first ``test_size`` (the training set's without a test set,
        which then measures fit, not generalization).
        """
        tau = float(self.config.temperature if temperature is None else temperature)
        check_temperature(tau)
        data, gen = self.data, self._generator
        test, test_len = self.check_evaluation(test_size)
        k = len(test)
        g = torch.Generator(device=self.device).manual_seed(EVAL_MASK_SEED)
        tok, lens = test.to(self.device), test_len.to(self.device)
        blanks = self.blanks_for(tok, lens, g)
        gen.eval()
        real = tok.masked_fill(~length_mask(lens, tok.shape[1]), self.pad_id)
        logits, _ = gen(self.context_of(tok, lens, blanks), real)
        lp = torch.log_softmax(logits / tau, -1).gather(2, real.clamp(max=gen.vocab_size - 1)[..., None]).squeeze(-1)
        out: Dict[str, float] = {"nll_infill": float(-masked_mean(lp, blanks))}
        n = min(k, n_samples)
        tok, lens, blanks = tok[:n], lens[:n], blanks[:n]
        sample_rng = torch.Generator(device=self.device).manual_seed(seed)
        filled = gen.sample(self.context_of(tok, lens, blanks), lens, tau, sample_rng)
        gen.train()
        if isinstance(data, OracleData):  # scored on the CPU, as the other agents' NLL-oracle (no TF32 rounding on a GPU)
            valid = length_mask(lens, tok.shape[1]).cpu()
            for name, seqs in (("nll_oracle", filled), ("nll_oracle_true", tok)):
                lp = data.oracle_on("cpu").log_probs(strip_padding(seqs, lens).cpu())
                out[name] = float(-(lp * valid).sum() / valid.sum())
        for order in (2, 3, 4):
            out[f"unique{order}"] = unique_ngram_share(filled, lens, blanks, order)
        lines = []
        for row, length, b in zip(filled[:50].tolist(), lens[:50].tolist(), blanks[:50].tolist(), strict=True):
            lines.append(" ".join(f"[{data.decode([t])}]" if bl else data.decode([t])
                                  for t, bl in zip(row[:length], b[:length], strict=True)))
        return out, lines

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> Dict[str, Any]:
        return {**super().state_dict(), "mask_rng": self.mask_rng.get_state()}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.mask_rng.set_state(state["mask_rng"])


class MaskGANInfillAgent(InfillAgent):
    """``maskgan-infill``: MLE on the blanks, discriminator pretraining, then the actor-critic
    steps of the module docstring."""

    name = "maskgan-infill"
    Config: ClassVar[type] = MaskGANInfillConfig
    config: MaskGANInfillConfig

    def __init__(self, data, config=None, device="cpu", seed=0) -> None:
        super().__init__(data, config, device, seed)
        c = self.config
        choices = ("seq2seq", "constant", "oracle")
        if c.discriminator not in choices:
            raise ValueError(f"discriminator must be one of {choices} for in-filling, got {c.discriminator!r}")
        self.oracle = None
        self.discriminator: Optional[Seq2SeqDiscriminator] = None
        self.scorer: Any = ConstantInfillScorer()
        if c.discriminator == "oracle":
            if not isinstance(self.data, OracleData):
                raise ValueError("discriminator='oracle' needs the synthetic oracle data (data='oracle')")
            self.oracle = self.data.oracle_on(self.device)
        elif c.discriminator == "seq2seq":
            self.discriminator = Seq2SeqDiscriminator(
                self.data.vocab_size, self.data.max_length, emb_dim=c.d_emb_dim, hidden_dim=c.d_hidden_dim,
                seed=derive_seed(seed, "discriminator-init")).to(self.device)
            self.scorer = self.discriminator
            self.d_opt = torch.optim.Adam(self.discriminator.parameters(), lr=c.d_lr)
        self.gen_opt = torch.optim.Adam(self._generator.parameters(), lr=c.gen_lr)
        self.critic = Critic(c.hidden_dim, c.critic_hidden, seed=derive_seed(seed, "critic-init")).to(self.device)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=c.critic_lr)

    # ------------------------------------------------------------------ schedule
    @property
    def n_d_pretrain(self) -> int:
        return self.config.d_pretrain_steps if self.discriminator is not None else 0

    @property
    def adv_start(self) -> int:
        return self.config.mle_epochs + self.n_d_pretrain

    @property
    def total_iterations(self) -> int:
        return self.adv_start + self.config.adv_steps

    def train_iteration(self) -> Dict[str, Any]:
        if self.iteration < self.config.mle_epochs:
            stats: Dict[str, Any] = {"phase": "mle", **self.mle_epoch()}
        elif self.iteration < self.adv_start:
            stats = {"phase": "d_pretrain", **self.discriminator_steps()}
        else:
            if self.iteration == self.adv_start:
                for _ in range(self.config.critic_warmup):
                    self.generator_step(actor=False)
            g = [self.generator_step() for _ in range(self.config.g_steps)]
            stats = {"phase": "adv", **{k: sum(s[k] for s in g) / len(g) for k in g[0]}, **self.discriminator_steps()}
        self.iteration += 1
        return stats

    # ------------------------------------------------------------------ batches
    def real_batch(self) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(tokens, lengths, blanks, context) of ``batch_size`` training sequences with fresh blanks."""
        idx = torch.randint(len(self.train_tokens), (self.config.batch_size,), generator=self.data_rng).to(self.device)
        tok, lens = self.train_tokens[idx], self.train_lengths[idx]
        tok = tok.masked_fill(~length_mask(lens, tok.shape[1]), self.pad_id)
        blanks = self.blanks_for(tok, lens)
        return tok, lens, blanks, self.context_of(tok, lens, blanks)

    @torch.no_grad()
    def rewards(self, context: torch.Tensor, filled: torch.Tensor, lengths: torch.Tensor,
                blanks: torch.Tensor) -> torch.Tensor:
        """r (N, L): log D at the blanks (0 elsewhere), or the oracle's log-likelihood paid per blank."""
        if self.oracle is None:
            logd = torch.nn.functional.logsigmoid(self.scorer.score_filled(context, filled, lengths))
            return logd * blanks
        lp = self.oracle.log_probs(strip_padding(filled, lengths)).to(self.device) * length_mask(lengths, filled.shape[1])
        # blank t is paid the log-likelihood of positions t .. (next blank - 1), as the env's dense oracle reward
        j = torch.cumsum(blanks.long(), 1) - 1  # position s belongs to blank number j_s (-1: before the first)
        per_blank = torch.zeros_like(lp).scatter_add_(1, j.clamp(min=0), lp * (j >= 0))
        return per_blank.gather(1, j.clamp(min=0)) * blanks  # at blank number j, its sum

    # ------------------------------------------------------------------ updates
    def generator_step(self, actor: bool = True) -> Dict[str, float]:
        c, gen = self.config, self._generator
        tok, lens, blanks, context = self.real_batch()
        filled = gen.sample(context, lens, c.temperature, self.sample_rng)                  # 1. x̂
        r = self.rewards(context, filled, lens, blanks)                                     # 2. r_t
        R = discounted_returns(r, lens, c.gamma)                                            # 3. R_t
        logits, states = gen(context, filled)
        lp = gen.token_log_probs(logits / c.temperature, filled)  # the policy that drew x̂
        V = self.critic(states.detach())
        A = (R - V).detach()
        if c.adv_clip > 0:
            A = A.clamp(-c.adv_clip, c.adv_clip)                                            # 4. A_t
        g_loss = -masked_mean(A * lp, blanks)                                               # 5.
        v_loss = masked_mean((R - V) ** 2, blanks)                                          # 6.
        g_value = self.optimizer_step(self.gen_opt, g_loss, "g_loss") if actor else float(g_loss.detach())
        v_value = check_finite(v_loss.detach(), "critic_loss", self.iteration)
        self.critic_opt.zero_grad(set_to_none=True)
        v_loss.backward()
        self.critic_opt.step()
        return {"g_loss": g_value, "critic_loss": v_value, "reward": float(masked_mean(r, blanks)),
                "return": float(masked_mean(R, blanks)), "advantage": float(masked_mean(A, blanks))}

    def discriminator_steps(self) -> Dict[str, float]:
        """``d_steps`` updates of D on fresh fills (7.); returns the last loss and the accuracies."""
        if self.discriminator is None:
            return {}
        d = self.discriminator
        stats: Dict[str, float] = {}
        for _ in range(self.config.d_steps):
            tok, lens, blanks, context = self.real_batch()
            fake = self._generator.sample(context, lens, self.config.temperature, self.sample_rng)
            loss = d.loss(context, tok, fake, blanks)
            value = check_finite(loss.detach(), "d_loss", self.iteration)
            self.d_opt.zero_grad(set_to_none=True)
            loss.backward()
            self.d_opt.step()
            with torch.no_grad():
                acc_real = float((d.score_filled(context, tok)[blanks] > 0).float().mean())
                acc_fake = float((d.score_filled(context, fake)[blanks] < 0).float().mean())
            stats = {"d_loss": value, "d_acc_real": acc_real, "d_acc_fake": acc_fake,
                     "d_acc": 0.5 * (acc_real + acc_fake)}
        return stats

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> Dict[str, Any]:
        state = {**super().state_dict(), "gen_opt": self.gen_opt.state_dict(), "critic": self.critic.state_dict(),
                 "critic_opt": self.critic_opt.state_dict()}
        if self.discriminator is not None:
            state.update(discriminator=self.discriminator.state_dict(), d_opt=self.d_opt.state_dict())
        return state

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        super().load_state_dict(state)
        load_optimizer_state(self.gen_opt, state["gen_opt"])
        self.critic.load_state_dict(state["critic"])
        load_optimizer_state(self.critic_opt, state["critic_opt"])
        if self.discriminator is not None:
            self.discriminator.load_state_dict(state["discriminator"])
            load_optimizer_state(self.d_opt, state["d_opt"])

    def _warm_start_part(self, state: Dict[str, Any], part: str) -> None:
        if part != "discriminator" or self.discriminator is None or "discriminator" not in state:
            raise ValueError(f"agent {self.name!r} cannot take a {part} from this run")
        self.discriminator.load_state_dict(state["discriminator"])

