"""NLL metrics, the quality-diversity frontier, plots and the evaluation command line."""
from __future__ import annotations

import copy
import json

import pytest
import torch

from textgym.evaluate import main as evaluate_main
from textgym.metrics import masked_nll, nll_oracle, nll_test, oracle_frontier, sample_sequences
from textgym.oracle import OracleLSTM
from textgym.plots import plot_frontier, plot_training_curves


def test_nll_oracle_of_the_oracle_is_its_entropy_rate(oracle_data, device):
    oracle = oracle_data.oracle_on(device)
    assert nll_oracle(oracle, oracle, 2000) == pytest.approx(5.74, abs=0.08)
    assert nll_test(oracle, oracle_data.test[:2000]) == pytest.approx(5.74, abs=0.08)


def test_masked_nll_against_hand_computation(device):
    lp = torch.tensor([[-1.0, -2.0, -3.0], [-4.0, -5.0, -6.0]], device=device)
    assert masked_nll(lp, torch.tensor([2, 1])) == pytest.approx((1 + 2 + 4) / 3)  # lengths on the CPU
    assert masked_nll(lp, torch.tensor([2, 1], device=device)) == pytest.approx((1 + 2 + 4) / 3)


def test_nll_test_at_temperature_matches_direct_computation(device):
    o = OracleLSTM(vocab_size=30, max_length=5, seed=0)
    on_device = copy.deepcopy(o).to(device)
    x = on_device.sample(50, generator=torch.Generator(device=device).manual_seed(0))
    assert x.device.type == device.type
    nll = nll_test(on_device, x, temperature=0.7)
    x = x.cpu()
    # slow reference on the CPU: rescale the logits step by step
    h, c = o._zeros(50)
    prev = torch.zeros(50, dtype=torch.long)
    total = 0.0
    for t in range(5):
        h, c = o.cell(o.embedding[prev], h, c)
        total += torch.log_softmax(o.logits(h) / 0.7, -1).gather(1, x[:, t : t + 1]).sum()
        prev = x[:, t]
    assert nll == pytest.approx(float(-total / 250), rel=1e-5)


def test_sample_sequences_seeded_and_cut_at_eos():
    class EosModel:
        vocab_size, max_length, eos_id, pad_id = 10, 5, 0, 10

        def sample(self, n, *, temperature=1.0, generator=None):
            x = torch.randint(1, 10, (n, 5), generator=generator)
            x[:, 2] = 0
            return x

    a, la = sample_sequences(EosModel(), 7, seed=3)
    b, lb = sample_sequences(EosModel(), 7, seed=3)
    assert torch.equal(a, b) and la.tolist() == [3] * 7 and (a[:, 3:] == 10).all()


def test_oracle_frontier_is_monotone_in_temperature(oracle_data, device):
    o = oracle_data.oracle_on(device)
    pts = oracle_frontier({"oracle": o}, o, oracle_data.test[:500], temperatures=(0.5, 0.8, 1.0, 1.2, 1.5), n=500)
    q = [p.quality for p in pts]
    assert q == sorted(q)  # hotter samples are less likely under the oracle
    d = {p.temperature: p.diversity for p in pts}
    assert min(d, key=d.get) == 1.0  # the oracle explains its own test data best at temperature 1


def test_each_run_keeps_its_colour_in_every_panel_of_the_curves(tmp_path, monkeypatch):
    """A run without a panel's metric left the colour cycle to restart there, so the next run's
    line took the colour that the legend gives the first run."""
    import matplotlib.pyplot as plt

    from textgym import plots

    figures = []
    monkeypatch.setattr(plt, "close", figures.append)  # keep the figure to look at
    for name, keys in (("mle", ("nll_oracle",)), ("seqgan", ("nll_oracle", "d_loss"))):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.jsonl").write_text(
            "".join(json.dumps({"iteration": i, **{k: 1.0 + i for k in keys}}) + "\n" for i in range(3)))
    plots.plot_training_curves([tmp_path / "mle", tmp_path / "seqgan"], tmp_path / "c.png")
    (fig,) = figures
    colour = {line.get_label(): line.get_color() for ax in fig.axes for line in ax.get_lines()
              if ax.get_title() == "nll-oracle"}
    (d_line,) = [line for ax in fig.axes if ax.get_title() == "d-loss" for line in ax.get_lines()]
    assert d_line.get_label() == "seqgan" and d_line.get_color() == colour["seqgan"] != colour["mle"]
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["mle", "seqgan"]


def test_a_metric_logged_only_as_null_gets_no_empty_panel(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    from textgym import plots

    figures = []
    monkeypatch.setattr(plt, "close", figures.append)
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text("".join(json.dumps({"iteration": i, "nll_oracle": 10.0 - i, "bleu4": None})
                                               + "\n" for i in range(3)))
    plots.plot_training_curves([run], tmp_path / "c.png")
    assert [ax.get_title() for ax in figures[0].axes] == ["nll-oracle"]
    (run / "metrics.jsonl").write_text(json.dumps({"iteration": 1, "bleu4": None}) + "\n")
    with pytest.raises(ValueError, match="none of the metrics .* has a value in"):
        plots.plot_training_curves([run], tmp_path / "d.png")


def test_run_folders_of_one_name_are_told_apart_by_their_paths(tmp_path, monkeypatch):
    """a/run and b/run were refused as two runs with one label; "." was labelled "" (matplotlib's _child0)."""
    import matplotlib.pyplot as plt

    from textgym import plots

    figures = []
    monkeypatch.setattr(plt, "close", figures.append)
    for parent in ("a", "b"):
        (tmp_path / parent / "run").mkdir(parents=True)
        (tmp_path / parent / "run" / "metrics.jsonl").write_text('{"iteration": 0, "nll_test": 8.0}\n')
    monkeypatch.chdir(tmp_path / "a" / "run")
    plots.plot_training_curves(["../../a/run", "../../b/run"], tmp_path / "c.png")
    plots.plot_training_curves(["."], tmp_path / "d.png")
    legends = [[t.get_text() for t in fig.axes[0].get_legend().get_texts()] for fig in figures]
    assert legends == [["../../a/run", "../../b/run"], ["run"]]


def test_plots_are_written(tmp_path, small_oracle_data):
    o = small_oracle_data.oracle
    pts = oracle_frontier({"a": o, "b": o}, o, small_oracle_data.test, temperatures=(0.8, 1.0), n=100)
    png = plot_frontier(pts, tmp_path / "f.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text("".join(json.dumps({"iteration": i, "nll_oracle": 10 - i}) + "\n" for i in range(4)))
    assert plot_training_curves([run], tmp_path / "c.png").stat().st_size > 1000
    with pytest.raises(FileNotFoundError, match="not a run folder"):
        plot_training_curves([tmp_path / "nope"], tmp_path / "x.png")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "metrics.jsonl").write_text(json.dumps({"nll_oracle": 10.0}) + "\n")
    with pytest.raises(ValueError, match="metrics row 1 of foreign has no 'iteration'"):  # was a bare KeyError
        plot_training_curves([foreign], tmp_path / "y.png")
    with pytest.raises(ValueError, match="at least one point"):
        plot_frontier([], tmp_path / "e.png")


def test_evaluate_cli_on_oracle_samples(tmp_path, oracle_data, capsys):
    f = tmp_path / "s.txt"
    f.write_text("".join(" ".join(map(str, r.tolist())) + "\n" for r in oracle_data.test[:300]))
    assert evaluate_main([str(f), "--oracle", "--json", str(tmp_path / "r.json")]) == 0
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["nll_oracle"] == pytest.approx(5.74, abs=0.15)
    (tmp_path / "bad.txt").write_text("1 2 x\n")
    with pytest.raises(SystemExit, match="token ids"):
        evaluate_main([str(tmp_path / "bad.txt"), "--oracle"])
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(SystemExit, match="is empty"):
        evaluate_main([str(tmp_path / "empty.txt"), "--oracle"])
    with pytest.raises(SystemExit, match="not a readable textgym generator"):
        evaluate_main(["--generator", str(f)])


def test_frontier_axes_say_which_way_is_better_and_one_plot_holds_one_pair_of_metrics(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    from textgym.metrics import FrontierPoint

    figures = []
    monkeypatch.setattr(plt, "close", figures.append)  # keep the figure to look at
    nll = [FrontierPoint("m", t, 9.0 + t, 8.0 - t, "nll_oracle", "nll_test") for t in (0.5, 1.0)]
    bleu = [FrontierPoint("m", t, 0.3 - t / 10, 0.4 - t / 10, "bleu4", "self_bleu4") for t in (0.5, 1.0)]
    plot_frontier(nll, tmp_path / "a.png")
    plot_frontier(bleu, tmp_path / "b.png")
    labels = [(f.axes[0].get_xlabel(), f.axes[0].get_ylabel()) for f in figures]
    assert labels == [("nll-test (lower is better)", "nll-oracle (lower is better)"),
                      ("self-bleu4 (lower is better)", "bleu4 (higher is better)")]
    with pytest.raises(ValueError, match="different metrics"):  # they were all labelled as the first point's
        plot_frontier(nll + bleu, tmp_path / "c.png")


def test_corpus_frontier_points_are_bleu_and_self_bleu_of_samples_at_each_temperature(tmp_path):
    from agents.generator import Generator
    from textgym.bleu import bleu, self_bleu
    from textgym.data import Corpus
    from textgym.metrics import corpus_frontier, sample_sequences

    (tmp_path / "train.txt").write_text("a b c d\nb c d e\nc d e f\nd e f a\n")
    data = Corpus(tmp_path / "train.txt", max_length=6)
    gen = Generator(vocab_size=data.vocab_size, max_length=6, eos_id=data.eos_id, emb_dim=4, hidden_dim=4, seed=0)
    with torch.no_grad():
        gen.out.weight.normal_(0, 2.0, generator=torch.Generator().manual_seed(0))
    refs = [s.split() for s in ("a b c d", "b c d e", "c d e f")]
    decode = lambda ids: data.decode(ids).split()  # noqa: E731
    pts = corpus_frontier({"g": gen}, refs, decode, temperatures=(0.5, 1.5), n=60, order=2, seed=3)
    for p in pts:
        tokens, lengths = sample_sequences(gen, 60, temperature=p.temperature, seed=3)
        hyps = [decode(r[: int(n)].tolist()) for r, n in zip(tokens, lengths)]
        assert (p.quality_name, p.diversity_name) == ("bleu2", "self_bleu2")
        assert p.quality == bleu(hyps, refs, 2) and p.diversity == self_bleu(hyps, 2)
    assert pts[0].diversity != pts[1].diversity  # the temperature reaches the samples


def test_nll_oracle_at_a_temperature_scores_samples_drawn_at_that_temperature(small_oracle_data):
    """M5: nll_oracle(τ) is the oracle's NLL of samples drawn at τ; the frontier test's
    `q == sorted(q)` also holds when every q is the same number."""
    from textgym.metrics import nll_oracle, oracle_nll, sample_sequences

    o = small_oracle_data.oracle
    for tau in (0.5, 1.5):
        tokens, lengths = sample_sequences(o, 300, temperature=tau, seed=0)
        assert nll_oracle(o, o, 300, temperature=tau, seed=0) == oracle_nll(o, tokens, lengths)
    assert nll_oracle(o, o, 300, temperature=0.5) < nll_oracle(o, o, 300, temperature=1.5)
