"""Generator-training agents, their typed configs and the registry of named presets.

``agents.make(name, data, config, device, seed)`` builds an :class:`agents.base.Agent` from a
registered preset: the agent class with the preset's config, updated by ``config`` (a dict of
field overrides, or a config instance). Each preset is a :class:`agents.config.Preset`: the
class, its config values and the paper they reproduce.

====================== =============================================== ===================================
name                   class                                           algorithm
====================== =============================================== ===================================
``mle``                :class:`agents.mle.MLEAgent`                    teacher-forced maximum likelihood
``seqgan``             :class:`agents.reinforce.ReinforceAgent`        SeqGAN: MC-rollout policy gradient
``maligan``            :class:`agents.reinforce.MaliGANAgent`          MaliGAN-basic (Algorithm 1)
``maligan-mixed``      :class:`agents.maligan_mixed.MixedMaliGANAgent` MaliGAN with mixed MLE training (Algorithm 2)
``scratchgan``         :class:`agents.reinforce.ReinforceAgent`        ScratchGAN: dense rewards, no pretraining
``reinforce``          :class:`agents.reinforce.ReinforceAgent`        plain REINFORCE, terminal reward
``maskgan``            :class:`agents.actor_critic.ActorCriticAgent`   MaskGAN-style actor-critic
``mle-infill``         :class:`agents.infill.InfillAgent`              MLE of a seq2seq in-filling generator
``maskgan-infill``     :class:`agents.infill.MaskGANInfillAgent`       MaskGAN on the in-filling task
``sentigan``           :class:`agents.sentigan.SentiGANAgent`          SentiGAN: k generators, a multi-class D
``catgan``             :class:`agents.catgan.CatGANAgent`              CatGAN: a class-conditional generator
``ppo``, ``a2c``       :mod:`agents.sb3_agents`                        Stable-Baselines3 through the env
====================== =============================================== ===================================

``ppo`` and ``a2c`` are registered when Stable-Baselines3 imports; other packages add presets
with :func:`register`. Every field, its default and meaning is its config class's
(``train.py --agent NAME --help`` lists them).
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Union

import torch

from agents.actor_critic import ActorCriticAgent, ActorCriticConfig
from agents.adversarial import AdversarialConfig
from agents.base import Agent
from agents.catgan import CATGAN, CatGANAgent
from agents.config import MALIGAN, MASKGAN, SB3, SCRATCHGAN, SEQGAN, ConfigError, Preset
from agents.generator import Generator, RolloutCopy
from agents.infill import InfillAgent, MaskGANInfillAgent
from agents.maligan_mixed import MixedMaliGANAgent, MixedMaliGANConfig, clamp_length
from agents.mle import MLEAgent, MLEAgentConfig, MLEConfig
from agents.reinforce import MaliGANAgent, ReinforceAgent, ReinforceConfig
from agents.sentigan import SENTIGAN, SentiGANAgent
from textgym.data import TextData

# SeqGAN's schedule, which the MaliGAN presets borrow: MLE 120 epochs, 50 D pretraining
# rounds, 200 adversarial steps of 1 G update and 5 D rounds × 3 epochs over 10,000 + 10,000
# sequences, CNN discriminator at lr 1e-4.
_SEQGAN_SCHEDULE: Dict[str, Any] = dict(
    mle_epochs=120, adv_steps=200, g_steps=1, batch_size=64, gen_lr=0.01, discriminator="cnn", d_pretrain_steps=50,
    d_steps=5, d_epochs=3, d_samples=10_000, d_lr=1e-4,
)

PRESETS: Dict[str, Preset] = {p.name: p for p in [
    Preset("mle", MLEAgent, dict(mle_epochs=120, batch_size=64, mle_lr=0.01), SEQGAN,
           "SeqGAN's generator pretraining on its own."),
    Preset("seqgan", ReinforceAgent, dict(
        **_SEQGAN_SCHEDULE, reward="mc", transform="prob", n_rollouts=16, gamma=1.0, baseline="none",
        rollout_rate=0.8, rollout_update="mix"), SEQGAN,
        "Reward D(Y) of 16 rollouts by the delayed policy beta <- 0.8 beta + 0.2 theta; no baseline. Deviations: "
        "the rollout rule is the one SeqGAN's rollout.py states (update_rate 0.8), but that code's rollout graph "
        "reads theta's variables, so its rollouts in effect use theta itself; --rollout-rate 0 gives that (the 0.8 "
        "rule was kept as the code's "
        "stated intent, and the committed SeqGAN results use it). Shared by every REINFORCE agent: the "
        "policy-gradient loss is a per-token mean whose gradient is clipped "
        "at norm 5 (the original sums over the 64 x 20 tokens before the same clip, so it clips nearly every "
        "step; the mean keeps the step independent of batch size and length and the clip a safeguard); a "
        "dedicated BOS embedding starts each sequence (the original feeds token 0's, which is also a word); MLE "
        "epochs reshuffle the data and keep the last partial batch."),
    Preset("maligan", MaliGANAgent, dict(
        **_SEQGAN_SCHEDULE, reward="terminal", transform="maligan", gamma=1.0, baseline="rise", baseline_rise=100),
        MALIGAN, "Algorithm 1 with the baseline rising from 0 to 1 (linearly over half the steps: our choice). The "
                 "paper gives no schedule for its sequence experiments: SeqGAN's is used."),
    Preset("maligan-mixed", MixedMaliGANAgent, dict(
        **_SEQGAN_SCHEDULE, mixed_K=2, mixed_every=10, mixed_m=8, baseline="mean"), MALIGAN,
        "Algorithm 2 with K = 2, m = 8 completions per prefix (our values, not checked against the paper's "
        "experiments); SeqGAN's schedule (the paper gives none)."),
    Preset("scratchgan", ReinforceAgent, dict(
        mle_epochs=0, adv_steps=2000, g_steps=1, batch_size=512, gen_lr=9.59e-5, adam_beta1=0.5, reward="dense",
        transform="centered_prob", gamma=0.23, baseline="ema", baseline_decay=0.08, discriminator="rnn",
        d_pretrain_steps=0, d_steps=1, d_epochs=1, d_samples=512, d_batch_size=1024, d_lr=9.38e-3, d_adam_beta1=0.5,
        d_weight_decay=1e-6), SCRATCHGAN,
        "No pretraining; one D update (512 real + 512 fake, Adam beta1 0.5, L2 1e-6) per generator update; reward "
        "2 D(x_<=t) - 1, discount 0.23. Deviations, for CPU budgets: SeqGAN-size models (LSTM 32/32 generator, "
        "128-unit rnn D; theirs 2 x 512 LSTMs with GloVe embeddings and a 512-unit D) and 2,000 steps (theirs "
        "200,000); a plain rnn D (theirs adds 8 sinusoidal position features through a learned projection) "
        "whose layer norm is applied to its LSTM's outputs and whose dropout drops each input token's embedding "
        "and the states before the head (theirs: a layer-normalized LSTM cell, dropout 0.1 on the entries of the "
        "embedding table); the rewards from D in eval mode (theirs with D's dropout on); the EMA baseline averages "
        "the returns of the real tokens (theirs every one of the B x T positions, padding's zero rewards "
        "included, which pulls it toward 0 on corpora; the same on the oracle); the generator's gradient clipped "
        "at norm 5 (theirs unclipped; the generator's shared default); each step updates G, then D (theirs D, "
        "then G; one loop serves every adversarial agent)."),
    Preset("reinforce", ReinforceAgent, dict(
        **_SEQGAN_SCHEDULE, reward="terminal", transform=None, gamma=1.0, baseline="mean"), SEQGAN,
        "Plain REINFORCE on the terminal D(Y) with a batch-mean baseline, in SeqGAN's schedule."),
    Preset("maskgan", ActorCriticAgent, dict(
        mle_epochs=120, adv_steps=200, g_steps=1, batch_size=128, gen_lr=3.8877e-5, gamma=0.89072, adv_clip=5.0,
        critic_lr=5e-3, critic_warmup=50, transform="log", discriminator="rnn", d_pretrain_steps=50, d_steps=2,
        d_epochs=1, d_samples=128, d_batch_size=256, d_lr=5e-4), MASKGAN,
        "The GAN-mode values of the authors' PTB command (batch 128, generator lr 3.89e-5, discount 0.89072, "
        "discriminator lr 5e-4, 2 discriminator updates per generator update). Deviations: unconditional (every "
        "token is generated, no in-filling mask); an MLP critic on the generator's state with lr 5e-3 and 50 "
        "warm-up updates (their RNN critic uses 5.18e-7); 120 MLE epochs at SeqGAN's lr 0.01 and batch 128 (their "
        "pretraining: lr 7.49e-4, batch 20) and 50 D pretraining updates of 128 + 128 sequences; "
        "a 32-unit generator without dropout and the 128-unit rnn D with dropout 0.1 (theirs 2 x 650, "
        "variational dropout); the loss a per-token "
        "mean with G's gradient clipped at 5 (theirs a sum, G, D and critic clipped at 10); G, then D each step "
        "(theirs D and critic, then G)."),
    Preset("mle-infill", InfillAgent, dict(mle_epochs=120, batch_size=64, mle_lr=7.4876e-4, mask_rate=0.5,
                                           mask_mode="contiguous"), MASKGAN,
           "MLE of the seq2seq in-filling generator on the blanks (lr of the authors' pretraining command)."),
    Preset("maskgan-infill", MaskGANInfillAgent, dict(
        mle_epochs=120, batch_size=128, mle_lr=7.4876e-4, mask_rate=0.5, mask_mode="contiguous", adv_steps=200,
        gen_lr=3.8877e-5, gamma=0.89072, adv_clip=5.0, d_lr=5e-4, d_steps=2, d_pretrain_steps=50), MASKGAN,
        "The authors' GAN-mode command (contiguous blanks at present rate 0.5, batch 128, generator lr 3.89e-5, "
        "discount 0.89072, D lr 5e-4, 2 D updates per step). Deviations: one-layer 32-unit LSTMs without attention "
        "or dropout, the decoders reading [Emb(y_t); Emb(context_t)] (theirs y_t, with attention over the "
        "encoder), an untied output layer (theirs tied to the embedding); an MLP critic (lr 5e-3, 50 warm-up "
        "updates) updated with G on G's batch (theirs with D, on each D batch); the losses per-blank means with "
        "G's gradient clipped at 5 (theirs sums, G, D and critic clipped at 10); G, then D each step (theirs D and "
        "critic, then G); one span "
        "of round(0.5 L) blanks starting anywhere (theirs int(0.5 L) - 1 starting after the first token), in the "
        "MLE phase too (their pretraining command blanks at random positions); 50 D pretraining iterations of 2 "
        "updates each (100 updates) at the D's lr 5e-4 (their GAN command pretrains no D)."),
    Preset("sentigan", SentiGANAgent, dict(
        mle_epochs=120, batch_size=64, mle_lr=0.01, gen_lr=0.01, adv_steps=100, g_steps=1, n_rollouts=16,
        discriminator="multiclass-cnn", d_lr=1e-4, d_pretrain_steps=5, d_pretrain_epochs=3, d_steps=4, d_epochs=2,
        d_samples=5000), SENTIGAN,
        "k generators, penalty V = 1 - D_i(Y) from 16 MC rollouts. Deviations: V multiplies log G_i (the authors' "
        "code multiplies G_i, with RMSProp); per-token mean loss; the project's multiclass-cnn discriminator; "
        "generator i's reward is D_i (TextGAN-PyTorch's oracle-data instructor passes the first class's probability "
        "to every generator; its real-data one D_i); the MC reward is the mean over each prefix's rollouts, read "
        "from D in eval mode (TextGAN's reshape of its (rollouts x T, B) rewards to (B, T, rollouts) mixes rows, "
        "positions and rollouts, and its D keeps dropout on); 5,000 real "
        "sequences per class per D round (TextGAN: all 10,000); adversarial updates clipped at 5 (TextGAN: none) "
        "with their own Adam (TextGAN: one Adam per generator for MLE and adversarial updates); the D's updates "
        "unclipped, as in the authors' code (TextGAN: clipped at 5); the generators start from SeqGAN's N(0, "
        "0.1) before MLE (TextGAN: std 1/sqrt(rows)). The schedule is "
        "TextGAN's; the authors' toy code runs 10 x 3 D pretraining epochs, 350 adversarial steps and 1 x 3 D "
        "epochs per step."),
    Preset("catgan", CatGANAgent, dict(
        mle_epochs=150, batch_size=64, mle_lr=0.01, gen_lr=1e-4, adv_steps=2000, g_steps=1, d_lr=1e-4, d_steps=3,
        d_loss="rsgan", evolution=True, mutations=["rsgan", "ragan"], n_parent=1, lambda_fd=0.001, eval_batches=8),
        CATGAN,
        "Category-wise RSGAN, evolutionary selection (rsgan/ragan mutations, fitness F_q + 0.001 F_d). Deviations: "
        "LSTM + Gumbel-softmax generator instead of RMC; the SeqGAN CNN as D (TextGAN's CatGAN_D: num_rep "
        "representations, a one-matrix highway sigma(h) relu(h) + (1 - sigma(h)) x, a 1200-100-1 linear head, "
        "uniform(+-0.05) initialization); with one logit per sequence instead of num_rep = 64, F_q sums 64 times "
        "fewer terms, so lambda_fd = 0.001 weighs the diversity term about 64 times more in selection than in "
        "TextGAN; F_d from the samples that give F_q (TextGAN draws fresh ones); the generator starts from "
        "SeqGAN's N(0, 0.1) (TextGAN: truncated normal of std 1/sqrt(rows)); mutations tried rsgan first "
        "(TextGAN: ragan first; only a fitness tie depends on it); D loss RSGAN (the run script: RaGAN); beta_max "
        "1 on oracle data, 100 on corpora."),
]}

#: ``train.py --task infill``: agent name -> its in-filling preset
TASKS: Dict[str, Dict[str, str]] = {"infill": {"mle": "mle-infill", "maskgan": "maskgan-infill"}}


def register(preset: Preset, *, overwrite: bool = False) -> None:
    """Register a preset (an agent class with ``Config`` and constructor ``cls(data, config, device, seed)``)."""
    if not isinstance(preset, Preset) or not preset.name:
        raise ValueError(f"register takes a Preset with a non-empty name, got {preset!r}")
    if preset.name in PRESETS and not overwrite:
        raise ValueError(f"agent {preset.name!r} is already registered (pass overwrite=True to replace it)")
    preset.config()  # refuses unknown keys and bad values now, not at the first run
    PRESETS[preset.name] = preset


def available() -> List[str]:
    """The registered agent names, sorted."""
    return sorted(PRESETS)


def preset(name: str) -> Preset:
    """The registered preset ``name`` (ValueError with the valid names otherwise)."""
    if name not in PRESETS:
        from agents.config import suggest

        raise ValueError(f"unknown agent {name!r}{suggest(name, PRESETS)}; valid agents: {', '.join(available())}")
    return PRESETS[name]


def make(
    name: str,
    data: Union[str, TextData] = "oracle",
    config: Union[None, Mapping[str, Any], Any] = None,
    device: Union[str, torch.device] = "cpu",
    seed: int = 0,
) -> Agent:
    """Build a registered agent: its preset's config updated by ``config``.

    Args:
        name: one of :func:`available`.
        data: ``"oracle"``, a path to a text file, or a TextData.
        config: a dict of field overrides of the preset (unknown keys are refused), or a
            complete config instance of the agent's ``Config`` class.
        device: where the agent's tensors live.
        seed: seeds every random draw of the agent.

    Raises:
        ValueError: unknown name, unknown field, or a value the agent refuses
            (:class:`agents.config.ConfigError` is a ValueError).
    """
    p = preset(name)
    if config is None or isinstance(config, Mapping):
        from agents.config import replace, translate_deprecated

        cfg = replace(p.config(), **translate_deprecated(config or {}))
    else:
        cfg = config
    agent = p.agent(data, cfg, device=device, seed=seed)
    agent.name = name  # the registry name (several presets share a class)
    return agent


def __getattr__(name: str) -> Any:
    """``agents.AGENTS``, the registry of an earlier release: {name: (class, preset values)}."""
    if name == "AGENTS":
        import warnings

        warnings.warn("agents.AGENTS is deprecated: use agents.PRESETS (name -> Preset)", DeprecationWarning, stacklevel=2)
        return {n: (p.agent, dict(p.values)) for n, p in PRESETS.items()}
    raise AttributeError(f"module 'agents' has no attribute {name!r}")


def _register_optional() -> None:
    """Register the Stable-Baselines3 agents (``ppo``, ``a2c``) of ``agents.sb3_agents`` when present."""
    try:
        from agents import sb3_agents
    except ImportError:  # the module or its dependencies are absent: those agents are not offered
        return
    for p in (Preset("ppo", sb3_agents.PPOAgent, dict(learning_rate=3e-4), SB3,
                     "PPO with SB3's defaults (lr 3e-4) but for the rollout, n_steps = max_length (SB3: 2048), and the "
                     "minibatch, the largest divisor of the rollout up to 256 (SB3: 64)."),
              Preset("a2c", sb3_agents.A2CAgent, dict(learning_rate=7e-4), SB3,
                     "A2C with SB3's defaults (lr 7e-4) but for the rollout, n_steps = max_length (SB3: 5).")):
        if p.name not in PRESETS:
            register(p)


_register_optional()

__all__ = [
    "PRESETS", "ActorCriticAgent", "ActorCriticConfig", "AdversarialConfig", "Agent", "ConfigError", "Generator",
    "CatGANAgent", "InfillAgent", "MLEAgent", "MLEAgentConfig", "MLEConfig", "MaskGANInfillAgent", "TASKS",
    "MaliGANAgent", "MixedMaliGANAgent", "MixedMaliGANConfig", "Preset", "ReinforceAgent",
    "ReinforceConfig", "RolloutCopy", "SentiGANAgent", "available", "clamp_length", "make", "preset", "register",
]
