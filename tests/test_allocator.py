"""textgym.allocator: glibc keeps freed blocks, so a training step's large tensors reuse pages
instead of faulting fresh ones in at every step."""
from __future__ import annotations

import platform
import subprocess
import sys

import pytest

# Three 10 MB tensors allocated, written and freed together, 8 times, as a training step's
# activations and gradients are: with glibc's defaults the 30 MB freed at the top of the heap pass
# its trim threshold (twice its mmap threshold, raised to 10 MB by then) and go back to the system
# at every round, about 7,300 page faults each; kept, they are reused.
SCRIPT = """
import resource, sys, torch
from textgym.allocator import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else False
faults = []
for _ in range(8):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    xs = [torch.empty(2_500_000).fill_(1.0) for _ in range(3)]
    del xs
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(kept, sum(faults[2:]))
"""


def _run(mode: str):
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, check=True)
    kept, faults = out.stdout.split()
    return kept == "True", int(faults)


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_kept_freed_blocks_are_reused_without_page_faults():
    kept, faults = _run("keep")
    assert kept and faults < 500  # six rounds of 30 MB would be about 44,000 faults if handed back
    assert not _run("default")[0] and _run("default")[1] > 10 * max(faults, 100)


def test_calling_it_twice_is_harmless():
    from textgym.allocator import keep_freed_memory
    first = keep_freed_memory()
    assert keep_freed_memory() == first
