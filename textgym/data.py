"""Data: vocabularies, text corpora and the oracle data set.

Where the shared data lives and where caches go is :mod:`textgym.paths` (``data_dir``,
``data_path`` and ``cache_dir`` are re-exported here).

Token conventions used everywhere in the project: a vocabulary of V ids ``0 .. V-1``, every
one a valid action; the id ``V`` (``pad_id``) pads observations and sequence tensors beyond
their length and never is a token. Corpora reserve ``0`` for ``<eos>`` and ``1`` for ``<unk>``;
the oracle has no special tokens (all 5000 ids are words; sequences end at ``max_length``).

Named corpora (:data:`CORPORA`, ``train.py --data coco``) are files of the data directory with
their standard train/test split.

Both :class:`Corpus` and :class:`OracleData` expose the same :class:`TextData` interface:
``vocab_size``, ``pad_id``, ``eos_id`` (None for the oracle), ``max_length``, and the train
and test sets as ``(M, T)`` int64 tensors padded with ``pad_id`` plus ``(M,)`` lengths.
"""
from __future__ import annotations

import copy
import difflib
import os
import re
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ClassVar, Dict, Iterable, List, Literal, Optional, Sequence, Tuple, Union, overload

import torch

from textgym.oracle import OracleLSTM
from textgym.paths import cache_dir, data_dir, data_path
from textgym.protocols import canonical_device, device_of
from textgym.sampling import SAMPLER_VERSION

EOS, UNK = "<eos>", "<unk>"
DEFAULT_LENGTH_CAP = 64  # a corpus's default max_length is at most max(this, 4 × median + 1)
EOS_ID, UNK_ID = 0, 1

#: corpora of the data directory by name: (training file, test file) in it. ``coco``: the
#: MS-COCO captions split of Texygen and RelGAN (10,000 + 10,000 sentences).
CORPORA: Dict[str, Tuple[str, str]] = {"coco": ("coco/image_coco.txt", "coco/test_coco.txt")}

__all__ = [
    "CORPORA", "EOS", "EOS_ID", "UNK", "UNK_ID", "Corpus", "OracleData", "TextData", "Vocab", "cache_dir",
    "cached_samples", "corpus_files", "data_dir", "data_path", "pack", "read_lines", "read_sentences", "resolve_data",
    "sentence_words",
]


class Vocab:
    """Word <-> id mapping with ``<eos>`` = 0 and ``<unk>`` = 1; ``pad_id`` = len(vocab)."""

    def __init__(self, words: Sequence[str]) -> None:
        words = list(words)
        if words[:2] != [EOS, UNK]:
            raise ValueError(f"a vocabulary must start with {EOS!r}, {UNK!r}; got {words[:2]}")
        if len(set(words)) != len(words):
            raise ValueError("vocabulary words must be unique")
        self.itos: List[str] = words
        self.stoi = {w: i for i, w in enumerate(words)}

    @classmethod
    def build(cls, sentences: Iterable[Sequence[str]], min_count: int = 1, max_size: Optional[int] = None) -> Vocab:
        """Words seen at least ``min_count`` times, most frequent first (ties alphabetical)."""
        counts = Counter(w for s in sentences for w in s)
        words = sorted((w for w, c in counts.items() if c >= min_count and w not in (EOS, UNK)),
                       key=lambda w: (-counts[w], w))
        if max_size is not None:
            words = words[: max(0, max_size - 2)]
        return cls([EOS, UNK, *words])

    def __len__(self) -> int:
        return len(self.itos)

    @property
    def pad_id(self) -> int:
        return len(self.itos)

    def encode(self, words: Sequence[str]) -> List[int]:
        return [self.stoi.get(w, UNK_ID) for w in words]

    def decode(self, ids: Iterable[int]) -> List[str]:
        """Ids -> words, stopping at ``<eos>`` or padding."""
        out = []
        for i in ids:
            i = int(i)
            if i == EOS_ID or i >= len(self.itos):
                break
            out.append(self.itos[i])
        return out


def corpus_files(name: str) -> Tuple[Path, Path]:
    """The (training, test) files of the named corpus ``name`` (:data:`CORPORA`); ValueError for an
    unknown name, FileNotFoundError saying where they were looked for when they are missing."""
    if name not in CORPORA:
        raise ValueError(f"unknown corpus name {name!r}: the named corpora are {sorted(CORPORA)}")
    found = [data_path(part) for part in CORPORA[name]]
    if found[0] is None or found[1] is None:
        root = data_dir()
        where = f"the data directory {str(root)!r}" if root is not None else "no data directory (set TEXTGYM_DATA)"
        raise FileNotFoundError(f"corpus {name!r} needs {' and '.join(CORPORA[name])} in {where}")
    return found[0], found[1]


def read_lines(path: Union[str, os.PathLike], what: str = "corpus file") -> List[str]:
    r"""The lines of a UTF-8 text file (FileNotFoundError if it is missing, ValueError if it is not
    UTF-8; both messages name the file as ``what``), without byte-order marks.

    Only ``\n``, ``\r\n`` and a lone ``\r`` end a line: ``str.splitlines``
    would also split at form feeds, ``\x1c``-``\x1e``, NEL and the Unicode line separators,
    cutting a sentence in two and shifting the line number of every error after it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {str(path)!r} does not exist or is not a file")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")  # a byte-order mark (Windows editors) is not part of the first word
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"{what} {str(path)!r} is not UTF-8 text (byte {exc.start}): "
            "textgym reads UTF-8 text with one sentence per line"
        ) from None
    # a byte-order mark left inside the text (files joined with cat) is not part of a word either
    lines = re.split(r"\r\n|\r|\n", text.replace("\ufeff", ""))  # Unix, Windows and old Mac line ends
    if lines[-1] == "":
        lines.pop()  # the file's final line end ends the last line; it starts none
    return lines


def sentence_words(text: str, lowercase: bool, where: str) -> List[str]:
    """The whitespace tokens of one line's sentence (lower-cased when ``lowercase``).

    A final ``<eos>`` is dropped (the line's end is one); one inside the sentence is a
    ValueError starting with ``where`` (the file and line): it would end the sentence there,
    silently. :func:`read_sentences` and :class:`textgym.classes.LabelledCorpus` both read so."""
    words = (text.lower() if lowercase else text).split()
    if words and words[-1] == EOS:
        words.pop()
    if EOS in words:
        raise ValueError(f"{where}: {EOS!r} inside a sentence; it is the reserved end-of-sentence "
                         "token (one at the end of a line is allowed)")
    return words


def read_sentences(path: Union[str, os.PathLike], lowercase: bool = False) -> List[List[str]]:
    """Read a UTF-8 text file with one sentence per line into whitespace tokens (blank lines
    skipped; ``<eos>`` as :func:`sentence_words` reads it)."""
    sentences = [sentence_words(line, lowercase, f"{path}, line {number}")
                 for number, line in enumerate(read_lines(path), 1)]
    sentences = [s for s in sentences if s]
    if not sentences:
        raise ValueError(f"corpus file {str(path)!r} holds no sentences (it is empty or blank)")
    return sentences


def pack(seqs: Sequence[Sequence[int]], max_length: int, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Lists of ids -> ``(M, max_length)`` int64 padded with ``pad_id`` and ``(M,)`` lengths."""
    tokens = torch.full((len(seqs), max_length), pad_id, dtype=torch.long)
    lengths = torch.tensor([len(s) for s in seqs], dtype=torch.long)
    for i, s in enumerate(seqs):
        tokens[i, : len(s)] = torch.tensor(s, dtype=torch.long)
    return tokens, lengths


@dataclass
class TextData:
    """What the env, agents and metrics need of a data set (see the module docstring)."""

    vocab_size: int
    max_length: int
    eos_id: Optional[int]
    train: torch.Tensor
    train_lengths: torch.Tensor
    test: Optional[torch.Tensor] = None
    test_lengths: Optional[torch.Tensor] = None
    name: str = "data"

    #: attributes with one entry per training row (where the data set has them), cut together by :meth:`train_subset`
    _per_train_row: ClassVar[Tuple[str, ...]] = ("train", "train_lengths", "train_labels")

    @property
    def pad_id(self) -> int:
        return self.vocab_size

    def train_subset(self, rows: torch.Tensor) -> TextData:
        """A shallow copy whose training set is the rows ``rows`` ``(n,)`` int64 of this one's (with
        everything else kept per training row: a labelled corpus's labels, a corpus's sentences)."""
        cut = copy.copy(self)
        for name in self._per_train_row:
            value = getattr(self, name, None)
            if value is not None:
                setattr(cut, name, value[rows] if isinstance(value, torch.Tensor) else [value[i] for i in rows.tolist()])
        return cut

    def decode(self, ids: Iterable[int]) -> str:
        """A sequence of ids as text (ids joined by spaces for the oracle)."""
        return " ".join(str(int(i)) for i in ids if int(i) < self.vocab_size)

    def bleu_references(self, rows: Optional[Iterable[int]] = None) -> List[List[str]]:
        """The test sentences (the training ones without a test set), or those at ``rows``, as
        BLEU references: each a list of the words :meth:`decode` writes, which a generated
        sentence's ``decode(...).split()`` is compared with."""
        tokens, lengths = (self.test, self.test_lengths) if self.test is not None else (self.train, self.train_lengths)
        assert lengths is not None
        return [self.decode(tokens[i, : int(lengths[i])].tolist()).split()
                for i in (range(len(tokens)) if rows is None else rows)]


class Corpus(TextData):
    """A text corpus: any UTF-8 file with one sentence per line, whitespace tokens.

    Args:
        train: path of the training file; the vocabulary is built from it.
        test: optional path of a held-out file (encoded with the training vocabulary).
        max_length: sequence length including ``<eos>``; default the longest training
            sentence + 1, capped at max(64, 4 × the median sentence + 1) so that a few outlier
            lines cannot set the width of every tensor (they are truncated or dropped, counted
            in ``n_long`` and reported by a warning).
        long_sentences: what to do with sentences that do not fit ``max_length`` with their
            ``<eos>``: ``"truncate"`` (keep the first ``max_length`` words, no ``<eos>``) or
            ``"drop"``.
        lowercase: lower-case the text before tokenizing.
        min_count: words seen fewer times in ``train`` become ``<unk>``.
        max_vocab: optional cap on the vocabulary size (most frequent words kept).
    """

    _per_train_row = (*TextData._per_train_row, "_train_sentences")

    def __init__(
        self,
        train: Union[str, os.PathLike],
        test: Optional[Union[str, os.PathLike]] = None,
        *,
        max_length: Optional[int] = None,
        long_sentences: str = "truncate",
        lowercase: bool = False,
        min_count: int = 1,
        max_vocab: Optional[int] = None,
    ) -> None:
        if long_sentences not in ("truncate", "drop"):
            raise ValueError(f"long_sentences must be 'truncate' or 'drop', got {long_sentences!r}")
        sents = self._read(train, lowercase)
        self.vocab = Vocab.build(sents, min_count=min_count, max_size=max_vocab)
        lengths = sorted(len(s) for s in sents)
        longest = lengths[-1] if lengths else 0
        if max_length is None:
            max_length = min(longest + 1, max(DEFAULT_LENGTH_CAP, 4 * lengths[len(lengths) // 2] + 1) if lengths else 1)
        if max_length < 1:
            raise ValueError(f"max_length must be >= 1, got {max_length}")
        self.long_sentences = long_sentences
        self.n_long = sum(1 for n in lengths if n + 1 > max_length)
        if self.n_long:
            warnings.warn(f"{self.n_long} of {len(sents)} sentences of {train} have more than max_length - 1 = "
                          f"{max_length - 1} words (the longest has {longest}): "
                          f"{'truncated' if long_sentences == 'truncate' else 'dropped'}. Set max_length "
                          "(train.py --max-length) to change it", stacklevel=2)
        tr, trl, kept = self._encode(sents, max_length)
        self._train_sentences = [sents[i] for i in kept]  # as read, whole: BLEU's references without a test set
        self._test_sentences: List[List[str]] = []
        if len(tr) == 0:
            raise ValueError(f"no sentence of {str(train)!r} fits max_length={max_length} with long_sentences='drop'")
        te = tel = None
        if test is not None:
            test_sents = self._read(test, lowercase)
            long_test = sum(1 for s in test_sents if len(s) + 1 > max_length)
            if long_test:
                warnings.warn(f"{long_test} of {len(test_sents)} test sentences of {test} have more than max_length - 1 = "
                              f"{max_length - 1} words: {'truncated' if long_sentences == 'truncate' else 'dropped'}, "
                              "so NLL-test sees them so (the BLEU references keep them whole). Set max_length "
                              "(train.py --max-length) to keep them whole", stacklevel=2)
            te, tel, kept = self._encode(test_sents, max_length)
            self._test_sentences = [test_sents[i] for i in kept]
        super().__init__(len(self.vocab), max_length, EOS_ID, tr, trl, te, tel, name=Path(train).name)

    def _read(self, path: Union[str, os.PathLike], lowercase: bool) -> List[List[str]]:
        """The sentences of a file (:func:`read_sentences`); a subclass may read more from its lines."""
        return read_sentences(path, lowercase)

    def _encode_ids(self, sents: List[List[str]], max_length: int) -> tuple[List[List[int]], List[int]]:
        """Sentences -> id lists ending in ``<eos>`` (truncated or dropped by ``long_sentences``),
        and the indices in ``sents`` of the sentences kept."""
        seqs, kept = [], []
        for i, s in enumerate(sents):
            ids = self.vocab.encode(s) + [EOS_ID]
            if len(ids) > max_length:
                if self.long_sentences == "drop":
                    continue
                ids = ids[:max_length]
            seqs.append(ids)
            kept.append(i)
        return seqs, kept

    def _encode(self, sents: List[List[str]], max_length: int) -> tuple[torch.Tensor, torch.Tensor, List[int]]:
        """:meth:`_encode_ids` packed: ``(M, max_length)`` ids, ``(M,)`` lengths, the rows kept."""
        seqs, kept = self._encode_ids(sents, max_length)
        return (*pack(seqs, max_length, len(self.vocab)), kept)

    def decode(self, ids: Iterable[int]) -> str:
        return " ".join(self.vocab.decode(ids))

    def bleu_references(self, rows: Optional[Iterable[int]] = None) -> List[List[str]]:
        """The test sentences (the training ones without a test set), or those at ``rows`` (rows of
        ``test``, or ``train``), as BLEU references: their words as the file holds them (lower-cased
        with ``lowercase``), whole, as ``python -m textgym.evaluate --references`` reads them. A
        word outside the vocabulary never matches (a generated sentence cannot hold it; its ``<unk>``
        matches only a ``<unk>`` that the text itself holds, as in PTB), and a sentence cut at
        ``max_length`` for NLL-test keeps its brevity penalty. With ``long_sentences="drop"``, the
        dropped sentences are not references either."""
        sentences = self._test_sentences if self.test is not None else self._train_sentences
        return [list(sentences[i]) for i in (range(len(sentences)) if rows is None else rows)]


class OracleData(TextData):
    """The synthetic benchmark: the SeqGAN oracle and reproducible train/test samples of it.

    ``train``: ``n_train`` (10,000) oracle samples of ``max_length`` (20) tokens from seed
    ``seed``; ``test``: ``n_test`` held-out samples from ``seed + 1``.
    """

    oracle: OracleLSTM
    test: torch.Tensor  # never None here, unlike a corpus without a test file
    test_lengths: torch.Tensor

    def __init__(
        self,
        oracle: Union[OracleLSTM, str, os.PathLike, None] = None,
        *,
        max_length: int = 20,
        n_train: int = 10_000,
        n_test: int = 5_000,
        seed: int = 88,
    ) -> None:
        if oracle is None:
            oracle = OracleLSTM.load(max_length=max_length)
        elif isinstance(oracle, (str, os.PathLike)):
            oracle = OracleLSTM.load(oracle, max_length=max_length)
        self.oracle = oracle = at_length(oracle, max_length)
        self._device_copies: Dict[torch.device, OracleLSTM] = {}
        tr = cached_samples(oracle, n_train, seed)
        te = cached_samples(oracle, n_test, seed + 1)
        full = lambda x: torch.full((len(x),), max_length, dtype=torch.long)  # noqa: E731
        super().__init__(oracle.vocab_size, max_length, None, tr, full(tr), te, full(te), name="oracle")

    def oracle_on(self, device: Union[str, torch.device]) -> OracleLSTM:
        """The oracle on ``device``, never moving the shared :attr:`oracle` there.

        An OracleData is shared (:func:`resolve_data` caches it), and ``Module.to`` moves a
        module in place, so users on different devices would move the one oracle under each
        other. This returns :attr:`oracle` itself when it already lives on ``device``, else a
        copy on ``device``, made once per device and reused (the oracle is fixed: its weights
        never change, so the copies stay equal to it).
        """
        device = canonical_device(device)
        if device_of(self.oracle, torch.device("cpu")) == device:
            return self.oracle
        copies = self.__dict__.setdefault("_device_copies", {})
        if device not in copies:
            copies[device] = copy.deepcopy(self.oracle).to(device)
        return copies[device]


def at_length(oracle: OracleLSTM, max_length: int) -> OracleLSTM:
    """``oracle`` when it samples ``max_length`` tokens, else a copy that does: never the
    caller's oracle changed in place (it may be in use elsewhere at its own length)."""
    if oracle.max_length == max_length:
        return oracle
    oracle = copy.deepcopy(oracle)
    oracle.max_length = max_length
    return oracle


_ORACLE_CACHE: Dict[int, OracleData] = {}


def cached_samples(oracle: OracleLSTM, n: int, seed: int) -> torch.Tensor:
    """``oracle.sample_dataset(n, seed)`` on CPU, cached on disk under a key of the oracle's
    weights, n, seed, length, torch version and sampler version. The file holds the tokens and
    their SHA-256: a damaged file (unreadable, or tokens that do not match it) is regenerated."""
    import hashlib

    def digest(t: torch.Tensor) -> str:
        return hashlib.sha256(t.numpy().tobytes()).hexdigest()

    h = hashlib.sha256()
    for p in oracle.parameters():
        h.update(p.detach().cpu().numpy().tobytes())
    h.update(f"{n}/{seed}/{oracle.max_length}/{torch.__version__}/sampler{SAMPLER_VERSION}".encode())
    path = cache_dir() / f"oracle-samples-{h.hexdigest()[:24]}.pt"
    if path.is_file():
        try:
            blob = torch.load(path, weights_only=True)
            x = blob.get("tokens") if isinstance(blob, dict) else None  # a bare tensor: an earlier release's
            if (torch.is_tensor(x) and x.shape == (n, oracle.max_length) and x.dtype == torch.long
                    and digest(x) == blob.get("sha256")):
                return x
        except Exception:  # unreadable: made anew
            pass
    # sample on CPU (the draws are device-specific); a copy if needed: ``.to`` would move the
    # caller's oracle in place
    where = device_of(oracle)
    on_cpu = oracle if where is None or where.type == "cpu" else copy.deepcopy(oracle).to("cpu")
    x = on_cpu.sample_dataset(n, seed).cpu()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        torch.save({"tokens": x, "sha256": digest(x)}, tmp)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home: no cache
    return x


#: the data sets known by name: the oracle benchmark, its two-class version and the corpora
DATA_NAMES = ("oracle", "oracle-classes", *CORPORA)
#: named data sets built by modules that build on this one: name -> builder(max_length or None);
#: :mod:`textgym.classes` adds ``"oracle-classes"`` (the package imports it)
BUILDERS: Dict[str, Callable[[Optional[int]], TextData]] = {}
#: how :func:`resolve_data` reads a corpus file: :class:`Corpus`, replaced by
#: :func:`textgym.classes.read_corpus` (which also reads labelled files) when that module is imported,
#: as importing textgym does
FILE_READER: Dict[str, Callable[..., TextData]] = {"corpus": lambda path, max_length=None: Corpus(path, max_length=max_length)}


def refuse_misspelled_name(data: str) -> None:
    """FileNotFoundError suggesting the name when ``data`` is no file but close to a name of
    :data:`DATA_NAMES` (``"cocoa"``: did you mean ``"coco"``?)."""
    if data in DATA_NAMES or Path(data).exists():
        return
    close = difflib.get_close_matches(data, DATA_NAMES, n=1, cutoff=0.6)
    if close:
        raise FileNotFoundError(f"data {data!r} is neither a file nor a named data set (did you mean {close[0]!r}? "
                                f"the names are {', '.join(DATA_NAMES)})")


@overload
def resolve_data(data: Literal["oracle"] = "oracle", max_length: Optional[int] = None) -> OracleData: ...


@overload
def resolve_data(data: Union[str, os.PathLike, TextData], max_length: Optional[int] = None) -> TextData: ...


def resolve_data(data: Union[str, os.PathLike, TextData] = "oracle", max_length: Optional[int] = None) -> TextData:
    """``"oracle"``, a named corpus (:data:`CORPORA`, with its test split), a path to a text file
    (a labelled corpus when every line is ``label<TAB>sentence``: :data:`FILE_READER`),
    or a TextData object -> TextData.

    The oracle data set is cached per ``max_length`` (it is deterministic); ``"oracle-classes"``
    comes from its builder in :data:`BUILDERS`.
    """
    if isinstance(data, TextData):
        if max_length is not None and max_length != data.max_length:
            raise ValueError(f"max_length={max_length} differs from the data's max_length={data.max_length}")
        return data
    if isinstance(data, str) and data == "oracle":
        L = 20 if max_length is None else max_length
        if L not in _ORACLE_CACHE:
            _ORACLE_CACHE[L] = OracleData(max_length=L)
        return _ORACLE_CACHE[L]
    if isinstance(data, str) and data in BUILDERS:
        return BUILDERS[data](max_length)
    if isinstance(data, str) and data in CORPORA:
        return Corpus(*corpus_files(data), max_length=max_length)
    if isinstance(data, (str, os.PathLike)):
        if isinstance(data, str):
            refuse_misspelled_name(data)
        return FILE_READER["corpus"](data, max_length=max_length)
    raise TypeError(f"data must be 'oracle', a path to a text file, or a TextData object; got {type(data).__name__}")
