#!/usr/bin/env python3
"""Symbolize and aggregate the host profiler's samples (src/profile.rs).

usage: profile.py E9_LOG HOST_ELF [TOP]

Reads the `prof: <rip> <ret>...` lines a `PAYLOAD_PROFILE=<ticks>` run
printed, resolves every address with `addr2line -f -i -C` (inline chains
included; return addresses minus one, so the call site), and prints the
functions by self samples (innermost frame of the RIP) and by inclusive
samples (anywhere in the stack, counted once per sample). Samples whose RIP
is where the run loop reopens interrupts after VM exit are the guest's own
time (the interrupt arrived in VMX non-root mode) and are reported apart.
"""
import collections
import subprocess
import sys


def main():
    log, elf = sys.argv[1], sys.argv[2]
    top = int(sys.argv[3]) if len(sys.argv) > 3 else 40
    samples, summary = [], ""
    with open(log, errors="replace") as f:
        for line in f:
            if line.startswith("prof: "):
                samples.append([int(a, 16) for a in line.split()[1:]])
            elif line.startswith("prof-summary:"):
                summary = line.strip()
    if not samples:
        print("profile: no samples in", log)
        return 1
    addrs = sorted({a if i == 0 else a - 1 for s in samples for i, a in enumerate(s) if a != 1})
    out = subprocess.run(
        ["addr2line", "-a", "-f", "-i", "-C", "-e", elf] + ["%x" % a for a in addrs],
        capture_output=True, text=True, check=True).stdout.splitlines()
    # Output: 0x<addr>, then (function, file:line) pairs, innermost first.
    chains, cur = {}, None
    i = 0
    while i < len(out):
        line = out[i]
        if line.startswith("0x"):
            cur = int(line, 16)
            chains[cur] = []
            i += 1
            continue
        fn = short(line)
        loc = out[i + 1] if i + 1 < len(out) else "?"
        chains[cur].append((fn, loc.rsplit("/", 1)[-1]))
        i += 2
    self_fn, self_line, incl = collections.Counter(), collections.Counter(), collections.Counter()
    guest = 0
    for s in samples:
        # Frame 0 is the sampled RIP (or GUEST_MARK, 1: the interrupt
        # arrived in VMX non-root mode); the rest are return addresses.
        frames = [chains.get(a - 1, []) for a in s[1:]]
        if s[0] == 1:
            guest += 1
            leaf = [("(guest)", "-")]
        else:
            leaf = chains.get(s[0], [("?", "?")])
        self_fn[leaf[0][0]] += 1
        self_line["%s (%s)" % leaf[0]] += 1
        seen = set()
        for chain in [leaf] + frames:
            for fn, _ in chain:
                if fn not in seen:
                    seen.add(fn)
                    incl[fn] += 1
    n = len(samples)
    print(summary)
    print("samples where the run loop reopened interrupts after a VM exit "
          "(guest time + entry/exit): %d (%.1f%%)" % (guest, 100.0 * guest / n))
    print("\n== self (innermost function at the sampled RIP) ==")
    for fn, c in self_fn.most_common(top):
        print("%6d %5.1f%%  %s" % (c, 100.0 * c / n, fn))
    print("\n== self by source line ==")
    for fn, c in self_line.most_common(top // 2):
        print("%6d %5.1f%%  %s" % (c, 100.0 * c / n, fn))
    print("\n== inclusive (anywhere in the stack) ==")
    for fn, c in incl.most_common(top):
        print("%6d %5.1f%%  %s" % (c, 100.0 * c / n, fn))
    return 0


def short(fn):
    """Drop generic arguments and hashes from a demangled Rust name."""
    out, depth = [], 0
    for ch in fn:
        if ch == "<":
            depth += 1
            if depth == 1:
                out.append("<..>")
        elif ch == ">":
            depth = max(0, depth - 1)
        elif depth == 0:
            out.append(ch)
    s = "".join(out)
    return s.replace("<..>::", "")


if __name__ == "__main__":
    sys.exit(main())
