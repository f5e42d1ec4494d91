"""The common base of every discriminator: token conventions, input checks, scoring.

Token conventions (shared with ``textgym``):

- a vocabulary of ``V = vocab_size`` ids ``0 .. V-1``, all valid tokens;
- the padding id is ``V``: every discriminator embeds ``V + 1`` rows with ``padding_idx=V``;
- ``tokens``: ``(N, T)`` int64 with ``1 <= T <= max_length``; ``lengths``: ``(N,)`` int64 in
  ``[1, T]`` or ``None`` (all ``T`` positions valid). Positions ``>= lengths[i]`` should hold the
  pad id, but the models mask by ``lengths``, never by the pad value: whatever those positions
  hold is replaced by the pad id before embedding.

Two ways to call a discriminator:

- ``forward`` / ``features`` (and ``forward_prefixes`` where supported) are differentiable and
  respect the module's current mode (dropout is on in training mode). The trainer uses them.
- ``score`` (and ``score_prefixes``) is what rewards must use: it runs in eval mode (dropout
  off) under ``torch.no_grad()`` and restores the previous train/eval mode afterwards. Rewards
  must never score with ``forward`` in training mode: dropout makes them noisy (a known bug of
  public SeqGAN code).

``regularization()`` is a penalty the trainer adds to the loss (a scalar tensor, 0 by
default; the CNN's is SeqGAN's L2 penalty on its output layer). :func:`check_inputs` is the
input check every discriminator shares, the no-information controls included.

``supports_prefixes`` says whether a model scores every prefix in one pass
(``score_prefixes``, needed by dense rewards). Models without it have no ``score_prefixes``
attribute at all, so both ``d.supports_prefixes`` and ``hasattr(d, "score_prefixes")`` are False.
"""
from __future__ import annotations

import contextlib
import copy
import threading
from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

import torch
from torch import nn


class DivergenceError(FloatingPointError):
    """A discriminator produced non-finite logits, or its training loss became non-finite."""


_REHEARSAL = threading.local()


@contextlib.contextmanager
def rehearsing() -> Iterator[None]:
    """A block that runs work as a CUDA graph will capture it: the warm-up calls before a capture
    (:func:`discriminators.graphed.warm_up`). :func:`capturing` is True for CUDA tensors inside,
    so the warm-up runs the very body that will be captured, without the value checks that
    capture skips, and the check for waits on its last call sees only what capture would."""
    before = getattr(_REHEARSAL, "on", False)
    _REHEARSAL.on = True
    try:
        yield
    finally:
        _REHEARSAL.on = before


@contextlib.contextmanager
def eval_mode(model: Any) -> Iterator[None]:
    """Eval mode (no dropout) and ``torch.no_grad()`` inside the block, for any object with
    torch's modes (a module, a generator, a wrapped policy) or none (a plain callable). A model in
    training mode is switched and switched back after; one already in eval mode is left alone (the
    switch walks every submodule, and scoring runs once per env step or MC chunk)."""
    switched = model if getattr(model, "training", False) is True and hasattr(model, "eval") else None
    if switched is not None:
        switched.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        if switched is not None:
            switched.train()


def capturing(tensor: torch.Tensor) -> bool:
    """Whether ``tensor``'s device stream is being captured into a CUDA graph, or work is being
    rehearsed for a capture (:func:`rehearsing`). The checks that read a tensor's values on the
    host (a wait for the device, which capture forbids) skip themselves then; whoever captures
    checks the graph's inputs before and its outputs after."""
    return tensor.is_cuda and (getattr(_REHEARSAL, "on", False) or torch.cuda.is_current_stream_capturing())


@contextlib.contextmanager
def seeded(seed: Optional[int]) -> Iterator[None]:
    """A block whose random draws (module initializations) come from torch's CPU generator
    seeded with ``seed``; every global generator is as before after it (None: no seeding).

    The CPU generator alone: ``torch.manual_seed`` would also reseed every CUDA generator,
    which ``fork_rng(devices=[])`` does not restore. Modules are built on the CPU, so that is
    the generator their initializations draw from.
    """
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        yield


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: Dict[str, Any], *,
                         capturable: Optional[bool] = None) -> None:
    """``optimizer.load_state_dict`` on a deep copy of ``state`` (every optimizer of the package
    and of the agents loads through this).

    torch's ``Optimizer.load_state_dict`` keeps each given tensor that already has its
    parameter's device and dtype (Adam's moments and step count, say) instead of copying it. The
    optimizer's updates would then write into the caller's dict, and two optimizers loaded from
    one dict would share, and both update, the same moments.

    ``capturable`` (Adam's setting for updates captured as CUDA graphs), when given, replaces
    the saved groups' setting before loading: the groups take the saved settings, and a state
    saved by a non-capturable Adam keeps its step counts on the CPU, where a capturable step
    refuses them.
    """
    state = copy.deepcopy(state)
    if capturable is not None:
        for group in state["param_groups"]:
            group["capturable"] = capturable
    optimizer.load_state_dict(state)


def load_weights(module: torch.nn.Module, state: Any, what: str) -> None:
    """``module.load_state_dict(state)``, or ValueError saying how ``what`` (the weights' source,
    e.g. "the source run's generator") differs from ``module``: the parameters whose shapes differ
    (there and here), and those only one side has. torch's own message is a multi-line list that
    callers used to cut to its first line, "Error(s) in loading state_dict for Generator:"."""
    if not isinstance(state, dict):
        raise ValueError(f"{what} is not a set of weights (a {type(state).__name__}, not a state dict)")
    own = module.state_dict()
    shapes = [f"{k} is {tuple(v.shape)} there, {tuple(own[k].shape)} here" for k, v in state.items()
              if k in own and isinstance(v, torch.Tensor) and v.shape != own[k].shape]
    missing, extra = [k for k in own if k not in state], [k for k in state if k not in own]

    def some(keys: List[str]) -> str:
        return ", ".join(keys[:4]) + (f" and {len(keys) - 4} more" if len(keys) > 4 else "")

    parts = ([f"shapes differ ({some(shapes)})"] if shapes else []) + ([f"missing there: {some(missing)}"] if missing else []) \
        + ([f"not in this model: {some(extra)}"] if extra else [])
    if parts:
        raise ValueError(f"{what} does not fit this {type(module).__name__}: {'; '.join(parts)}")
    try:
        module.load_state_dict(state)
    except RuntimeError as exc:  # what the shape check cannot see (an entry that is not a tensor, say)
        raise ValueError(f"{what} does not fit this {type(module).__name__}: {str(exc).strip()}") from None


def check_inputs(
    tokens: torch.Tensor,
    lengths: Optional[torch.Tensor],
    *,
    vocab_size: int,
    max_length: int,
    device: Union[str, torch.device, None] = None,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Validate the inputs of a discriminator of ``vocab_size`` ids and bring them to ``device``.

    Args:
        tokens: ``(N, T)`` integer ids in ``[0, V]``, ``1 <= T <= max_length``.
        lengths: ``(N,)`` integers in ``[1, T]`` or None (all positions valid).
        vocab_size: ``V``; the pad id is ``V``.
        max_length: the longest ``T`` accepted.
        device: where the results go (default: the device of ``tokens``).

    Returns:
        ``tokens`` ``(N, T)`` int64 with positions ``>= lengths`` set to the pad id,
        ``lengths`` ``(N,)`` int64 and ``valid`` ``(N, T)`` bool, all on ``device``.

    Raises:
        ValueError: wrong shape or dtype, an empty batch, ``T > max_length``, an id outside
            ``[0, V]``, or a length outside ``[1, T]``.
    """
    V = vocab_size
    if not torch.is_tensor(tokens):
        tokens = torch.as_tensor(tokens)
    if tokens.dim() != 2:
        raise ValueError(f"tokens must be a (N, T) tensor of token ids, got shape {tuple(tokens.shape)}")
    if tokens.dtype.is_floating_point or tokens.dtype.is_complex or tokens.dtype == torch.bool:
        raise ValueError(f"tokens must be an integer tensor (int64 ids), got dtype {tokens.dtype}")
    N, T = tokens.shape
    if N == 0:
        raise ValueError("empty batch: tokens has 0 rows; a discriminator needs at least one sequence")
    if T == 0:
        raise ValueError("tokens has 0 positions (shape (N, 0)); sequences need at least one token")
    if T > max_length:
        raise ValueError(
            f"sequence length {T} exceeds the discriminator's max_length {max_length}; "
            f"build it with max_length >= {T}"
        )
    if device is None:
        device = tokens.device
    tokens = tokens.to(device=device, dtype=torch.long)
    bad = (tokens < 0) | (tokens > V)
    if not capturing(tokens) and bool(bad.any()):
        value = int(tokens[bad][0])
        raise ValueError(
            f"token id {value} is out of range for a discriminator with a vocabulary of {V} tokens "
            f"(pad id {V}); ids must lie in [0, {V}]"
        )
    positions = torch.arange(T, device=device)
    if lengths is None:
        lengths = torch.full((N,), T, dtype=torch.long, device=device)
        valid = torch.ones(N, T, dtype=torch.bool, device=device)
        return tokens, lengths, valid
    if not torch.is_tensor(lengths):
        lengths = torch.as_tensor(lengths)
    if lengths.dtype.is_floating_point or lengths.dtype.is_complex or lengths.dtype == torch.bool:
        raise ValueError(f"lengths must be an integer tensor, got dtype {lengths.dtype}")
    if tuple(lengths.shape) != (N,):
        raise ValueError(f"lengths must have shape ({N},) to match tokens {tuple(tokens.shape)}, got {tuple(lengths.shape)}")
    lengths = lengths.to(device=device, dtype=torch.long)
    bad_len = (lengths < 1) | (lengths > T)
    if not capturing(lengths) and bool(bad_len.any()):
        value = int(lengths[bad_len][0])
        raise ValueError(f"length {value} is out of range: lengths must lie in [1, {T}] for tokens of {T} positions")
    valid = positions[None, :] < lengths[:, None]
    tokens = tokens.masked_fill(~valid, V)
    return tokens, lengths, valid


def check_sizes(vocab_size: int, max_length: int) -> None:
    """ValueError unless ``vocab_size`` and ``max_length`` are positive ints."""
    for name, v in (("vocab_size", vocab_size), ("max_length", max_length)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")


class BaseDiscriminator(nn.Module):
    """Scores ``(N, T)`` token sequences with one logit of P(real) each.

    Subclasses implement :meth:`encode` (penultimate features) and :meth:`head` (dropout and
    the output layer); the base class validates inputs and checks outputs.

    Args:
        vocab_size: ``V``, the number of token ids; the pad id is ``V``.
        max_length: the longest ``T`` accepted.
    """

    is_probabilistic: bool = True
    supports_prefixes: bool = False

    def __init__(self, vocab_size: int, max_length: int) -> None:
        super().__init__()
        check_sizes(vocab_size, max_length)
        self.vocab_size = vocab_size
        self.max_length = max_length
        self.pad_id = vocab_size

    # ------------------------------------------------------------------ to implement
    def encode(self, tokens: torch.Tensor, lengths: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Penultimate features of checked inputs.

        Args:
            tokens: ``(N, T)`` int64 on the module's device, positions ``>= lengths`` set to the pad id.
            lengths: ``(N,)`` int64 in ``[1, T]``.
            valid: ``(N, T)`` bool, ``valid[i, t] = t < lengths[i]``.

        Returns:
            ``(N, F)`` float features.
        """
        raise NotImplementedError

    def head(self, features: torch.Tensor) -> torch.Tensor:
        """``(..., F)`` features -> ``(...)`` logits (dropout, then the output layer)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ input checks
    @property
    def device(self) -> torch.device:
        """The device of the module's parameters."""
        return next(self.parameters()).device

    def check_inputs(
        self, tokens: torch.Tensor, lengths: Optional[torch.Tensor] = None
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Validate inputs and bring them to the module's device (:func:`check_inputs`).

        Returns:
            ``tokens`` ``(N, T)`` int64 with positions ``>= lengths`` set to the pad id,
            ``lengths`` ``(N,)`` int64 and ``valid`` ``(N, T)`` bool, all on the module's device.

        Raises:
            ValueError: see :func:`check_inputs`.
        """
        return check_inputs(tokens, lengths, vocab_size=self.vocab_size, max_length=self.max_length, device=self.device)

    def regularization(self) -> torch.Tensor:
        """The penalty the trainer adds to the loss: a scalar tensor (0 here; see the CNN's)."""
        return torch.zeros((), device=self.device)

    def check_output(self, logits: torch.Tensor) -> torch.Tensor:
        """Raise :class:`DivergenceError` if any logit is NaN or infinite; return ``logits``."""
        finite = torch.isfinite(logits)
        if not capturing(logits) and not bool(finite.all()):
            bad = int((~finite).sum())
            raise DivergenceError(
                f"{type(self).__name__} produced {bad} non-finite logits out of {logits.numel()}; "
                "its weights have diverged (lower the learning rate or restore a checkpoint)"
            )
        return logits

    # ------------------------------------------------------------------ differentiable API
    def forward(self, tokens: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Logits of P(real), differentiable, in the module's current mode.

        Args:
            tokens: ``(N, T)`` int64 ids in ``[0, V]``.
            lengths: ``(N,)`` int64 in ``[1, T]`` or None (all positions valid).

        Returns:
            ``(N,)`` float logits.
        """
        tokens, lengths, valid = self.check_inputs(tokens, lengths)
        return self.check_output(self.head(self.encode(tokens, lengths, valid)))

    def features(self, tokens: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Penultimate features ``(N, F)`` (before dropout and the output layer), current mode."""
        tokens, lengths, valid = self.check_inputs(tokens, lengths)
        return self.encode(tokens, lengths, valid)

    # ------------------------------------------------------------------ scoring API (rewards)
    @contextlib.contextmanager
    def scoring(self) -> Iterator[None]:
        """Eval mode and ``torch.no_grad()`` inside the block; the previous mode is restored after
        (:func:`eval_mode`)."""
        with eval_mode(self):
            yield

    def score(self, tokens: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Logits of P(real) for rewards: eval mode (no dropout), no gradient, mode restored.

        Args:
            tokens: ``(N, T)`` int64 ids in ``[0, V]``.
            lengths: ``(N,)`` int64 in ``[1, T]`` or None.

        Returns:
            ``(N,)`` float logits (deterministic).
        """
        with self.scoring():
            return self.forward(tokens, lengths)

    def extra_repr(self) -> str:
        return f"vocab_size={self.vocab_size}, max_length={self.max_length}"
