"""Env throughput: tokens per second of TokenVecEnv against gymnasium's SyncVectorEnv of TokenEnvs.

Terminal reward from the oracle's log-likelihood (the default env on oracle data), random
actions drawn beforehand, whole episodes of 20 tokens. For each N, both vector envs run the
same number of episodes in the same process, in interleaved rounds (medians of ``--repeats``);
the headline ratio is at N = 256. ``--sizes`` picks the N; ``--sync-max`` skips the
SyncVectorEnv baseline above that N (16,384 Python envs would take minutes), where only the
batched env's tokens per second are reported.

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
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=None, help="numbers of envs N (default 64 256 1024)")
    p.add_argument("--sync-max", type=int, default=None, help="time the SyncVectorEnv baseline only up to this N")
    args = p.parse_args()
    device = torch.device(args.device)
    sizes = tuple(args.sizes) if args.sizes else (8, 16) if args.quick else (64, 256, 1024)
    sync_max = args.sync_max if args.sync_max is not None else max(sizes)
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
            fns = {"batched": lambda: run_batched(batched, acts_dev)}
            if N <= sync_max:
                sync = gym.vector.SyncVectorEnv([lambda: TokenEnv(data=data, **kw) for _ in range(N)])
                acts_np = actions.numpy()
                fns["sync"] = lambda: run_sync(sync, acts_np)
            # a warm-up round also under --quick: the first size's timing was mostly start-up
            t = interleaved(fns, device, 1 if args.quick else args.repeats, warmup=True)
            tokens = episodes * L * N
            row = figures.setdefault(kind, {})[N] = {"tokens_per_s_batched": tokens / t["batched"]}
            line = f"{kind} reward, N={N}: batched {tokens / t['batched']:,.0f} tok/s"
            if "sync" in t:
                row.update(tokens_per_s_sync=tokens / t["sync"], ratio=t["sync"] / t["batched"])
                line += f", SyncVectorEnv {tokens / t['sync']:,.0f} tok/s, x{row['ratio']:.1f}"
            log(line)
    timed = [N for N in sizes if N <= sync_max]
    headline = 256 if 256 in timed else timed[-1] if timed else None
    emit({"benchmark": "env_throughput", "quick": bool(args.quick), "device": str(device), "scorer": "oracle",
          "reward": "terminal (oracle log-likelihood)",
          "threads": torch.get_num_threads(), "length": L, "vocab": data.vocab_size,
          "by_num_envs": figures["oracle"], "machinery_by_num_envs": figures["machinery"],
          "headline_num_envs": headline, "ratio": figures["oracle"][headline]["ratio"] if headline else None,
          "ratio_machinery": figures["machinery"][headline]["ratio"] if headline else None})


if __name__ == "__main__":
    main()
