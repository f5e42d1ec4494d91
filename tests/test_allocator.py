"""textgym.allocator: glibc keeps freed blocks, so a training step's large tensors reuse pages
instead of faulting fresh ones in at every step."""
from __future__ import annotations

import platform
import subprocess
import sys

import pytest

# glibc's own accounting (mallinfo2) of a 20 MB tensor: with its defaults the block is mapped on
# its own (the mmap threshold starts at 128 KiB) and handed back when freed; kept, it comes from
# the heap and stays there, free for the next allocation. Page faults need no counting: where a
# block lives decides them.
SCRIPT = """
import ctypes, sys, torch
from textgym.allocator import keep_freed_memory

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
kept = keep_freed_memory() if sys.argv[1] == "keep" else False
x = torch.empty(5_000_000).fill_(1.0)
mapped = libc.mallinfo2().hblkhd  # bytes in blocks mapped on their own
del x
print(kept, mapped, libc.mallinfo2().fordblks)  # free bytes kept in the heap
"""
MB = 2**20


def _run(mode: str):
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, check=True)
    kept, mapped, free = out.stdout.split()
    return kept == "True", int(mapped), int(free)


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc"
                    or tuple(map(int, platform.libc_ver()[1].split(".")[:2])) < (2, 33), reason="glibc 2.33+ (mallinfo2)")
def test_a_freed_20_mb_block_stays_in_the_heap_for_reuse():
    kept, mapped, free = _run("keep")
    assert kept and mapped < 20 * MB and free >= 20 * MB
    kept, mapped, free = _run("default")
    assert not kept and mapped >= 20 * MB and free < 20 * MB  # glibc's defaults: mapped alone, handed back

