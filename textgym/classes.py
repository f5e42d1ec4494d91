"""Class-labelled data: labelled text corpora and the multi-oracle synthetic benchmark.

Class-conditional generation (SentiGAN, CatGAN) trains one generator to write sequences of a
requested class. Its data sets are :class:`~textgym.data.TextData` objects that also carry
class labels (the :class:`ClassData` protocol):

- ``num_classes``: k; class ids are ``0 .. k-1``;
- ``class_names``: k strings, ``class_names[c]`` the name of class id c;
- ``train_labels``: ``(M,)`` int64, the class id of each row of ``train``;
- ``test_labels``: ``(M_test,)`` int64 for ``test``, or None without a test set.

Two such data sets:

- :class:`LabelledCorpus`: a UTF-8 file with one ``label<TAB>sentence`` per line, tokenized and
  encoded exactly as :class:`~textgym.data.Corpus` does (it is a Corpus: same vocabulary,
  ``<eos>``/``<unk>`` ids, ``max_length`` rule and long-sentence handling);
- :class:`MultiOracleData`: k oracle LSTMs of the SeqGAN architecture
  (:class:`~textgym.oracle.OracleLSTM`), one per class, each sampling its class's sequences;
  NLL-oracle scores each sequence under the oracle of its own class.

:class:`textgym.env.TokenVecEnv` reads ``num_classes`` from such data and then conditions each
episode on a class (its ``classes`` option).
"""
from __future__ import annotations

import copy
import operator
import os
import warnings
from typing import Dict, List, Optional, Protocol, Sequence, Tuple, Union, runtime_checkable

import torch

from textgym.data import BUILDERS, FILE_READER, Corpus, TextData, at_length, cached_samples, read_lines, sentence_words
from textgym.masks import length_mask, strip_padding
from textgym.oracle import OracleLSTM
from textgym.protocols import canonical_device, device_of

__all__ = ["ClassData", "LabelledCorpus", "MultiOracleData", "check_labels", "is_labelled_file", "num_classes_of",
           "read_corpus"]


@runtime_checkable
class ClassData(Protocol):
    """What class-conditional code needs of a labelled data set (see the module docstring)."""

    num_classes: int
    class_names: List[str]
    train_labels: torch.Tensor
    test_labels: Optional[torch.Tensor]


def num_classes_of(data: object) -> Optional[int]:
    """``data.num_classes`` of a labelled data set, or None for one without classes."""
    k = getattr(data, "num_classes", None)
    return None if k is None else int(k)


def check_labels(labels: torch.Tensor, n: int, num_classes: int, name: str = "labels") -> torch.Tensor:
    """Validate ``(n,)`` integer class ids in ``[0, num_classes)``; returns them as int64 (on
    their own device). ValueError naming ``name``: a wrong shape, a dtype that is not integer, or
    an id out of range (the check of :func:`discriminators.multiclass.check_classes`)."""
    from discriminators.multiclass import check_classes

    device = labels.device if torch.is_tensor(labels) else None
    return check_classes(labels, n, num_classes, device=device, name=name)


class LabelledCorpus(Corpus):
    """A text corpus with a class label per sentence: one ``label<TAB>sentence`` per line.

    The label is the text before the first TAB (surrounding whitespace removed); the sentence,
    after it, is tokenized like :class:`~textgym.data.Corpus` (whitespace tokens, optionally
    lower-cased; labels are never lower-cased; ``<eos>`` as
    :func:`~textgym.data.sentence_words` reads it). Blank lines are skipped. Everything else
    (vocabulary from the training file, ``max_length``, ``long_sentences``, ``min_count``,
    ``max_vocab``) is Corpus's; a sentence dropped for its length drops its label with it, so
    ``train_labels[i]`` is always the class of ``train[i]``.

    Args:
        train: path of the labelled training file.
        test: optional path of a labelled held-out file (its labels must be known classes).
        classes: the class names, in class-id order; default: the sorted distinct labels of
            the training file.
        max_length, long_sentences, lowercase, min_count, max_vocab: as in Corpus.

    Attributes (besides Corpus's): ``num_classes`` (k), ``class_names`` (k strings),
    ``train_labels`` ``(M,)`` int64, ``test_labels`` ``(M_test,)`` int64 or None.

    Raises:
        ValueError: naming the file and the 1-based line number, for a non-blank line without
            a TAB, an empty label, a label not among ``classes`` (or, in the test file, not a
            label of the training file), a label without a sentence, or an ``<eos>`` inside a
            sentence; and for a bad ``classes`` list (empty, duplicate or empty names).
    """

    num_classes: int
    class_names: List[str]
    train_labels: torch.Tensor
    test_labels: Optional[torch.Tensor]

    def __init__(
        self,
        train: Union[str, os.PathLike],
        test: Optional[Union[str, os.PathLike]] = None,
        *,
        classes: Optional[Sequence[str]] = None,
        max_length: Optional[int] = None,
        long_sentences: str = "truncate",
        lowercase: bool = False,
        min_count: int = 1,
        max_vocab: Optional[int] = None,
    ) -> None:
        self._class_list: Optional[List[str]] = None
        if classes is not None:
            if isinstance(classes, str):
                raise ValueError(f"classes must be a list of class names, got the string {classes!r}")
            names = list(classes)
            bad = [c for c in names if not isinstance(c, str) or not c.strip() or c != c.strip()]
            if bad:
                raise ValueError(f"class names must be non-empty strings without surrounding whitespace, got {bad[0]!r}")
            if not names:
                raise ValueError("classes must name at least one class")
            if len(set(names)) != len(names):
                dup = sorted({c for c in names if names.count(c) > 1})
                raise ValueError(f"class names must be unique; {dup} appear more than once")
            self._class_list = names
        self._pending: List[List[int]] = []   # class ids of each file read, waiting for its encoding
        self._encoded: List[torch.Tensor] = []  # class ids of the rows kept, one tensor per file encoded
        super().__init__(train, test, max_length=max_length, long_sentences=long_sentences, lowercase=lowercase,
                         min_count=min_count, max_vocab=max_vocab)
        assert self._class_list is not None  # set by the first read
        self.class_names = list(self._class_list)
        self.num_classes = len(self.class_names)
        self.train_labels = self._encoded[0]
        self.test_labels = self._encoded[1] if test is not None else None
        del self._pending, self._encoded
        if self.test_labels is not None:  # the metrics average over the classes that have test rows
            missing = [self.class_names[c] for c in range(self.num_classes) if not bool((self.test_labels == c).any())]
            if missing:
                warnings.warn(f"the held-out file {os.fspath(test)!r} has no sentence of the classes {missing}: "  # type: ignore[arg-type]
                              "NLL-test and BLEU (and their per-class keys) cover the other classes only", stacklevel=2)

    @property
    def labels(self) -> torch.Tensor:
        """The training labels, ``train_labels``."""
        return self.train_labels

    def sentences_only(self) -> Corpus:
        """The same corpus without its labels (a shallow copy, as a plain :class:`~textgym.data.Corpus`):
        what an agent that does not condition on classes trains on (an env built on it has no classes)."""
        plain: Corpus = copy.copy(self)
        plain.__class__ = Corpus
        for name in ("num_classes", "class_names", "train_labels", "test_labels"):
            vars(plain).pop(name, None)
        return plain

    def _read(self, path: Union[str, os.PathLike], lowercase: bool) -> List[List[str]]:
        """Parse ``label<TAB>sentence`` lines; the class ids wait in ``_pending`` for :meth:`_encode`."""
        where = f"labelled file {os.fspath(path)!r}"
        found: List[Tuple[str, int]] = []
        sents: List[List[str]] = []
        for n, line in enumerate(read_lines(path), 1):
            if not line.strip():
                continue
            if "\t" not in line:
                raise ValueError(f"{where}, line {n}: no TAB; each line must be 'label<TAB>sentence', "
                                 f"got {line[:60]!r}")
            label, text = line.split("\t", 1)
            label = label.strip()
            if not label:
                raise ValueError(f"{where}, line {n}: empty label before the TAB")
            words = sentence_words(text, lowercase, f"{where}, line {n}")
            if not words:
                raise ValueError(f"{where}, line {n}: label {label!r} has no sentence after the TAB")
            found.append((label, n))
            sents.append(words)
        if not sents:
            raise ValueError(f"{where} holds no labelled sentences (it is empty or blank)")
        if self._class_list is None:  # the training file defines the classes
            self._class_list = sorted({label for label, _ in found})
        index: Dict[str, int] = {c: i for i, c in enumerate(self._class_list)}
        ids = []
        for label, n in found:
            if label not in index:
                raise ValueError(f"{where}, line {n}: label {label!r} is not one of the {len(index)} classes "
                                 f"{self._class_list}")
            ids.append(index[label])
        self._pending.append(ids)
        return sents

    def _encode(self, sents: List[List[str]], max_length: int) -> tuple[torch.Tensor, torch.Tensor, List[int]]:
        labels = self._pending.pop(0)  # Corpus reads and encodes the train file, then the test file
        tokens, lengths, kept = super()._encode(sents, max_length)
        self._encoded.append(torch.tensor([labels[i] for i in kept], dtype=torch.long))
        return tokens, lengths, kept


def is_labelled_file(path: Union[str, os.PathLike]) -> bool:
    """Whether a text file is a labelled corpus: every non-blank line holds a TAB
    (``label<TAB>sentence``). A file in which only some lines do is plain text (a TAB separates
    words), with a warning naming its first line without one: a labelled file that lost one label
    would otherwise have all its labels read as words, and a plain file with a TAB in its first
    line its first words read as labels. FileNotFoundError/ValueError as
    :func:`~textgym.data.read_lines`."""
    lines = [(n, line) for n, line in enumerate(read_lines(path), 1) if line.strip()]
    without = [n for n, line in lines if "\t" not in line]
    if lines and not without:
        return True
    if len(without) < len(lines):
        warnings.warn(f"{len(lines) - len(without)} of the {len(lines)} lines of {os.fspath(path)} hold a TAB, but line "
                      f"{without[0]} does not: read as plain text (a TAB separates words). A labelled corpus needs "
                      "'label<TAB>sentence' on every line", stacklevel=2)
    return False


def read_corpus(train: Union[str, os.PathLike], test: Optional[Union[str, os.PathLike]] = None, *,
                max_length: Optional[int] = None) -> Corpus:
    """A corpus file (and its held-out file) as ``train.py --data`` and the env read one: a
    :class:`LabelledCorpus` when every line of ``train`` is ``label<TAB>sentence``
    (:func:`is_labelled_file`), else a :class:`~textgym.data.Corpus`. A labelled held-out file
    beside plain training text is refused (its labels would be read as words)."""
    if is_labelled_file(train):
        return LabelledCorpus(train, test, max_length=max_length)
    if test is not None and is_labelled_file(test):
        raise ValueError(f"the held-out file {os.fspath(test)!r} is labelled ('label<TAB>sentence' on every line) but "
                         f"the training file {os.fspath(train)!r} is not: give both files with labels, or neither")
    return Corpus(train, test, max_length=max_length)


class MultiOracleData(TextData):
    """The synthetic class-conditional benchmark: one oracle LSTM per class.

    Class c's sequences are samples of its oracle (:meth:`OracleLSTM.sample_dataset
    <textgym.oracle.OracleLSTM.sample_dataset>` at temperature 1, cached on disk by
    :func:`textgym.data.cached_samples` like :class:`~textgym.data.OracleData`'s): ``n_train``
    training samples from seed ``seed + 2c`` and ``n_test`` test samples from ``seed + 2c + 1``.
    ``train`` is the k class blocks one after the other (``(k · n_train, max_length)`` int64,
    rows ``c · n_train ..`` of class c), ``train_labels`` their class ids; the same for ``test``.
    All sequences are whole (``eos_id`` is None; every length is ``max_length``).

    The oracles: by default (``seqgan_oracle=True``) class 0's is the published SeqGAN oracle
    (:meth:`OracleLSTM.load`, vocabulary 5000, embedding and hidden size 32) and class c >= 1's a
    fresh oracle of the same architecture with every weight drawn from N(0, 1), as SeqGAN
    initializes its oracle (``OracleLSTM(seed=oracle_seed + c)``). With ``seqgan_oracle=False``
    every class's oracle is a fresh one (class c from seed ``oracle_seed + c``) of the given
    sizes; or pass ``oracles``.

    Class 0 and :class:`~textgym.data.OracleData`: with the default ``n_train``, ``n_test`` and
    ``seed``, class 0's first 4000 training and first 2000 test sequences are the first rows of
    OracleData's default train and test sets, and the rest are not: ``sample_dataset`` draws in
    batches of 2000, and a shorter last batch (1000 and 500 rows here) draws other sequences.

    Args:
        num_classes: k (default 2, or ``len(oracles)``).
        oracles: optional k oracles to use instead (same vocabulary size).
        seqgan_oracle: class 0 is the published oracle (see above).
        vocab_size, emb_dim, hidden_dim: sizes of fresh oracles (with ``seqgan_oracle`` they must
            match the published oracle's, which is what None means for ``vocab_size``).
        max_length: tokens per sequence (20 in the standard protocol).
        n_train, n_test: samples per class.
        seed: sampling seed (see above).
        oracle_seed: initialization seed of the fresh oracles.

    Raises:
        ValueError: a size or count that is not an integer >= 1, oracles of different
            vocabularies, or sizes that contradict the published oracle.
    """

    test: torch.Tensor
    test_lengths: torch.Tensor
    test_labels: torch.Tensor

    def __init__(
        self,
        num_classes: Optional[int] = None,
        *,
        oracles: Optional[Sequence[OracleLSTM]] = None,
        seqgan_oracle: bool = True,
        vocab_size: Optional[int] = None,
        emb_dim: int = 32,
        hidden_dim: int = 32,
        max_length: int = 20,
        n_train: int = 5_000,
        n_test: int = 2_500,
        seed: int = 88,
        oracle_seed: int = 100,
    ) -> None:
        sizes_asked = (("max_length", max_length), ("n_train", n_train), ("n_test", n_test), ("emb_dim", emb_dim),
                       ("hidden_dim", hidden_dim), *((("vocab_size", vocab_size),) if vocab_size is not None else ()))
        for what, v in sizes_asked:
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{what} must be an integer >= 1, got {v!r}")
        if num_classes is not None and (not isinstance(num_classes, int) or isinstance(num_classes, bool)
                                        or num_classes < 1):
            raise ValueError(f"num_classes must be an integer >= 1, got {num_classes!r}")
        if oracles is not None:
            found = list(oracles)
            if not found:
                raise ValueError("oracles must hold at least one oracle (one per class)")
            if num_classes is not None and num_classes != len(found):
                raise ValueError(f"num_classes={num_classes} but {len(found)} oracles were given (one per class)")
            sizes = sorted({o.vocab_size for o in found})
            if len(sizes) > 1:
                raise ValueError(f"the oracles of all classes must share one vocabulary; got vocabulary sizes {sizes}")
        else:
            k = 2 if num_classes is None else num_classes
            found = []
            if seqgan_oracle:
                first = OracleLSTM.load(max_length=max_length)
                got = {"vocab_size": first.vocab_size, "emb_dim": first.emb_dim, "hidden_dim": first.hidden_dim}
                asked = {"vocab_size": first.vocab_size if vocab_size is None else vocab_size,
                         "emb_dim": emb_dim, "hidden_dim": hidden_dim}
                if asked != got:
                    raise ValueError(f"seqgan_oracle=True: the published oracle has sizes {got}, but {asked} were "
                                     "asked for; pass seqgan_oracle=False for fresh oracles of other sizes")
                found.append(first)
            V = found[0].vocab_size if found else (5000 if vocab_size is None else vocab_size)
            for c in range(len(found), k):
                found.append(OracleLSTM(V, emb_dim, hidden_dim, max_length=max_length, seed=oracle_seed + c))
        self.oracles: List[OracleLSTM] = [at_length(o, max_length) for o in found]
        self.num_classes = len(self.oracles)
        self.class_names = [f"oracle{c}" for c in range(self.num_classes)]
        self.n_train, self.n_test, self.seed = n_train, n_test, seed
        self._device_copies: Dict[Tuple[int, torch.device], OracleLSTM] = {}
        k = self.num_classes
        tr = torch.cat([cached_samples(o, n_train, seed + 2 * c) for c, o in enumerate(self.oracles)])
        te = torch.cat([cached_samples(o, n_test, seed + 2 * c + 1) for c, o in enumerate(self.oracles)])
        self.train_labels = torch.arange(k).repeat_interleave(n_train)
        self.test_labels = torch.arange(k).repeat_interleave(n_test)
        full = lambda x: torch.full((len(x),), max_length, dtype=torch.long)  # noqa: E731
        super().__init__(self.oracles[0].vocab_size, max_length, None, tr, full(tr), te, full(te), name="multi-oracle")

    @property
    def labels(self) -> torch.Tensor:
        """The training labels, ``train_labels``."""
        return self.train_labels

    def _check_class(self, c: int) -> int:
        """``c`` as an int: a Python, numpy or 0-d torch integer (``operator.index``, which
        refuses 1.7 where ``int`` would make it class 1; bools are refused too)."""
        try:
            index = None if isinstance(c, bool) else operator.index(c)
        except TypeError:
            index = None
        if index is None:
            raise ValueError(f"a class id must be an integer, got {c!r}")
        c = index
        if not 0 <= c < self.num_classes:
            raise ValueError(f"class id {c} is out of range for {self.num_classes} classes "
                             f"(valid ids: 0..{self.num_classes - 1})")
        return c

    def oracle_for(self, c: int) -> OracleLSTM:
        """The oracle of class ``c`` (the shared one; use :meth:`oracle_on` for a device)."""
        return self.oracles[self._check_class(c)]

    def oracle_on(self, c: int, device: Union[str, torch.device]) -> OracleLSTM:
        """Class ``c``'s oracle on ``device``, never moving the shared one (see
        :meth:`OracleData.oracle_on <textgym.data.OracleData.oracle_on>`): itself when it lives
        there, else a copy made once per device."""
        oracle = self.oracle_for(c)
        device = canonical_device(device)
        if device_of(oracle, torch.device("cpu")) == device:
            return oracle
        key = (int(c), device)
        if key not in self._device_copies:
            self._device_copies[key] = copy.deepcopy(oracle).to(device)
        return self._device_copies[key]

    def log_probs(self, tokens: torch.Tensor, labels: torch.Tensor,
                  device: Union[str, torch.device, None] = None) -> torch.Tensor:
        """``log p_c(x_t | x_<t)`` of each token under the oracle of its row's class.

        Args:
            tokens: ``(N, T)`` int64 ids in ``[0, vocab_size)`` (strip padding first).
            labels: ``(N,)`` class ids.
            device: where to compute (default: the device of ``tokens``).

        Returns:
            ``(N, T)`` float32 on ``device``.
        """
        if not torch.is_tensor(tokens) or tokens.dim() != 2:
            raise ValueError(f"tokens must be a (N, T) tensor, got {getattr(tokens, 'shape', type(tokens).__name__)}")
        device = tokens.device if device is None else torch.device(device)
        labels = check_labels(labels, tokens.shape[0], self.num_classes).to(device)
        tokens = tokens.to(device)
        out = torch.zeros(tokens.shape, device=device)
        for c in range(self.num_classes):
            rows = (labels == c).nonzero().squeeze(1)
            if rows.numel():
                out[rows] = self.oracle_on(c, device).log_probs(tokens[rows]).to(device)
        return out

    def _token_nll(self, tokens: torch.Tensor, labels: torch.Tensor,
                   lengths: Optional[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-token NLL ``(N, T)`` and the mask of valid positions ``(N, T)`` float."""
        if lengths is not None and (not torch.is_tensor(lengths) or tuple(lengths.shape) != (tokens.shape[0],)):
            raise ValueError(f"lengths must be a ({tokens.shape[0]},) tensor, got "
                             f"{getattr(lengths, 'shape', type(lengths).__name__)}")
        lp = self.log_probs(strip_padding(tokens, lengths), labels)
        if lengths is None:
            return -lp, torch.ones_like(lp)
        return -lp, length_mask(lengths.to(lp.device), lp.shape[1]).float()

    def nll_oracle(self, tokens: torch.Tensor, labels: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> float:
        """Mean per-token NLL (nats) of ``(N, T)`` tokens, each row under its class's oracle,
        over the valid positions (``lengths`` ``(N,)``, default all ``T``)."""
        nll, mask = self._token_nll(tokens, labels, lengths)
        return float((nll * mask).sum() / mask.sum())

    def nll_oracle_per_class(self, tokens: torch.Tensor, labels: torch.Tensor,
                             lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """NLL-oracle of each class's rows: ``(k,)`` float, entry c the mean per-token NLL of the
        rows labelled c under oracle c (NaN for a class without rows)."""
        nll, mask = self._token_nll(tokens, labels, lengths)
        labels = check_labels(labels, tokens.shape[0], self.num_classes).to(nll.device)
        k = self.num_classes
        total = torch.zeros(k, device=nll.device).index_add_(0, labels, (nll * mask).sum(1))
        count = torch.zeros(k, device=nll.device).index_add_(0, labels, mask.sum(1))
        return torch.where(count > 0, total / count.clamp(min=1), torch.full_like(total, float("nan")))


_ORACLE_CLASSES: Dict[int, MultiOracleData] = {}


def oracle_classes(max_length: Optional[int] = None) -> MultiOracleData:
    """The class-conditional oracle benchmark by its name, ``"oracle-classes"``: k = 2 oracles
    (:class:`MultiOracleData`'s defaults) of ``max_length`` tokens (default 20), cached per
    length (it is deterministic); ``resolve_data("oracle-classes")`` and ``train.py --data
    oracle-classes`` give it."""
    L = 20 if max_length is None else max_length
    if L not in _ORACLE_CLASSES:
        _ORACLE_CLASSES[L] = MultiOracleData(2, max_length=L)
    return _ORACLE_CLASSES[L]


BUILDERS["oracle-classes"] = oracle_classes
FILE_READER["corpus"] = read_corpus
