"""Class-conditional agents (SentiGAN, CatGAN): rewards, schedules, resume, evaluation, errors."""
from __future__ import annotations

import copy
import math
import warnings

import pytest
import torch

from agents.catgan import CatGANAgent, relativistic_loss, soft_logits
from agents.conditional import ConditionalGenerator
from agents.config import Preset
from agents.sentigan import SentiGANAgent
from textgym.classes import MultiOracleData
from textgym.data import OracleData

SMOKE_S = dict(mle_epochs=1, adv_steps=2, d_pretrain_steps=1, d_pretrain_epochs=1, d_steps=1, d_epochs=1,
               d_samples=32, n_rollouts=2, batch_size=16, discriminator_options={"size": "small"})
SMOKE_C = dict(mle_epochs=1, adv_steps=2, d_steps=1, batch_size=16, eval_batches=1, d_filters=8, d_emb_dim=16,
               beta_max=10.0)


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread (conftest)


@pytest.fixture(scope="module")
def data() -> MultiOracleData:
    return MultiOracleData(2, seqgan_oracle=False, vocab_size=50, max_length=6, n_train=120, n_test=40)


def run(agent, n):
    return [agent.train_iteration() for _ in range(n)]


def same_state(a, b):
    for x, y in zip(torch.utils._pytree.tree_leaves(a), torch.utils._pytree.tree_leaves(b), strict=True):
        if torch.is_tensor(x):
            assert torch.equal(x, y)
        else:
            assert x == y


def test_sentigan_reward_is_class_probability(data, device):
    agent = SentiGANAgent(data, SMOKE_S, seed=0, device=device)
    tokens, lengths = agent.sample_class(1, 8, torch.Generator(device=device).manual_seed(1))
    assert tokens.device.type == device.type
    probs = agent.discriminator.class_probs(tokens, lengths)
    assert torch.allclose(agent.reward_scorer(1).score(tokens, lengths), probs[:, 1])
    assert torch.allclose(agent.reward_scorer(0).score(tokens, lengths), probs[:, 0])
    # the MC reward of the whole sequence (last step) is D's class probability itself
    q = agent.rewards[1].sequence_rewards(tokens, lengths, generator=torch.Generator(device=device).manual_seed(2))
    assert q.device.type == device.type
    assert torch.allclose(q[:, -1], probs[:, 1])


def test_sentigan_no_information_control_pays_one_over_k_plus_one_and_never_trains(data):
    agent = SentiGANAgent(data, {**SMOKE_S, "discriminator": "constant"}, seed=0)
    before = copy.deepcopy(agent.discriminator.state_dict())
    run(agent, agent.total_iterations)
    tokens, lengths = agent.sample_class(0, 8, torch.Generator().manual_seed(1))
    assert torch.allclose(agent.reward_scorer(0).score(tokens, lengths), torch.full((8,), 1 / 3))
    same_state(before, agent.discriminator.state_dict())


def test_catgan_relativistic_losses_and_soft_input(data, device):
    agent = CatGANAgent(data, SMOKE_C, seed=0, device=device)
    d = agent.discriminator.eval()
    tokens, lengths, soft = agent.gen.gumbel_sample(6, 1, 1e4, generator=torch.Generator(device=device).manual_seed(0))
    assert soft.device.type == device.type
    # a (near) one-hot soft row reads as its token ids
    assert torch.allclose(soft_logits(d, soft, tokens, lengths), d(tokens, lengths), atol=1e-4)
    r, f = torch.randn(5, device=device), torch.randn(5, device=device)
    assert torch.allclose(relativistic_loss("rsgan", "D", r, f), -torch.log(torch.sigmoid(r - f)).mean())
    assert torch.allclose(relativistic_loss("rsgan", "G", r, f), -torch.log(torch.sigmoid(f - r)).mean())
    ra = -torch.log(torch.sigmoid(f - r.mean())).mean() - torch.log(1 - torch.sigmoid(r - f.mean())).mean()
    assert torch.allclose(relativistic_loss("ragan", "G", r, f), ra)
    ra_d = -torch.log(torch.sigmoid(r - f.mean())).mean() - torch.log(1 - torch.sigmoid(f - r.mean())).mean()
    assert torch.allclose(relativistic_loss("ragan", "D", r, f), ra_d)  # D wins where G loses: the two differ
    assert not torch.allclose(ra_d, ra)


def test_conditional_generator_matches_step_and_teacher_forcing(device):
    g = ConditionalGenerator(20, 5, 3, seed=0).to(device)
    tokens = g.sample_with_lengths(4, classes=2, generator=torch.Generator(device=device).manual_seed(0))[0]
    assert tokens.device.type == device.type
    lp = g.log_probs(tokens, classes=torch.full((4,), 2, device=device))
    # the step-by-step cell (sampling path) equals teacher forcing (torch's fused LSTM)
    table, class_table, w_hh = g._step_weights_c()
    h = c = torch.zeros(4, 32, device=device)
    prev = torch.full((4,), g.bos_id, device=device)
    for t in range(5):
        h, c = g._cell(table[prev] + class_table[2], h, c, w_hh)
        ref = torch.log_softmax(g.out(h), -1).gather(1, tokens[:, t : t + 1]).squeeze(1)
        assert torch.allclose(ref, lp[:, t], atol=1e-5)
        prev = tokens[:, t]
    assert not torch.allclose(lp, g.log_probs(tokens, classes=torch.zeros(4, dtype=torch.long, device=device)))


@pytest.mark.parametrize("cls,cfg", [(SentiGANAgent, SMOKE_S), (CatGANAgent, SMOKE_C),
                                     (CatGANAgent, {**SMOKE_C, "evolution": False, "all_pairs": True})])
def test_smoke_and_bit_for_bit_resume(data, cls, cfg, device):
    a = cls(data, cfg, seed=3, device=device)
    assert a.total_iterations == (4 if cls is SentiGANAgent else 3)
    run(a, 2)
    state = copy.deepcopy(a.state_dict())
    rest = run(a, a.total_iterations - 2)
    b = cls(data, cfg, seed=3, device=device)
    b.load_state_dict(state)
    assert run(b, b.total_iterations - 2) == rest
    same_state(a.state_dict(), b.state_dict())
    metrics, lines = a.evaluate_task(40, 20, seed=5)
    assert {"nll_oracle_c0", "nll_oracle_c1", "nll_oracle", "nll_test", "nll_test_c0", "nll_test_c1"} <= set(metrics)
    assert all(math.isfinite(v) for v in metrics.values())
    assert lines and all(line.split("\t")[0] in ("oracle0", "oracle1") for line in lines)


def test_per_class_nll_oracle_matches_slow_reference(data, device):
    """The agent evaluates on ``device``; the reference scores each row with its shared oracle on the CPU."""
    agent = SentiGANAgent(data, SMOKE_S, seed=1, device=device)
    metrics, _ = agent.evaluate_task(20, None, seed=7)
    tokens, lengths, labels = agent.eval_samples(10, seed=7)
    assert tokens.device.type == device.type
    tokens, labels = tokens.cpu(), labels.cpu()
    per = {0: [], 1: []}
    for row, c in zip(tokens, labels.tolist(), strict=True):
        per[c].append(float(-data.oracle_for(c).log_probs(row[None]).sum()) / row.shape[0])
    for c in (0, 1):
        assert metrics[f"nll_oracle_c{c}"] == pytest.approx(sum(per[c]) / len(per[c]), rel=1e-5)
    assert metrics["nll_oracle"] == pytest.approx((metrics["nll_oracle_c0"] + metrics["nll_oracle_c1"]) / 2)
    # nll_test: the mean over classes of each generator's NLL on its class's test rows
    for c in (0, 1):
        rows = data.test[data.test_labels == c]
        assert metrics[f"nll_test_c{c}"] == pytest.approx(agent.gen(c).nll(rows), rel=1e-5)


def test_bad_inputs(data, tmp_path):
    plain = OracleData.__new__(OracleData)  # data without classes (no oracle needed to refuse it)
    for cls in (SentiGANAgent, CatGANAgent):
        with pytest.raises(ValueError, match="labelled data"):
            cls(plain, {}, seed=0)
    agent = SentiGANAgent(data, SMOKE_S, seed=0)
    three = MultiOracleData(3, seqgan_oracle=False, vocab_size=50, max_length=6, n_train=20, n_test=10)
    with pytest.raises(ValueError, match="class count mismatch"):
        agent.discriminator.check_num_classes(three, "the data")
    with pytest.raises(ValueError, match="class count mismatch"):
        agent.discriminator.check_num_classes(3)
    with pytest.raises(ValueError, match="mutations"):
        CatGANAgent(data, {**SMOKE_C, "mutations": ["wgan"]}, seed=0)
    # discriminator options that a field sets are refused by name (they crashed inside dict());
    # the others replace the recipe's
    with pytest.raises(ValueError, match="set d_emb_dim instead"):
        CatGANAgent(data, {**SMOKE_C, "discriminator_options": {"emb_dim": 8}}, seed=0)
    assert CatGANAgent(data, {**SMOKE_C, "discriminator_options": {"l2_reg": 0.2}}, seed=0).discriminator.l2_reg == 0.2
    for cls, cfg in ((SentiGANAgent, SMOKE_S), (CatGANAgent, SMOKE_C)):  # catgan's was a TypeError from make()
        with pytest.raises(ValueError, match=r"discriminator_options = .* is invalid: expected options other than "
                                             r"max_length \(the data sets them\)"):
            cls(data, {**cfg, "discriminator_options": {"max_length": 30}}, seed=0)
    cgen = CatGANAgent(data, SMOKE_C, seed=0).gen
    x = data.train[:2]
    with pytest.raises(ValueError, match="temperature must be > 0"):
        cgen.log_probs(x, 0.0, classes=[0, 1])
    with pytest.raises(ValueError, match="must be integer class ids"):
        cgen.log_probs(x, classes=torch.tensor([0.7, 1.2]))
    assert cgen.log_probs(x, classes=1).shape == x.shape  # one id for every row


def test_registry_and_driver(data, tmp_path, monkeypatch):
    import agents
    from agents.config import RunConfig
    from agents.driver import load_data

    monkeypatch.setitem(agents.PRESETS, "sentigan", Preset("sentigan", SentiGANAgent, dict(SMOKE_S), "SentiGAN"))
    monkeypatch.setitem(agents.PRESETS, "catgan", Preset("catgan", CatGANAgent, dict(SMOKE_C), "CatGAN"))
    assert isinstance(agents.make("catgan", data, seed=0), CatGANAgent)
    f = tmp_path / "lab.txt"
    f.write_text("pos\ta good film\nneg\ta bad film\npos\tgood good\nneg\tbad bad film\n")
    d = load_data(RunConfig(data=str(f), train_size=2))
    assert d.num_classes == 2 and sorted(d.train_labels.tolist()) == [0, 1]


@pytest.mark.parametrize("cls, cfg", [(SentiGANAgent, SMOKE_S), (CatGANAgent, SMOKE_C)])
def test_mle_iteration_updates_make_that_many_updates_of_each_generator(data, cls, cfg):
    """The study's MLE control: ``iteration_updates`` minibatch steps per group and iteration,
    more than one shuffle of a class when the updates need it (120 / 2 classes / 16 per batch)."""
    agent = cls(data, {**cfg, "iteration_updates": 5}, seed=0)
    stats = agent.mle_epoch()
    for _, opt in agent.mle_groups():
        steps = {int(s["step"]) for s in opt.state_dict()["state"].values()}
        assert steps == {5}
    assert math.isfinite(stats["nll_train"])


def test_warm_start_takes_the_generator_of_the_same_agent_only(data):
    source = SentiGANAgent(data, SMOKE_S, seed=1)
    run(source, 1)
    agent = SentiGANAgent(data, SMOKE_S, seed=0)
    agent.warm_start(source.state_dict())
    same_state(agent.generator.state_dict(), source.generator.state_dict())
    assert agent.iteration == 0
    with pytest.raises(ValueError, match="a catgan run warm starts from another catgan run.*not from agent 'sentigan'"):
        CatGANAgent(data, SMOKE_C, seed=0).warm_start(source.state_dict())
    with pytest.raises(ValueError, match="takes only its generator"):
        agent.warm_start(source.state_dict(), ("generator", "discriminator"))


def test_evaluate_task_at_a_temperature(data):
    agent = CatGANAgent(data, SMOKE_C, seed=0)
    run(agent, 1)
    default, _ = agent.evaluate_task(40, 40, seed=3)
    assert agent.evaluate_task(40, 40, seed=3, temperature=1.0)[0] == default
    cold, _ = agent.evaluate_task(40, 40, seed=3, temperature=0.5)
    assert cold["nll_test"] != default["nll_test"] and cold["nll_oracle"] != default["nll_oracle"]
    with pytest.raises(ValueError, match="temperature must be > 0"):
        agent.evaluate_task(40, 40, seed=3, temperature=0.0)


# ---------------------------------------------------------------------- SentiGAN's penalty update, CatGAN's selection
def test_sentigan_generator_step_minimizes_the_penalty_weighted_log_likelihood(data):
    """One step of generator 0 on a fixed batch with fixed rewards Q: the loss is
    Σ_{b,t<L_b} (1 - Q_{b,t}) log G(y_{b,t} | y_{b,<t}) / Σ_b L_b (a hand sum), and the update
    lowers log G of the penalized sequence, more than that of the sequence without penalty."""
    agent = SentiGANAgent(data, SMOKE_S, seed=0)
    g = agent.gen(0)
    T = data.max_length
    tokens = torch.randint(0, data.vocab_size, (4, T), generator=torch.Generator().manual_seed(3))
    lengths = torch.tensor([T, T, 4, 2])
    q = torch.tensor([[1.0] * T,                         # row 0: no penalty
                      [0.0] * T,                         # row 1: full penalty
                      [0.9, 0.8, 0.95, 0.85, 0.1, 0.2],  # rows 2-3: small penalties (beyond the length: ignored)
                      [0.7, 0.9, 0.0, 0.0, 0.0, 0.0]])
    g.sample_with_lengths = lambda n, generator=None, temperature=1.0: (tokens.clone(), lengths.clone())
    agent.rewards[0].sequence_rewards = lambda tokens, lengths, generator=None: q.clone()
    with torch.no_grad():
        before = g.log_probs(tokens)
    want = 0.0
    for b in range(4):
        for t in range(int(lengths[b])):
            want += (1.0 - float(q[b, t])) * float(before[b, t])
    want /= int(lengths.sum())
    stats = agent.generator_step(0)
    assert stats["g_loss"] == pytest.approx(want, rel=1e-5)
    assert want < 0  # log-likelihoods weighted by penalties >= 0
    with torch.no_grad():
        after = g.log_probs(tokens)
    seq = lambda lp, b: float(lp[b, : int(lengths[b])].sum())  # log G(Y_b)
    drop_penalized = seq(after, 1) - seq(before, 1)
    drop_free = seq(after, 0) - seq(before, 0)
    assert drop_penalized < 0 and drop_penalized < drop_free


def test_catgan_evolution_keeps_the_fittest_children_at_their_best_temperature(data):
    """evolve with the fitness stubbed to known scores: each (parent, mutation) keeps its best
    temperature among β(i), β(i+1), β(i-1) (β(j) = β_max^{j/N}), the n_parent best children
    become the parents (best first), and the generator continues as the best child with its β,
    its mutation and its samples."""
    beta_max, N, step = 10.0, 10, 3
    agent = CatGANAgent(data, {**SMOKE_C, "n_parent": 2, "beta_max": beta_max, "temp_horizon": N}, seed=0)
    # call order: parent 0 rsgan (3 temperatures), parent 0 ragan, parent 1 rsgan, parent 1 ragan
    scores = [1.0, 8.0, 3.0,  2.0, 0.0, 4.0,  7.0, 6.0, 5.0,  6.5, 2.5, 9.0]
    calls = []

    def fitness(beta, eval_real):
        j = len(calls)
        calls.append((beta, copy.deepcopy(agent.gen.state_dict()), [f"samples-{j}"]))
        return scores[j] - 0.25, 0.25, scores[j], calls[-1][2]

    agent.fitness = fitness
    stats, samples = agent.evolve(step)
    assert len(calls) == 12
    temps = [beta_max ** (step / N), beta_max ** ((step + 1) / N), beta_max ** ((step - 1) / N)]
    for k in range(4):
        assert [c[0] for c in calls[3 * k : 3 * k + 3]] == pytest.approx(temps)
    # children: 8 (call 1), 4 (call 5), 7 (call 6), 9 (call 11); kept: call 11, then call 1
    assert [p["beta"] for p in agent.parents] == pytest.approx([temps[2], temps[1]])
    for parent, j in zip(agent.parents, (11, 1), strict=True):
        for key, value in calls[j][1].items():
            assert torch.equal(parent["gen"][key], value), (j, key)
    assert not torch.equal(calls[11][1]["out.weight"], calls[1][1]["out.weight"])  # distinct children
    for key, value in calls[11][1].items():
        assert torch.equal(agent.gen.state_dict()[key], value)
    assert agent.beta == pytest.approx(temps[2])
    assert stats["fitness"] == 9.0 and stats["fitness_q"] == 8.75 and stats["fitness_d"] == 0.25
    assert stats["mutation"] == "ragan" and samples == ["samples-11"]


def test_soft_logits_read_the_soft_rows_also_under_no_grad_where_the_cnn_would_use_lookup_tables():
    """CatGAN's fitness runs without gradients, where the CNN scores a large CPU batch from lookup
    tables of token ids: the soft rows must still be what it reads."""
    import discriminators

    torch.manual_seed(0)
    V, T, N = 30, 10, 512
    d = discriminators.make("cnn", vocab_size=V, max_length=T, emb_dim=16, widths=[2, 3, 4, 5], filters=[8] * 4).eval()
    g = torch.Generator().manual_seed(1)
    tokens, lengths = torch.randint(V, (N, T), generator=g), torch.full((N,), T)
    soft = torch.softmax(torch.randn(N, T, V, generator=g), -1)  # far from one-hot
    with torch.no_grad():
        assert all(t is not None for t in d._tables(d._pad(tokens)))  # the table path is the one at stake
        fitness_view = soft_logits(d, soft, tokens, lengths)
        hard = d(tokens, lengths)
    reference = soft_logits(d, soft, tokens, lengths).detach()  # with gradients: through the embedding
    torch.testing.assert_close(fitness_view, reference)
    assert (fitness_view - hard).abs().max() > 0.05 and not fitness_view.requires_grad


# ---------------------------------------------------------------------- the discriminator's held-out figures
@pytest.mark.parametrize("cls,cfg", [(SentiGANAgent, SMOKE_S), (CatGANAgent, SMOKE_C)])
def test_held_out_discriminator_figures_after_mle_only_and_evaluation_changes_no_training(data, cls, cfg):
    agent = cls(data, {**cfg, "d_heldout": 16}, seed=0)
    twin = cls(data, {**cfg, "d_heldout": 0}, seed=0)
    seen = []
    for _ in range(agent.total_iterations):
        run(agent, 1)
        run(twin, 1)
        out, _ = agent.evaluate_task(40, 40, seed=3)
        seen.append(sorted(k for k in out if k.startswith("d_heldout")))
        assert not [k for k in twin.evaluate_task(40, 40, seed=3)[0] if k.startswith("d_")]
        assert not [k for k in agent.evaluate_task(40, 40, seed=3, temperature=1.0)[0] if k.startswith("d_")]
        again, _ = agent.evaluate_task(40, 40, seed=3)
        assert again == out  # seeded by the evaluation's seed alone
    n_mle = agent.config.mle_epochs
    assert seen[:n_mle] == [[]] * n_mle
    want = ["d_heldout_acc", "d_heldout_loss"] + (
        ["d_heldout_class_acc"] if cls is SentiGANAgent else ["d_heldout_acc_hard"])
    assert all(s == sorted(want) for s in seen[n_mle:])
    same_state(agent.state_dict()["discriminator"], twin.state_dict()["discriminator"])
    same_state(agent.state_dict()[cls.generator_key], twin.state_dict()[cls.generator_key])


@pytest.mark.parametrize("cls,cfg", [(SentiGANAgent, SMOKE_S), (CatGANAgent, SMOKE_C)])
def test_no_information_controls_are_at_chance_on_held_out_data(data, cls, cfg):
    agent = cls(data, {**cfg, "discriminator": "constant", "d_heldout": 16}, seed=0)
    run(agent, agent.config.mle_epochs + 1)
    out, _ = agent.evaluate_task(40, 40, seed=3)
    k = agent.num_classes
    assert out["d_heldout_acc"] == 0.5
    if cls is SentiGANAgent:  # every class logit 0: P(real) = k/(k+1), the right class 1/(k+1) of the time
        assert out["d_heldout_class_acc"] == pytest.approx(1 / (k + 1))
        assert out["d_heldout_loss"] == pytest.approx(0.5 * (math.log((k + 1) / k) + math.log(k + 1)), rel=1e-6)
    else:  # every logit 0: every pair a tie, L_D = k log 2
        assert out["d_heldout_acc_hard"] == 0.5
        assert out["d_heldout_loss"] == pytest.approx(k * math.log(2), rel=1e-6)
    # at chance in three evaluations in a row: the warning the unconditional agents give (these gave none)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        agent.evaluate_task(40, 40, seed=3)
        twin = cls(data, {**cfg, "discriminator": "constant", "d_heldout": 16}, seed=0)
        twin.load_state_dict(agent.state_dict())  # the streak survives a resume
        twin.evaluate_task(40, 40, seed=3)
    assert [str(w.message) for w in caught] == [
        f"{agent.name}: the discriminator's held-out accuracy has stayed within 0.05 of chance for 3 rounds (now "
        "0.500): its rewards carry no information"]


def test_catgan_held_out_accuracy_is_the_pairwise_call_on_the_soft_samples(data):
    """Recomputed by hand: D's logits of the first 16 test rows of each class against 16 seeded
    Gumbel-softmax samples of that class, every (real, generated) pair counted."""
    agent = CatGANAgent(data, {**SMOKE_C, "d_heldout": 16}, seed=0)
    run(agent, agent.config.mle_epochs + 1)
    out = agent.discriminator_heldout(
        [(c, data.test[data.test_labels == c][:16], data.test_lengths[data.test_labels == c][:16]) for c in range(2)],
        torch.Generator().manual_seed(11))
    g = torch.Generator().manual_seed(11)
    D = agent.discriminator
    D.eval()
    soft_acc, hard_acc, loss = [], [], 0.0
    with torch.no_grad():
        for c in range(2):
            r = D(data.test[data.test_labels == c][:16], data.test_lengths[data.test_labels == c][:16])
            tok, ln, soft = agent.gen.gumbel_sample(16, c, agent.beta, generator=g)
            f, h = soft_logits(D, soft, tok, ln), D(tok, ln)
            for fake, acc in ((f, soft_acc), (h, hard_acc)):
                acc.append(sum(1.0 if a > b else 0.5 if a == b else 0.0 for a in r.tolist() for b in fake.tolist()) / 256)
            loss += float(relativistic_loss("rsgan", "D", r, f))
    D.train()
    assert out["d_heldout_acc"] == pytest.approx(sum(soft_acc) / 2, abs=1e-12)
    assert out["d_heldout_acc_hard"] == pytest.approx(sum(hard_acc) / 2, abs=1e-12)
    assert out["d_heldout_loss"] == pytest.approx(loss, rel=1e-5)
    assert D.training  # the mode is restored


def test_a_resumed_run_summarises_the_last_held_out_figures_as_the_uninterrupted_run(tmp_path):
    """The class-conditional agents log d_heldout_* in evaluation rows; a resumed run's summary
    took them from the rows before the stop instead of from its last evaluation."""
    import json

    import train

    words = "the cat dog sat on a mat ran far away big small red".split()
    g = torch.Generator().manual_seed(0)

    def line(label):
        n = int(torch.randint(2, 7, (1,), generator=g))
        return label + "\t" + " ".join(words[int(i)] for i in torch.randint(len(words), (n,), generator=g))

    (tmp_path / "tr.txt").write_text("\n".join(line(c) for c in "ab" * 40) + "\n")
    (tmp_path / "te.txt").write_text("\n".join(line(c) for c in "ab" * 10) + "\n")
    common = ["--agent", "catgan", "--budget", "smoke", "--data", str(tmp_path / "tr.txt"), "--test-data",
              str(tmp_path / "te.txt"), "--d-filters", "8", "--d-emb-dim", "8", "--adv-steps", "4", "--quiet"]
    assert train.main([*common, "--out", str(tmp_path / "a")]) == 0
    assert train.main([*common, "--out", str(tmp_path / "b"), "--stop-after", "3"]) == 0
    assert train.main(["--config", str(tmp_path / "b" / "config.json"), "--out", str(tmp_path / "b"), "--resume",
                       "--quiet"]) == 0
    a, b = (json.loads((tmp_path / x / "summary.json").read_text())["metrics"] for x in "ab")
    assert "d_heldout_acc" in a and a == b


def test_catgan_fitness_is_quality_plus_gamma_times_diversity(monkeypatch):
    """C1: F = F_q + γ F_d, F_q = Σ_c Σ_j σ(D(x_f^{c,j}) - mean D(x_r^c)), F_d = Σ_c NLL (the evolve test stubs fitness)."""
    import agents.catgan as catgan
    from textgym.classes import MultiOracleData

    data = MultiOracleData(2, seqgan_oracle=False, vocab_size=50, max_length=6, n_train=120, n_test=40)
    agent = catgan.CatGANAgent(data, dict(mle_epochs=1, adv_steps=2, d_steps=1, batch_size=16, eval_batches=1,
                                          d_filters=8, d_emb_dim=16, beta_max=10.0, lambda_fd=0.5), seed=0)
    fake = {0: torch.linspace(-1.0, 1.0, 16), 1: torch.linspace(0.0, 2.0, 16)}
    nll = {0: 3.0, 1: 5.0}
    agent.gen.gumbel_sample = lambda n, c, beta, generator=None: (torch.full((n, 6), c), torch.full((n,), 6), None)
    monkeypatch.setattr(catgan, "soft_logits", lambda d, soft, tokens, lengths: fake[int(tokens[0, 0])])
    agent.class_nll = lambda tokens, lengths, classes, **kw: nll[int(classes[0])]
    real = [torch.tensor([0.5, 1.5]), torch.tensor([-1.0, 1.0])]
    fq, fd, score, _ = agent.fitness(1.0, real)
    want_q = sum(float(torch.sigmoid(fake[c] - real[c].mean()).sum()) for c in (0, 1))
    assert fq == pytest.approx(want_q) and fd == pytest.approx(8.0)
    assert score == pytest.approx(want_q + 0.5 * 8.0)
