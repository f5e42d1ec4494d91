"""CatGAN (Liu et al., AAAI 2020): a class-conditional generator, a category-wise relativistic
objective and hierarchical evolutionary learning.

Generator: :class:`~agents.conditional.ConditionalGenerator` (the class one-hot concatenated to
the token embedding, as the authors' ``CatGAN_G``), sampled with Gumbel-softmax,
ŷ_t = softmax(β (o_t + g_t)), so that the discriminator's output is differentiable in θ.
Discriminator: one CNN D_φ(x) -> a logit (the paper's D_φ, shared by the categories); real
sequences are fed as token ids, generated ones as the soft rows ŷ (``ŷ @ E``, the same
embedding table).

Category-wise relativistic objective (RSGAN, for each category c with real x_r^c and generated
x_f^c = G_θ(c) paired row by row, summed over the k categories; the figure's Y^all term, all
real against all generated, is added with ``all_pairs``):

    L_D(φ) = - Σ_c E[ log σ(D_φ(x_r^c) - D_φ(x_f^c)) ]
    L_G(θ) = - Σ_c E[ log σ(D_φ(x_f^c) - D_φ(x_r^c)) ]

Hierarchical evolutionary learning (``evolution=True``), per adversarial step, with n_parent
parents (generator + Adam state):

    1. D_φ(x_r^c) of one real batch of each class, shared by all children;
    2. for each parent and each mutation loss ℓ in ``mutations`` (rsgan, ragan) and, when
       β_max > 1, each candidate temperature β ∈ {β(i), β(i+1), β(i-1)} (Stage_temp):
       the child = parent after ``g_steps`` Adam updates on Σ_c ℓ(D(x_r^c), D(G(c)));
    3. fitness F = F_q + γ·F_d on ``eval_batches``·``batch_size`` fresh samples per class
       (no gradient):
           F_q = Σ_c Σ_j σ(D(x_f^{c,j}) - mean_i D(x_r^{c,i}))      quality (eval_type "Ra")
           F_d = Σ_c NLL_θ(own samples of c | c)                      diversity (nll_div)
       with γ = ``lambda_fd`` (λ_fq = 1); the best temperature of a mutation is kept
       (Stage_temp), then the n_parent best children become the parents (Stage_obj);
    4. ``d_steps`` Adam updates of D on L_D, each with a real batch of every class and a batch
       of the selected child's evaluation samples of the same class.

Without evolution: ``g_steps`` updates of L_G (the ``d_loss`` form) on fresh samples, then the
``d_steps`` updates of D on fresh samples.

The temperature schedule is the code's ``get_fixed_temperature``: β(i) = β_max^{i/N} ("exp")
with N = 5000 fixed in that function (``temp_horizon``). β_max = 1 on the oracle data and 100 on
corpora (``run_catgan.py``).

Values (TextGAN-PyTorch ``run_catgan.py`` / ``config.py``): MLE 150 epochs (lr 0.01, batch 64),
no discriminator pretraining, 2000 adversarial steps of 1 generator update (lr 1e-4) and 3 D
updates (lr 1e-4), n_parent 1, mutations rsgan and ragan, λ_fq 1, λ_fd 0.001, 8 evaluation
batches, use_all_real_fake off, clip norm 5. D: CNN with 64-d embeddings and 300 filters of widths
2-5, highway, dropout 0.25.

Deviations: an LSTM generator instead of the relational memory (RMC); D without the code's 64
"representations" (num_rep) per sequence; the D loss defaults to RSGAN as in the paper (the
run script trains D with RaGAN: ``d_loss="ragan"``); fitness is computed with D in eval mode.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, ClassVar, Dict, List, Literal, Optional, Sequence, Tuple, cast

import torch
import torch.nn.functional as F

from agents.conditional import ConditionalAgent, ConditionalConfig, ConditionalGenerator
from agents.config import SIZE, at_least, nonnegative, param, positive, unit_open
from agents.mle import check_finite, derive_seed
from discriminators.base import eval_mode, load_optimizer_state, seeded
from discriminators.evaluation import rank_accuracy
from textgym.classes import MultiOracleData

CATGAN = "CatGAN, Liu et al. 2020 (TextGAN-PyTorch run_catgan.py)"
LOSSES = ("rsgan", "ragan")

__all__ = ["CATGAN", "CatGANAgent", "CatGANConfig", "relativistic_loss", "soft_logits", "temperature_at"]


def relativistic_loss(kind: str, which: str, d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """The relativistic losses of TextGAN-PyTorch's ``GANLoss`` (logits of real and fake rows).

    rsgan: D: -mean log σ(D_r - D_f); G: -mean log σ(D_f - D_r) (rows paired).
    ragan: D: -mean log σ(D_r - mean D_f) - mean log(1 - σ(D_f - mean D_r));
           G: -mean log σ(D_f - mean D_r) - mean log(1 - σ(D_r - mean D_f)).
    """
    if kind == "rsgan":
        diff = d_real - d_fake if which == "D" else d_fake - d_real
        return F.binary_cross_entropy_with_logits(diff, torch.ones_like(diff))
    if kind == "ragan":
        rf, rr = d_fake - d_real.mean(), d_real - d_fake.mean()
        one, zero = torch.ones_like(rf), torch.zeros_like(rf)
        if which == "D":
            return F.binary_cross_entropy_with_logits(rf, zero) + F.binary_cross_entropy_with_logits(rr, one)
        return F.binary_cross_entropy_with_logits(rf, one) + F.binary_cross_entropy_with_logits(rr, zero)
    raise ValueError(f"unknown relativistic loss {kind!r}; valid: {list(LOSSES)}")


def soft_logits(disc: Any, soft: torch.Tensor, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """D's logits of soft one-hot rows (N, T, V): the discriminator runs on ``tokens`` (the hard
    ids, for lengths and shapes) with its embedding lookup replaced by ``soft @ E[:V]``;
    differentiable in ``soft``. Needs a discriminator whose ``embedding`` is called once on the
    (possibly right-padded) token ids, as the package's CNN and RNN discriminators do when
    gradients are on. The pass runs with gradients on also inside ``torch.no_grad()`` (CatGAN's
    fitness): there the CNN scores CPU batches from lookup tables of token ids, which would
    bypass the embedding and score the hard tokens; the result is then detached."""
    emb = disc.embedding
    V = soft.shape[2]
    outer_grad = torch.is_grad_enabled()

    def hook(module: Any, inputs: Tuple[torch.Tensor, ...], output: torch.Tensor) -> torch.Tensor:
        width = inputs[0].shape[1]
        s = F.pad(soft, (0, 0, 0, width - soft.shape[1])) if width > soft.shape[1] else soft
        return s @ module.weight[:V]

    handle = emb.register_forward_hook(hook)
    try:
        with torch.enable_grad():
            out = disc(tokens, lengths)
    finally:
        handle.remove()
    return out if outer_grad else out.detach()


def temperature_at(beta_max: float, i: int, horizon: int) -> float:
    """β(i) = β_max^{i / N} (the code's "exp" adaptation)."""
    return float(beta_max ** (max(i, 0) / horizon))


@dataclass
class CatGANConfig(ConditionalConfig):
    """Fields of CatGAN (defaults: TextGAN-PyTorch ``run_catgan.py``, oracle data)."""

    mle_epochs: int = param(150, "MLE epochs (MLE_train_epoch)", kind=SIZE, check=at_least(0), source=CATGAN)
    adv_steps: int = param(2000, "adversarial steps (ADV_train_epoch)", kind=SIZE, check=at_least(0), source=CATGAN)
    gen_lr: float = param(1e-4, "Adam lr of adversarial generator updates (gen_adv_lr)", source=CATGAN, check=positive)
    g_steps: int = param(1, "generator updates per child (ADV_g_step)", check=at_least(1), source=CATGAN)
    d_lr: float = param(1e-4, "discriminator Adam lr (dis_lr)", source=CATGAN, check=positive)
    d_steps: int = param(3, "discriminator updates per adversarial step (ADV_d_step)", kind=SIZE, check=at_least(0),
                         source=CATGAN)
    d_loss: Literal["rsgan", "ragan"] = param("rsgan", "relativistic loss of D (and of G without evolution)",
                                              source=CATGAN)
    all_pairs: bool = param(False, "add the all-real vs all-generated term (use_all_real_fake)", source=CATGAN)
    evolution: bool = param(True, "hierarchical evolutionary learning of the generator", source=CATGAN)
    mutations: List[str] = param(["rsgan", "ragan"], "mutation losses of the children (mu_type)", source=CATGAN)
    n_parent: int = param(1, "parents kept by the selection (n_parent)", check=at_least(1), source=CATGAN)
    lambda_fd: float = param(0.001, "γ, weight of the diversity fitness F_d (lambda_fd)", check=nonnegative,
                             source=CATGAN)
    eval_batches: int = param(8, "fitness samples per class, in batches (eval_b_num)", kind=SIZE, check=at_least(1),
                              source=CATGAN)
    beta_max: Optional[float] = param(None, "maximum inverse temperature β of Gumbel-softmax (None: 1 on the "
                                            "oracle data, 100 on corpora)", check=positive, source=CATGAN)
    temp_horizon: int = param(5000, "N of β(i) = β_max^{i/N} (fixed at 5000 in get_fixed_temperature)",
                              check=at_least(1), source=CATGAN)
    discriminator: str = param("cnn", "cnn, or constant (the no-information control: the CNN with a zero output "
                                      "layer, never trained; D(x) = 0 gives the relativistic losses zero gradient, "
                                      "so the generator stays at its start)",
                               check=lambda v: None if v in ("cnn", "constant") else "cnn or constant")
    d_emb_dim: int = param(64, "discriminator embedding size (dis_embed_dim)", check=at_least(1), source=CATGAN)
    d_filters: int = param(300, "filters per width 2, 3, 4, 5 (dis_num_filters)", check=at_least(1), source=CATGAN)
    d_dropout: float = param(0.25, "discriminator dropout", source=CATGAN, check=unit_open)


class CatGANAgent(ConditionalAgent):
    """CatGAN (see the module docstring)."""

    name = "catgan"
    Config: ClassVar[type] = CatGANConfig
    config: CatGANConfig

    def __init__(self, data: Any, config: Optional[Any] = None, device: Any = "cpu", seed: int = 0) -> None:
        super().__init__(data, config, device, seed)
        c = self.config
        bad = [m for m in c.mutations if m not in LOSSES]
        if bad or not c.mutations:
            raise ValueError(f"mutations must be a non-empty list of {list(LOSSES)}, got {c.mutations}")
        self.gen = cast(ConditionalGenerator, self.new_generator(True, "generator-init").to(self.device))
        self.mle_opt = torch.optim.Adam(self.gen.parameters(), lr=c.mle_lr)
        self.gen_opt = torch.optim.Adam(self.gen.parameters(), lr=c.gen_lr)
        import discriminators

        fields = {"emb_dim": "d_emb_dim", "filters": "d_filters", "dropout": "d_dropout"}  # set by these fields
        clash = [k for k in c.discriminator_options if k in fields]
        if clash:
            raise ValueError(f"discriminator_options {clash} are catgan's fields: set "
                             f"{', '.join(fields[k] for k in clash)} instead")
        options = {**dict(emb_dim=c.d_emb_dim, widths=[2, 3, 4, 5], filters=[c.d_filters] * 4, dropout=c.d_dropout,
                          l2_reg=0.0), **c.discriminator_options}
        with seeded(derive_seed(seed, "discriminator-init")):
            disc: Any = discriminators.make("cnn", vocab_size=self.data.vocab_size, max_length=self.data.max_length,
                                            **options)
        self.discriminator: Any = disc.to(self.device)
        self.control = c.discriminator == "constant"
        if self.control:
            with torch.no_grad():
                self.discriminator.out.weight.zero_()
                self.discriminator.out.bias.zero_()
        self.d_opt = torch.optim.Adam(self.discriminator.parameters(), lr=c.d_lr, fused=True)
        self.beta_max = float(c.beta_max if c.beta_max is not None else
                              (1.0 if isinstance(self.data, MultiOracleData) else 100.0))
        self.beta = 1.0  # the parent's current β (the code's gen.temperature)
        self.parents: List[Dict[str, Any]] = []  # filled at the first adversarial step
        self.evo_rng = torch.Generator().manual_seed(derive_seed(seed, "evolution"))

    # ------------------------------------------------------------------ generator
    @property
    def generator(self) -> ConditionalGenerator:
        return self.gen

    def class_log_probs(self, tokens: torch.Tensor, classes: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        return self.gen.log_probs(tokens, temperature, classes=classes)

    def sample_class(self, c: int, n: int, generator: Optional[torch.Generator] = None,
                     temperature: float = 1.0) -> Tuple[torch.Tensor, torch.Tensor]:
        return self.gen.sample_with_lengths(n, generator=generator, classes=c, temperature=temperature)

    def mle_groups(self) -> List[Tuple[Optional[Sequence[int]], torch.optim.Optimizer]]:
        return [(None, self.mle_opt)]

    @torch.no_grad()
    def discriminator_heldout(self, reals: Sequence[Tuple[int, torch.Tensor, torch.Tensor]],
                              generator: torch.Generator) -> Dict[str, float]:
        """D on each class's held-out real sequences x_r^c and as many Gumbel-softmax samples
        x_f^c of the class at the current β (:meth:`ConditionalGenerator.gumbel_sample`).

        D is relativistic: L_D trains it to give a real sequence a larger logit than a generated
        one, whatever their sign, so its accuracy is that pairwise call
        (:func:`~discriminators.evaluation.rank_accuracy`, 0.5 at chance), averaged over classes:

            d_heldout_acc       P(D(x_r^c) > D(x_f^c)) + P(=)/2 over all real/generated pairs, on
                                the soft rows ŷ that D trains on
            d_heldout_acc_hard  the same with the samples' hard tokens y_t (the generated text);
                                where it is far below d_heldout_acc, D tells soft rows from
                                one-hot ones rather than generated text from real text
            d_heldout_loss      L_D (``d_loss``) on the held-out pairs, row i with row i, summed
                                over classes as in training (without the ``all_pairs`` term)

        The soft rows are scored in chunks of about 2^24 floats."""
        D = self.discriminator
        chunk = max(1, 2**24 // (self.data.max_length * self.data.vocab_size))
        soft_acc, hard_acc, loss = [], [], 0.0
        with eval_mode(D):
            for c, tokens, lengths in reals:
                r = D(tokens, lengths).float()
                soft_c, hard_c = [], []
                for lo in range(0, tokens.shape[0], chunk):
                    tok, ln, soft = self.gen.gumbel_sample(min(chunk, tokens.shape[0] - lo), c, self.beta,
                                                           generator=generator)
                    soft_c.append(soft_logits(D, soft, tok, ln).float())
                    hard_c.append(D(tok, ln).float())
                f = torch.cat(soft_c)
                soft_acc.append(rank_accuracy(r, f))
                hard_acc.append(rank_accuracy(r, torch.cat(hard_c)))
                loss += float(relativistic_loss(self.config.d_loss, "D", r, f))
        return {"d_heldout_acc": sum(soft_acc) / len(soft_acc), "d_heldout_acc_hard": sum(hard_acc) / len(hard_acc),
                "d_heldout_loss": loss}

    # ------------------------------------------------------------------ schedule
    @property
    def total_iterations(self) -> int:
        return self.config.mle_epochs + self.config.adv_steps

    def train_iteration(self) -> Dict[str, Any]:
        if self.iteration < self.config.mle_epochs:
            phase, stats = "mle", self.mle_epoch()
        else:
            phase, stats = "adv", self.adversarial_step()
        self.iteration += 1
        return {"phase": phase, **stats}

    def d_real(self, c: int, n: int) -> torch.Tensor:
        tokens, lengths = self.real_batch(c, n)
        return self.discriminator(tokens, lengths)

    def d_fake(self, c: int, n: int, beta: float) -> Tuple[torch.Tensor, Tuple[torch.Tensor, ...]]:
        """D's logits of n Gumbel-softmax samples of class c (differentiable in θ) and the samples."""
        tokens, lengths, soft = self.gen.gumbel_sample(n, c, beta, generator=self.sample_rng)
        return soft_logits(self.discriminator, soft, tokens, lengths), (tokens, lengths, soft.detach())

    def category_loss(self, kind: str, which: str, reals: Sequence[torch.Tensor],
                      fakes: Sequence[torch.Tensor]) -> torch.Tensor:
        """Σ_c ℓ(D(x_r^c), D(x_f^c)) (+ the all-pairs term)."""
        loss = sum((relativistic_loss(kind, which, r, f) for r, f in zip(reals, fakes, strict=True)),
                   torch.zeros((), device=self.device))
        if self.config.all_pairs:
            order_r = torch.randperm(sum(len(r) for r in reals), generator=self.evo_rng).to(self.device)
            order_f = torch.randperm(sum(len(f) for f in fakes), generator=self.evo_rng).to(self.device)
            loss = loss + relativistic_loss(kind, which, torch.cat(list(reals))[order_r], torch.cat(list(fakes))[order_f])
        return loss

    def variation(self, kind: str, beta: float, d_out_real: Sequence[torch.Tensor]) -> float:
        """``g_steps`` generator updates on the mutation loss ``kind`` (the code's ``variation``)."""
        value = 0.0
        for _ in range(self.config.g_steps):
            with self.with_d_seed():
                fakes = [self.d_fake(c, self.config.batch_size, beta)[0] for c in range(self.num_classes)]
                loss = self.category_loss(kind, "G", d_out_real, fakes)
            value = self.optimizer_step(self.gen_opt, loss, "g_loss")
        return value

    @torch.no_grad()
    def fitness(self, beta: float, eval_real: Sequence[torch.Tensor]) -> Tuple[float, float, float, List[Any]]:
        """(F_q, F_d, F_q + γ F_d, the soft samples of each class) of the current generator."""
        n = self.config.eval_batches * self.config.batch_size
        self.discriminator.eval()
        fq, fd, samples = 0.0, 0.0, []
        try:
            for c in range(self.num_classes):
                tokens, lengths, soft = self.gen.gumbel_sample(n, c, beta, generator=self.sample_rng)
                d_f = soft_logits(self.discriminator, soft, tokens, lengths)
                fq += float(torch.sigmoid(d_f - eval_real[c].mean()).sum())
                if self.config.lambda_fd:
                    fd += self.class_nll(tokens, lengths, torch.full((n,), c, device=self.device))
                samples.append((tokens, lengths, soft))
        finally:
            self.discriminator.train()
        return fq, fd, fq + self.config.lambda_fd * fd, samples

    def temperatures(self, step: int) -> List[float]:
        """Stage_temp candidates (the code's ``get_evo_temp``): β at step, step + 1 and step - 1."""
        N = self.config.temp_horizon
        out = [temperature_at(self.beta_max, step, N), temperature_at(self.beta_max, step + 1, N)]
        if step > 1:
            out.append(temperature_at(self.beta_max, step - 1, N))
        return out

    def adversarial_step(self) -> Dict[str, Any]:
        c, k, B = self.config, self.num_classes, self.config.batch_size
        step = self.iteration - c.mle_epochs
        if not c.evolution:
            self.beta = temperature_at(self.beta_max, step, c.temp_horizon)
            with self.with_d_seed():
                d_out_real = [self.d_real(i, B).detach() for i in range(k)]
            g_loss = self.variation(c.d_loss, self.beta, d_out_real)
            with torch.no_grad(), self.with_d_seed():
                fakes = [self.gen.gumbel_sample(B * max(c.d_steps, 1), i, self.beta, generator=self.sample_rng)
                         for i in range(k)]
            stats: Dict[str, Any] = {"g_loss": g_loss, "beta": self.beta}
        else:
            stats, fakes = self.evolve(step)
        stats["d_loss"] = self.discriminator_updates(fakes)
        return stats

    def evolve(self, step: int) -> Tuple[Dict[str, Any], List[Any]]:
        """Steps 1-3 of the module docstring; returns stats and the selected child's samples."""
        c, k, B = self.config, self.num_classes, self.config.batch_size
        if not self.parents:
            self.parents = [self.snapshot() for _ in range(c.n_parent)]
        with torch.no_grad(), self.with_d_seed():
            d_out_real = [self.d_real(i, B) for i in range(k)]
        self.discriminator.eval()
        with torch.no_grad():
            eval_real = [self.d_real(i, c.eval_batches * B) for i in range(k)]
        self.discriminator.train()
        temps = self.temperatures(step) if self.beta_max != 1.0 else [None]
        children: List[Tuple[float, Dict[str, Any], List[Any], str, float, float]] = []
        for parent in self.parents:
            for kind in c.mutations:
                best: Optional[Tuple[float, Dict[str, Any], List[Any], str, float, float]] = None
                for t in temps:
                    self.restore(parent)
                    beta = parent["beta"] if t is None else t
                    g_loss = self.variation(kind, beta, d_out_real)
                    fq, fd, score, samples = self.fitness(beta, eval_real)
                    if best is None or score > best[0]:
                        best = (score, self.snapshot(beta), samples, kind, fq, fd)
                    del g_loss
                assert best is not None
                children.append(best)
        # Stage_obj: the n_parent best children (ties: the first) become the parents
        order = sorted(range(len(children)), key=lambda j: (-children[j][0], j))[: c.n_parent]
        self.parents = [children[j][1] for j in order]
        top = children[order[0]]
        self.restore(top[1])
        stats = {"fitness": top[0], "fitness_q": top[4], "fitness_d": top[5], "beta": self.beta,
                 "mutation": top[3]}
        return stats, top[2]

    def snapshot(self, beta: Optional[float] = None) -> Dict[str, Any]:
        return {"gen": copy.deepcopy(self.gen.state_dict()), "opt": copy.deepcopy(self.gen_opt.state_dict()),
                "beta": self.beta if beta is None else float(beta)}

    def restore(self, s: Dict[str, Any]) -> None:
        self.gen.load_state_dict(s["gen"])
        load_optimizer_state(self.gen_opt, s["opt"])
        self.beta = float(s["beta"])

    def discriminator_updates(self, fakes: List[Any]) -> float:
        """``d_steps`` Adam updates of L_D, each on a real batch and a slice of generated samples
        of every class (the generated rows are constants: detached soft one-hots)."""
        c, B = self.config, self.config.batch_size
        losses: List[float] = []
        for s in range(0 if self.control else c.d_steps):
            with self.with_d_seed():
                reals, outs = [], []
                for i, (tokens, lengths, soft) in enumerate(fakes):
                    n = tokens.shape[0]
                    lo = (s * B) % n
                    sl = slice(lo, min(lo + B, n))
                    reals.append(self.d_real(i, sl.stop - sl.start))
                    outs.append(soft_logits(self.discriminator, soft[sl].detach(), tokens[sl], lengths[sl]))
                loss = self.category_loss(c.d_loss, "D", reals, outs)
            value = check_finite(loss.detach(), "d_loss", self.iteration)
            self.d_opt.zero_grad(set_to_none=True)
            loss.backward()
            if c.grad_clip > 0:  # the code's optimize() clips D too
                torch.nn.utils.clip_grad_norm_(self.discriminator.parameters(), c.grad_clip)
            self.d_opt.step()
            losses.append(value)
        return sum(losses) / len(losses) if losses else 0.0

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> Dict[str, Any]:
        return {**super().state_dict(), "generator": self.gen.state_dict(), "mle_opt": self.mle_opt.state_dict(),
                "gen_opt": self.gen_opt.state_dict(), "discriminator": self.discriminator.state_dict(),
                "d_opt": self.d_opt.state_dict(), "beta": self.beta, "parents": copy.deepcopy(self.parents),
                "evo_rng": self.evo_rng.get_state()}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.gen.load_state_dict(state["generator"])
        load_optimizer_state(self.mle_opt, state["mle_opt"])
        load_optimizer_state(self.gen_opt, state["gen_opt"])
        self.discriminator.load_state_dict(state["discriminator"])
        load_optimizer_state(self.d_opt, state["d_opt"])
        self.beta = float(state["beta"])
        self.parents = copy.deepcopy(state["parents"])
        self.evo_rng.set_state(state["evo_rng"])
