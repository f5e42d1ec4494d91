"""SentiGAN (Wang & Wan, IJCAI 2018): k generators and one multi-class discriminator.

Generator i (an LSTM :class:`~agents.generator.Generator`) writes class i; the discriminator
D (a :class:`discriminators.multiclass.MultiClassDiscriminator`, k real classes + fake) tells
the k real classes and generated text apart. Per adversarial step, for each generator i:

    1. Y ~ G_i, B = ``batch_size`` sequences
    2. Q_t = (1/n) Σ_{j≤n} D_i(Y_{1:t} ∘ MC_j)  for t < L,  Q_L = D_i(Y)      MC rollouts by G_i
       (``n_rollouts``; D_i(Y) = softmax(D(Y))_i, the probability of class i: ``class_reward``)
    3. V_t = 1 - Q_t                                                          the penalty
    4. L(θ_i) = Σ_{b,t<L_b} V_t · log G_i(y_t | Y_{1:t-1}) / Σ_b L_b            minimized (Adam, clip 5)

so ∇L is the policy gradient of the expected penalty E_{Y~G_i}[V(Y)]: the penalty-based
objective (minimize E[V · log G_i] instead of maximizing E[D_i · log G_i]; the authors' code
minimizes Σ V · G_i(y_t) itself, with RMSProp).
Then ``d_steps`` discriminator rounds: ``d_samples`` fresh samples of each generator (label
fake) and as many real sequences of each class (label its class), ``d_epochs`` epochs of
cross-entropy (:class:`~discriminators.multiclass.MultiClassTrainer`).

Schedule (TextGAN-PyTorch ``run_sentigan.py`` on the oracle data): MLE 120 epochs per generator
(lr 0.01, batch 64), D pretraining 5 rounds × 3 epochs, 100 adversarial steps of 1 generator
update per class (lr 0.01) with 16 rollouts and 4 D rounds × 2 epochs, D lr 1e-4, 10,000 samples
per D round over all classes (5,000 per class at k = 2).

Deviations: the penalty multiplies ``log G_i`` (the reference code's ``batchPGLoss`` multiplies
the token probability G_i, not its log, and with a minus sign, which would raise the
probability of penalized tokens); the loss is a per-token mean (the code sums); the
discriminator is the project's multi-class CNN (``multiclass-cnn``, SeqGAN-sized) rather than
the code's 4 × 200-filter CNN on 64-d embeddings.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Dict, List, Optional, Sequence, Tuple, cast

import torch
from torch import nn

from agents.conditional import ConditionalAgent, ConditionalConfig
from agents.config import SIZE, at_least, param, positive
from agents.generator import Generator
from agents.mle import check_finite, derive_seed
from discriminators.base import load_optimizer_state
from textgym.masks import length_mask
from textgym.rewards import MCReward

SENTIGAN = "SentiGAN, Wang & Wan 2018 (TextGAN-PyTorch run_sentigan.py)"

__all__ = ["SENTIGAN", "ClassScorer", "SentiGANAgent", "SentiGANConfig"]


class ClassScorer:
    """D_c(Y): the multi-class discriminator's probability of class c, as a plain scorer
    (``is_probabilistic = False``: the score is already the reward) for textgym's rewards."""

    is_probabilistic = False
    supports_prefixes = False

    def __init__(self, discriminator: Any, c: int) -> None:
        self.discriminator, self.c = discriminator, int(c)
        self.vocab_size = discriminator.vocab_size

    @property
    def device(self) -> torch.device:
        return self.discriminator.device

    @torch.no_grad()
    def score(self, tokens: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        classes = torch.full((tokens.shape[0],), self.c, dtype=torch.long, device=tokens.device)
        return self.discriminator.class_reward(tokens, lengths, classes)

    __call__ = score


@dataclass
class SentiGANConfig(ConditionalConfig):
    """Fields of SentiGAN (defaults: TextGAN-PyTorch's ``run_sentigan.py``, oracle data)."""

    mle_epochs: int = param(120, "MLE epochs of each generator (MLE_train_epoch)", kind=SIZE, check=at_least(0),
                            source=SENTIGAN)
    adv_steps: int = param(100, "adversarial steps (ADV_train_epoch)", kind=SIZE, check=at_least(0), source=SENTIGAN)
    gen_lr: float = param(0.01, "Adam lr of the generators' adversarial updates (gen_lr)", source=SENTIGAN,
                          check=positive)
    g_steps: int = param(1, "updates of each generator per adversarial step (ADV_g_step)", check=at_least(1),
                         source=SENTIGAN)
    n_rollouts: int = param(16, "MC rollouts per prefix (rollout_num)", kind=SIZE, check=at_least(1), source=SENTIGAN)
    discriminator: str = param("multiclass-cnn", "multi-class discriminator: multiclass-cnn, multiclass-rnn, or constant "
                                                 "(the no-information control: every class probability 1/(k+1), never "
                                                 "trained)",
                               check=lambda v: None if v in ("multiclass-cnn", "multiclass-rnn", "constant")
                               else "multiclass-cnn, multiclass-rnn or constant")
    d_lr: float = param(1e-4, "discriminator Adam lr (dis_lr)", source=SENTIGAN, check=positive)
    d_pretrain_steps: int = param(5, "discriminator pretraining rounds (d_step)", kind=SIZE, check=at_least(0),
                                  source=SENTIGAN)
    d_pretrain_epochs: int = param(3, "epochs of each pretraining round (d_epoch)", kind=SIZE, check=at_least(1),
                                   source=SENTIGAN)
    d_steps: int = param(4, "discriminator rounds per adversarial step (ADV_d_step)", kind=SIZE, check=at_least(0),
                         source=SENTIGAN)
    d_epochs: int = param(2, "epochs of each adversarial round (ADV_d_epoch)", kind=SIZE, check=at_least(1),
                          source=SENTIGAN)
    d_samples: int = param(5000, "fake samples per generator per round (samples_num // k), and as many real ones "
                                 "per class (TextGAN-PyTorch: all of them)", kind=SIZE, check=at_least(1), source=SENTIGAN)


class SentiGANAgent(ConditionalAgent):
    """SentiGAN: k generators with the penalty objective (see the module docstring)."""

    name = "sentigan"
    Config: ClassVar[type] = SentiGANConfig
    generator_key = "generators"
    config: SentiGANConfig

    def __init__(self, data: Any, config: Optional[Any] = None, device: Any = "cpu", seed: int = 0) -> None:
        super().__init__(data, config, device, seed)
        c, k = self.config, self.num_classes
        self.generators = nn.ModuleList(
            [self.new_generator(False, f"generator-init-{i}") for i in range(k)]).to(self.device)
        self.mle_opts = [torch.optim.Adam(g.parameters(), lr=c.mle_lr) for g in self.generators]
        self.gen_opts = [torch.optim.Adam(g.parameters(), lr=c.gen_lr) for g in self.generators]
        import discriminators

        self.control = c.discriminator == "constant"
        self.discriminator = discriminators.make_multiclass(
            "multiclass-cnn" if self.control else c.discriminator, self.data.vocab_size, k,
            seed=derive_seed(seed, "discriminator-init"),
            max_length=self.data.max_length, **c.discriminator_options).to(self.device)
        self.discriminator.check_num_classes(self.data, "the data")
        if self.control:  # zero class logits whatever the input: D_i(Y) = 1/(k+1) for every Y
            with torch.no_grad():
                self.discriminator.class_head.weight.zero_()
                self.discriminator.class_head.bias.zero_()
        self.d_trainer = discriminators.MultiClassTrainer(self.discriminator, lr=c.d_lr, batch_size=c.d_batch_size,
                                                          seed=derive_seed(seed, "discriminator"))
        self.rewards: List[MCReward] = []
        for i in range(k):
            reward = MCReward(ClassScorer(self.discriminator, i), transform=None, rollout_policy=self.gen(i),
                              n_rollouts=c.n_rollouts)
            reward.bind(self.data.vocab_size, self.data.eos_id, self.data.pad_id)
            self.rewards.append(reward)

    # ------------------------------------------------------------------ generators
    @property
    def generator(self) -> Any:
        """The k generators (an ``nn.ModuleList``; generator i writes class i)."""
        return self.generators

    def gen(self, i: int) -> Generator:
        """Generator i (class i)."""
        return cast(Generator, self.generators[i])

    def class_log_probs(self, tokens: torch.Tensor, classes: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        out = torch.zeros(tokens.shape, device=self.device)
        classes = classes.to(self.device)
        for i in range(self.num_classes):
            rows = (classes == i).nonzero().squeeze(1)
            if rows.numel():
                out = out.index_put((rows,), self.gen(i).log_probs(tokens[rows].to(self.device), temperature))
        return out

    def sample_class(self, c: int, n: int, generator: Optional[torch.Generator] = None,
                     temperature: float = 1.0) -> Tuple[torch.Tensor, torch.Tensor]:
        return self.gen(c).sample_with_lengths(n, generator=generator, temperature=temperature)

    def mle_groups(self) -> List[Tuple[Optional[Sequence[int]], torch.optim.Optimizer]]:
        return [([i], opt) for i, opt in enumerate(self.mle_opts)]

    @torch.no_grad()
    def discriminator_heldout(self, reals: Sequence[Tuple[int, torch.Tensor, torch.Tensor]],
                              generator: torch.Generator) -> Dict[str, float]:
        """``d_heldout_acc`` / ``d_heldout_loss``: real against generated as the unconditional
        agents report it (:func:`discriminators.evaluate` of D's logit of P(real) =
        ``logsumexp(z_{<k}) - z_k``; 0.5 at chance); ``d_heldout_class_acc``: the fraction of
        real sequences whose largest logit of the k + 1 is their own class (1/(k + 1) at chance,
        ties shared)."""
        import discriminators

        fakes = [self.sample_class(c, tokens.shape[0], generator) for c, tokens, _ in reals]
        real, real_len = torch.cat([r[1] for r in reals]), torch.cat([r[2] for r in reals])
        labels = torch.cat([torch.full((r[1].shape[0],), r[0], dtype=torch.long, device=self.device) for r in reals])
        fake, fake_len = torch.cat([f[0] for f in fakes]), torch.cat([f[1] for f in fakes])
        binary = discriminators.evaluate(self.discriminator, real, real_len, fake, fake_len)
        classes = self.d_trainer.evaluate(real, real_len, labels)
        return {"d_heldout_acc": float(binary["balanced_acc"]), "d_heldout_loss": float(binary["loss"]),
                "d_heldout_class_acc": classes["acc_real"]}

    def reward_scorer(self, c: int) -> ClassScorer:
        """The scorer of generator c's rewards: D's probability of class c."""
        return ClassScorer(self.discriminator, c)

    # ------------------------------------------------------------------ schedule
    @property
    def total_iterations(self) -> int:
        c = self.config
        return c.mle_epochs + c.d_pretrain_steps + c.adv_steps

    def phase(self) -> str:
        c = self.config
        if self.iteration < c.mle_epochs:
            return "mle"
        return "d_pretrain" if self.iteration < c.mle_epochs + c.d_pretrain_steps else "adv"

    def train_iteration(self) -> Dict[str, Any]:
        phase = self.phase()
        if phase == "mle":
            stats: Dict[str, Any] = self.mle_epoch()
        elif phase == "d_pretrain":
            stats = self.discriminator_round(self.config.d_pretrain_epochs)
        else:
            stats = self.adversarial_step()
        self.iteration += 1
        return {"phase": phase, **stats}

    def adversarial_step(self) -> Dict[str, float]:
        stats: Dict[str, float] = {}
        for i in range(self.num_classes):
            for _ in range(self.config.g_steps):
                stats.update({f"{k}_c{i}": v for k, v in self.generator_step(i).items()})
        stats["g_loss"] = sum(stats[f"g_loss_c{i}"] for i in range(self.num_classes)) / self.num_classes
        for _ in range(self.config.d_steps):
            stats.update(self.discriminator_round(self.config.d_epochs))
        return stats

    def generator_step(self, i: int) -> Dict[str, float]:
        """Steps 1-4 of the module docstring for generator i."""
        gen = self.gen(i)
        tokens, lengths = gen.sample_with_lengths(self.config.batch_size, generator=self.sample_rng)
        with self.with_d_seed():
            q = self.rewards[i].sequence_rewards(tokens, lengths, generator=self.sample_rng)  # (B, T): Q_t
        mask = length_mask(lengths, tokens.shape[1]).float()
        penalty = (1.0 - q) * mask                                                         # V_t
        lp = gen.log_probs(tokens)
        loss = (penalty * lp).sum() / mask.sum()
        g_loss = self.optimizer_step(self.gen_opts[i], loss, f"g_loss_c{i}")
        return {"g_loss": g_loss, "reward": float((q * mask).sum() / mask.sum())}

    def discriminator_round(self, epochs: int) -> Dict[str, float]:
        """``d_samples`` fresh samples of each generator (fake) and real sequences of each class
        (nothing for the no-information control, which is never trained)."""
        if self.control:
            return {}
        n, k = self.config.d_samples, self.num_classes
        fakes = [self.sample_class(i, n, self.sample_rng) for i in range(k)]
        reals = [self.real_batch(i, n) for i in range(k)]
        real = torch.cat([r[0] for r in reals])
        real_len = torch.cat([r[1] for r in reals])
        labels = torch.arange(k, device=self.device).repeat_interleave(n)
        with self.with_d_seed():
            out = self.d_trainer.step(real, real_len, labels, torch.cat([f[0] for f in fakes]),
                                      torch.cat([f[1] for f in fakes]), epochs=epochs)
        return {f"d_{key}": check_finite(torch.as_tensor(float(out[key])), f"d_{key}", self.iteration)
                for key in ("loss", "acc_real", "acc_fake")}

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> Dict[str, Any]:
        return {**super().state_dict(), "generators": self.generators.state_dict(),
                "mle_opts": [o.state_dict() for o in self.mle_opts], "gen_opts": [o.state_dict() for o in self.gen_opts],
                "discriminator": self.discriminator.state_dict(),
                "d_opt": self.d_trainer.optimizer.state_dict(), "d_shuffle": self.d_trainer.generator.get_state(),
                "d_total_steps": self.d_trainer.total_steps}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.generators.load_state_dict(state["generators"])
        for o, s in zip(self.mle_opts, state["mle_opts"], strict=True):
            load_optimizer_state(o, s)
        for o, s in zip(self.gen_opts, state["gen_opts"], strict=True):
            load_optimizer_state(o, s)
        self.discriminator.load_state_dict(state["discriminator"])
        load_optimizer_state(self.d_trainer.optimizer, state["d_opt"])
        self.d_trainer.generator.set_state(state["d_shuffle"])
        self.d_trainer.total_steps = int(state["d_total_steps"])
