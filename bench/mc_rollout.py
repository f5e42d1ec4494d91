"""One SeqGAN Monte-Carlo reward computation: batched vs the nested loop of public code.

Two scorers (``--scorer``), each figure says which:

- ``oracle`` (default): 64 sequences of length 20, 16 rollouts, V = 5000, the SeqGAN oracle as
  rollout policy and as scorer (its log-likelihood);
- ``cnn``: SeqGAN's real reward: the same sizes with the LSTM generator of ``agents`` as rollout
  policy and SeqGAN's CNN discriminator (``discriminators.make("cnn")``, 1720 filters) as
  scorer, D(Y) = σ(logit). Compared: ``batched`` (``MCReward``: on the CPU the CNN reads the
  window outputs of a chunk of thousands of completions from lookup tables,
  ``CNNDiscriminator._tables``, where a width has enough windows for one, and forms the rest by
  matrix products) and ``public_loop`` (for each rollout, for each prefix length: the
  generator's LSTM over the prefix, ``torch.multinomial`` for the rest, the CNN on the 64
  completions, whose few windows get no lookup table: one matrix product per window position,
  about as fast as the plain convolution at that size); ``batched_bf16`` is ``batched`` with
  the CNN's scoring in bfloat16 (``score_dtype="bfloat16"``: ``ratio_bf16``), and
  ``bf16_vs_float32`` its distance from float32 on the same rollouts (largest reward
  difference, and the decisions that change on every completion of one reward, with the
  largest float32 |logit| among them); on CUDA ``batched_graph`` is ``batched`` with each chunk
  replayed from a captured CUDA graph (``MCReward(cuda_graph=True)``: ``ratio_graph``).

With the oracle scorer, compared in the same process:

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

from typing import Any

import torch

from common import emit, interleaved, log, parser
from textgym.oracle import OracleLSTM
from textgym.rewards import GRAPH_WARMUP, MCReward
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


def public_loop_generator(gen: Any, d: Any, tokens: torch.Tensor, n: int) -> torch.Tensor:
    """The loop of public SeqGAN code with an LSTM generator (nn.LSTM, nn.Linear) and a discriminator."""
    N, T = tokens.shape
    rewards = torch.zeros(N, T, device=tokens.device)
    with torch.no_grad():
        for _ in range(n):
            for given in range(1, T):
                inputs = torch.cat([torch.full((N, 1), gen.bos_id, device=tokens.device), tokens[:, : given - 1]], 1)
                _, state = gen.lstm(gen.embedding(inputs))  # the prefix, re-encoded
                prev, out = tokens[:, given - 1], tokens.clone()
                for t in range(given, T):  # sample the rest, one token at a time
                    h, state = gen.lstm(gen.embedding(prev)[:, None], state)
                    prev = torch.multinomial(torch.softmax(gen.out(h[:, 0]), dim=-1), 1).squeeze(1)
                    out[:, t] = prev
                rewards[:, given - 1] += torch.sigmoid(d.score(out))
            rewards[:, T - 1] += torch.sigmoid(d.score(tokens))
    return rewards / n


def main_cnn(args: Any) -> None:
    import discriminators
    from agents.generator import Generator

    device = torch.device(args.device)
    N, T, n = (8, 10, 4) if args.quick else (64, 20, 16)
    V = 5000
    gen = Generator(V, T, seed=0).to(device)
    torch.manual_seed(0)  # the CNN's random weights, and so the bfloat16 distances, are the same in every run
    d = discriminators.make("cnn", vocab_size=V, max_length=T).to(device)
    tokens = gen.sample(N, generator=torch.Generator(device=device).manual_seed(0))
    lengths = torch.full((N,), T, device=device)
    g = torch.Generator(device=device).manual_seed(1)
    d16 = discriminators.make("cnn", vocab_size=V, max_length=T, score_dtype="bfloat16").to(device)
    d16.load_state_dict(d.state_dict())
    shared = MCReward(d, "prob", rollout_policy=gen, n_rollouts=n).bind(V, None, V)
    half = MCReward(d16, "prob", rollout_policy=gen, n_rollouts=n).bind(V, None, V)
    repeats = 1 if args.quick else args.repeats
    faults: dict = {}
    variants = {
        "batched": lambda: shared.sequence_rewards(tokens, lengths, g),
        "batched_bf16": lambda: half.sequence_rewards(tokens, lengths, g),
        "public_loop": lambda: public_loop_generator(gen, d, tokens, n),
    }
    graphed = None
    if device.type == "cuda":  # each chunk replayed from a CUDA graph, timed after its warm-up and capture
        graphed = MCReward(d, "prob", rollout_policy=gen, n_rollouts=n, cuda_graph=True).bind(V, None, V)
        for _ in range(GRAPH_WARMUP + 1):
            graphed.sequence_rewards(tokens, lengths, g)
        variants["batched_graph"] = lambda: graphed.sequence_rewards(tokens, lengths, g)
    t = interleaved(variants, device, repeats, warmup=False, faults=faults)
    completions = N * n * (T - 1)
    log(f"CNN scorer: batched {t['batched']:.2f} s, batched with bfloat16 scoring {t['batched_bf16']:.2f} s, "
        f"public-code loop {t['public_loop']:.2f} s (medians of {repeats} interleaved rounds)")
    # bfloat16 against float32 on the same rollouts: the rewards, and the decisions (logit signs)
    # on every completion of the reward
    r32 = shared.sequence_rewards(tokens, lengths, torch.Generator(device=device).manual_seed(2))
    r16 = half.sequence_rewards(tokens, lengths, torch.Generator(device=device).manual_seed(2))
    rows = tokens.repeat_interleave(n, 0).repeat(T - 1, 1)
    done = gen.rollout(rows, torch.arange(1, T, device=device).repeat_interleave(N * n),
                       generator=torch.Generator(device=device).manual_seed(3))
    z32, z16 = d.score(done), d16.score(done)
    flips = (z32 > 0) != (z16 > 0)
    bf16 = {"reward_max_abs_diff": float((r32 - r16).abs().max()),
            "prob_max_abs_diff": float((torch.sigmoid(z32) - torch.sigmoid(z16)).abs().max()),
            "logit_max_abs_diff": float((z32 - z16).abs().max()), "decision_changes": int(flips.sum()),
            "largest_abs_logit_changed": float(z32[flips].abs().max()) if bool(flips.any()) else 0.0,
            "completions_compared": int(done.shape[0])}
    log(f"bfloat16 vs float32: rewards differ by at most {bf16['reward_max_abs_diff']:.2e}, D(Y) of single completions "
        f"by {bf16['prob_max_abs_diff']:.2e}; {bf16['decision_changes']} of {bf16['completions_compared']} decisions "
        f"change, all with |logit| <= {bf16['largest_abs_logit_changed']:.3g}")
    emit({
        "benchmark": "mc_rollout", "scorer": "cnn (SeqGAN's, 1720 filters)", "rollout_policy": "agents.Generator",
        "quick": bool(args.quick),
        "device": str(device), "minor_faults_per_call": faults,
        "setting": {"sequences": N, "length": T, "rollouts": n, "vocab": V, "completions": completions,
                    "threads": torch.get_num_threads(), "repeats": repeats},
        "seconds": t, "ratio": t["public_loop"] / t["batched"],
        "ratio_bf16": t["public_loop"] / t["batched_bf16"], "bf16_vs_float32": bf16,
        **({"ratio_graph": t["public_loop"] / t["batched_graph"], "graph_captured": bool(graphed._graphs)}
           if graphed is not None else {}),
        "completions_per_s": completions / t["batched"],
    })


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--scorer", choices=("oracle", "cnn"), default="oracle", help="the reward's scorer (see above)")
    args = p.parse_args()
    if args.scorer == "cnn":
        main_cnn(args)
        return
    device = torch.device(args.device)
    N, T, n = (8, 10, 4) if args.quick else (64, 20, 16)
    oracle = OracleLSTM.load(max_length=T).to(device)
    scorer = OracleScorer(oracle)
    g = torch.Generator(device=device).manual_seed(0)
    tokens = oracle.sample(N, generator=g)
    reward = MCReward(scorer, rollout_policy=oracle, n_rollouts=n).bind(oracle.vocab_size, None, oracle.vocab_size)
    # cache-sized blocks on CPU (the sampler's row count), the reward's chunks elsewhere
    chunk = row_chunk(oracle.vocab_size, device) or reward.rows_per_chunk()
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
        "scorer": "oracle (log-likelihood)", "quick": bool(args.quick),
        "device": str(device),
        "setting": {"sequences": N, "length": T, "rollouts": n, "vocab": oracle.vocab_size,
                    "chunk_rows": reward.rows_per_chunk(), "roofline_block_rows": chunk,
                    "threads": torch.get_num_threads()},
        "seconds": {"batched": t_batched, "public_loop": t_public, "loop_same_kernels": t_same,
                    "roofline_matmuls": t_roof},
        "ratio": t_public / t_batched,
        "ratio_vs_loop_same_kernels": t_same / t_batched,
        "roofline_ratio": t_roof / t_batched,
    })


if __name__ == "__main__":
    main()
