"""Env throughput: tokens per second of TokenVecEnv against gymnasium's SyncVectorEnv of TokenEnvs.

Terminal reward from the oracle's log-likelihood (the default env on oracle data), random
actions drawn beforehand, whole episodes of 20 tokens. For each N, both vector envs run the
same number of episodes in the same process, in interleaved rounds (medians of ``--repeats``);
the headline ratio is at N = 256.

Both sides compute the same reward arithmetic with the same scorer: each finished sequence is
scored by the oracle (a log-sum-exp over 5000 logits at each of its 20 positions), which
bounds the batched env on a CPU; a faster scorer speeds up both sides. ``machinery`` repeats
the comparison with a scorer that costs nothing (the sequence length as an identity-transformed
score), so it measures the env itself: stepping, bookkeeping, autoreset and the vector-env API.
"""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch

from common import emit, interleaved, log, parser
from textgym import TokenEnv, TokenVecEnv
from textgym.data import resolve_data


class FreeScorer:
    """A non-probabilistic scorer of no cost: the number of valid tokens."""

    is_probabilistic = False

    def __init__(self, vocab_size: int) -> None:
        self.vocab_size = vocab_size

    def __call__(self, tokens: torch.Tensor, lengths: torch.Tensor = None) -> torch.Tensor:
        return torch.full((tokens.shape[0],), float(tokens.shape[1])) if lengths is None else lengths.float()


def run_batched(env: TokenVecEnv, actions: torch.Tensor) -> None:
    env.reset(seed=0)
    for a in actions:
        env.step(a)


def run_sync(env: gym.vector.SyncVectorEnv, actions: np.ndarray) -> None:
    env.reset(seed=0)
    for a in actions:
        env.step(a)


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    device = torch.device(args.device)
    sizes = (8, 16) if args.quick else (64, 256, 1024)
    episodes = 1 if args.quick else 2
    data = resolve_data("oracle")
    L = data.max_length
    figures = {}
    for kind in ("oracle", "machinery"):
        kw = {} if kind == "oracle" else {"discriminator": FreeScorer(data.vocab_size), "transform": "identity"}
        for N in sizes:
            g = torch.Generator().manual_seed(N)
            # NEXT_STEP autoreset spends one step per episode on the reset: episodes * (L + 1) steps.
            actions = torch.randint(0, data.vocab_size, (episodes * (L + 1), N), generator=g)
            batched = TokenVecEnv(N, data=data, device=device, **kw)
            acts_dev = actions.to(device)
            sync = gym.vector.SyncVectorEnv([lambda: TokenEnv(data=data, **kw) for _ in range(N)])
            acts_np = actions.numpy()
            t = interleaved({"batched": lambda: run_batched(batched, acts_dev), "sync": lambda: run_sync(sync, acts_np)},
                            device, 1 if args.quick else args.repeats, warmup=not args.quick)
            t_b, t_s = t["batched"], t["sync"]
            tokens = episodes * L * N
            figures.setdefault(kind, {})[N] = {"tokens_per_s_batched": tokens / t_b, "tokens_per_s_sync": tokens / t_s,
                                               "ratio": t_s / t_b}
            log(f"{kind} reward, N={N}: batched {tokens / t_b:,.0f} tok/s, SyncVectorEnv {tokens / t_s:,.0f} tok/s, "
                f"x{t_s / t_b:.1f}")
    headline = 256 if 256 in sizes else sizes[-1]
    emit({"benchmark": "env_throughput", "device": str(device), "reward": "terminal (oracle log-likelihood)",
          "threads": torch.get_num_threads(), "length": L, "vocab": data.vocab_size,
          "by_num_envs": figures["oracle"], "machinery_by_num_envs": figures["machinery"],
          "headline_num_envs": headline, "ratio": figures["oracle"][headline]["ratio"],
          "ratio_machinery": figures["machinery"][headline]["ratio"]})


if __name__ == "__main__":
    main()
