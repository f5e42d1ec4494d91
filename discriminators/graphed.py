"""The discriminator update as one captured CUDA graph, replayed once per minibatch.

On a GPU a small discriminator's update is hundreds of tiny kernels (SeqGAN's CNN: about 470
per update of 64 sequences), and launching them from Python costs many times their run time.
A CUDA graph records the whole update once — forward, loss, backward, gradient clipping, the
Adam step and the running statistics — and replays it with one launch. Replaying needs fixed
addresses: the minibatch is copied into static buffers first, the optimizer is a capturable
Adam, and nothing inside may make the host wait for the device (``bool(tensor)``, ``.item()``).

So the update body differs from the eager one in two ways, both about checks:

1. Inputs are checked once per call, on the whole set (``DiscriminatorTrainer._prepare``), not
   per minibatch, and the body calls ``encode`` and ``head`` directly: ``forward``'s checks wait
   for the device.
2. A non-finite loss or logit cannot stop the update that produced it. The body counts such
   updates on the device; the trainer reads the count once at the end of the call and, if it is
   not 0, restores the discriminator and its optimizer to their state at the start of the call
   (a snapshot taken then) and raises :class:`~discriminators.base.DivergenceError`. The eager
   path raises before the first bad update instead, keeping the call's earlier updates.

A graph is captured for each (rows, width) minibatch shape of at most ``MAX_CAPTURED_TOKENS``
tokens (SeqGAN's 64 × 20 is 1,280) after ``WARMUP`` eager updates of that shape, run on a side
stream as CUDA's capture rules ask (they initialize the optimizer's state and the libraries'
workspaces). Replays draw dropout from the same generator offsets as eager updates would, so a
captured update equals the eager one given the same state. A capture that fails (an operation
in the update that waits for the device, say) runs nothing: it warns, and the updates run
eagerly from then on.

:class:`UpdateBody` is the update itself; :class:`GraphedUpdates` caches the graphs of any
such body, and also replays the generator's MLE update on CUDA (``agents.mle``, whose deferred
pass sums its checks on the device in the same way). On the CPU the bodies run directly
(``capture=False``), which is how the tests check them against the eager updates without a GPU.
"""
from __future__ import annotations

import warnings
from collections import OrderedDict
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from discriminators.base import rehearsing
from discriminators.evaluation import right_calls

#: eager updates of a shape before its graph is captured
WARMUP = 3
#: graphs kept (one per minibatch shape); the least recently used is dropped past this
MAX_GRAPHS = 4
#: the most tokens (rows × width) of a captured minibatch: up to 3,072 indices torch's CUDA
#: embedding backward runs one kernel; beyond, it sorts the indices, a path not checked for
#: capture here, so larger minibatches run the same update body eagerly (no host sync either)
MAX_CAPTURED_TOKENS = 3072
#: slots of the running statistics: BCE sum (× rows), regularization sum, right calls on real and
#: on fake rows, updates with a non-finite loss or logit
LOSS, REG, RIGHT_REAL, RIGHT_FAKE, NONFINITE = range(5)


def without_waits(fn: Callable[[], Any], what: str) -> Tuple[bool, Any]:
    """``(True, fn())`` with every wait for the device made an error, or ``(False, None)`` and a
    warning when ``fn`` waits, which a CUDA graph cannot hold: the last warm-up call before a
    capture runs this way, so that such work is found before capturing (a capture that fails
    midway can leave the CUDA generators in capture mode). ``what`` names it in the warning."""
    previous = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("error")
    try:
        return True, fn()
    except RuntimeError as exc:
        if "synchroniz" not in str(exc):
            raise
        warnings.warn(f"{what} waits for the device ({exc}), which a CUDA graph cannot hold; it runs eagerly from "
                      "now on", stacklevel=4)
        return False, None
    finally:
        torch.cuda.set_sync_debug_mode(previous)


def warm_up(fn: Callable[[], Any], device: torch.device, last: bool, what: str) -> Tuple[bool, Any]:
    """One eager call of work about to be captured, on a side stream as capture asks of warm-up
    work: ``(whether a graph can hold it, fn's result)``.

    It runs as the capture will (:func:`~discriminators.base.rehearsing`: the host-side value
    checks skip themselves, and the caller checks inputs before and results after, as it does
    around a replay). The ``last`` warm-up call runs under :func:`without_waits`; work that
    waits then warns and runs again, eagerly with its checks. That second call repeats whatever
    the first did before its wait (random draws, say): the fallback is deterministic, but its
    draws differ from a run that was eager from the start."""
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side), warnings.catch_warnings():
        # a capturable optimizer's first step outside a capture tells the user to build it without:
        # here that step is the warm-up the capture asks for (torch warns once per optimizer)
        warnings.filterwarnings("ignore", message="This instance was constructed with capturable=True")
        with rehearsing():
            held, out = without_waits(fn, what) if last else (True, fn())
        if not held:
            out = fn()
    torch.cuda.current_stream(device).wait_stream(side)
    return held, out


def graph_capturable(discriminator: object, positions: str) -> bool:
    """Whether the trainer can capture this discriminator's update: a module that declares
    ``graph_capturable = True`` (its ``encode`` and ``head`` make no host sync), trained at the
    last position."""
    return positions == "last" and bool(getattr(discriminator, "graph_capturable", False))


def init_adam_state(optimizer: torch.optim.Optimizer) -> None:
    """Create Adam's state as its first step would (step 0, zero moments), without stepping:
    a captured step must find its state tensors allocated, not allocate them."""
    for group in optimizer.param_groups:
        for p in group["params"]:
            state = optimizer.state[p]
            if not state:
                state["step"] = torch.zeros((), dtype=torch.float32, device=p.device)
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                if group.get("amsgrad"):
                    state["max_exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)


class UpdateBody:
    """One BCE + Adam update of ``discriminator`` on a checked minibatch, with no host sync, in
    ``precision`` (``"bfloat16"``: the forward under autocast, as the eager trainer's).

    ``__call__(tokens (B, W), lengths (B,), targets (B,), is_real (B,) bool)`` adds the
    update's BCE sum, regularization, right calls and non-finite flag into ``stats`` (5,).

    With ``compile=True`` the forward, the loss and the statistics (and so their backward) run
    through ``torch.compile``, which fuses their element-wise kernels (on a GPU the update's time
    is its kernel count: ``bench/results/gpu-h200``). Dropout then draws from torch's generator
    as eager code does (inductor's ``fallback_random``): on the CPU the compiled update equals
    the eager one to rounding; on CUDA the masks come from other draws of the same generator,
    so the two differ by their dropout while each stays deterministic in float32 (compiled
    bfloat16 updates on CUDA are not bit-reproducible: the compiled embedding backward adds in
    an order that varies). The compiled products run in the matrix products' precision: the
    CNN's window product then follows ``torch.backends.cuda.matmul.allow_tf32`` rather than
    cuDNN's setting (the trainer warns where that makes the update slower).
    """

    def __init__(self, discriminator: nn.Module, optimizer: torch.optim.Optimizer, stats: torch.Tensor,
                 max_grad_norm: Optional[float], compile: bool = False, precision: str = "float32") -> None:
        self.discriminator, self.optimizer, self.stats, self.max_grad_norm = discriminator, optimizer, stats, max_grad_norm
        self.bfloat16 = precision == "bfloat16"
        self._loss = self._loss_and_stats
        if compile:
            self._loss = torch.compile(self._loss_and_stats, dynamic=False, options={"fallback_random": True})

    def _loss_and_stats(self, tokens: torch.Tensor, lengths: torch.Tensor, targets: torch.Tensor,
                        is_real: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(BCE + regularization, differentiable; the update's (5,) statistics row, no gradient)."""
        disc = self.discriminator
        valid = torch.arange(tokens.shape[1], device=tokens.device)[None, :] < lengths[:, None]
        # bfloat16 as the eager trainer's autocast; no cache of cast weights: a captured graph
        # must recast them at every replay, as they change
        with torch.autocast(tokens.device.type, dtype=torch.bfloat16, enabled=self.bfloat16, cache_enabled=False):
            logits = disc.head(disc.encode(tokens, lengths, valid))  # type: ignore[operator]
            loss = F.binary_cross_entropy_with_logits(logits, targets)
        reg = disc.regularization()  # type: ignore[operator]
        total = loss + reg
        with torch.no_grad():
            bad = ~(torch.isfinite(total) & torch.isfinite(logits).all())
            row = torch.cat([torch.stack([loss * tokens.shape[0], reg]), right_calls(logits, is_real), bad.float()[None]])
        return total, row

    def __call__(self, tokens: torch.Tensor, lengths: torch.Tensor, targets: torch.Tensor, is_real: torch.Tensor) -> None:
        total, row = self._loss(tokens, lengths, targets, is_real)
        total.backward()
        if self.max_grad_norm is not None:
            nn.utils.clip_grad_norm_(self.discriminator.parameters(), self.max_grad_norm)
        self.optimizer.step()
        self.stats += row


class GraphedUpdates:
    """Runs an update ``body(*rows)`` on minibatches gathered from a call's sources (tensors
    indexed by row: the discriminator's tokens, lengths, targets and real flags; MLE's tokens
    and lengths), one CUDA graph per minibatch shape (eager for the first ``WARMUP`` of a
    shape, or always when ``capture`` is False). ``optimizer`` is the capturable Adam that
    ``body`` steps; ``what`` names the update in the warning of a failed capture."""

    def __init__(self, body: Callable[..., None], optimizer: torch.optim.Optimizer, capture: bool = True,
                 what: str = "the discriminator update (cuda_graph=False skips the attempt)") -> None:
        self.body, self.optimizer, self.capture, self.what = body, optimizer, capture, what
        self.graphs: OrderedDict[Tuple[int, ...], Tuple[Any, List[torch.Tensor]]] = OrderedDict()
        self.seen: Dict[Tuple[int, ...], int] = {}

    def reset(self) -> None:
        """Forget every graph (the optimizer's state tensors were replaced, say)."""
        self.graphs.clear()
        self.seen.clear()

    def _eager(self, rows: Sequence[torch.Tensor]) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self.body(*rows)

    def run(self, sources: Sequence[torch.Tensor], idx: torch.Tensor) -> None:
        """One update on rows ``idx`` of ``sources`` (the first is (M, W) tokens)."""
        if not self.capture:
            self._eager([src[idx] for src in sources])
            return
        # capture and replay use the current device's streams: make it the data's (cuda:1, say)
        with torch.cuda.device(sources[0].device):
            self._run(sources, idx)

    def _run(self, sources: Sequence[torch.Tensor], idx: torch.Tensor) -> None:
        key = (int(idx.shape[0]), *(int(n) for n in sources[0].shape[1:]))
        if key[0] * key[1] > MAX_CAPTURED_TOKENS:
            self._eager([src[idx] for src in sources])
            return
        if key in self.graphs:
            self.graphs.move_to_end(key)  # least recently used first out
            graph, static = self.graphs[key]
            for src, dst in zip(sources, static, strict=True):
                torch.index_select(src, 0, idx, out=dst)
            graph.replay()
            return
        device = sources[0].device
        self.seen[key] = self.seen.get(key, 0) + 1
        if self.seen[key] <= WARMUP:
            rows = [src[idx] for src in sources]
            if not warm_up(lambda: self._eager(rows), device, self.seen[key] == WARMUP, self.what)[0]:
                self.capture = False  # for good: run() goes eager from now on
                self.graphs.clear()
            return
        static = [src[idx] for src in sources]
        init_adam_state(self.optimizer)
        self.optimizer.zero_grad(set_to_none=True)  # the graph's backward writes fresh gradients
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                self.body(*static)
        except RuntimeError as exc:  # an operation capture cannot hold: nothing ran, run it eagerly
            warnings.warn(f"{self.what} could not be captured as a CUDA graph ({exc}); its updates run eagerly "
                          "from now on", stacklevel=2)
            self.capture = False
            self._eager(static)
            return
        self.graphs[key] = (graph, static)
        while len(self.graphs) > MAX_GRAPHS:
            self.graphs.popitem(last=False)
        graph.replay()  # capture records the update without running it
