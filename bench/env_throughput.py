"""Env throughput: tokens per second of TokenVecEnv against gymnasium's SyncVectorEnv of TokenEnvs.

Terminal reward from the oracle's log-likelihood (the default env on oracle data), random
actions drawn beforehand, whole episodes of 20 tokens. For each N, both vector envs run the
same number of episodes in the same process; the headline ratio is at N = 256.
"""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch

from common import emit, log, parser, timeit
from textgym import TokenEnv, TokenVecEnv
from textgym.data import resolve_data


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
    for N in sizes:
        g = torch.Generator().manual_seed(N)
        # NEXT_STEP autoreset spends one step per episode on the reset: episodes * (L + 1) steps.
        actions = torch.randint(0, data.vocab_size, (episodes * (L + 1), N), generator=g)
        batched = TokenVecEnv(N, data=data, device=device)
        acts_dev = actions.to(device)
        t_b = timeit(lambda: run_batched(batched, acts_dev), device, 1 if args.quick else args.repeats)
        sync = gym.vector.SyncVectorEnv([lambda: TokenEnv(data=data) for _ in range(N)])
        acts_np = actions.numpy()
        t_s = timeit(lambda: run_sync(sync, acts_np), torch.device("cpu"), 1, warmup=0)
        tokens = episodes * L * N
        figures[N] = {"tokens_per_s_batched": tokens / t_b, "tokens_per_s_sync": tokens / t_s, "ratio": t_s / t_b}
        log(f"N={N}: batched {tokens / t_b:,.0f} tok/s, SyncVectorEnv {tokens / t_s:,.0f} tok/s, x{t_s / t_b:.1f}")
    headline = 256 if 256 in figures else sizes[-1]
    emit({"benchmark": "env_throughput", "device": str(device), "reward": "terminal (oracle log-likelihood)",
          "length": L, "vocab": data.vocab_size, "by_num_envs": figures, "headline_num_envs": headline,
          "ratio": figures[headline]["ratio"]})


if __name__ == "__main__":
    main()
