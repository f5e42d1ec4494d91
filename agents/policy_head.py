"""The output layer of PPO's update for the generator policy: ``log π(a | h)`` and the entropy
``H(π(· | h))`` of ``π = softmax(h Wᵀ + b)`` over V tokens, with a hand-written forward and
backward (:class:`_HeadLogProbEntropy`) and the reused (B, V) buffers they work in
(:class:`HeadWorkspace`). :class:`agents.sb3_policy.GeneratorPolicy` calls
:func:`head_log_prob_entropy` for every minibatch; PPO's update spends most of its time here.
"""
from __future__ import annotations

import math
import weakref
from typing import Any, Dict, Optional, Tuple

import torch
from torch import nn

_LOG2E = 1.0 / math.log(2.0)
_LN2 = math.log(2.0)


class HeadWorkspace:
    """Two (B, V) buffers that :func:`head_log_prob_entropy` reuses from one call to the next.

    A freshly allocated buffer of this size comes from the operating system (glibc hands
    allocations this large back to it when they are freed), and writing it first costs a page
    fault per 4 KiB: about as much as the arithmetic on it. ``logits`` is scratch space, free
    again when the forward returns. ``probs`` is saved for the backward: it stays reserved for
    the call that took it until that call's backward ran or its graph was dropped (a weak
    reference to the autograd node); a second forward in the meantime gets a fresh buffer.
    """

    def __init__(self) -> None:
        self._storage: Dict[str, torch.Tensor] = {}
        self._holder: Optional[weakref.ref] = None

    def _get(self, name: str, like: torch.Tensor, shape: Tuple[int, int]) -> torch.Tensor:
        n = shape[0] * shape[1]
        kept = self._storage.get(name)
        if kept is None or kept.numel() < n or kept.dtype != like.dtype or kept.device != like.device:
            kept = self._storage[name] = torch.empty(n, dtype=like.dtype, device=like.device)
        return kept[:n].view(shape)

    def logits(self, like: torch.Tensor, shape: Tuple[int, int]) -> torch.Tensor:
        return self._get("logits", like, shape)

    def probs(self, like: torch.Tensor, shape: Tuple[int, int], holder: Any) -> torch.Tensor:
        if self._holder is not None and self._holder() is not None:
            return torch.empty(shape, dtype=like.dtype, device=like.device)
        self._holder = weakref.ref(holder)
        return self._get("probs", like, shape)

    def release(self, holder: Any) -> None:
        if self._holder is not None and self._holder() is holder:
            self._holder = None


class _HeadLogProbEntropy(torch.autograd.Function):
    """``log π(a | h)`` and ``H(π(· | h))`` of the output layer ``π = softmax(h Wᵀ + b)`` with a
    hand-written backward: h (B, H), weight (V, H), bias (V,), actions (B,) -> ((B,), (B,)).

    Forward, in base 2 (``exp2`` is much cheaper than ``exp`` on CPU) with the bias folded into
    one product: ``z = [h, 1] [W, b]ᵀ log₂e``, ``m = max_v z``, ``q = 2^(z - m)``, ``s = Σ_v q``,
    ``lse = m + log₂ s``; then ``log π(a) = (z_a - lse) ln 2`` and
    ``H = (lse - Σ_v q z / s) ln 2``. Neither ``log p`` nor the normalized ``p`` is materialized.

    Backward, with g_a, g_H the incoming gradients and p = q / s,

        ∂ log p_a / ∂z = onehot(a) - p,      ∂H / ∂z = -p ⊙ (log p + H),

    so ``grad_z = g_a (onehot(a) - p) - g_H p ⊙ (log p + H)``, then ``grad_h = grad_z W`` and
    ``grad_W = grad_zᵀ h``, ``grad_b = Σ_rows grad_z``. PPO's update spends most of its time on these (B, V)
    tensors, so every pass over them counts: ``q`` is scaled in place into ``grad_z``, and the
    entropy term, which needs ``log p``, is computed (with one more product) only when its
    gradient is not zero (SB3's default ``ent_coef = 0`` still backpropagates ``0 · entropy``).
    """

    @staticmethod
    def forward(ctx: Any, h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, actions: torch.Tensor,
                workspace: HeadWorkspace) -> Tuple[torch.Tensor, torch.Tensor]:
        shape = (h.shape[0], weight.shape[0])
        h1 = torch.cat([h, torch.ones_like(h[:, :1])], 1)  # (B, H + 1)
        z = torch.mm(h1, torch.cat([weight, bias[:, None]], 1).mul_(_LOG2E).t(),
                     out=workspace.logits(h, shape))  # (B, V) logits in bits
        m = z.amax(1, keepdim=True)
        q = torch.sub(z, m, out=workspace.probs(h, shape, ctx)).exp2_()  # unnormalized probabilities
        s = q.sum(1, keepdim=True)
        lse = m.add_(s.log2())  # (B, 1): log₂ of the partition function
        log_p_a = (z.gather(1, actions[:, None]) - lse).squeeze(1).mul_(_LN2)
        entropy = (lse.squeeze(1) - z.mul_(q).sum(1) / s.squeeze(1)).mul_(_LN2)
        ctx.save_for_backward(h, weight, bias, q, s, lse, entropy, actions)
        ctx.spent, ctx.workspace = False, workspace
        return log_p_a, entropy

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, g_a: torch.Tensor, g_h: torch.Tensor) -> Tuple[Optional[torch.Tensor], ...]:
        if ctx.spent:  # the (B, V) buffer was overwritten by the first backward
            raise RuntimeError("the generator policy's log-probabilities can be backpropagated once "
                               "(backward(retain_graph=True) twice is not supported)")
        ctx.spent = True
        h, weight, bias, q, s, lse, entropy, actions = ctx.saved_tensors
        entropy_term = None
        if bool(g_h.any()):  # g_H p ⊙ (log p + H), with log p = z ln 2 - lse ln 2 recomputed
            log_p = torch.addmm(bias, h, weight.t()).sub_(lse * _LN2)
            entropy_term = log_p.add_(entropy[:, None]).mul_(q).mul_(g_h[:, None] / s)
        grad = q.mul_(-g_a[:, None] / s)
        grad.scatter_add_(1, actions[:, None], g_a[:, None])
        if entropy_term is not None:
            grad.sub_(entropy_term)
        grad_h = grad @ weight if ctx.needs_input_grad[0] else None
        grad_w = grad.t() @ h if ctx.needs_input_grad[1] else None  # with h, not [h, 1]: K = 33 is slower
        grad_b = grad.sum(0) if ctx.needs_input_grad[2] else None
        ctx.workspace.release(ctx)
        return grad_h, grad_w, grad_b, None, None


def head_log_prob_entropy(h: torch.Tensor, out: nn.Linear, actions: torch.Tensor,
                          workspace: Optional[HeadWorkspace] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """(log π(a | h), H(π(· | h))) of the linear softmax layer ``out``, each (B,); see
    :class:`_HeadLogProbEntropy`. A caller that calls it repeatedly passes its own
    :class:`HeadWorkspace`."""
    result: Tuple[torch.Tensor, torch.Tensor] = _HeadLogProbEntropy.apply(
        h, out.weight, out.bias, actions.long().view(-1), HeadWorkspace() if workspace is None else workspace)
    return result
