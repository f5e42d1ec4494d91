"""The C allocator's settings for a training process on the CPU.

glibc hands a freed block back to the operating system when it was mapped on its own (blocks
above the mmap threshold, 128 KiB at first, raised as blocks of larger sizes are freed) or when
the free memory at the top of the heap passes the trim threshold. The next allocation of that
size then starts from fresh pages, and writing each 4 KiB page first costs a page fault. A
training step allocates and frees the same large tensors every time (activations, gradients,
their casts under bfloat16 autocast), so it can pay those faults at every step (SeqGAN's CNN
discriminator trained in bfloat16 did: ``bench/results/NOTES.md`` has the counts).

:func:`keep_freed_memory` makes glibc keep freed blocks of up to 32 MiB in the process for reuse
(``M_MMAP_THRESHOLD``, glibc's largest) and return the top of the heap only past 256 MiB
(``M_TRIM_THRESHOLD``). The process then holds on to memory it freed, up to about its own peak
use: the price of reusing pages instead of faulting them in again. Blocks above 32 MiB are still
mapped on their own. The settings are process-wide, so the library never applies them on its
own: the training driver (:func:`agents.driver.train`, hence ``train.py``) and the benchmarks call
it; a script that trains through the library directly may call it once at its start.
"""
from __future__ import annotations

import ctypes
import platform

#: glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
#: freed blocks up to this size stay in the process (glibc caps the threshold at 32 MiB)
MMAP_THRESHOLD = 32 * 2**20
#: free memory at the top of the heap is returned to the system past this size
TRIM_THRESHOLD = 256 * 2**20

_applied = False


def keep_freed_memory() -> bool:
    """Set glibc's ``M_MMAP_THRESHOLD`` and ``M_TRIM_THRESHOLD`` as the module docstring says.

    Returns whether they are in force: False where the C library is not glibc (macOS, musl,
    Windows), which keeps its own behaviour. Calling it again does nothing more.
    """
    global _applied
    if _applied:
        return True
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    ok = libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    _applied = bool(ok)
    return _applied
