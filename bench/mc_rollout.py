"""One SeqGAN Monte-Carlo reward computation: batched vs the nested loop of public code.

Setting (headline): 64 sequences of length 20, 16 rollouts, V = 5000, the SeqGAN oracle as
rollout policy and as scorer (its log-likelihood). Compared in the same process:

- ``batched``: ``MCReward.sequence_rewards``: all 64·19 prefixes × 16 rollouts are one
  lock-step generation (projection and sampling only for rows past their prefix) and one
  scoring pass, in which the log-likelihood of each shared prefix is computed once per
  group of 16 rollouts (log p(x) = log p(x_<p) + log p(x_≥p | x_<p)) rather than 16 times;
- ``public_loop``: the loop of public SeqGAN code: for each rollout, for each prefix length,
  run the LSTM over the prefix, sample the rest with ``torch.multinomial`` and score the
  64 completions; the finished sequences are scored once per rollout;
- ``loop_same_kernels``: the same loop built from our own kernels (inverse-CDF sampling,
  the oracle's rollout), to separate the effect of batching from that of the sampler;
- ``roofline``: the bare matrix products of the batched computation (the output projection of
  every sampled position and of every scored position, in the row blocks of ``row_chunk``),
  timed alone: the batched reward cannot be faster than that. ``roofline_ratio`` = roofline time / batched time
  (1 would mean nothing but the products costs time).

Per sequence the loops compute 19·16·20 scored logit rows plus 16·190 sampled ones; the batched
reward computes the same sampled rows but only 16·190 + 190 scored ones. Batching removes
per-call overhead and the prefix re-runs; sharing the prefixes' scores removes a third of the
arithmetic. On a CPU, where each of the loop's (64, 5000) products is already large, the rest
of the gain is bounded by ``roofline_ratio``; on a GPU the loop's thousands of small kernel
launches dominate instead.
"""
from __future__ import annotations

import torch

from common import emit, interleaved, log, parser
from textgym.oracle import OracleLSTM
from textgym.rewards import MCReward
from textgym.sampling import row_chunk
from textgym.scorers import OracleScorer


def public_loop(oracle: OracleLSTM, scorer: OracleScorer, tokens: torch.Tensor, n: int) -> torch.Tensor:
    N, T = tokens.shape
    rewards = torch.zeros(N, T, device=tokens.device)
    with torch.no_grad():
        for _ in range(n):
            for given in range(1, T):
                h, c = oracle._zeros(N)
                prev = torch.zeros(N, dtype=torch.long, device=tokens.device)
                for t in range(given):  # feed the prefix
                    h, c = oracle.cell(oracle.embedding[prev], h, c)
                    prev = tokens[:, t]
                out = tokens.clone()
                for t in range(given, T):  # sample the rest, one token at a time
                    h, c = oracle.cell(oracle.embedding[prev], h, c)
                    probs = torch.softmax(oracle.logits(h), dim=-1)
                    prev = torch.multinomial(probs, 1).squeeze(1)
                    out[:, t] = prev
                rewards[:, given - 1] += scorer.score(out)
            rewards[:, T - 1] += scorer.score(tokens)
    return rewards / n


def loop_same_kernels(oracle: OracleLSTM, scorer: OracleScorer, tokens: torch.Tensor, n: int) -> torch.Tensor:
    N, T = tokens.shape
    rewards = torch.zeros(N, T, device=tokens.device)
    for _ in range(n):
        for given in range(1, T):
            full = oracle.rollout(tokens, torch.full((N,), given, device=tokens.device))
            rewards[:, given - 1] += scorer.score(full)
        rewards[:, T - 1] += scorer.score(tokens)
    return rewards / n


def roofline(oracle: OracleLSTM, N: int, T: int, n: int, device: torch.device, chunk: int):
    """The output projections of the batched computation alone: as many (rows, H) x (H, V)
    products, in blocks of ``chunk`` rows, as it computes logits (one per sampled position, one
    per scored position: the T - p positions after a prefix of length p in each of its n
    completions, and its p prefix positions once), written into a preallocated output."""
    H, V = oracle.hidden_dim, oracle.vocab_size
    sample_rows = N * n * sum(T - p for p in range(1, T))
    score_rows = N * sum(n * (T - p) + p for p in range(1, T)) + N * T  # + the finished sequences
    blocks = -(-(sample_rows + score_rows) // chunk)
    h = torch.randn(chunk, H, device=device)
    out = torch.empty(chunk, V, device=device)
    w, b = oracle.Wo.t(), oracle.bo

    def run():
        for _ in range(blocks):
            torch.addmm(b, h, w, out=out)

    return run


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    device = torch.device(args.device)
    N, T, n = (8, 10, 4) if args.quick else (64, 20, 16)
    oracle = OracleLSTM.load(max_length=T).to(device)
    scorer = OracleScorer(oracle)
    g = torch.Generator(device=device).manual_seed(0)
    tokens = oracle.sample(N, generator=g)
    reward = MCReward(scorer, rollout_policy=oracle, n_rollouts=n).bind(oracle.vocab_size, None, oracle.vocab_size)
    # cache-sized blocks on CPU (the sampler's row count), the reward's chunks elsewhere
    chunk = row_chunk(oracle.vocab_size, device) or reward.rows_per_chunk(device)
    repeats = 1 if args.quick else args.repeats

    t = interleaved({
        "batched": lambda: reward.sequence_rewards(tokens, torch.full((N,), T, device=device), g),
        "loop_same_kernels": lambda: loop_same_kernels(oracle, scorer, tokens, n),
        "public_loop": lambda: public_loop(oracle, scorer, tokens, n),
        "roofline": roofline(oracle, N, T, n, device, chunk),
    }, device, repeats, warmup=not args.quick)
    t_batched, t_same, t_public, t_roof = t["batched"], t["loop_same_kernels"], t["public_loop"], t["roofline"]
    log(f"batched: {t_batched:.3f} s; loop with our kernels: {t_same:.3f} s; public-code loop: {t_public:.3f} s; "
        f"roofline (bare matmuls): {t_roof:.3f} s (medians of {repeats} interleaved rounds)")
    emit({
        "benchmark": "mc_rollout",
        "device": str(device),
        "setting": {"sequences": N, "length": T, "rollouts": n, "vocab": oracle.vocab_size,
                    "chunk_rows": reward.rows_per_chunk(device), "roofline_block_rows": chunk,
                    "threads": torch.get_num_threads()},
        "seconds": {"batched": t_batched, "public_loop": t_public, "loop_same_kernels": t_same,
                    "roofline_matmuls": t_roof},
        "ratio": t_public / t_batched,
        "ratio_vs_loop_same_kernels": t_same / t_batched,
        "roofline_ratio": t_roof / t_batched,
    })


if __name__ == "__main__":
    main()
