"""SB3 PPO throughput (oracle scorer): env tokens per second of PPO with textgym's generator policy against
SB3's MLP policy over the GRU features extractor (the previous default), N = 64, L = 20.

Both agents are ``agents.make("ppo", "oracle", ...)`` with the oracle's log-likelihood as the
terminal reward (no discriminator to train, so the policies are what differs) and SB3's PPO
defaults (10 epochs of minibatches of 256 per rollout of N x L tokens). One timed unit is one
iteration: a rollout of 64 x 20 tokens and PPO's update on it. The two run in interleaved
rounds in one process; the figures are medians of ``--repeats`` rounds and ``ratio`` is the
generator policy's tokens per second over the GRU policy's.
"""
from __future__ import annotations

import sys
from typing import List, Optional

import torch

import agents
from common import emit, interleaved, log, parser


def main(argv: Optional[List[str]] = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--num-envs", type=int, default=64)
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (0: torch's default)")
    args = p.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    n = 8 if args.quick else args.num_envs
    repeats = 1 if args.quick else args.repeats
    made = {policy: agents.make("ppo", "oracle", {"discriminator": "oracle", "num_envs": n, "policy": policy,
                                                 "adv_steps": 10**6}, device=device, seed=0)
            for policy in ("generator", "gru")}
    fns = {policy: agent.train_iteration for policy, agent in made.items()}
    times = interleaved(fns, device, repeats=repeats)
    tokens = made["generator"].rollout_steps
    rates = {policy: tokens / t for policy, t in times.items()}
    log(f"tokens per iteration {tokens}: generator policy {rates['generator']:.0f} tok/s, "
        f"GRU extractor {rates['gru']:.0f} tok/s")
    emit({"benchmark": "sb3_throughput", "quick": bool(args.quick), "scorer": "oracle", "device": str(device),
          "num_envs": n, "max_length": 20,
          "tokens_per_iteration": tokens, "seconds": times, "tokens_per_s": rates,
          "ratio": rates["generator"] / rates["gru"], "repeats": repeats, "threads": torch.get_num_threads()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
