"""Evaluate generated text or a trained generator; plot frontiers and training curves.

    # a file of samples (one sentence per line) against a reference file
    python -m textgym.evaluate samples.txt --references test.txt --metrics bleu self_bleu
    # oracle samples (token ids per line) under the SeqGAN oracle
    python -m textgym.evaluate samples.txt --oracle
    # a trained generator (a run folder's generator.pt) on its benchmark, with the frontier plot
    python -m textgym.evaluate --generator runs/seqgan/generator.pt --frontier --plot frontier.png
    # a generator trained on a corpus, against that corpus's test split
    python -m textgym.evaluate --generator runs/seqgan-coco-s0/generator.pt --references coco
    # training curves of run folders
    python -m textgym.evaluate --curves runs/mle runs/seqgan --plot curves.png

Prints a table and writes JSON (``--json``). Blank lines of a samples file are empty
hypotheses; they count in BLEU as nltk counts them (a score of 0).
"""
from __future__ import annotations

import argparse
import importlib
import json
import math
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Hashable, List, Optional, Sequence

import torch

from textgym.classes import is_labelled_file
from textgym.data import (
    CORPORA,
    EOS_ID,
    UNK_ID,
    OracleData,
    TextData,
    Vocab,
    corpus_files,
    pack,
    read_lines,
    read_sentences,
    resolve_data,
    sentence_words,
)
from textgym.metrics import (
    corpus_frontier,
    masked_nll,
    nll_test_parts,
    oracle_frontier,
    oracle_nll,
    points_as_dicts,
    sample_sequences,
    sequence_log_probs,
)
from textgym.paths import atomic_write_bytes
from textgym.protocols import usable_device
from textgym.safeload import UnsafeFileError, load_data_only

GENERATOR_FORMAT = "textgym-generator-v1"


# ---------------------------------------------------------------------------- generator files
def export_generator(generator: torch.nn.Module, init_kwargs: Dict[str, Any], vocab: Optional[Vocab]) -> Dict[str, Any]:
    """The content of a generator file (see :func:`load_generator`)."""
    cls = type(generator)
    return {"format": GENERATOR_FORMAT, "class": f"{cls.__module__}:{cls.__qualname__}", "kwargs": init_kwargs,
            "state_dict": generator.state_dict(), "vocab": None if vocab is None else vocab.itos}


#: The generator classes a generator file may name, and the arguments each takes (all ints; eos_id
#: may be None). A file naming anything else is refused: nothing named in a file is imported.
GENERATOR_CLASSES: Dict[str, Dict[str, bool]] = {
    "agents.generator:Generator": {"vocab_size": False, "max_length": False, "eos_id": True, "emb_dim": False,
                                   "hidden_dim": False},
}


def _check_generator_kwargs(name: str, kwargs: Any) -> Dict[str, Any]:
    spec = GENERATOR_CLASSES[name]
    if not isinstance(kwargs, dict) or set(kwargs) != set(spec):
        raise ValueError(f"arguments {sorted(kwargs) if isinstance(kwargs, dict) else kwargs!r} are not {sorted(spec)}")
    for k, v in kwargs.items():
        ok = (v is None and spec[k]) or (isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 10_000_000)
        if not ok:
            raise ValueError(f"argument {k}={v!r} is not a non-negative int" + (" or None" if spec[k] else ""))
    return dict(kwargs)


def load_generator(path: Path, device: str = "cpu") -> tuple[Any, Optional[Vocab]]:
    """A generator saved by ``train.py`` (``generator.pt``) and its vocabulary (None for the oracle).

    The file is read with ``weights_only=True`` (tensors and plain data; an object whose
    unpickling would run code is refused unread), and the class it names must be one of
    :data:`GENERATOR_CLASSES`, built with validated arguments.
    """
    try:
        blob = load_data_only(path, str(path))
    except FileNotFoundError:
        raise SystemExit(f"error: no generator file at {path}") from None
    except UnsafeFileError as exc:
        raise SystemExit(f"error: {exc}") from None
    except Exception as exc:
        raise SystemExit(f"error: {path} is not a readable textgym generator file ({type(exc).__name__}: {exc})") from None
    try:
        if isinstance(blob, dict) and "header" in blob and "body" in blob:
            raise SystemExit(f"error: {path} is a training checkpoint, not a generator file: give the run folder "
                             f"or its generator.pt")
        if not isinstance(blob, dict) or blob.get("format") != GENERATOR_FORMAT:
            raise ValueError(f"format {blob.get('format') if isinstance(blob, dict) else type(blob).__name__!r}")
        name = blob.get("class")
        if name not in GENERATOR_CLASSES:
            raise ValueError(f"unknown generator class {name!r}; known: {sorted(GENERATOR_CLASSES)}")
        kwargs = _check_generator_kwargs(name, blob.get("kwargs"))
        vocab = blob.get("vocab")
        if vocab is not None and not (isinstance(vocab, list) and all(isinstance(w, str) for w in vocab)):
            raise ValueError("its vocabulary is not a list of strings")
        if vocab is not None and len(vocab) != kwargs["vocab_size"]:  # ids past the list would decode as nothing
            raise ValueError(f"its vocabulary lists {len(vocab)} words but the generator has {kwargs['vocab_size']}")
        if vocab is not None and kwargs["eos_id"] != EOS_ID:
            raise ValueError(f"a generator with a vocabulary ends sentences with <eos> = {EOS_ID}, "
                             f"not eos_id={kwargs['eos_id']}")
        module, _, cls_name = name.partition(":")
        gen = getattr(importlib.import_module(module), cls_name)(**kwargs)  # a class of the allowlist only
        gen.load_state_dict(blob["state_dict"])
    except Exception as exc:
        raise SystemExit(f"error: {path} is not a readable textgym generator file ({type(exc).__name__}: {exc})") from None
    return gen.to(device).eval(), (None if vocab is None else Vocab(vocab))


# ---------------------------------------------------------------------------- evaluation
@dataclass
class Evaluation:
    """The metrics of one evaluation and the samples they were computed on."""

    metrics: Dict[str, float]
    tokens: torch.Tensor   # (n, T) int64, padded after each length
    lengths: torch.Tensor  # (n,)


def evaluate_generator(
    generator: Any, data: TextData, *, n_samples: int = 5000, seed: int = 0, temperature: float = 1.0,
    test_size: Optional[int] = None, bleu_samples: int = 500, bleu_orders: Sequence[int] = (4,),
) -> Evaluation:
    """The metrics every caller reports, from ``n_samples`` samples of ``generator`` (seeded).

    - ``nll_oracle`` (oracle data): the oracle's mean per-token NLL of the samples;
    - ``nll_test`` (when ``data`` has a test set): the generator's mean per-token NLL of the
      first ``test_size`` held-out sequences (all when None), at ``temperature``; on a corpus
      whose test words include some outside the vocabulary, also ``nll_test_known``, the same
      over the other positions (:func:`textgym.metrics.nll_test_parts`);
    - ``entropy``: the generator's own mean per-token NLL of its samples, -E[log p(x_t|x_<t)],
      the Monte-Carlo estimate of its per-token entropy (a collapsing generator's falls);
    - ``bleu{n}`` and ``self_bleu{n}`` (corpora) of the first ``bleu_samples`` samples, with
      every test sentence (the training set without a test set) as references.
    """
    if test_size is not None and test_size < 1:
        raise ValueError(f"test_size must be >= 1 or None (every test sequence), got {test_size}")
    tokens, lengths = sample_sequences(generator, n_samples, seed=seed, temperature=temperature)
    out: Dict[str, float] = {}
    if isinstance(data, OracleData):
        out["nll_oracle"] = oracle_nll(data.oracle, tokens, lengths)
    if data.test is not None:
        k = len(data.test) if test_size is None else test_size
        assert data.test_lengths is not None
        unknown = UNK_ID if getattr(data, "vocab", None) is not None else None  # corpora: test words outside it
        out.update(nll_test_parts(generator, data.test[:k], data.test_lengths[:k], temperature=temperature,
                                  unknown_id=unknown))
    device = tokens.device
    gen_lp = sequence_log_probs(generator, tokens, lengths, temperature=temperature)
    out["entropy"] = masked_nll(gen_lp.to(device), lengths)
    if not isinstance(data, OracleData):
        hyps = [data.decode(r[: int(n)].tolist()).split()
                for r, n in zip(tokens[:bleu_samples], lengths[:bleu_samples], strict=True)]
        out.update(bleu_table(hyps, data.bleu_references(), bleu_orders, ("bleu", "self_bleu")))
    return Evaluation(out, tokens, lengths)


def bleu_table(hyps: List[List[str]], refs: Optional[Sequence[Sequence[Hashable]]], orders: Sequence[int],
               metrics: Sequence[str]) -> Dict[str, float]:
    from textgym.bleu import bleu, self_bleu

    out: Dict[str, float] = {}
    if "self_bleu" in metrics and len(hyps) < 2:
        raise ValueError(f"Self-BLEU scores each sample against the others and needs at least 2 samples, got {len(hyps)}")
    for n in orders:
        if "bleu" in metrics and refs is not None:
            out[f"bleu{n}"] = bleu(hyps, refs, n)
        if "self_bleu" in metrics:
            out[f"self_bleu{n}"] = self_bleu(hyps, n)
    return out


def _cli_bleu_table(hyps: List[List[str]], refs: Optional[List[List[str]]], orders: Sequence[int],
                    metrics: Sequence[str]) -> Dict[str, float]:
    try:
        return bleu_table(hyps, refs, orders, metrics)
    except ValueError as exc:
        hint = "--metrics bleu" if refs is not None else "--references and --metrics bleu"
        raise SystemExit(f"error: {exc} (or score BLEU alone: {hint})") from None


def refuse_labelled(path: str, what: str) -> None:
    """SystemExit for a file of ``label<TAB>sentence`` lines (a class-conditional run's samples, a
    labelled corpus): its labels would be scored as words, and its classes pooled."""
    if is_labelled_file(path):
        raise SystemExit(f"error: {what} {path} holds 'label<TAB>sentence' lines: the labels would be scored as words "
                         "and the classes pooled; score each class's sentences on their own (e.g. "
                         f"grep -P '^pos\\t' {path} | cut -f2-)")


#: the smallest sampling temperature the CLI takes: below it, logits / t overflow float32
MIN_TEMPERATURE = 1e-3


def frontier_order(orders: Sequence[int]) -> int:
    """The BLEU order of a corpus frontier: 4 (the literature's), or the largest of ``orders`` without it."""
    return 4 if 4 in orders else max(orders)


def finite_or_null(obj: Any) -> Any:
    """``obj`` with every NaN or infinite float replaced by None (JSON has no such numbers)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_or_null(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_null(v) for v in obj]
    return obj


def read_samples(path: str) -> List[List[str]]:
    """The whitespace tokens of each line of a samples file (:func:`textgym.data.read_lines`: UTF-8,
    a byte-order mark ignored, only line ends end a line); SystemExit with a message on a missing,
    non-UTF-8 or empty file."""
    try:
        lines = read_lines(path, "samples file")
    except (FileNotFoundError, ValueError) as exc:
        raise SystemExit(f"error: {exc}") from None
    refuse_labelled(path, "samples file")
    if not any(line.strip() for line in lines):
        raise SystemExit(f"error: samples file {path} is empty")
    try:  # as the references are read: a final <eos> is the line's end, not a word
        return [sentence_words(line, False, f"samples file {path}, line {i + 1}") for i, line in enumerate(lines)]
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None


def oracle_nll_of_ids(hyps: List[List[str]], data: OracleData) -> float:
    try:
        ids = [[int(w) for w in h] for h in hyps if h]
    except ValueError:
        raise SystemExit("error: --oracle needs samples written as token ids (integers), one sequence per line") from None
    if any(i < 0 or i >= data.vocab_size for s in ids for i in s):
        raise SystemExit(f"error: a sample holds a token id outside the oracle's vocabulary [0, {data.vocab_size})")
    L = max(len(s) for s in ids)
    tokens, lengths = pack(ids, L, data.pad_id)
    return oracle_nll(data.oracle, tokens, lengths)


def read_references(source: str) -> List[List[str]]:
    """The reference sentences of ``--references``: a text file, or the test split of a named
    corpus (``coco``: :data:`textgym.data.CORPORA`)."""
    try:
        if source in CORPORA and not Path(source).is_file():
            return read_sentences(corpus_files(source)[1])
        if not Path(source).is_file():
            raise FileNotFoundError(f"references file {source} does not exist (a text file, or a named corpus: "
                                    f"{', '.join(sorted(CORPORA))})")
        refuse_labelled(source, "references file")
        return read_sentences(source)
    except (FileNotFoundError, ValueError) as exc:  # missing, empty, not UTF-8
        raise SystemExit(f"error: {exc}") from None


def corpus_options_given(args: argparse.Namespace) -> List[str]:
    """The options of ``args`` that only apply to text against references (``--references``, and
    ``--metrics``/``--orders`` when not left at their defaults)."""
    defaults = build_parser()
    given = ["--references"] if args.references else []
    return given + [f"--{k}" for k in ("metrics", "orders") if getattr(args, k) != defaults.get_default(k)]


def reference_coverage(refs: List[List[str]], vocab: Vocab, max_length: int) -> tuple[float, int]:
    """The share of the reference words outside ``vocab`` (they are scored as ``<unk>``) and the
    number of references longer than ``max_length - 1`` words (cut at ``max_length``, ``<eos>`` lost)."""
    n_words = sum(len(s) for s in refs)
    unknown = sum(1 for s in refs for w in s if w not in vocab.stoi)
    return (unknown / n_words if n_words else 0.0), sum(1 for s in refs if len(s) + 1 > max_length)


def evaluate_generator_file(args: argparse.Namespace) -> Dict[str, Any]:
    """The ``--generator`` command: a generator file's metrics (and frontier).

    An oracle-benchmark generator is scored on the oracle (corpus options are refused); a corpus
    generator on ``--references``, encoded through its vocabulary: the share of reference words
    outside it (``references_unk_rate``, scored as ``<unk>``) and the number of references cut at
    its max_length (``references_truncated``) are reported, with a warning when not zero.
    """
    gen, vocab = load_generator(Path(args.generator), args.device)
    result: Dict[str, Any] = {}
    if vocab is None:  # an oracle-benchmark generator
        corpus_only = corpus_options_given(args)
        if corpus_only:
            raise SystemExit(f"error: {args.generator} is a generator of the synthetic oracle benchmark (no vocabulary): "
                             f"it is scored on the oracle, and {' '.join(corpus_only)} (text against references) "
                             "does not apply; drop it")
        data = resolve_data("oracle", gen.max_length)
        if data.vocab_size != gen.vocab_size:
            raise SystemExit(f"error: the generator has {gen.vocab_size} tokens but the oracle has {data.vocab_size}")
        result.update(evaluate_generator(gen, data, n_samples=args.n_samples, seed=args.seed).metrics)
        if args.frontier:
            pts = oracle_frontier({Path(args.generator).resolve().parent.name: gen}, data.oracle, data.test, data.test_lengths,
                                  args.temperatures, n=args.n_samples, seed=args.seed)
            result["frontier"] = points_as_dicts(pts)
            if args.plot:
                from textgym.plots import plot_frontier

                plot_frontier(pts, args.plot)
        return result
    if not args.references:
        raise SystemExit("error: a corpus generator needs --references (a held-out text file, or coco for the COCO "
                         "captions' test split)")
    if args.n_samples < 2 and ("self_bleu" in args.metrics or args.frontier):  # the oracle's have no Self-BLEU
        raise SystemExit("error: Self-BLEU (in the table, and the frontier's diversity) scores each sample against the "
                         "others: --n-samples must be >= 2")
    refs = read_references(args.references)
    unk_rate, truncated = reference_coverage(refs, vocab, gen.max_length)
    if unk_rate or truncated:
        warnings.warn(f"{100 * unk_rate:.1f}% of the words of the references {args.references} are outside the "
                      f"generator's vocabulary of {len(vocab)} (scored as <unk>), and {truncated} of {len(refs)} "
                      f"references are longer than max_length - 1 = {gen.max_length - 1} words (cut, <eos> lost): "
                      "NLL-test covers the references as encoded, not as written", stacklevel=2)
    ref_ids = [vocab.encode(s) + [0] for s in refs]
    ref_t, ref_l = pack([r[: gen.max_length] for r in ref_ids], gen.max_length, vocab.pad_id)
    result.update(nll_test_parts(gen, ref_t, ref_l, unknown_id=UNK_ID))
    tokens, lengths = sample_sequences(gen, args.n_samples, seed=args.seed)
    hyps = [vocab.decode(r[: int(n)].tolist()) for r, n in zip(tokens, lengths, strict=True)]
    result.update(_cli_bleu_table(hyps, refs, args.orders, args.metrics))
    result.update(references_unk_rate=unk_rate, references_truncated=truncated)
    if args.frontier:
        pts = corpus_frontier({Path(args.generator).resolve().parent.name: gen}, refs, vocab.decode, args.temperatures,
                              n=min(args.n_samples, 500), seed=args.seed, order=frontier_order(args.orders))
        result["frontier"] = points_as_dicts(pts)
        if args.plot:
            from textgym.plots import plot_frontier

            plot_frontier(pts, args.plot)
    return result


def plot_curves(run_dirs: Sequence[str], path: str) -> Path:
    """The ``--curves`` command: :func:`textgym.plots.plot_training_curves` of the run folders
    (a torn last line of a ``metrics.jsonl`` is skipped, see :func:`textgym.plots.read_metrics`)."""
    from textgym.plots import plot_training_curves

    try:
        return plot_training_curves(run_dirs, path)
    except (FileNotFoundError, ValueError) as exc:  # not a run folder, a corrupt line, labels that repeat
        raise SystemExit(f"error: {exc}") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m textgym.evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("samples", nargs="?", help="a file of generated sentences, one per line")
    p.add_argument("--references", help="reference text file (BLEU, NLL-test), or a named corpus (coco: its test split)")
    p.add_argument("--oracle", action="store_true", help="score id samples under the SeqGAN oracle (NLL-oracle)")
    p.add_argument("--generator", help="a generator.pt written by train.py, or its run folder")
    p.add_argument("--curves", nargs="+", help="run folders whose training curves to plot")
    p.add_argument("--metrics", nargs="+", default=["bleu", "self_bleu"], choices=["bleu", "self_bleu"])
    p.add_argument("--orders", nargs="+", type=int, default=[2, 3, 4, 5], help="BLEU n-gram orders")
    p.add_argument("--frontier", action="store_true",
                   help="sweep the sampling temperature (with --generator; on a corpus each point scores "
                        "min(--n-samples, 500) samples, so its Self-BLEU differs from the table's, at order 4, "
                        "or the largest of --orders when 4 is not one of them)")
    p.add_argument("--temperatures", nargs="+", type=float, default=[0.5, 0.75, 1.0, 1.25, 1.5])
    p.add_argument("--n-samples", dest="n_samples", type=int, default=5000,
                   help="samples drawn from a generator (the oracle protocol scores NLL-oracle on >= 5,000)")
    p.add_argument("--plot", help="image path (png, pdf, svg, ...) for the frontier or curves plot (needed by --curves)")
    p.add_argument("--json", help="write the results to this JSON file")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    return p


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse (``parser.error``) what would fail only after the evaluation ran, or deep inside it."""
    bad = [t for t in args.temperatures if not (math.isfinite(t) and t >= MIN_TEMPERATURE)]
    if bad:  # below it, logits / t overflow float32 (a draw out of range, an infinite NLL)
        parser.error(f"--temperatures must be finite and >= {MIN_TEMPERATURE:g}, got {bad[0]:g}")
    if not 0 <= args.seed < 2**63:
        parser.error(f"--seed must lie in [0, 2**63), got {args.seed}")
    if args.n_samples < 1:
        parser.error(f"--n-samples must be >= 1, got {args.n_samples}")
    if any(n < 1 for n in args.orders):
        parser.error(f"--orders are n-gram orders >= 1, got {min(args.orders)}")
    try:
        usable_device(args.device)
    except ValueError as exc:
        parser.error(f"--device: {exc}")
    for flag in ("json", "plot"):
        path = getattr(args, flag)
        if path is not None and (Path(path).is_dir() or not Path(path).absolute().parent.is_dir()):
            parser.error(f"--{flag} {path}: " + ("is a folder; give a file path" if Path(path).is_dir()
                                                 else f"no folder {Path(path).absolute().parent} to write it in"))
    if args.plot is not None:
        from textgym.plots import figure_format

        try:
            figure_format(args.plot)
        except ValueError as exc:
            parser.error(f"--plot: {exc}")
    changed = [f"--{k.replace('_', '-')}" for k in ("metrics", "orders", "temperatures", "n_samples", "seed")
               if getattr(args, k) != parser.get_default(k)]
    if args.curves:
        other = [flag for flag, given in (("a samples file", args.samples), ("--generator", args.generator),
                                          ("--oracle", args.oracle), ("--references", args.references),
                                          ("--frontier", args.frontier), ("--json", args.json)) if given] + changed
        if other:
            parser.error(f"--curves plots the training curves of run folders; {', '.join(other)} does not apply")
        if args.plot is None:
            parser.error("--curves needs --plot FILE (png, pdf, svg, ...)")
    if args.generator and args.oracle:
        parser.error("--oracle scores a samples file of token ids; a generator file is scored on its own data")
    if args.samples and not args.generator and args.frontier:
        parser.error("--frontier sweeps a generator's sampling temperature (--generator); a samples file has none")
    if (args.samples and not args.generator and not args.oracle and not args.references
            and args.metrics != parser.get_default("metrics") and "bleu" in args.metrics):
        parser.error("--metrics bleu scores the samples against references: give --references")
    if args.generator and args.plot and not args.frontier:
        parser.error("--plot with --generator draws the temperature frontier: add --frontier")
    if args.plot and not (args.generator or args.curves):
        parser.error("--plot draws a generator's frontier (--generator --frontier) or training curves (--curves); "
                     "a samples file has nothing to plot")
    if args.generator and Path(args.generator).is_dir():  # a run folder: its generator file
        args.generator = str(Path(args.generator) / "generator.pt")


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_args(parser, args)
    try:
        return _run(parser, args)
    except FileNotFoundError as exc:  # the data directory ($TEXTGYM_DATA) or a file the evaluation reads
        raise SystemExit(f"error: {exc}") from None


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    samples_file = args.samples
    if args.curves:
        out = plot_curves(args.curves, args.plot)
        print(f"wrote {out}")
        return 0
    if args.generator:
        if samples_file:
            parser.error("give either a samples file or --generator, not both")
        result = evaluate_generator_file(args)
    elif samples_file:
        hyps = read_samples(samples_file)
        result = {"samples": len(hyps)}
        if args.oracle:
            corpus_only = corpus_options_given(args)
            if corpus_only:
                parser.error(f"--oracle scores token ids under the oracle; {' '.join(corpus_only)} (text against "
                             "references) does not apply")
            result["samples"] = sum(1 for h in hyps if h)  # the sequences scored: a blank line has no token
            result["nll_oracle"] = oracle_nll_of_ids(hyps, resolve_data("oracle"))
        else:
            refs = read_references(args.references) if args.references else None
            if refs is None and "bleu" in args.metrics:
                print("note: BLEU needs --references; only Self-BLEU is scored", file=sys.stderr)
            result.update(_cli_bleu_table(hyps, refs, args.orders, args.metrics))
    else:
        parser.error("nothing to evaluate: give a samples file, --generator or --curves")
    width = max(len(k) for k in result)
    for k, v in result.items():
        if k != "frontier":
            print(f"{k:<{width}}  {v:.4f}" if isinstance(v, float) else f"{k:<{width}}  {v}")
    for pt in result.get("frontier", []):
        print(f"T={pt['temperature']:<5g} {pt['quality_name']}={pt['quality']:.4f} {pt['diversity_name']}={pt['diversity']:.4f}")
    if args.json:
        atomic_write_bytes(Path(args.json), json.dumps(finite_or_null(result), indent=2, allow_nan=False).encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
