"""numpy's AVX2 kernels instead of its AVX-512 ones on AMD Zen 4, set once as the command starts.

numpy sorts with x86-simd-sort, whose AVX-512 kernels store each partition with a
compress-to-memory (``vpcompressq``); Zen 4 (AMD family 19h, the first with AVX-512) runs that
instruction in microcode at ~100+ cycles (AMD's Zen 4 optimization guide, 2.11.2: "avoid the
memory destination form of COMPRESS"; numpy/x86-simd-sort#6, the JDK disables the same kernels
there). ``np.sort`` of 930 k int64 takes 47 ms on such a CPU against 9.6 ms with numpy's AVX2
kernels (2-core AMD EPYC, 2026-12-04), and the in-memory n-gram fit sorts in every order
(counting, the trie): PTB's whole ``lmpipe ngram`` went from 1.74 s to 1.43 s. Zen 4 runs
512-bit arithmetic as two 256-bit halves, so numpy's other kernels lose nothing by AVX2.

numpy reads ``NPY_DISABLE_CPU_FEATURES`` once, when it is first imported, and offers no other
switch: so the command line sets it, before anything imports numpy, unless the user set it (to
anything, empty included: theirs wins) or numpy is already loaded. numpy 2.4 names its AVX-512
levels ``X86_V4``/``AVX512_ICL``/``AVX512_SPR``, earlier releases ``AVX512F``..``AVX512_SPR``;
names a release does not know are skipped silently, so both lists are given. Child processes
(Dask workers, flow runs started by ``lmpipe serve``) inherit it.
"""

from __future__ import annotations

import sys
from collections.abc import MutableMapping
from pathlib import Path

VARIABLE = "NPY_DISABLE_CPU_FEATURES"
AVX512_FEATURES = (
    "X86_V4 AVX512_ICL AVX512_SPR "  # numpy >= 2.4
    "AVX512F AVX512CD AVX512_SKX AVX512_CLX AVX512_CNL"  # numpy < 2.4
)
ZEN4_FAMILY = 0x19  # Zen 3 and Zen 4; only Zen 4 has AVX-512. Zen 5 (0x1A) fixed the compress.


def is_zen4(cpuinfo: str) -> bool:
    """Whether ``/proc/cpuinfo``'s text describes an AMD family 19h CPU with AVX-512."""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        if not line.strip():
            break  # the first processor's block says it for all
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    try:
        family = int(fields.get("cpu family", ""))
    except ValueError:
        return False
    return (
        fields.get("vendor_id") == "AuthenticAMD"
        and family == ZEN4_FAMILY
        and "avx512f" in fields.get("flags", "").split()
    )


def prefer_avx2_sort(
    environ: MutableMapping[str, str], cpuinfo: Path = Path("/proc/cpuinfo")
) -> bool:
    """Turn numpy's AVX-512 kernels off on Zen 4 (see the module's note); True if it did."""
    if VARIABLE in environ or "numpy" in sys.modules:
        return False  # the user's setting wins; a loaded numpy has read its features already
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:  # not Linux, or no /proc: leave numpy as it is
        return False
    if not is_zen4(text):
        return False
    environ[VARIABLE] = AVX512_FEATURES
    return True
