"""The generator policy: one LSTM language model used by every agent, and its delayed rollout copy.

:class:`Generator` is SeqGAN's generator (embedding 32, hidden 32 by default) written as a
``torch.nn.Module``:

- input at step t: the embedding of x_{t-1}; at t = 0 a dedicated BOS row (id V, which is
  also ``pad_id``: padding fed back as input after ``<eos>`` reads the same row and never
  matters, because everything beyond a sequence's length is masked by the callers);
- ``h_t = LSTM(emb(x_{t-1}), h_{t-1})``, ``p(x_t | x_<t) = softmax(W h_t + b)`` over the V
  tokens (never the BOS/pad id).

It follows :class:`textgym.protocols.SequenceModel` (``sample``, ``log_probs``) and
:class:`textgym.protocols.RolloutPolicy` (``rollout``), so textgym's MC reward and metrics use
it exactly as they use the oracle. Teacher forcing runs ``nn.LSTM`` over the whole sequence;
sampling and rollouts step the same weights one token at a time with a precomputed input
projection table ``emb @ W_ih^T + b`` (one row gather per step) and draw tokens with
:func:`textgym.sampling.sample_rows` (inverse CDF, unshifted under the logit bound that |h| <= 1 gives).

:class:`RolloutCopy` is SeqGAN's delayed rollout policy β with an explicit update rule.
"""
from __future__ import annotations

import copy
from typing import Any, Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from discriminators.base import capturing, eval_mode, seeded
from textgym.masks import length_mask
from textgym.rewards import finish_sequences
from textgym.sampling import check_temperature, generator_on, linear_log_softmax, linear_logit_bound, sample_past_prefix

INITS = ("seqgan", "default")


class Generator(nn.Module):
    """LSTM generator over a vocabulary of V tokens.

    Args:
        vocab_size: V; token ids are ``0 .. V-1``, ``V`` is BOS (input only) and padding.
        max_length: T, tokens per sampled sequence.
        eos_id: the end-of-sequence id (0 for corpora) or None (the oracle: fixed length T).
        emb_dim, hidden_dim: embedding and LSTM sizes (SeqGAN: 32, 32).
        init: ``"seqgan"``: every parameter ~ N(0, 0.1) as in SeqGAN's ``init_matrix``;
            ``"default"``: PyTorch's default initialization.
        seed: seeds the initialization (the global RNG is forked, not consumed).
    """

    def __init__(
        self,
        vocab_size: int,
        max_length: int,
        *,
        eos_id: Optional[int] = None,
        emb_dim: int = 32,
        hidden_dim: int = 32,
        init: str = "seqgan",
        seed: int = 0,
    ) -> None:
        super().__init__()
        if vocab_size < 1 or max_length < 1 or emb_dim < 1 or hidden_dim < 1:
            raise ValueError(
                f"vocab_size, max_length, emb_dim and hidden_dim must be >= 1; got {vocab_size}, "
                f"{max_length}, {emb_dim}, {hidden_dim}"
            )
        if init not in INITS:
            raise ValueError(f"unknown init {init!r}; valid: {list(INITS)}")
        if eos_id is not None and not 0 <= eos_id < vocab_size:
            raise ValueError(f"eos_id {eos_id} is outside the vocabulary [0, {vocab_size})")
        self.vocab_size, self.max_length, self.eos_id = vocab_size, max_length, eos_id
        self.pad_id = self.bos_id = vocab_size
        self.emb_dim, self.hidden_dim = emb_dim, hidden_dim
        with seeded(seed):
            self.embedding = nn.Embedding(vocab_size + 1, emb_dim)
            self.lstm = nn.LSTM(emb_dim, hidden_dim, batch_first=True)
            self.out = nn.Linear(hidden_dim, vocab_size)
            if init == "seqgan":  # N(0, 0.1) for every parameter; torch's LSTM has two bias vectors (input and
                for p in self.parameters():  # hidden), so a gate's summed bias has sd 0.14 (SeqGAN's one: 0.1)
                    nn.init.normal_(p, 0.0, 0.1)

    # ------------------------------------------------------------------ helpers
    @property
    def device(self) -> torch.device:
        return self.out.weight.device

    def _check_tokens(self, tokens: torch.Tensor) -> None:
        if tokens.dim() != 2:
            raise ValueError(f"tokens must be a (N, T) int64 tensor, got shape {tuple(tokens.shape)}")
        if tokens.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"tokens must be integer ids, got dtype {tokens.dtype}")
        # the range check waits for the device: skipped inside a CUDA graph's capture (which a
        # wait would break), whose callers check their data beforehand (agents.mle, MCReward)
        if tokens.numel() and not capturing(tokens) and (int(tokens.min()) < 0 or int(tokens.max()) > self.pad_id):
            raise ValueError(
                f"token ids must lie in [0, {self.vocab_size}) (or be the pad id {self.pad_id}); got range "
                f"[{int(tokens.min())}, {int(tokens.max())}]"
            )

    def _inputs(self, tokens: torch.Tensor) -> torch.Tensor:
        """(N, T) targets -> (N, T) inputs: BOS, x_1, ..., x_{T-1}."""
        bos = torch.full_like(tokens[:, :1], self.bos_id)
        return torch.cat([bos, tokens[:, :-1]], dim=1)

    # ------------------------------------------------------------------ teacher forcing
    def forward(self, tokens: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Teacher forcing: tokens (N, T) -> (logits (N, T, V), hidden (N, T, H)).

        ``hidden[:, t]`` is h_t, the state after reading x_<t (the state in which x_t is
        chosen); ``logits[:, t]`` parameterize p(x_t | x_<t).
        """
        hidden = self._hidden(tokens)
        return self.out(hidden), hidden

    def _hidden(self, tokens: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: tokens (N, T) -> hidden (N, T, H) (see :meth:`forward`)."""
        self._check_tokens(tokens)
        hidden, _ = self.lstm(self.embedding(self._inputs(tokens.to(self.device).long())))
        return hidden

    def log_probs(self, tokens: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        """Teacher-forced ``log p(x_t | x_<t)``: tokens (N, T) int64 -> (N, T) float, differentiable
        (under ``torch.no_grad()`` computed without materializing the logits).

        At ``temperature`` τ the distribution is softmax(logits / τ), the one :meth:`sample`
        draws from at τ (NLL-test along the quality-diversity frontier). Padding (id V) as a
        target gets a meaningless value: mask beyond the lengths.
        """
        check_temperature(temperature)
        if not torch.is_grad_enabled():  # evaluation: no (N, T, V) logits in memory
            N, T = tokens.shape
            targets = tokens.to(self.device).long().clamp(max=self.vocab_size - 1).reshape(-1)
            bound = linear_logit_bound(self.out.weight, self.out.bias)  # |h| <= 1: h = o · tanh(c)
            return linear_log_softmax(self._hidden(tokens).reshape(N * T, -1), self.out.weight, self.out.bias,
                                      targets, temperature, bound=bound).view(N, T)
        logits, _ = self.forward(tokens)
        return self.token_log_probs(logits if temperature == 1.0 else logits / temperature, tokens)

    def token_log_probs(self, logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Gather ``log softmax(logits)`` at tokens: logits (N, T, V), tokens (N, T) -> (N, T)."""
        N, T, V = logits.shape
        targets = tokens.to(logits.device).long().clamp(max=V - 1)
        return -F.cross_entropy(logits.reshape(N * T, V), targets.reshape(-1), reduction="none").view(N, T)

    @torch.no_grad()
    def nll(self, tokens: torch.Tensor, lengths: Optional[torch.Tensor] = None, batch_size: int = 2048) -> float:
        """Mean per-token negative log-likelihood (nats) of tokens (N, T) over positions < lengths."""
        with eval_mode(self):
            total, count = 0.0, 0
            for i in range(0, tokens.shape[0], batch_size):
                tok = tokens[i : i + batch_size].to(self.device)
                lp = self.log_probs(tok)
                if lengths is None:
                    mask = torch.ones_like(lp, dtype=torch.bool)
                else:
                    mask = length_mask(lengths[i : i + batch_size].to(lp.device), lp.shape[1])
                total += float(-(lp * mask).sum())
                count += int(mask.sum())
            return total / max(count, 1)

    # ------------------------------------------------------------------ step-by-step generation
    def _step_weights(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """Input projection table (V+1, 4H) = emb @ W_ih^T + b_ih + b_hh, and W_hh^T (H, 4H)."""
        p = dict(self.lstm.named_parameters())
        table = self.embedding.weight @ p["weight_ih_l0"].t() + p["bias_ih_l0"] + p["bias_hh_l0"]
        return table, p["weight_hh_l0"].t()

    @staticmethod
    def _cell(gates_x: torch.Tensor, h: torch.Tensor, c: torch.Tensor, w_hh: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """One LSTM step in nn.LSTM's gate order (i, f, g, o)."""
        i, f, g, o = (gates_x + h @ w_hh).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c

    @torch.no_grad()
    def rollout(
        self,
        tokens: torch.Tensor,
        prefix_lengths: torch.Tensor,
        *,
        temperature: float = 1.0,
        generator: Optional[torch.Generator] = None,
    ) -> torch.Tensor:
        """Complete prefixes (the RolloutPolicy protocol).

        tokens (M, T) int64: row i keeps ``tokens[i, :prefix_lengths[i]]`` and samples the
        rest from p(x_t | x_<t) at ``temperature``. All rows step in lock-step; the LSTM state
        is updated for every row, the output projection and sampling only for rows past their
        prefix. With an ``eos_id``, on the CPU the loop stops once every row holds an EOS and no
        prefix token remains (later positions are set to ``pad_id``); tokens after a row's first
        EOS are not meaningful: cut with :func:`textgym.rewards.finish_sequences`.
        Returns a new (M, T) int64 tensor.
        """
        self._check_tokens(tokens)
        tokens = tokens.to(self.device).long().clone()
        generator = generator_on(generator, self.device)
        M, T = tokens.shape
        prefix_lengths = prefix_lengths.to(self.device).long()
        table, w_hh = self._step_weights()
        # On the CPU the logits' bound (|h| <= 1: h = o · tanh(c)) lets the sampler skip the max
        # shift, and the longest prefix the search for the rows that draw; elsewhere reading
        # either waits for the device, every row draws anyway (sample_past_prefix), and the loop
        # runs to T (a CUDA graph can hold it: MCReward's cuda_graph)
        cpu = self.device.type == "cpu"
        bound = linear_logit_bound(self.out.weight, self.out.bias) if cpu else None
        h = torch.zeros(M, self.hidden_dim, device=self.device)
        c = torch.zeros_like(h)
        prev = torch.full((M,), self.bos_id, dtype=torch.long, device=self.device)
        max_prefix = (int(prefix_lengths.max()) if M else 0) if cpu else T
        ended = torch.zeros(M, dtype=torch.bool, device=self.device)
        for t in range(T):
            h, c = self._cell(table[prev], h, c, w_hh)
            sample_past_prefix(tokens, t, h, prefix_lengths, max_prefix, self.out.weight, self.out.bias, temperature,
                               generator, bound)
            prev = tokens[:, t]
            if self.eos_id is not None:
                ended |= prev == self.eos_id
                if t + 1 >= max_prefix and t + 1 < T and bool(ended.all()):
                    tokens[:, t + 1 :] = self.pad_id
                    break
        return tokens

    @torch.no_grad()
    def sample_with_lengths(
        self, n: int, *, temperature: float = 1.0, generator: Optional[torch.Generator] = None
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """n sequences (n, T) int64 padded with ``pad_id`` after their first EOS, and lengths (n,).

        Lengths include the EOS; without ``eos_id`` every length is T.
        """
        with eval_mode(self):
            empty = torch.zeros(n, self.max_length, dtype=torch.long, device=self.device)
            tokens = self.rollout(empty, torch.zeros(n, dtype=torch.long), temperature=temperature, generator=generator)
        return finish_sequences(tokens, self.eos_id, self.pad_id)

    def sample(self, n: int, *, temperature: float = 1.0, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """n sequences (n, T) int64 (the SequenceModel protocol); see :meth:`sample_with_lengths`."""
        return self.sample_with_lengths(n, temperature=temperature, generator=generator)[0]


class RolloutCopy:
    """SeqGAN's delayed rollout policy β, a copy of the generator θ updated by an explicit rule.

    Rules (``update(generator)`` after each generator update):

    - ``"mix"`` (SeqGAN): every parameter ``β ← rate·β + (1 - rate)·θ`` (rate 0.8). This is the
      rule of the original ``rollout.py`` (``update_rate * old + (1 - update_rate) * new``);
      there the embedding table is a ``tf.identity`` of θ's (no delay), and because the rollout
      graph is built once from ``tf.identity`` reads of θ's variables, the original rollout
      policy in effect always equals θ. Here the rule is applied to every parameter,
      embeddings included, and is tested.
    - ``"hard"``: ``β ← θ`` every ``every`` updates.
    - rate 0 with ``"mix"`` makes β follow θ exactly (no delay).

    The copy implements ``rollout`` (RolloutPolicy) and ``sample`` by delegation.
    """

    RULES = ("mix", "hard")

    def __init__(self, generator: Generator, rate: float = 0.8, rule: str = "mix", every: int = 1) -> None:
        if rule not in self.RULES:
            raise ValueError(f"unknown rollout update rule {rule!r}; valid: {list(self.RULES)}")
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"rollout_rate must lie in [0, 1], got {rate}")
        if every < 1:
            raise ValueError(f"rollout_every must be >= 1, got {every}")
        self.policy = copy.deepcopy(generator).requires_grad_(False).eval()
        self.rate, self.rule, self.every = float(rate), rule, int(every)
        self.updates = 0

    @torch.no_grad()
    def sync(self, generator: Generator) -> None:
        """β ← θ (SeqGAN's Algorithm 1, line 3: after pretraining, before the first adversarial step)."""
        self.policy.load_state_dict(generator.state_dict())

    @torch.no_grad()
    def update(self, generator: Generator) -> None:
        """Apply the rule once with the current generator parameters θ."""
        self.updates += 1
        if self.rule == "mix":
            for beta, theta in zip(self.policy.parameters(), generator.parameters(), strict=True):
                beta.mul_(self.rate).add_(theta.detach() * (1.0 - self.rate))
        elif self.updates % self.every == 0:
            self.policy.load_state_dict(generator.state_dict())

    def rollout(self, tokens: torch.Tensor, prefix_lengths: torch.Tensor, *, temperature: float = 1.0,
                generator: Optional[torch.Generator] = None) -> torch.Tensor:
        return self.policy.rollout(tokens, prefix_lengths, temperature=temperature, generator=generator)

    def sample(self, n: int, *, temperature: float = 1.0, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        return self.policy.sample(n, temperature=temperature, generator=generator)

    def __getattr__(self, name: str) -> Any:  # vocab_size, max_length, eos_id, pad_id, ...
        if name == "policy":
            raise AttributeError(name)
        return getattr(self.policy, name)

    def state_dict(self) -> Dict[str, Any]:
        return {"policy": self.policy.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        self.updates = int(state["updates"])
