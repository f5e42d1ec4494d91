"""What the class-conditional GAN agents (SentiGAN, CatGAN) share.

Data: a labelled data set of the :class:`textgym.classes.ClassData` protocol, i.e.
:class:`~textgym.classes.MultiOracleData` (``train.py --data oracle-classes``: k = 2 oracle
LSTMs, one per class) or a :class:`~textgym.classes.LabelledCorpus` (a file of
``label<TAB>sentence`` lines). Data without classes is refused with a ValueError.

Generators: :class:`ConditionalGenerator` is the project's LSTM
:class:`~agents.generator.Generator` with a class input: the one-hot class vector e_c is
concatenated to the token embedding at every step (CatGAN's ``cat_mat = I_k`` in the authors'
``CatGAN_G``), ``h_t = LSTM([emb(x_{t-1}); e_c], h_{t-1})``. SentiGAN instead trains k
unconditional generators, one per class. Both reach the shared code through
:meth:`ConditionalAgent.class_log_probs` and :meth:`ConditionalAgent.sample_class`.

MLE pretraining (:meth:`ConditionalAgent.mle_epoch`): teacher forcing on each class's real
sequences given that class,

    L(θ) = - Σ_{i∈B} Σ_{t<L_i} log p_θ(x_{i,t} | x_{i,<t}, c_i) / Σ_{i∈B} L_i

in groups (:meth:`ConditionalAgent.mle_groups`): SentiGAN makes one epoch per class with that
class's generator and optimizer (the authors' ``pretrain_generator``), CatGAN one epoch over
all classes shuffled together (``CatGenDataIter``).

Evaluation (:meth:`ConditionalAgent.evaluate_task`, called by the driver):

- ``nll_oracle_c{c}`` (MultiOracleData): mean per-token NLL of class-c samples under class c's
  oracle; ``nll_oracle``: their mean over classes;
- ``nll_test_c{c}``: the generator's per-token NLL of class c's test sequences given class c;
  ``nll_test``: their mean over classes;
- ``bleu4_c{c}`` and ``bleu4`` (LabelledCorpus with a test file): BLEU-4 of up to
  :data:`BLEU_HYPOTHESES` class-c samples against class c's test sentences, and the mean;
- ``d_heldout_*`` (with a test set, after MLE, ``d_heldout`` > 0, in the driver's evaluations,
  which pass no temperature; not in the study's temperature sweep): the
  discriminator on the test set's first ``d_heldout`` sequences of each class, which it never
  trains on, against as many fresh samples of that class (:meth:`ConditionalAgent.discriminator_heldout`;
  SentiGAN's and CatGAN's figures differ, as their discriminators do); a ``RuntimeWarning`` when
  ``d_heldout_acc`` stays near chance for several evaluations in a row, as the unconditional
  agents warn (:func:`agents.adversarial.weak_streak`);
- text lines ``class<TAB>sentence`` of samples of every class.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, ClassVar, Dict, Iterator, List, Optional, Sequence, Tuple, Union, cast

import torch
import torch.nn.functional as F
from torch import nn

from agents.adversarial import weak_streak
from agents.base import Agent
from agents.config import RECIPE, SIZE, at_least, nonnegative, not_data_sized, param, positive, replace
from agents.generator import Generator
from agents.mle import check_finite, derive_seed, shuffled_order
from discriminators.base import eval_mode, load_weights, seeded
from discriminators.multiclass import check_classes
from textgym.classes import ClassData, MultiOracleData, num_classes_of
from textgym.data import TextData, resolve_data
from textgym.masks import length_mask
from textgym.rewards import finish_sequences
from textgym.sampling import check_temperature, generator_on, linear_logit_bound, sample_past_prefix

__all__ = ["BLEU_HYPOTHESES", "ConditionalAgent", "ConditionalConfig", "ConditionalGenerator", "require_classes"]

#: samples per class scored by BLEU-4 on labelled corpora (BLEU is the costly metric)
BLEU_HYPOTHESES = 100
#: samples per class written to the samples file
LINES_PER_CLASS = 25


def require_classes(data: Any, agent: str) -> int:
    """k of a labelled data set; ValueError naming the agent for data without classes."""
    k = num_classes_of(data)
    if k is None or not isinstance(data, ClassData) or not isinstance(data, TextData):
        raise ValueError(
            f"{agent} generates text of given classes and needs labelled data: data='oracle-classes' "
            f"(MultiOracleData) or a file of 'label<TAB>sentence' lines (LabelledCorpus); got "
            f"{type(data).__name__} {getattr(data, 'name', '')!r} without classes")
    if k < 1:
        raise ValueError(f"{agent}: the data has {k} classes")
    if len(data.train_labels) != len(data.train):
        raise ValueError(f"{agent}: the data has {len(data.train)} training sequences but "
                         f"{len(data.train_labels)} training labels")
    return k


class ConditionalGenerator(Generator):
    """The LSTM generator with a one-hot class vector concatenated to the input at every step.

    ``log_probs(tokens, classes)``, ``rollout(tokens, prefix_lengths, classes=...)``,
    ``sample_with_lengths(n, classes=...)``; :meth:`gumbel_sample` draws differentiable
    Gumbel-softmax samples (CatGAN). Everything else is :class:`~agents.generator.Generator`'s.
    """

    def __init__(self, vocab_size: int, max_length: int, num_classes: int, *, eos_id: Optional[int] = None,
                 emb_dim: int = 32, hidden_dim: int = 32, init: str = "seqgan", seed: int = 0) -> None:
        super().__init__(vocab_size, max_length, eos_id=eos_id, emb_dim=emb_dim, hidden_dim=hidden_dim, init=init,
                         seed=seed)
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = num_classes
        with seeded(seed + 1):
            self.lstm = nn.LSTM(emb_dim + num_classes, hidden_dim, batch_first=True)
            if init == "seqgan":
                for p in self.lstm.parameters():
                    nn.init.normal_(p, 0.0, 0.1)

    def _classes(self, classes: Any, n: int) -> torch.Tensor:
        """(n,) int64 class ids on the generator's device from (n,) ids or one id for every row."""
        c = classes if torch.is_tensor(classes) else torch.as_tensor(classes)
        return check_classes(c.expand(n) if c.dim() == 0 else c, n, self.num_classes, self.device)

    def _hidden_c(self, tokens: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        self._check_tokens(tokens)
        tokens = tokens.to(self.device).long()
        e = self.embedding(self._inputs(tokens))
        onehot = F.one_hot(self._classes(classes, tokens.shape[0]), self.num_classes).to(e.dtype)
        x = torch.cat([e, onehot[:, None, :].expand(-1, tokens.shape[1], -1)], dim=-1)
        hidden, _ = self.lstm(x)
        return hidden

    def log_probs(self, tokens: torch.Tensor, temperature: float = 1.0, classes: Any = None) -> torch.Tensor:
        """``log p(x_t | x_<t, c)`` (N, T), differentiable; ``classes`` (N,) or one id."""
        if classes is None:
            raise ValueError("ConditionalGenerator.log_probs needs classes=")
        check_temperature(temperature)
        logits = self.out(self._hidden_c(tokens, classes))
        if temperature != 1.0:
            logits = logits / temperature
        return self.token_log_probs(logits, tokens)

    def _step_weights_c(self) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Token table (V+1, 4H), class table (k, 4H) and W_hh^T of the step-by-step cell."""
        p = dict(self.lstm.named_parameters())
        w_ih = p["weight_ih_l0"]
        table = self.embedding.weight @ w_ih[:, : self.emb_dim].t() + p["bias_ih_l0"] + p["bias_hh_l0"]
        return table, w_ih[:, self.emb_dim :].t(), p["weight_hh_l0"].t()

    @torch.no_grad()
    def rollout(self, tokens: torch.Tensor, prefix_lengths: torch.Tensor, *, temperature: float = 1.0,
                generator: Optional[torch.Generator] = None, classes: Any = None) -> torch.Tensor:
        """Complete prefixes of rows of the given ``classes`` (see :meth:`Generator.rollout`)."""
        if classes is None:
            raise ValueError("ConditionalGenerator.rollout needs classes=")
        self._check_tokens(tokens)
        tokens = tokens.to(self.device).long().clone()
        M, T = tokens.shape
        cls = self._classes(classes, M)
        prefix_lengths = prefix_lengths.to(self.device).long()
        generator = generator_on(generator, self.device)  # an env's generator on another device
        table, class_table, w_hh = self._step_weights_c()
        bound = linear_logit_bound(self.out.weight, self.out.bias)
        h = torch.zeros(M, self.hidden_dim, device=self.device)
        c = torch.zeros_like(h)
        prev = torch.full((M,), self.bos_id, dtype=torch.long, device=self.device)
        cx = class_table[cls]
        max_prefix = int(prefix_lengths.max()) if M else 0
        for t in range(T):
            h, c = self._cell(table[prev] + cx, h, c, w_hh)
            sample_past_prefix(tokens, t, h, prefix_lengths, max_prefix, self.out.weight, self.out.bias, temperature,
                               generator, bound)
            prev = tokens[:, t]
        return tokens

    @torch.no_grad()
    def sample_with_lengths(self, n: int, *, temperature: float = 1.0, generator: Optional[torch.Generator] = None,
                            classes: Any = None) -> Tuple[torch.Tensor, torch.Tensor]:
        empty = torch.zeros(n, self.max_length, dtype=torch.long, device=self.device)
        tokens = self.rollout(empty, torch.zeros(n, dtype=torch.long), temperature=temperature, generator=generator,
                              classes=classes)
        return finish_sequences(tokens, self.eos_id, self.pad_id)

    def gumbel_sample(self, n: int, classes: Any, beta: float, generator: Optional[torch.Generator] = None,
                      eps: float = 1e-10) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Gumbel-softmax samples, differentiable (RelGAN/CatGAN's ``step``):

            o_t = W h_t + b,  g ~ Gumbel(0, 1),  y_t = argmax(o_t + g),  ŷ_t = softmax(β (o_t + g))

        with the hard token y_t fed back as the next input. Returns tokens (n, T) (padded after
        EOS), lengths (n,), and soft one-hot rows ŷ (n, T, V) (zero beyond each length).
        """
        cls = self._classes(classes, n)
        p = dict(self.lstm.named_parameters())
        w_ih, w_hh = p["weight_ih_l0"], p["weight_hh_l0"]
        bias = p["bias_ih_l0"] + p["bias_hh_l0"]
        onehot = F.one_hot(cls, self.num_classes).float()
        h = torch.zeros(n, self.hidden_dim, device=self.device)
        c = torch.zeros_like(h)
        prev = torch.full((n,), self.bos_id, dtype=torch.long, device=self.device)
        toks, softs = [], []
        for _ in range(self.max_length):
            x = torch.cat([self.embedding(prev), onehot], dim=1)
            h, c = self._cell(x @ w_ih.t() + bias, h, c, w_hh.t())
            o = self.out(h)
            u = torch.rand(o.shape, generator=generator, device=self.device)
            gumbel = o - torch.log(-torch.log(u + eps) + eps)
            prev = gumbel.argmax(1).detach()
            toks.append(prev)
            softs.append(torch.softmax(beta * gumbel, dim=-1))
        tokens, lengths = finish_sequences(torch.stack(toks, 1), self.eos_id, self.pad_id)
        soft = torch.stack(softs, 1) * length_mask(lengths, self.max_length)[:, :, None]
        return tokens, lengths, soft


@dataclass
class ConditionalConfig:
    """Fields every class-conditional agent has (MLE pretraining and the generator's size)."""

    mle_epochs: int = param(120, "MLE pretraining epochs", kind=SIZE, check=at_least(0))
    batch_size: int = param(64, "sequences per minibatch", kind=RECIPE, check=at_least(1))
    mle_lr: float = param(0.01, "Adam learning rate of MLE", check=positive)
    grad_clip: float = param(5.0, "global gradient-norm clip of generator updates (0: none; TextGAN-PyTorch clips "
                                  "MLE at 5.0 and SentiGAN's adversarial updates not at all)", check=nonnegative)
    emb_dim: int = param(32, "generator embedding size", check=at_least(1))
    hidden_dim: int = param(32, "generator LSTM size", check=at_least(1))
    init: str = param("seqgan", "generator init: seqgan (N(0, 0.1)) or default (PyTorch's)",
                      check=lambda v: None if v in ("seqgan", "default") else "seqgan or default")
    adv_steps: int = param(100, "adversarial steps", kind=SIZE, check=at_least(0))
    gen_lr: float = param(0.01, "Adam learning rate of adversarial generator updates", check=positive)
    d_lr: float = param(1e-4, "discriminator Adam learning rate", check=positive)
    d_batch_size: int = param(64, "discriminator minibatch size", check=at_least(1))
    d_steps: int = param(1, "discriminator rounds (or updates) per adversarial step", kind=SIZE, check=at_least(0))
    discriminator_options: Dict[str, Any] = param({}, "keyword options of the discriminator's constructor",
                                                  check=not_data_sized)
    d_heldout: int = param(1000, "held-out real sequences of each class (the test set's first) scored against as "
                                 "many fresh samples of that class for the discriminator's held-out figures d_heldout_*, "
                                 "at every evaluation after MLE (0: none; none without a test set)", kind=SIZE,
                           check=at_least(0))
    iteration_updates: int = param(0, "MLE minibatch updates of each generator group per MLE iteration (0: one whole "
                                      "epoch); the study's MLE control matches the adversarial updates with it",
                                   check=at_least(0))


class ConditionalAgent(Agent):
    """Base of the class-conditional agents: labelled data, per-class data access, MLE
    pretraining, seeded random streams, evaluation and checkpoints of the shared parts.

    Subclasses implement :meth:`class_log_probs`, :meth:`sample_class`, :meth:`mle_groups`,
    ``generator``, the schedule (``total_iterations``, ``train_iteration``) and extend
    :meth:`state_dict` / :meth:`load_state_dict`.
    """

    name = "conditional"
    Config: ClassVar[type] = ConditionalConfig
    config: Any

    def __init__(self, data: Union[str, TextData], config: Optional[Any] = None,
                 device: Union[str, torch.device] = "cpu", seed: int = 0) -> None:
        if isinstance(data, str):
            if data == "oracle-classes":
                data = resolve_data(data)
            else:
                raise ValueError(f"{self.name} needs labelled data: 'oracle-classes' or a ClassData object, "
                                 f"got {data!r}")
        self.num_classes = require_classes(data, self.name)
        super().__init__(data, self.make_config(config), device, seed)
        d: Any = self.data
        self.train_tokens = d.train.to(self.device)
        self.train_lengths = d.train_lengths.to(self.device)
        self.train_labels = d.train_labels.to(self.device).long()
        self.class_rows: List[torch.Tensor] = [(self.train_labels == c).nonzero().squeeze(1)
                                               for c in range(self.num_classes)]
        empty = [c for c, r in enumerate(self.class_rows) if r.numel() == 0]
        if empty:
            raise ValueError(f"{self.name}: class(es) {empty} have no training sequences")
        self.sample_rng = torch.Generator(device=self.device).manual_seed(derive_seed(seed, "sample"))
        self.data_rng = torch.Generator().manual_seed(derive_seed(seed, "data"))
        self.d_rng = torch.Generator().manual_seed(derive_seed(seed, "discriminator-dropout"))
        self.weak_rounds = 0  # evaluations in a row whose d_heldout_acc lay near chance (agents.adversarial.weak_streak)

    @classmethod
    def make_config(cls, config: Optional[Any]) -> Any:
        if isinstance(config, cls.Config):
            return replace(config)
        if config is not None and not isinstance(config, dict):
            raise TypeError(f"config must be a {cls.Config.__name__} or a dict, got {type(config).__name__}")
        return replace(cls.Config(), **(config or {}))

    # ------------------------------------------------------------------ what subclasses provide
    #: the key of the generator weights in :meth:`state_dict` (what :meth:`warm_start` takes)
    generator_key: ClassVar[str] = "generator"

    def class_log_probs(self, tokens: torch.Tensor, classes: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        """``log p(x_t | x_<t, c_i)`` of rows (N, T) of classes (N,): (N, T), differentiable; at
        ``temperature`` τ the distribution is softmax(logits / τ)."""
        raise NotImplementedError

    def sample_class(self, c: int, n: int, generator: Optional[torch.Generator] = None,
                     temperature: float = 1.0) -> Tuple[torch.Tensor, torch.Tensor]:
        """n samples of class c at ``temperature`` (tokens (n, T) padded after EOS, lengths (n,)), no gradient."""
        raise NotImplementedError

    def mle_groups(self) -> List[Tuple[Optional[Sequence[int]], torch.optim.Optimizer]]:
        """(classes trained together (None: all), optimizer) of each part of an MLE epoch."""
        raise NotImplementedError

    def discriminator_heldout(self, reals: Sequence[Tuple[int, torch.Tensor, torch.Tensor]],
                              generator: torch.Generator) -> Dict[str, float]:
        """The discriminator's held-out figures ``d_heldout_*`` on held-out real sequences,
        ``reals`` = (class c, tokens (n_c, T), lengths (n_c,)) for each class that has some,
        against n_c fresh samples of each class drawn with ``generator``; eval mode, no gradient,
        no update."""
        raise NotImplementedError

    # ------------------------------------------------------------------ shared helpers
    def new_generator(self, conditional: bool, stream: str) -> Generator:
        c, d = self.config, self.data
        if conditional:
            return ConditionalGenerator(d.vocab_size, d.max_length, self.num_classes, eos_id=d.eos_id, emb_dim=c.emb_dim,
                                        hidden_dim=c.hidden_dim, init=c.init, seed=derive_seed(self.seed, stream))
        return Generator(d.vocab_size, d.max_length, eos_id=d.eos_id, emb_dim=c.emb_dim, hidden_dim=c.hidden_dim,
                         init=c.init, seed=derive_seed(self.seed, stream))

    def optimizer_step(self, opt: torch.optim.Optimizer, loss: torch.Tensor, name: str = "g_loss") -> float:
        """Backward, clip to ``grad_clip``, step; FloatingPointError on a non-finite loss or norm."""
        value = check_finite(loss.detach(), name, self.iteration)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        params = [p for g in opt.param_groups for p in g["params"]]
        if self.config.grad_clip > 0:
            norm = torch.nn.utils.clip_grad_norm_(params, self.config.grad_clip)
            check_finite(norm, f"{name} gradient norm", self.iteration)
        opt.step()
        return value

    def real_batch(self, c: int, n: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """n training sequences of class c, without replacement (with, if n exceeds the class)."""
        rows = self.class_rows[c]
        m = rows.numel()
        pick = torch.randperm(m, generator=self.data_rng)[:n] if n <= m else torch.randint(m, (n,), generator=self.data_rng)
        idx = rows[pick.to(self.device)]
        return self.train_tokens[idx], self.train_lengths[idx]

    @contextlib.contextmanager
    def with_d_seed(self) -> Iterator[None]:
        """A forked global RNG seeded from the agent's discriminator stream (dropout draws from
        the global RNG; this keeps discriminator passes reproducible and resumable)."""
        seed = int(torch.randint(0, 2**62, (1,), generator=self.d_rng))
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            yield

    # ------------------------------------------------------------------ MLE
    def mle_epoch(self) -> Dict[str, float]:
        """One epoch of teacher forcing for each of :meth:`mle_groups` (seeded shuffles), or
        ``iteration_updates`` minibatches of each (drawn without replacement, reshuffled when
        used up)."""
        bs, updates = self.config.batch_size, self.config.iteration_updates
        total, count = 0.0, 0
        stats: Dict[str, float] = {}
        for classes, opt in self.mle_groups():
            rows = (torch.arange(len(self.train_labels), device=self.device) if classes is None
                    else torch.cat([self.class_rows[c] for c in classes]))
            perm = rows[shuffled_order(rows.numel(), updates * bs or rows.numel(), self.data_rng).to(self.device)]
            g_total, g_count = 0.0, 0
            for i in range(0, perm.numel(), bs):
                idx = perm[i : i + bs]
                tokens, lengths, labels = self.train_tokens[idx], self.train_lengths[idx], self.train_labels[idx]
                mask = length_mask(lengths, tokens.shape[1])
                loss = -(self.class_log_probs(tokens, labels) * mask).sum() / mask.sum()
                value = self.optimizer_step(opt, loss, "g_loss")
                k = int(lengths.sum())
                g_total, g_count = g_total + value * k, g_count + k
            if classes is not None and len(classes) == 1:
                stats[f"nll_train_c{classes[0]}"] = g_total / max(g_count, 1)
            total, count = total + g_total, count + g_count
        nll = total / max(count, 1)
        return {"g_loss": nll, "nll_train": nll, **stats}

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def eval_samples(self, n_per_class: int, seed: int,
                     temperature: float = 1.0) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """n_per_class samples of every class from a generator seeded by ``seed`` (the agent's
        own streams are untouched): tokens (k·n, T), lengths, labels (class blocks in order)."""
        g = torch.Generator(device=self.device).manual_seed(int(seed))
        parts = [self.sample_class(c, n_per_class, g, temperature) for c in range(self.num_classes)]
        labels = torch.arange(self.num_classes, device=self.device).repeat_interleave(n_per_class)
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]), labels

    @torch.no_grad()
    def class_nll(self, tokens: torch.Tensor, lengths: torch.Tensor, classes: torch.Tensor,
                  batch_size: int = 1024, temperature: float = 1.0) -> float:
        """Mean per-token NLL of rows given their classes under the generator(s) at ``temperature``."""
        total, count = 0.0, 0
        for i in range(0, tokens.shape[0], batch_size):
            tok, ln = tokens[i : i + batch_size].to(self.device), lengths[i : i + batch_size].to(self.device)
            mask = length_mask(ln, tok.shape[1])
            lp = self.class_log_probs(tok, classes[i : i + batch_size].to(self.device), temperature)
            total += float(-(lp * mask).sum())
            count += int(mask.sum())
        return total / max(count, 1)

    def evaluate_task(self, n_samples: int, test_size: Optional[int], seed: int,
                      temperature: Optional[float] = None) -> Tuple[Dict[str, float], List[str]]:
        """Per-class metrics and ``class<TAB>sentence`` lines (see the module docstring).

        ``n_samples`` samples in all (``n_samples // k`` per class, at least 1); NLL-test on up to
        ``test_size // k`` test sequences of each class (all with None); without a test set,
        NLL-test is on the training sequences and is named ``nll_train_eval``. At ``temperature``
        τ (the study's sweep; None: 1) the samples are drawn from softmax(logits / τ) and NLL-test
        is computed under that distribution: one point of the quality-diversity frontier.
        """
        tau = 1.0 if temperature is None else float(temperature)
        check_temperature(tau)
        d: Any = self.data
        k = self.num_classes
        n = max(1, n_samples // k)
        with eval_mode(self.generator):  # the generator(s); the discriminator has its own switch
            tokens, lengths, labels = self.eval_samples(n, seed, tau)
            out: Dict[str, float] = {}
            if isinstance(d, MultiOracleData):
                per = d.nll_oracle_per_class(tokens.cpu(), labels.cpu(), lengths.cpu())
                for c in range(k):
                    out[f"nll_oracle_c{c}"] = float(per[c])
                out["nll_oracle"] = float(per.mean())
            has_test = d.test is not None and d.test_labels is not None and len(d.test) > 0
            ref_tok, ref_len, ref_lab = (d.test, d.test_lengths, d.test_labels) if has_test else \
                (d.train, d.train_lengths, d.train_labels)
            key = "nll_test" if has_test else "nll_train_eval"
            per_test = []
            for c in range(k):
                rows = (ref_lab == c).nonzero().squeeze(1)
                if test_size is not None:
                    rows = rows[: max(1, test_size // k)]
                if rows.numel() == 0:
                    continue
                v = self.class_nll(ref_tok[rows], ref_len[rows], ref_lab[rows], temperature=tau)
                out[f"{key}_c{c}"] = v
                per_test.append(v)
            if per_test:
                out[key] = sum(per_test) / len(per_test)
            if has_test and not isinstance(d, MultiOracleData) and hasattr(d, "vocab"):
                out.update(self._bleu(tokens, lengths, labels))
            if temperature is None and has_test and self.config.d_heldout > 0 and self.iteration > self.config.mle_epochs:
                reals = []
                for c in range(k):
                    rows = (d.test_labels == c).nonzero().squeeze(1)[: self.config.d_heldout]
                    if rows.numel():
                        reals.append((c, d.test[rows].to(self.device), d.test_lengths[rows].to(self.device)))
                g = torch.Generator(device=self.device).manual_seed(derive_seed(seed, "discriminator-heldout"))
                out.update(self.discriminator_heldout(reals, g))
                if "d_heldout_acc" in out:  # the unconditional agents' warning, counted in evaluations
                    self.weak_rounds = weak_streak(self.weak_rounds, out["d_heldout_acc"], self.name)
        names = list(getattr(d, "class_names", [str(c) for c in range(k)]))
        lines = []
        for c in range(k):
            rows = (labels == c).nonzero().squeeze(1)[:LINES_PER_CLASS].tolist()
            lines += [f"{names[c]}\t{d.decode(tokens[r, : int(lengths[r])].tolist())}" for r in rows]
        return out, lines

    def _bleu(self, tokens: torch.Tensor, lengths: torch.Tensor, labels: torch.Tensor) -> Dict[str, float]:
        from textgym.bleu import bleu

        d: Any = self.data
        out: Dict[str, float] = {}
        scores = []
        for c in range(self.num_classes):
            refs_idx = (d.test_labels == c).nonzero().squeeze(1).tolist()
            hyp_idx = (labels == c).nonzero().squeeze(1)[:BLEU_HYPOTHESES].tolist()
            if not refs_idx or not hyp_idx:
                continue
            refs = d.bleu_references(refs_idx)
            hyps = [d.decode(tokens[i, : int(lengths[i])].tolist()).split() for i in hyp_idx]
            out[f"bleu4_c{c}"] = bleu(hyps, refs, 4)
            scores.append(out[f"bleu4_c{c}"])
        if scores:
            out["bleu4"] = sum(scores) / len(scores)
        return out

    # ------------------------------------------------------------------ checkpoints
    def warm_start(self, state: Dict[str, Any], parts: Sequence[str] = ("generator",)) -> None:
        """Take the generator weights of another run of the same agent (its MLE start, in the
        study); optimizers, random streams and the iteration count stay this agent's own."""
        if state.get("agent") != self.name:
            raise ValueError(f"a {self.name} run warm starts from another {self.name} run (the model shapes of the "
                             f"class-conditional agents differ), not from agent {state.get('agent')!r}")
        for part in parts:
            if part != "generator":
                raise ValueError(f"agent {self.name!r} takes only its generator from another run, not {part!r}")
            load_weights(cast(nn.Module, self.generator), state[self.generator_key], "the source run's generator")

    def state_dict(self) -> Dict[str, Any]:
        return {"agent": self.name, "iteration": self.iteration, "sample_rng": self.sample_rng.get_state(),
                "data_rng": self.data_rng.get_state(), "d_rng": self.d_rng.get_state(), "weak_rounds": self.weak_rounds}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        if state.get("agent", self.name) != self.name:
            raise ValueError(f"checkpoint of agent {state.get('agent')!r} cannot be loaded into agent {self.name!r}")
        self.iteration = int(state["iteration"])
        self.sample_rng.set_state(state["sample_rng"])
        self.data_rng.set_state(state["data_rng"])
        self.d_rng.set_state(state["d_rng"])
        self.weak_rounds = int(state.get("weak_rounds", 0))  # absent from checkpoints written before it

