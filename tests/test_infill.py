"""In-filling: blanks, the Infill env's invariants and rewards, the context-conditioned
discriminator against a hand-written LSTM, and the in-filling agents through the driver."""
from __future__ import annotations

import copy
import json
import math
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode

import agents
import textgym
from discriminators.infill import Seq2SeqDiscriminator
from textgym.data import Corpus
from textgym.infill import InfillVecEnv, make_blanks, unique_ngram_share
from textgym.masks import length_mask

ROOT = Path(__file__).resolve().parent.parent


def test_contiguous_blanks_are_one_span_of_the_rate_inside_the_maskable_tokens():
    lengths = torch.tensor([20, 10, 7, 2])
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        b = make_blanks(lengths, 20, 0.5, "contiguous", eos_id=0, generator=g)  # the last token is <eos>
        for row, n in zip(b, lengths.tolist(), strict=True):
            pos = row.nonzero().squeeze(1)
            m = n - 1
            assert len(pos) == max(1, round(0.5 * m))
            assert int(pos.max()) < m and bool((pos.diff() == 1).all())  # one span, never the <eos>
    span = make_blanks(torch.tensor([6, 6]), 6, 0.5, "contiguous", span=4, generator=g)
    assert span.sum(1).tolist() == [4, 4]


def test_random_blanks_hit_the_rate_and_never_leave_a_row_without_one(device):
    lengths = torch.full((4000,), 20, device=device)
    b = make_blanks(lengths, 20, 0.3, "random", generator=torch.Generator(device=device).manual_seed(1))
    assert b.device.type == device.type
    assert abs(b.float().mean().item() - 0.3) < 0.01
    short = make_blanks(torch.full((500,), 3, device=device), 6, 0.01, "random",
                        generator=torch.Generator(device=device).manual_seed(2))
    assert bool(short.any(1).all()) and not bool(short[:, 3:].any())


@pytest.mark.parametrize("kwargs, message", [
    (dict(rate=0.0), "mask_rate must lie in"), (dict(rate=1.0), "mask_rate must lie in"),
    (dict(rate=1.5), "mask_rate must lie in"), (dict(mode="spans"), "mask_mode must be one of"),
    (dict(span=7), "longer than the sequences"), (dict(mode="random", span=2), "applies to mask_mode='contiguous'"),
])
def test_bad_mask_options_are_refused(kwargs, message):
    args = {"rate": 0.5, "mode": "contiguous", "span": None, **kwargs}
    with pytest.raises(ValueError, match=message):
        make_blanks(torch.tensor([6]), 6, args["rate"], args["mode"], args["span"])


def test_a_span_longer_than_the_shortest_sequence_is_refused_before_any_episode(tmp_path):
    (tmp_path / "c.txt").write_text("a b c d e f\na b\n")
    with pytest.raises(ValueError, match="longer than the shortest train sequence"):
        InfillVecEnv(2, data=Corpus(tmp_path / "c.txt"), mask_span=3, discriminator="constant")


def run_random_episodes(env: InfillVecEnv, steps: int, seed: int = 0):
    """Step with random actions, checking the invariants at every step; returns the finished
    episodes as (context, final filled, rewards list, blanks)."""
    V, L = env.vocab_size, env.max_length
    obs, info = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    rewards = [[] for _ in range(env.num_envs)]
    done_eps = []
    prev_done = torch.zeros(env.num_envs, dtype=torch.bool, device=env.device)
    for _ in range(steps):
        context, filled = obs[:, :L], obs[:, L:]
        assert obs.shape == (env.num_envs, 2 * L)
        blanks = info["blanks"]
        assert torch.equal(context == env.mask_id, blanks)  # the context shows exactly the blanks
        assert torch.equal(filled[~blanks], context[~blanks])  # given tokens are never changed
        open_ = filled == env.mask_id
        assert bool((open_ <= blanks).all())
        a = torch.as_tensor(rng.integers(0, V, env.num_envs))
        obs, r, term, trunc, info = env.step(a)
        assert not bool(trunc.any())
        for i in range(env.num_envs):
            if prev_done[i]:  # NEXT_STEP: this step started a new episode
                rewards[i] = []
                continue
            rewards[i].append(float(r[i]))
            if term[i]:  # kept on the CPU, where the tests' references are computed
                done_eps.append((context[i].cpu(), obs[i, L:].cpu(), list(rewards[i]), blanks[i].cpu()))
                assert len(rewards[i]) == int(blanks[i].sum())  # one step per blank
                assert not bool((obs[i, L:] == env.mask_id).any())  # every blank filled
        prev_done = term.clone()
    return done_eps


def test_env_invariants_under_random_actions_and_the_oracles_dense_reward_telescopes(small_oracle_data, device):
    env = InfillVecEnv(8, data=small_oracle_data, mask_rate=0.5, mask_mode="random", seed=0, device=device)
    episodes = run_random_episodes(env, 60)
    assert len(episodes) > 20
    oracle = env.oracle  # the shared oracle on the CPU, else the env's copy on its device
    for context, filled, rewards, blanks in episodes:
        lp = oracle.log_probs(filled[None].to(device))[0].cpu()
        first = int(blanks.nonzero()[0])
        # the rewards add up to log p(x̂) - log p(x_<first blank)
        assert sum(rewards) == pytest.approx(float(lp.sum() - lp[:first].sum()), abs=1e-4)


def test_terminal_oracle_reward_is_the_completed_sequences_mean_log_likelihood(small_oracle_data, device):
    env = InfillVecEnv(6, data=small_oracle_data, reward="terminal", seed=1, device=device)
    episodes = run_random_episodes(env, 30, seed=1)
    assert len(episodes) > 20  # 3 blanks per sequence of 6: about 6 · 30 / 4 episodes finish
    oracle = env.oracle  # the shared oracle on the CPU, else the env's copy on its device
    for _, filled, rewards, _ in episodes:
        assert all(r == 0 for r in rewards[:-1])
        assert rewards[-1] == pytest.approx(float(oracle.log_probs(filled[None].to(device)).mean()), abs=1e-5)


def lstm_ref(lstm: torch.nn.LSTM, xs: torch.Tensor, h: torch.Tensor, c: torch.Tensor):
    """One sequence through an LSTM, written out: gates i, f, g, o."""
    W, U = lstm.weight_ih_l0, lstm.weight_hh_l0
    b = lstm.bias_ih_l0 + lstm.bias_hh_l0
    outs = []
    for x in xs:
        i, f, g, o = (W @ x + U @ h + b).chunk(4)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        outs.append(h)
    return torch.stack(outs), h, c


def test_discriminator_per_token_scores_equal_a_slow_reference_and_env_dense_rewards_use_them(small_oracle_data, device):
    """The discriminator and the env on ``device``; the hand-written LSTM on a CPU copy."""
    V, L = small_oracle_data.vocab_size, small_oracle_data.max_length
    ref_d = Seq2SeqDiscriminator(V, L, emb_dim=8, hidden_dim=12, seed=3)
    d = copy.deepcopy(ref_d).to(device)
    env = InfillVecEnv(5, data=small_oracle_data, discriminator=d, transform="log", seed=2,
                       autoreset_mode=AutoresetMode.SAME_STEP, device=device)
    obs, info = env.reset(seed=2)
    rewards = torch.zeros(5, L)
    cursors, finals = [], {}
    for _ in range(L):
        cursors.append(info["cursor"].cpu())
        obs, r, term, _, info = env.step(torch.randint(V, (5,), generator=torch.Generator().manual_seed(len(cursors))))
        assert r.device.type == device.type
        r, term = r.cpu(), term.cpu()
        for i in range(5):
            if i in finals:
                continue
            rewards[i, int(cursors[-1][i])] = r[i]
            if term[i]:
                finals[i] = info["final_obs"][i].cpu()
                # the finished episode's infos (gymnasium's final_info), not the new episode's
                assert bool(info["_final_info"][i])
                assert torch.equal(info["final_info"]["blanks"][i].cpu(), finals[i][:L] == env.mask_id)
    assert len(finals) == 5
    with torch.no_grad():
        for i, final in finals.items():
            context, filled = final[:L], final[L:]
            E = ref_d.embedding.weight
            zero = torch.zeros(ref_d.hidden_dim)
            _, h, c = lstm_ref(ref_d.encoder, E[context], zero, zero)
            states, _, _ = lstm_ref(ref_d.decoder, torch.cat([E[filled], E[context]], -1), h, c)
            ref = (states @ ref_d.head.weight[0] + ref_d.head.bias[0])
            scores = d.score_filled(context[None].to(device), filled[None].to(device))[0]
            assert scores.device.type == device.type
            torch.testing.assert_close(scores.cpu(), ref, rtol=1e-5, atol=1e-5)
            blanks = context == env.mask_id
            # the env paid log D at each blank when it was filled (later fills cannot change it: causal)
            torch.testing.assert_close(rewards[i][blanks], torch.nn.functional.logsigmoid(ref)[blanks],
                                       rtol=1e-5, atol=1e-5)


def test_discriminator_scores_read_each_sequence_up_to_its_length_only(device):
    """The encoder read the padding too: the same sequence scored at another width, or beside a
    longer one, got other scores at every position (up to 0.05 in logits)."""
    V, N, W = 50, 4, 12
    ref_d = Seq2SeqDiscriminator(V, W, emb_dim=8, hidden_dim=12, seed=3)
    d = copy.deepcopy(ref_d).to(device)
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(V, (N, W), generator=g)
    lengths = torch.tensor([5, 3, 1, W])
    beyond = ~length_mask(lengths, W)
    filled = tokens.masked_fill(beyond, V)
    context = filled.masked_fill((torch.rand(N, W, generator=g) < 0.4) & ~beyond, V + 1)
    garbage = torch.randint(V + 2, (N, W), generator=g)  # any ids (MASK and PAD too) beyond the lengths
    wider = torch.full((N, 7), V)
    E, zero = ref_d.embedding.weight, torch.zeros(ref_d.hidden_dim)
    with torch.no_grad():
        refs = []
        for i, n in enumerate(lengths.tolist()):  # the hand-written LSTMs on the sequence alone
            _, h, c = lstm_ref(ref_d.encoder, E[context[i, :n]], zero, zero)
            states, _, _ = lstm_ref(ref_d.decoder, torch.cat([E[filled[i, :n]], E[context[i, :n]]], -1), h, c)
            refs.append(states @ ref_d.head.weight[0] + ref_d.head.bias[0])
        scored = {
            "padded, given lengths": d.score_filled(context.to(device), filled.to(device), lengths.to(device)),
            "garbage beyond the lengths": d.score_filled(torch.where(beyond, garbage, context).to(device),
                                                         torch.where(beyond, garbage, filled).to(device), lengths),
            "more padding": d.score_filled(torch.cat([context, wider], 1).to(device),
                                           torch.cat([filled, wider], 1).to(device), lengths.to(device)),
            "lengths from the padding (training)": d(context.to(device), filled.to(device)),
        }
    for how, scores in scored.items():
        for i, n in enumerate(lengths.tolist()):
            torch.testing.assert_close(scores[i, :n].cpu(), refs[i], rtol=1e-5, atol=1e-5, msg=lambda m, how=how: f"{how}: {m}")
    with pytest.raises(ValueError, match=r"lengths must lie in \[0, 12\] .*got values from 2 to 13"):
        d.score_filled(context, filled, lengths + 1)
    with pytest.raises(ValueError, match=r"lengths must have shape \(4,\)"):
        d.score_filled(context, filled, lengths[:2])


def test_env_reset_takes_given_sequences_and_blanks_and_refuses_bad_ones(small_oracle_data, device):
    V, L = small_oracle_data.vocab_size, small_oracle_data.max_length
    env = InfillVecEnv(2, data=small_oracle_data, discriminator="constant", device=device)
    tok = small_oracle_data.test[:2]
    blanks = torch.zeros(2, L, dtype=torch.bool)
    blanks[0, 1] = blanks[1, 4] = True
    obs, info = env.reset(options={"tokens": tok, "blanks": blanks})
    assert obs.device.type == device.type
    assert torch.equal(obs[:, :L].cpu()[~blanks], tok[~blanks]) and info["cursor"].tolist() == [1, 4]
    _, r, term, _, _ = env.step(torch.tensor([3, 3], device=device))
    assert term.tolist() == [True, True] and torch.allclose(r.cpu(), torch.full((2,), float(np.log(0.5))))
    with pytest.raises(ValueError, match="at least one position"):
        env.reset(options={"tokens": tok, "blanks": torch.zeros(2, L, dtype=torch.bool)})
    with pytest.raises(ValueError, match="unknown reset options"):
        env.reset(options={"prefix": tok})
    with pytest.raises(ValueError, match="token ids in"):
        env.step(torch.tensor([V, 0]))
    with pytest.raises(ValueError, match="context-conditioned discriminator"):
        InfillVecEnv(2, data=small_oracle_data, discriminator="cnn")


def test_gym_make_gives_the_single_infill_env(small_oracle_data):
    env = gym.make(textgym.INFILL_ENV_ID, data=small_oracle_data, discriminator="constant")
    obs, info = env.reset(seed=0)
    L = small_oracle_data.max_length
    assert obs.shape == (2 * L,) and env.observation_space.contains(obs)
    steps, term = 0, False
    while not term:
        obs, r, term, trunc, _ = env.step(env.action_space.sample())
        steps += 1
    assert steps == int(info["blanks"].sum()) and not (obs[L:] == small_oracle_data.vocab_size + 1).any()


def test_unique_ngram_share_counts_ngrams_that_touch_a_fill():
    tokens = torch.tensor([[1, 2, 3, 4], [1, 2, 3, 5]])
    blanks = torch.tensor([[False, True, False, False], [False, True, False, False]])
    # bigrams touching position 1: (1,2), (2,3) in both rows -> 2 distinct of 4
    assert unique_ngram_share(tokens, torch.tensor([4, 4]), blanks, 2) == 0.5
    assert np.isnan(unique_ngram_share(tokens, torch.tensor([4, 4]), torch.zeros(2, 4, dtype=torch.bool), 2))


def test_generator_fills_only_the_blanks_and_its_teacher_forcing_matches_sampling(small_oracle_data, device):
    agent = agents.make("mle-infill", small_oracle_data, {"mle_epochs": 1}, seed=0, device=device)
    gen = agent.generator
    tok, lens = small_oracle_data.test[:64].to(device), small_oracle_data.test_lengths[:64].to(device)
    blanks = agent.blanks_for(tok, lens)
    context = agent.context_of(tok, lens, blanks)
    filled = gen.sample(context, lens, generator=torch.Generator(device=device).manual_seed(0))
    assert filled.device.type == device.type
    assert torch.equal(filled[~blanks], tok[~blanks])
    assert bool((filled[blanks] < small_oracle_data.vocab_size).all())
    # at the first blank of the context, the draws follow the teacher-forced distribution
    ctx = context[:1].expand(4000, -1)
    draws = gen.sample(ctx, lens[:1].expand(4000), generator=torch.Generator(device=device).manual_seed(1))
    t = int(blanks[0].nonzero()[0])
    with torch.no_grad():
        p = torch.softmax(gen(ctx[:1], draws[:1])[0][0, t], -1).cpu()
    freq = torch.bincount(draws[:, t].cpu(), minlength=small_oracle_data.vocab_size).float() / 4000
    assert float((freq - p).abs().sum()) < 0.15  # total variation of 4000 draws over 50 tokens


def test_mle_infill_learns_the_blanks(small_oracle_data):
    agent = agents.make("mle-infill", small_oracle_data, {"mle_epochs": 8, "mle_lr": 0.01}, seed=0)
    before, _ = agent.evaluate_task(256, 256, seed=0)
    while agent.iteration < agent.total_iterations:
        agent.train_iteration()
    after, lines = agent.evaluate_task(256, 256, seed=0)
    assert after["nll_infill"] < before["nll_infill"] - 0.3
    assert {"nll_oracle", "nll_oracle_true", "unique2", "unique3", "unique4"} <= set(after)
    assert "[" in lines[0]


@pytest.mark.parametrize("temperature", [None, 0.5])
def test_nll_infill_is_the_mean_tempered_nll_over_the_blank_positions_only(small_oracle_data, temperature):
    """``nll_infill`` against a loop over sequences and their blanks, one sequence per generator
    pass: -log softmax(logits / τ)[true token], averaged over the blanks (the given tokens, which
    the context shows, are not scored)."""
    from agents.infill import EVAL_MASK_SEED

    agent = agents.make("mle-infill", small_oracle_data, {"temperature": 0.8}, seed=0)
    gen, mask_id = agent.generator, small_oracle_data.vocab_size + 1
    # a generator taught to copy the given tokens too: they become cheap, the blanks stay dear
    opt = torch.optim.Adam(gen.parameters(), lr=0.03)
    tok, lens = small_oracle_data.train[:256], small_oracle_data.train_lengths[:256]
    for _ in range(30):
        context = agent.context_of(tok, lens, agent.blanks_for(tok, lens))
        loss = -gen.log_probs(context, tok).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    k = 24
    metrics, _ = agent.evaluate_task(8, k, seed=0, temperature=temperature)
    tau = 0.8 if temperature is None else temperature
    tok, lens = small_oracle_data.test[:k], small_oracle_data.test_lengths[:k]
    blanks = agent.blanks_for(tok, lens, torch.Generator().manual_seed(EVAL_MASK_SEED))  # the evaluation's fixed blanks
    terms, others = [], []
    with torch.no_grad():
        for i in range(k):
            x = tok[i : i + 1]
            context = x.masked_fill(blanks[i : i + 1], mask_id)
            logits = gen(context, x)[0][0] / tau  # (L, V) teacher-forced on the true sequence
            for t in range(int(lens[i])):
                nll = -float(torch.log_softmax(logits[t], -1)[int(x[0, t])])
                (terms if bool(blanks[i, t]) else others).append(nll)
    assert terms and others
    assert metrics["nll_infill"] == pytest.approx(sum(terms) / len(terms), rel=1e-5, abs=1e-5)
    assert sum(others) / len(others) < sum(terms) / len(terms) - 0.5  # scoring every position would differ


@pytest.mark.parametrize("discriminator", ["seq2seq", "constant", "oracle"])
def test_maskgan_infill_runs_its_schedule_and_resumes_bit_for_bit(small_oracle_data, discriminator):
    cfg = {"mle_epochs": 1, "d_pretrain_steps": 1, "adv_steps": 2, "critic_warmup": 2, "batch_size": 32,
           "discriminator": discriminator}
    a = agents.make("maskgan-infill", small_oracle_data, cfg, seed=1)
    phases = [a.train_iteration()["phase"] for _ in range(2)]
    state = copy.deepcopy(a.state_dict())  # as through a checkpoint file (optimizers keep their tensors)
    b = agents.make("maskgan-infill", small_oracle_data, cfg, seed=1)
    b.load_state_dict(state)
    rest_a = [a.train_iteration() for _ in range(a.total_iterations - a.iteration)]
    rest_b = [b.train_iteration() for _ in range(b.total_iterations - b.iteration)]
    assert rest_a == rest_b
    assert phases[0] == "mle" and rest_a[-1]["phase"] == "adv"
    assert ("d_acc" in rest_a[-1]) == (discriminator == "seq2seq")


def test_maskgan_oracle_rewards_equal_the_envs_dense_oracle_rewards(small_oracle_data, device):
    agent = agents.make("maskgan-infill", small_oracle_data, {"discriminator": "oracle", "mask_mode": "random"}, seed=0,
                        device=device)
    env = InfillVecEnv(16, data=small_oracle_data, mask_mode="random", seed=0, autoreset_mode=AutoresetMode.SAME_STEP,
                       device=device)
    obs, info = env.reset(seed=0)
    L = env.max_length
    context, blanks, lens = obs[:, :L].clone(), info["blanks"].clone(), env.lengths.clone()
    filled = agent.generator.sample(context, lens, generator=torch.Generator(device=device).manual_seed(0))
    paid = torch.zeros(16, L, device=device)
    done = torch.zeros(16, dtype=torch.bool, device=device)
    for _ in range(L):
        cur = info["cursor"].clone()
        obs, r, term, _, info = env.step(filled[torch.arange(16, device=device), cur.clamp(max=L - 1)])
        live = ~done
        paid[live.nonzero().squeeze(1), cur[live]] = r[live]
        done |= term
    assert bool(done.all())
    torch.testing.assert_close(agent.rewards(context, filled, lens, blanks), paid * length_mask(lens, L),
                               rtol=1e-5, atol=1e-5)


def test_train_py_runs_maskgan_on_the_infill_task_and_refuses_bad_tasks(tmp_path, oracle_data):
    cmd = [sys.executable, str(ROOT / "train.py"), "--agent", "maskgan", "--task", "infill", "--budget", "smoke",
           "--quiet", "--out", str(tmp_path / "run")]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["agent"] == "maskgan-infill" and "nll_infill" in summary["metrics"]
    for args, message in ((["--agent", "seqgan", "--task", "infill"], "has no 'infill' task"),
                          (["--agent", "maskgan", "--task", "poems"], "unknown task"),
                          (["--agent", "maskgan", "--task", "infill", "--mask-rate", "1.2"], "mask_rate")):
        bad = subprocess.run([sys.executable, str(ROOT / "train.py"), *args, "--budget", "smoke", "--out",
                              str(tmp_path / "bad")], capture_output=True, text=True, cwd=ROOT, timeout=120)
        assert bad.returncode != 0 and message in bad.stderr, bad.stderr
        assert not (tmp_path / "bad" / "checkpoint.pt").exists()


def test_sb3_ppo_trains_on_the_infill_env_through_sb3vecenv_without_touching_it(small_oracle_data):
    from stable_baselines3 import PPO

    from textgym.sb3 import SB3VecEnv

    env = InfillVecEnv(8, data=small_oracle_data, seed=0)
    wrapped = SB3VecEnv(env)
    assert wrapped.token_env is not env and env.autoreset_mode == AutoresetMode.NEXT_STEP  # a view, env untouched
    model = PPO("MlpPolicy", wrapped, n_steps=12, batch_size=48, n_epochs=1, seed=0)
    model.learn(96)
    episodes = [e for e in model.ep_info_buffer]
    assert episodes and all(1 <= e["l"] <= small_oracle_data.max_length for e in episodes)


def test_task_evaluation_uses_common_random_numbers_across_runs_and_iterations(tmp_path):
    """Two runs of the same seed whose generators are equal report equal sample metrics, even at
    different iterations (the evaluation seed depends on the run's seed only)."""
    from agents.config import resolve
    from agents.driver import train

    base = {"train_size": 256, "eval_samples": 64, "eval_test_size": 64, "mle_epochs": 1, "seed": 4}
    a = train(resolve(agents.preset("mle-infill"), "smoke", explicit=base), tmp_path / "a", quiet=True)
    b = train(resolve(agents.preset("maskgan-infill"), "smoke",
                      explicit={**base, "init_from": str(tmp_path / "a"), "discriminator": "constant",
                                "mle_epochs": 0, "adv_steps": 2, "gen_lr": 1e-30}), tmp_path / "b", quiet=True)
    assert b["iterations"] != a["iterations"]
    assert b["metrics"]["nll_oracle"] == pytest.approx(a["metrics"]["nll_oracle"], abs=1e-6)


def test_same_step_infos_describe_the_new_episodes_that_the_observations_show(small_oracle_data):
    env = InfillVecEnv(6, data=small_oracle_data, mask_rate=0.5, mask_mode="random", seed=0,
                       autoreset_mode=AutoresetMode.SAME_STEP)
    L = env.max_length
    obs, info = env.reset(seed=0)
    rng = np.random.default_rng(0)
    restarted = 0
    for _ in range(40):
        obs, _, term, _, info = env.step(torch.as_tensor(rng.integers(0, env.vocab_size, env.num_envs)))
        restarted += int(term.sum())
        assert torch.equal(obs[:, :L] == env.mask_id, info["blanks"])  # the new episodes' blanks
        open_first = [int((obs[i, L:] == env.mask_id).nonzero()[0]) for i in range(env.num_envs)]
        assert info["cursor"].tolist() == open_first  # the first open blank of each shown episode
    assert restarted > 5


def test_a_sentence_cut_at_max_length_can_have_its_last_word_blanked(tmp_path):
    from textgym.infill import make_blanks, maskable_lengths

    (tmp_path / "c.txt").write_text("a b c d e f\nb c\n")
    data = Corpus(tmp_path / "c.txt", max_length=4)  # the first sentence keeps 4 words and no <eos>
    assert maskable_lengths(data.train_lengths, data.eos_id, data.train).tolist() == [4, 2]
    g = torch.Generator().manual_seed(0)
    hits = sum(make_blanks(data.train_lengths, 4, 0.3, "random", eos_id=data.eos_id, tokens=data.train, generator=g).long()
               for _ in range(300))
    assert int(hits[0, 3]) > 0 and int(hits[1, 2]) == 0  # the cut sentence's last word yes, an <eos> never


def test_the_single_infill_env_keeps_its_finished_episode_until_reset(tmp_path):
    """Its vector env resets in the same step: render showed the next episode's context after the
    last fill, a further step filled that unseen episode, and step's info was empty."""
    (tmp_path / "c.txt").write_text("the cat sat on the mat\na dog ran\n")
    env = gym.make(textgym.INFILL_ENV_ID, render_mode="ansi", data=str(tmp_path / "c.txt"), discriminator="constant",
                   mask_span=1).unwrapped
    obs, info = env.reset(seed=0)
    assert set(info) == {"blanks", "cursor"} and "_" in env.render()
    fill = env.venv.data.vocab.stoi["cat"]
    obs, r, term, trunc, info = env.step(fill)
    assert term and set(info) == {"blanks", "cursor"} and int(info["blanks"].sum()) == 1
    text = env.render()
    assert "_" not in text and "cat" in text.split()  # the episode just finished, its blank filled
    L = env.venv.max_length
    assert env.observation_space.contains(obs) and int(info["cursor"]) == int((obs[:L] != env.venv.pad_id).sum())
    with pytest.raises(RuntimeError, match="the episode has ended; call reset"):
        env.step(fill)
    env.reset()
    assert "_" in env.render()


def test_the_infill_env_refuses_non_finite_scores_and_takes_numpy_seeds_and_mode_names(small_oracle_data):
    """-inf * 0 made the autoreset step's reward NaN, and non-finite scores passed as rewards."""

    class Broken:
        def score_filled(self, context, filled, lengths):
            out = torch.zeros(filled.shape)
            out[0, 0] = -float("inf")
            return out

    env = InfillVecEnv(2, data=small_oracle_data, discriminator=Broken(), mask_span=1, seed=0)
    env.reset(seed=np.int64(3))  # gymnasium's reset took Python ints only
    with pytest.raises(ValueError, match="returned 1 non-finite scores; scores must be finite"):
        env.step(torch.tensor([1, 1]))
    assert InfillVecEnv(2, data=small_oracle_data, autoreset_mode="same_step").autoreset_mode == AutoresetMode.SAME_STEP
    with pytest.raises(ValueError, match="autoreset_mode must be one of .*got 'disabled'"):
        InfillVecEnv(2, data=small_oracle_data, autoreset_mode="disabled")


def test_the_infill_env_scores_on_the_discriminators_device(small_oracle_data, device):
    """An env on the CPU with its discriminator on ``device`` (the CUDA case failed)."""
    V, L = small_oracle_data.vocab_size, small_oracle_data.max_length
    d = Seq2SeqDiscriminator(V, L, emb_dim=8, hidden_dim=12, seed=3).to(device)
    env = InfillVecEnv(3, data=small_oracle_data, discriminator=d, seed=0)
    env.reset(seed=0)
    _, r, *_ = env.step(torch.tensor([1, 2, 3]))
    assert r.device.type == "cpu" and torch.isfinite(r).all()


def test_the_agent_refuses_a_span_longer_than_a_validation_or_test_sequence_and_counts_cut_sentences(tmp_path):
    """The check looked at the training rows only (evaluation then failed on a short test or
    validation sequence) and took one <eos> off every row, also off sentences cut at max_length."""
    (tmp_path / "tr.txt").write_text("a b c d e f\nb c d e f a\nc d e f a b\n")
    (tmp_path / "te.txt").write_text("a b\n")
    agent = agents.make("mle-infill", Corpus(tmp_path / "tr.txt", tmp_path / "te.txt"), {"mask_span": 4}, seed=0)
    with pytest.raises(ValueError, match="longer than the shortest evaluated test sequence"):
        agent.evaluate_task(4, None, seed=0)
    (tmp_path / "tr2.txt").write_text("a b c d e f\nb c d e f a\nc d\n")  # the last row is cut off as validation
    with pytest.raises(ValueError, match="longer than the shortest validation sequence"):
        agents.make("mle-infill", Corpus(tmp_path / "tr2.txt"), {"mask_span": 3, "val_size": 1}, seed=0)
    cut = Corpus(tmp_path / "tr.txt", max_length=4)  # every sentence cut at 4 tokens, no <eos>: 4 maskable
    agent = agents.make("mle-infill", cut, {"mask_span": 4, "mle_epochs": 1, "batch_size": 2}, seed=0)
    agent.train_iteration()


def test_maskgan_infill_policy_gradient_uses_the_tempered_policy_that_drew_the_fills(small_oracle_data):
    """At temperature τ the fills are drawn from softmax(logits / τ): REINFORCE's log-probability
    must be that policy's (it was log softmax(logits), the gradient of another policy)."""
    agent = agents.make("maskgan-infill", small_oracle_data, {"mle_epochs": 0, "d_pretrain_steps": 0, "adv_steps": 1,
                                                              "critic_warmup": 0, "batch_size": 8, "temperature": 0.5,
                                                              "discriminator": "constant"}, seed=0)
    gen = agent.generator
    seen = []
    real = gen.token_log_probs

    def spy(logits, filled):
        seen.append((logits.detach().clone(), filled.clone()))
        return real(logits, filled)

    gen.token_log_probs = spy
    forward = gen.forward
    raw = []
    gen.forward = lambda context, filled: raw.append(forward(context, filled)) or raw[-1]
    agent.generator_step(actor=True)
    assert len(seen) == 1 and len(raw) == 1
    torch.testing.assert_close(seen[0][0], raw[0][0].detach() / 0.5)


def test_a_span_is_checked_against_the_test_sequences_evaluation_scores_only(tmp_path):
    """With eval_test_size, evaluation scores the test set's first sequences: a short one past
    them is no reason to refuse the run."""
    (tmp_path / "tr.txt").write_text("a b c d e f\nb c d e f a\nc d e f a b\n")
    (tmp_path / "te.txt").write_text("a b c d e f\nb c d e f a\nc d\n")
    agent = agents.make("mle-infill", Corpus(tmp_path / "tr.txt", tmp_path / "te.txt"), {"mask_span": 4}, seed=0)
    assert "nll_infill" in agent.evaluate_task(2, 2, seed=0)[0]
    with pytest.raises(ValueError, match="evaluated test sequence"):
        agent.evaluate_task(2, 3, seed=0)


def test_train_py_refuses_a_span_its_evaluation_cannot_blank_before_any_work(tmp_path):
    import train

    (tmp_path / "tr.txt").write_text("a b c d e f\nb c d e f a\nc d e f a b\n")
    (tmp_path / "te.txt").write_text("a b c d e f\nc d\n")
    assert train.main(["--task", "infill", "--agent", "mle-infill", "--data", str(tmp_path / "tr.txt"), "--test-data",
                       str(tmp_path / "te.txt"), "--set", "mask_span=4", "--budget", "smoke", "--out",
                       str(tmp_path / "run"), "--quiet"]) == 2
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_the_single_env_takes_a_numpy_seed_and_a_numpy_mask_rate(small_oracle_data):
    """gym.make("textgym/Infill-v0").reset(seed=np.int64(3)) failed in gymnasium's seed check, and a
    float32 mask rate of 0.5 was refused as out of (0, 1)."""
    import gymnasium as gym

    env = gym.make("textgym/Infill-v0", data=small_oracle_data, mask_rate=np.float32(0.5))
    a, _ = env.reset(seed=np.int64(3))
    b, _ = env.reset(seed=3)
    np.testing.assert_array_equal(a, b)


def test_unique_ngram_share_counts_the_ngrams_that_end_at_a_fill_and_matches_a_slow_count():
    """U1 (only n-grams that start at a fill), U2 (the last n-gram of a row dropped): the suite's one
    hand case has its fill at position 1 of 4, where both give the right 0.5."""
    from textgym.infill import unique_ngram_share

    tokens = torch.tensor([[1, 2, 1, 2], [1, 2, 1, 2]])
    last = torch.tensor([[False, False, False, True]] * 2)  # bigrams touching position 3: (1, 2) twice
    assert unique_ngram_share(tokens, torch.tensor([4, 4]), last, 2) == 0.5
    g = torch.Generator().manual_seed(0)
    tokens, lengths = torch.randint(3, (20, 7), generator=g), torch.randint(1, 8, (20,), generator=g)
    blanks = torch.rand(20, 7, generator=g) < 0.3
    for n in (2, 3):
        grams = [tuple(tokens[i, s:s + n].tolist()) for i in range(20) for s in range(int(lengths[i]) - n + 1)
                 if bool(blanks[i, s:s + n].any())]
        assert unique_ngram_share(tokens, lengths, blanks, n) == len(set(grams)) / len(grams)


def test_maskgan_infill_step_is_the_hand_computation(small_oracle_data):
    """One in-filling generator step on fixed blanks, fills, logits s and critic values v_t, against
    r = log σ(s) at the blanks, R_t = Σ_{u>=t} γ^{u-t} r_u, A = clip(R - v, ±c),
    L_G = -Σ_blanks A log π / #blanks, L_V = Σ_blanks (R - v)² / #blanks and its SGD step."""
    Lq = small_oracle_data.max_length  # 6
    gamma, clip, lr = 0.5, 1.0, 0.1
    a = agents.make("maskgan-infill", small_oracle_data, {"mle_epochs": 0, "d_pretrain_steps": 0, "adv_steps": 1,
                                                          "critic_warmup": 0, "batch_size": 3, "gamma": gamma,
                                                          "adv_clip": clip, "discriminator": "constant"}, seed=0)
    tok = small_oracle_data.train[:3].clone()
    lens = torch.full((3,), Lq)
    blanks = torch.tensor([[False, True, True, False, True, False],
                           [True, False, False, True, True, True],
                           [False, False, True, False, False, True]])
    context = a.context_of(tok, lens, blanks)
    filled = torch.where(blanks, torch.randint(50, (3, Lq), generator=torch.Generator().manual_seed(1)), tok)
    s = torch.tensor([[0.3, -2.0, 1.5, 0.2, -0.7, 2.2], [-1.0, 0.4, 0.9, 2.5, -3.0, 0.1], [1.1, 0.0, -2.2, 0.6, 0.8, -1.4]])

    class Table:
        is_probabilistic = True

        def score_filled(self, context, filled, lengths):
            return s.clone()

    a.scorer = Table()
    a.real_batch = lambda: (tok.clone(), lens.clone(), blanks.clone(), context.clone())
    a.generator.sample = lambda context, lengths, temperature=1.0, generator=None: filled.clone()
    from test_agents import PositionCritic

    values = [-2.0, -1.5, -1.0, -0.5, 0.0, 0.5]
    a.critic = PositionCritic(values)
    a.critic_opt = torch.optim.SGD(a.critic.parameters(), lr=lr)
    with torch.no_grad():
        lp = torch.log_softmax(a.generator(context, filled)[0], -1).gather(2, filled[..., None]).squeeze(2)
    nb = int(blanks.sum())
    g_loss = v_loss = adv = 0.0
    grad = [0.0] * Lq
    for i in range(3):
        r = [math.log(1 / (1 + math.exp(-float(s[i, t])))) if blanks[i, t] else 0.0 for t in range(Lq)]
        for t in range(Lq):
            if not blanks[i, t]:
                continue
            R = sum(gamma ** (u - t) * r[u] for u in range(t, Lq))
            A = max(-clip, min(clip, R - values[t]))
            g_loss -= A * float(lp[i, t]) / nb
            adv += A / nb
            v_loss += (R - values[t]) ** 2 / nb
            grad[t] += -2 * (R - values[t]) / nb
    stats = a.generator_step()
    assert stats["g_loss"] == pytest.approx(g_loss, rel=1e-5)
    assert stats["advantage"] == pytest.approx(adv, rel=1e-5)
    assert stats["critic_loss"] == pytest.approx(v_loss, rel=1e-5)
    torch.testing.assert_close(a.critic.v.detach(), torch.tensor([v - lr * g for v, g in zip(values, grad)]),
                               rtol=1e-5, atol=1e-6)
