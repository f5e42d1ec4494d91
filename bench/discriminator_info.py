"""What it takes for a discriminator to tell oracle data from an MLE generator's samples.

Setting (the SeqGAN synthetic oracle: V = 5000, length 20): an MLE generator trained like the
``default`` budget's MLE phase (12 epochs; also 5 for comparison), and discriminators trained
on real vs generated sequences in *rounds*, like the agents' discriminator rounds: each round
takes ``n`` fresh generator samples and ``n`` real sequences (drawn without replacement from a
pool of 9,000 of the 10,000 training sequences, cycling through the pool) and makes ``k``
passes over them (``DiscriminatorTrainer.step(k=k)``). The ``default`` budget pretrains with
2 rounds of n = 2,000, k = 1.

Held-out evaluation (never trained on), after selected rounds:

- ``acc``: the last 1,000 training sequences (outside the pool; the generator saw them in MLE,
  the discriminator never: the agents' own ``d_heldout_acc`` protocol) against 1,000 fresh
  samples of a held-out stream;
- ``acc_test``: 1,000 sequences of ``data.test`` (seen by neither) against 1,000 other fresh
  samples: an independent second held-out pair, to check that picking the best configuration
  by ``acc`` did not select noise.

Both are balanced accuracies (:func:`discriminators.evaluate`; 0.5 is chance; the standard
error of one figure is about 0.011 at n = 1,000 + 1,000).

``seconds`` is the wall time of discriminator training alone (updates, and for the log-prob
models the generator's teacher-forced pass over the training sequences), one thread, not
counting fake sampling (the same for every model) or evaluation.

Models: the registry's ``cnn`` (SeqGAN's CNN: ``seqgan`` and ``small`` sizes) and ``rnn``
through :class:`discriminators.DiscriminatorTrainer`, and prototypes that also read the
generator's own per-token log-probabilities ``lp_t = log p_θ(x_t | x_<t)`` (the optimal
discriminator's logit is ``log p_data(x) - log p_θ(x)``, and the second half is known):

- ``lp-stats``: logistic regression (L-BFGS on standardized features, refitted each round on
  all rounds so far) on summary statistics of the sequence of ``lp_t``: sum, std, min, max,
  quantiles 10/25/50/75/90 (all lengths are 20 here, so sum = 20 x mean);
- ``lp-bag``: ``mean_t MLP([Emb(x_t); z_t])`` with ``z_t`` the standardized ``lp_t``: a
  per-token, context-free correction of the generator's log-probability;
- ``lp-rnn``: a GRU over ``[Emb(x_t); z_t]``, logit from the last state; ``tok-rnn`` is the
  same model with ``z_t`` zeroed (the tokens alone) and ``lp-only-rnn`` has no token embedding
  (``z_t`` alone): the ablations that say where the accuracy comes from;
- ``oracle-ref``: logistic regression on [mean log p_oracle(x), mean lp_t]: a reference only
  (the oracle is known for synthetic data alone), the accuracy an oracle-aware classifier gets.

The prototypes are Adam / BCE / minibatch loops written here (the trainer takes tokens only);
they are not part of the package.

The last stdout line is one JSON object: {"benchmark": "discriminator_info", "device",
"threads", "generators": {epochs: NLL figures}, "results": [{"name", "section", "generator",
"model", "settings", "curve": [{"round", "seconds", "sequences", "updates", "acc",
"acc_test"}], "default_point", "final"}], "best", "best_by_acc", "baseline", "ratio"}:
``best`` is the configuration with the highest final min(acc, acc_test) on the 12-epoch
generator (references excluded: a discriminator must beat chance on real sequences the
generator trained on and on ones it never saw), ``best_by_acc`` the highest final ``acc``,
``baseline`` the SeqGAN CNN at lr 1e-4 after the default budget's 2 rounds, ``ratio`` = best
acc / baseline acc. A Markdown table goes to stderr and to ``--table``.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import torch
import torch.nn.functional as F
from common import emit, log, parser
from torch import nn

import agents
import discriminators
from textgym.data import resolve_data

POOL = 9000  # real sequences the discriminators train on; the last 1,000 are held out
N_HELD = 1000
EVAL_ROUNDS = {1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 80, 96}


# ---------------------------------------------------------------------- data streams
class Streams:
    """Deterministic real and fake streams of one generator (the same for every configuration)."""

    def __init__(self, data: Any, generator: Any, seed: int, n_held: int) -> None:
        self.data, self.gen = data, generator
        self.real_pool = data.train[:POOL]
        self.fake_rng = torch.Generator().manual_seed(1000 + seed)
        self.real_rng = torch.Generator().manual_seed(2000 + seed)
        self.fakes: List[torch.Tensor] = []
        self.real_idx = torch.empty(0, dtype=torch.long)
        held_rng = torch.Generator().manual_seed(3000 + seed)
        n = n_held
        self.held_real = data.train[POOL : POOL + n]
        self.held_fake = self._sample(n, held_rng)
        self.test_real = data.test[:n]
        self.test_fake = self._sample(n, held_rng)

    def _sample(self, n: int, rng: torch.Generator) -> torch.Tensor:
        parts = [self.gen.sample_with_lengths(min(2000, n - i), generator=rng)[0] for i in range(0, n, 2000)]
        return torch.cat(parts)

    def fake(self, start: int, n: int) -> torch.Tensor:
        """Fakes ``start .. start + n`` of the training stream (sampled once, on first use)."""
        have = sum(f.shape[0] for f in self.fakes)
        while have < start + n:
            self.fakes.append(self._sample(2000, self.fake_rng))
            have += 2000
        return torch.cat(self.fakes)[start : start + n]

    def real(self, start: int, n: int) -> torch.Tensor:
        """Reals ``start .. start + n`` of the stream: successive permutations of the pool."""
        while self.real_idx.shape[0] < start + n:
            self.real_idx = torch.cat([self.real_idx, torch.randperm(POOL, generator=self.real_rng)])
        return self.real_pool[self.real_idx[start : start + n]]

    def unseen_real(self, start: int, n: int) -> torch.Tensor:
        """Reals the generator never trained on: ``data.test`` past the held-out ones, cycled."""
        pool = self.data.test[self.test_real.shape[0] :]
        idx = torch.arange(start, start + n) % pool.shape[0]
        return pool[idx]


def full(x: torch.Tensor) -> torch.Tensor:
    return torch.full((x.shape[0],), x.shape[1], dtype=torch.long)


# ---------------------------------------------------------------------- log-prob prototypes
@torch.no_grad()
def gen_lp(gen: Any, tokens: torch.Tensor, chunk: int = 2000) -> torch.Tensor:
    """The generator's teacher-forced ``log p_θ(x_t | x_<t)``: (N, T)."""
    gen.eval()
    return torch.cat([gen.log_probs(tokens[i : i + chunk]) for i in range(0, tokens.shape[0], chunk)])


def lp_stats(lp: torch.Tensor) -> torch.Tensor:
    """(N, T) log-probs -> (N, 9) summary statistics."""
    q = torch.quantile(lp, torch.tensor([0.1, 0.25, 0.5, 0.75, 0.9]), dim=1).T
    return torch.cat([lp.sum(1, keepdim=True), lp.std(1, keepdim=True), lp.amin(1, keepdim=True),
                      lp.amax(1, keepdim=True), q], dim=1)


class LogReg:
    """Logistic regression on standardized features, fitted by L-BFGS (L2 ``l2`` on the weights)."""

    def __init__(self, featurize: Callable[[torch.Tensor], torch.Tensor], l2: float = 1e-4) -> None:
        self.featurize, self.l2 = featurize, l2
        self.mu: Optional[torch.Tensor] = None
        self.w = torch.zeros(0)
        self.b = torch.zeros(())

    def fit(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.mu, self.sd = x.mean(0), x.std(0).clamp(min=1e-6)
        z = (x - self.mu) / self.sd
        w = torch.zeros(z.shape[1], requires_grad=True)
        b = torch.zeros((), requires_grad=True)
        opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=200, line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = F.binary_cross_entropy_with_logits(z @ w + b, y) + self.l2 * w.pow(2).sum()
            loss.backward()
            return loss

        opt.step(closure)
        self.w, self.b = w.detach(), b.detach()

    @torch.no_grad()
    def score(self, tokens: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        assert self.mu is not None
        return ((self.featurize(tokens) - self.mu) / self.sd) @ self.w + self.b


class LogProbModel(nn.Module):
    """Token embeddings and/or standardized log-probs per position -> one logit.

    ``kind``: ``"bag"`` (mean over t of a one-hidden-layer MLP) or ``"rnn"`` (GRU, last state).
    ``use_tokens`` / ``use_lp``: which inputs it sees (the ablations). The generator is held
    outside the module (its parameters are not the discriminator's).
    """

    LP_MU, LP_SD = -7.0, 3.0  # fixed standardization of lp_t (nats), about its range here

    def __init__(self, gen: Any, vocab_size: int, kind: str, emb_dim: int = 32, hidden: int = 64,
                 use_tokens: bool = True, use_lp: bool = True, dropout: float = 0.1) -> None:
        super().__init__()
        self._gen = (gen,)
        self.kind, self.use_tokens, self.use_lp = kind, use_tokens, use_lp
        self.embedding = nn.Embedding(vocab_size + 1, emb_dim, padding_idx=vocab_size) if use_tokens else None
        in_dim = (emb_dim if use_tokens else 0) + (1 if use_lp else 0)
        self.drop = nn.Dropout(dropout)
        if kind == "bag":
            self.body: nn.Module = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        elif kind == "rnn":
            self.body = nn.GRU(in_dim, hidden, batch_first=True)
            self.out = nn.Linear(hidden, 1)
        else:
            raise ValueError(kind)

    def inputs(self, tokens: torch.Tensor, lp: torch.Tensor) -> torch.Tensor:
        parts = []
        if self.embedding is not None:
            parts.append(self.drop(self.embedding(tokens)))
        if self.use_lp:
            parts.append(((lp - self.LP_MU) / self.LP_SD)[..., None])
        return torch.cat(parts, dim=-1)

    def forward_lp(self, tokens: torch.Tensor, lp: torch.Tensor) -> torch.Tensor:
        u = self.inputs(tokens, lp)
        if self.kind == "bag":
            return self.body(u).squeeze(-1).mean(1)
        h, _ = self.body(u)
        return self.out(self.drop(h[:, -1])).squeeze(-1)

    def features(self, tokens: torch.Tensor) -> torch.Tensor:
        return gen_lp(self._gen[0], tokens) if self.use_lp else torch.zeros(tokens.shape, dtype=torch.float)

    @torch.no_grad()
    def score(self, tokens: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        was = self.training
        self.eval()
        try:
            return self.forward_lp(tokens, self.features(tokens))
        finally:
            self.train(was)


# ---------------------------------------------------------------------- one configuration
def run_config(cfg: Dict[str, Any], streams: Streams, gen: Any, oracle: Any, max_seconds: float,
               quick: bool) -> Dict[str, Any]:
    """Train one configuration round by round; evaluate on the held-out pairs after EVAL_ROUNDS."""
    model, n, k, rounds = cfg["model"], cfg["n"], cfg.get("k", 1), cfg["rounds"]
    fixed = cfg.get("fixed", False)  # every round reuses round 0's sequences (epochs over one set)
    lr, bs = cfg.get("lr", 1e-4), cfg.get("batch", 64)
    torch.manual_seed(cfg.get("seed", 0))
    trainer = None
    scorer: Any
    if model in ("cnn", "rnn"):
        d = discriminators.make(model, vocab_size=5000, max_length=20, **cfg.get("options", {}))
        trainer = discriminators.DiscriminatorTrainer(d, lr=lr, batch_size=bs, weight_decay=cfg.get("wd", 0.0),
                                                      seed=cfg.get("seed", 0))
        scorer = d
    elif model in ("lp-stats", "oracle-ref"):
        if model == "lp-stats":
            scorer = LogReg(lambda x: lp_stats(gen_lp(gen, x)))
        else:
            scorer = LogReg(lambda x: torch.stack([oracle.log_probs(x).mean(1), gen_lp(gen, x).mean(1)], 1))
        feats: List[torch.Tensor] = []
        labels: List[torch.Tensor] = []
    else:  # lp-bag, lp-rnn, tok-rnn, lp-only-rnn
        opts = dict(cfg.get("options", {}))
        scorer = LogProbModel(gen, 5000, **opts)
        opt = torch.optim.Adam(scorer.parameters(), lr=lr)
        shuffle = torch.Generator().manual_seed(cfg.get("seed", 0))

    curve: List[Dict[str, Any]] = []
    seconds, sequences, updates = 0.0, 0, 0
    for r in range(rounds):
        j = 0 if fixed else r
        real = streams.unseen_real(j * n, n) if cfg.get("unseen_real") else streams.real(j * n, n)
        fake = streams.fake(j * n, n)
        t0 = time.perf_counter()
        if trainer is not None:
            out = trainer.step(real, full(real), fake, full(fake), k=k)
            updates += int(out["steps"])
        elif isinstance(scorer, LogReg):
            with torch.no_grad():
                feats.append(torch.cat([scorer.featurize(real), scorer.featurize(fake)]))
            labels.append(torch.cat([torch.ones(n), torch.zeros(n)]))
            scorer.fit(torch.cat(feats), torch.cat(labels))
            updates += 1
        else:
            tokens = torch.cat([real, fake])
            lp = scorer.features(tokens)
            y = torch.cat([torch.ones(n), torch.zeros(n)])
            scorer.train()
            for _ in range(k):
                perm = torch.randperm(2 * n, generator=shuffle)
                for s in range(0, 2 * n, bs):
                    idx = perm[s : s + bs]
                    loss = F.binary_cross_entropy_with_logits(scorer.forward_lp(tokens[idx], lp[idx]), y[idx])
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    updates += 1
        seconds += time.perf_counter() - t0
        sequences += 2 * n * k
        last = r == rounds - 1 or seconds >= max_seconds
        if r + 1 in EVAL_ROUNDS or last or quick:
            a = discriminators.evaluate(scorer, streams.held_real, full(streams.held_real), streams.held_fake,
                                        full(streams.held_fake))
            b = discriminators.evaluate(scorer, streams.test_real, full(streams.test_real), streams.test_fake,
                                        full(streams.test_fake))
            curve.append({"round": r + 1, "seconds": round(seconds, 2), "sequences": sequences, "updates": updates,
                          "acc": round(a["balanced_acc"], 4), "acc_test": round(b["balanced_acc"], 4)})
            log(f"  {cfg['name']:<34} round {r + 1:>3} {seconds:7.1f} s  acc {a['balanced_acc']:.3f}"
                f"  acc_test {b['balanced_acc']:.3f}")
        if last:
            break
    default_like = not fixed and k == 1 and n == (100 if quick else 2000)  # the default budget's rounds
    default_point = next((p for p in curve if p["round"] == 2), None) if default_like else None
    settings = {key: cfg[key] for key in ("lr", "batch", "n", "k", "options", "wd", "fixed", "unseen_real") if key in cfg}
    return {"name": cfg["name"], "section": cfg["section"], "generator": cfg["gen"], "model": model,
            "settings": settings, "curve": curve, "default_point": default_point, "final": curve[-1]}


# ---------------------------------------------------------------------- the grid
def grid(quick: bool) -> List[Dict[str, Any]]:
    if quick:
        return [
            dict(name="cnn-small lr1e-4", section="1", gen=12, model="cnn", options={"size": "small"}, n=100, rounds=2),
            dict(name="rnn lr1e-3", section="2", gen=12, model="rnn", lr=1e-3, n=100, rounds=2),
            dict(name="lp-stats", section="5", gen=12, model="lp-stats", n=100, rounds=2),
            dict(name="lp-rnn", section="5", gen=12, model="lp-rnn", options={"kind": "rnn"}, lr=1e-3, n=100, rounds=2),
            dict(name="oracle-ref", section="ref", gen=12, model="oracle-ref", n=100, rounds=1),
        ]
    D = dict(n=2000, k=1)  # the default budget's round
    big = {"size": "seqgan"}
    small = {"size": "small"}
    lpr = {"kind": "rnn"}
    g: List[Dict[str, Any]] = [
        # 1. baselines as the default budget trains them (extended to see the curve)
        dict(name="cnn-seqgan lr1e-4 (baseline)", section="1", gen=12, model="cnn", options=big, lr=1e-4, rounds=8, **D),
        dict(name="rnn lr1e-4 (baseline)", section="1", gen=12, model="rnn", lr=1e-4, rounds=32, **D),
        # 2. learning rate, batch size, epochs per round
        dict(name="cnn-seqgan lr1e-3", section="2", gen=12, model="cnn", options=big, lr=1e-3, rounds=8, **D),
        dict(name="cnn-seqgan lr3e-3", section="2", gen=12, model="cnn", options=big, lr=3e-3, rounds=8, **D),
        dict(name="rnn lr1e-3", section="2", gen=12, model="rnn", lr=1e-3, rounds=32, **D),
        dict(name="rnn lr1e-3 (long)", section="2", gen=12, model="rnn", lr=1e-3, rounds=96, **D),
        dict(name="rnn lr3e-3", section="2", gen=12, model="rnn", lr=3e-3, rounds=16, **D),
        dict(name="rnn lr1e-3 batch16", section="2", gen=12, model="rnn", lr=1e-3, batch=16, rounds=8, **D),
        dict(name="rnn lr3e-3 batch256", section="2", gen=12, model="rnn", lr=3e-3, batch=256, rounds=32, **D),
        dict(name="cnn-small lr1e-4", section="2", gen=12, model="cnn", options=small, lr=1e-4, rounds=16, **D),
        dict(name="cnn-small lr1e-3", section="2", gen=12, model="cnn", options=small, lr=1e-3, rounds=32, **D),
        dict(name="cnn-small lr3e-3", section="2", gen=12, model="cnn", options=small, lr=3e-3, rounds=32, **D),
        # 3. capacity and regularization
        dict(name="rnn lr1e-3 hidden32 emb32", section="3", gen=12, model="rnn", lr=1e-3,
             options={"hidden": 32, "emb_dim": 32}, rounds=16, **D),
        dict(name="rnn lr1e-3 hidden256", section="3", gen=12, model="rnn", lr=1e-3, options={"hidden": 256}, rounds=8, **D),
        dict(name="rnn lr1e-3 gru", section="3", gen=12, model="rnn", lr=1e-3, options={"cell": "gru"}, rounds=16, **D),
        dict(name="rnn lr1e-3 dropout0.3", section="3", gen=12, model="rnn", lr=1e-3, options={"dropout": 0.3},
             rounds=16, **D),
        dict(name="rnn lr1e-3 wd1e-4", section="3", gen=12, model="rnn", lr=1e-3, wd=1e-4, rounds=16, **D),
        dict(name="cnn-small lr1e-3 dropout0.5", section="3", gen=12, model="cnn", options={**small, "dropout": 0.5},
             lr=1e-3, rounds=32, **D),
        dict(name="cnn-small lr1e-3 l2 0", section="3", gen=12, model="cnn", options={**small, "l2_reg": 0.0},
             lr=1e-3, rounds=32, **D),
        dict(name="cnn-mid lr1e-3 (emb64, w1-5 x100)", section="3", gen=12, model="cnn",
             options={"emb_dim": 64, "widths": [1, 2, 3, 4, 5], "filters": [100] * 5}, lr=1e-3, rounds=8, **D),
        # 4. fresh negatives vs epochs over the same set (rnn lr1e-3, same updates per round count)
        dict(name="rnn lr1e-3 k=3 per fresh round", section="4", gen=12, model="rnn", lr=1e-3, n=2000, k=3, rounds=8),
        dict(name="rnn lr1e-3 one fixed 2000+2000 set", section="4", gen=12, model="rnn", lr=1e-3, n=2000, k=1,
             fixed=True, rounds=16),
        dict(name="rnn lr1e-3 n=8000 per round", section="4", gen=12, model="rnn", lr=1e-3, n=8000, k=1, rounds=4),
        # 5. the generator's log-probabilities
        dict(name="lp-stats (logistic regression)", section="5", gen=12, model="lp-stats", rounds=16, **D),
        dict(name="lp-stats, reals unseen by the generator", section="5", gen=12, model="lp-stats", unseen_real=True,
             rounds=8, **D),
        dict(name="lp-bag lr1e-3", section="5", gen=12, model="lp-bag", options={"kind": "bag"}, lr=1e-3, rounds=16, **D),
        dict(name="lp-rnn lr1e-3", section="5", gen=12, model="lp-rnn", options=lpr, lr=1e-3, rounds=16, **D),
        dict(name="tok-rnn lr1e-3 (lp-rnn, lp zeroed)", section="5", gen=12, model="tok-rnn",
             options={**lpr, "use_lp": False}, lr=1e-3, rounds=16, **D),
        dict(name="lp-only-rnn lr1e-3 (no tokens)", section="5", gen=12, model="lp-only-rnn",
             options={**lpr, "use_tokens": False}, lr=1e-3, rounds=16, **D),
        dict(name="oracle-ref (log p_oracle, log p_θ)", section="ref", gen=12, model="oracle-ref", rounds=2, **D),
        # 6. a weaker generator (5 MLE epochs)
        dict(name="cnn-seqgan lr1e-4 (baseline)", section="6", gen=5, model="cnn", options=big, lr=1e-4, rounds=4, **D),
        dict(name="rnn lr1e-4 (baseline)", section="6", gen=5, model="rnn", lr=1e-4, rounds=16, **D),
        dict(name="rnn lr1e-3", section="6", gen=5, model="rnn", lr=1e-3, rounds=16, **D),
        dict(name="cnn-small lr1e-3", section="6", gen=5, model="cnn", options=small, lr=1e-3, rounds=16, **D),
        dict(name="lp-stats (logistic regression)", section="6", gen=5, model="lp-stats", rounds=8, **D),
        dict(name="lp-rnn lr1e-3", section="6", gen=5, model="lp-rnn", options=lpr, lr=1e-3, rounds=16, **D),
        dict(name="oracle-ref (log p_oracle, log p_θ)", section="6", gen=5, model="oracle-ref", rounds=2, **D),
    ]
    return g


# ---------------------------------------------------------------------- generators
def train_generators(data: Any, epochs: List[int], cache: Optional[str]) -> Dict[int, Any]:
    """MLE generators after each of ``epochs`` (one run, snapshots), seed 0.

    With ``cache``: the snapshots are loaded from that file when it holds every one of them
    (nothing is trained), else trained from scratch and saved there.
    """
    path = Path(cache) if cache else None
    states: Dict[int, Any] = torch.load(path) if path is not None and path.is_file() else {}
    if not all(e in states for e in epochs):
        states = {}
        a = agents.make("mle", data, {"mle_epochs": max(epochs)}, seed=0)
        for e in range(0, max(epochs) + 1):
            if e > 0:
                t0 = time.perf_counter()
                s = a.train_iteration()
                log(f"MLE epoch {e}: nll_train {s['nll_train']:.3f} ({time.perf_counter() - t0:.1f} s)")
            if e in epochs:
                states[e] = {k: v.clone() for k, v in a.generator.state_dict().items()}
        if path is not None:
            torch.save(states, path)
    else:
        log(f"MLE generators {sorted(epochs)} loaded from {path}")
    out: Dict[int, Any] = {}
    for e in epochs:
        g = agents.make("mle", data, {"mle_epochs": 1}, seed=0).generator
        g.load_state_dict(states[e])
        g.eval()
        out[e] = g
    return out


@torch.no_grad()
def generator_figures(gen: Any, data: Any) -> Dict[str, float]:
    x = gen.sample_with_lengths(2000, generator=torch.Generator().manual_seed(7))[0]
    return {"nll_oracle": round(data.oracle.nll(x), 3), "entropy": round(-float(gen_lp(gen, x).mean()), 3),
            "nll_heldout_train_tail": round(-float(gen_lp(gen, data.train[POOL:]).mean()), 3),
            "nll_train_pool": round(-float(gen_lp(gen, data.train[:2000]).mean()), 3),
            "nll_test": round(-float(gen_lp(gen, data.test[:2000]).mean()), 3),
            "oracle_nll_real": round(data.oracle.nll(data.test[:2000]), 3)}


def table(results: List[Dict[str, Any]]) -> str:
    rows = ["| § | gen | configuration | acc @ default (2 rounds) | s | final rounds | final s | final acc | final acc_test |",
            "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        d, f = r["default_point"], r["final"]
        dacc = f"{d['acc']:.3f}" if d else "–"
        ds = f"{d['seconds']:.1f}" if d else "–"
        rows.append(f"| {r['section']} | {r['generator']} | {r['name']} | {dacc} | {ds} | {f['round']} | "
                    f"{f['seconds']:.1f} | {f['acc']:.3f} | {f['acc_test']:.3f} |")
    return "\n".join(rows)


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    p.add_argument("--max-seconds", type=float, default=120.0, help="stop a configuration after this much training")
    p.add_argument("--generator-cache", default=None, help="save/load the MLE generators' weights here")
    p.add_argument("--only", nargs="*", default=None, help="run only configurations whose name contains one of these")
    p.add_argument("--table", default=None, help="also write the Markdown table here")
    args = p.parse_args()
    if args.device != "cpu":
        p.error(f"--device {args.device}: this study's prototypes run on the CPU only (their timings are CPU figures)")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    data = resolve_data("oracle")
    assert bool((data.train_lengths == data.max_length).all()), "the prototypes assume fixed-length sequences"
    cfgs = grid(args.quick)
    if args.only:
        cfgs = [c for c in cfgs if any(s in c["name"] for s in args.only)]
    epochs = sorted({c["gen"] for c in cfgs})
    if args.quick:  # an untrained generator: a smoke run of the code paths
        epochs, cfgs = [0], [{**c, "gen": 0} for c in cfgs]
    t_start = time.perf_counter()
    gens = train_generators(data, epochs, args.generator_cache)
    figures = {e: generator_figures(g, data) for e, g in gens.items()}
    for e, f in figures.items():
        log(f"generator after {e} MLE epochs: {f}")
    n_held = 200 if args.quick else N_HELD
    streams = {e: Streams(data, g, seed=e, n_held=n_held) for e, g in gens.items()}
    results = []
    for cfg in cfgs:
        log(f"[{cfg['section']}] {cfg['name']} (generator {cfg['gen']} epochs)")
        results.append(run_config(cfg, streams[cfg["gen"]], gens[cfg["gen"]], data.oracle, args.max_seconds, args.quick))
    main_gen = max(epochs)
    cands = [r for r in results if r["generator"] == main_gen and r["section"] not in ("ref", "6")]
    # a discriminator must beat chance on both held-out pairs: on real sequences the generator
    # trained on (acc, the agents' protocol) and on ones it never saw (acc_test)
    best = max(cands, key=lambda r: min(r["final"]["acc"], r["final"]["acc_test"])) if cands else None
    best_acc = max(cands, key=lambda r: r["final"]["acc"]) if cands else None
    base = next((r for r in results if r["generator"] == main_gen and r["section"] == "1"), None)
    base_acc = base["default_point"]["acc"] if base and base["default_point"] else None
    tab = table(results)
    log(tab)
    if args.table:
        Path(args.table).write_text(tab + "\n")
    emit({"benchmark": "discriminator_info", "device": "cpu", "threads": torch.get_num_threads(), "quick": args.quick,
          "generators": {str(e): f for e, f in figures.items()}, "results": results,
          "best": None if best is None else {"name": best["name"], "settings": best["settings"], **best["final"]},
          "best_by_acc": None if best_acc is None else {"name": best_acc["name"], **best_acc["final"]},
          "baseline": None if base is None else {"name": base["name"], **(base["default_point"] or {})},
          "ratio": None if not (best and base_acc) else round(best["final"]["acc"] / base_acc, 4),
          "wall_seconds": round(time.perf_counter() - t_start, 1)})


if __name__ == "__main__":
    main()
