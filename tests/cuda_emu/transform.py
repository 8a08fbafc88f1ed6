#!/usr/bin/env python3
"""Turns one of pnn's .cu files into C++ for the CPU tier (tests/cuda_emu/cuda_emu.h):
every launch `kernel<<<grid, block[, smem[, stream]]>>>(args)` becomes
`pnn_emu::launch([&] { kernel(args); }, grid, block[, smem[, stream]])`, and every
`extern __shared__ T name[];` becomes a pointer to the launch's dynamic shared memory.
Usage: transform.py IN.cu OUT.cpp"""
import os
import re
import sys


def matching(text, start, open_ch, close_ch):
    """Index of the bracket closing the one at text[start]."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] == open_ch:
            depth += 1
        elif text[i] == close_ch:
            depth -= 1
            if depth == 0:
                return i
    raise SystemExit(f"transform.py: unbalanced {open_ch} at offset {start}")


def kernel_start(text, end):
    """Start of the kernel expression that ends at text[end] (a name, maybe with <template args>)."""
    i = end
    if text[i] == ">":  # template arguments
        depth = 0
        while True:
            if text[i] == ">":
                depth += 1
            elif text[i] == "<":
                depth -= 1
                if depth == 0:
                    break
            i -= 1
        i -= 1
    while i >= 0 and (text[i].isalnum() or text[i] in "_:"):
        i -= 1
    return i + 1


def transform(text):
    out, pos = [], 0
    while True:
        k = text.find("<<<", pos)
        if k < 0:
            out.append(text[pos:])
            return "".join(out)
        close = text.find(">>>", k)
        config = text[k + 3:close]
        j = close + 3
        while text[j].isspace():
            j += 1
        if text[j] != "(":
            raise SystemExit(f"transform.py: no arguments after the launch at offset {k}")
        args_end = matching(text, j, "(", ")")
        e = k - 1
        while text[e].isspace():
            e -= 1
        start = kernel_start(text, e)
        kernel = text[start:e + 1]
        args = text[j + 1:args_end]
        out.append(text[pos:start])
        out.append(f"pnn_emu::launch([&] {{ {kernel}({args}); }}, {config})")
        pos = args_end + 1


def main():
    src = open(sys.argv[1]).read()
    src = re.sub(r"extern\s+__shared__\s+(\w+)\s+(\w+)\s*\[\s*\]\s*;", r"\1 *\2 = PNN_EMU_DYN_SMEM(\1);", src)
    os.makedirs(os.path.dirname(os.path.abspath(sys.argv[2])), exist_ok=True)
    with open(sys.argv[2], "w") as f:
        f.write(f'#line 1 "{sys.argv[1]}"\n')
        f.write(transform(src))


main()
