"""numpy's AVX-512 kernels turned off on AMD Zen 4 only (lmpipe.flows.cpu_dispatch)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lmpipe.flows.cpu_dispatch import AVX512_FEATURES, VARIABLE, is_zen4, prefer_avx2_sort

FLAGS = "fpu sse sse2 avx avx2 fma bmi2"
ZEN4 = f"""processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 17
model name\t: AMD EPYC 9R14
flags\t\t: {FLAGS} avx512f avx512dq avx512bw avx512vl avx512_bf16

processor\t: 1
vendor_id\t: AuthenticAMD
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (ZEN4, True),
        (ZEN4.replace(" avx512f", ""), False),  # Zen 3: family 19h, no AVX-512
        (ZEN4.replace(": 25", ": 26"), False),  # Zen 5 (family 1Ah) stores compressed fast
        (ZEN4.replace("AuthenticAMD", "GenuineIntel").replace(": 25", ": 6"), False),
        ("", False),
        ("vendor_id\t: AuthenticAMD\ncpu family\t: ?\n", False),
    ],
)
def test_is_zen4(text: str, expected: bool) -> None:
    assert is_zen4(text) is expected


def _cpuinfo(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "cpuinfo"
    p.write_text(text)
    return p


def test_numpy_already_loaded_or_user_setting_is_left_alone(tmp_path: Path) -> None:
    assert "numpy" in sys.modules  # pytest's own plugins and this suite import it
    env: dict[str, str] = {}
    assert prefer_avx2_sort(env, _cpuinfo(tmp_path, ZEN4)) is False
    assert env == {}


def test_fresh_process_on_zen4_sets_the_variable_before_numpy(tmp_path: Path) -> None:
    """In a process that has not imported numpy: set on Zen 4, unless the user set it (even to
    nothing), and not on other CPUs; numpy then reports its AVX-512 levels off."""
    script = textwrap.dedent(
        """
        import json, os, sys
        from pathlib import Path
        from lmpipe.flows.cpu_dispatch import prefer_avx2_sort
        env = json.loads(sys.argv[2])
        done = prefer_avx2_sort(env, Path(sys.argv[1]))
        os.environ.update(env)
        import numpy
        from numpy._core._multiarray_umath import __cpu_features__ as f
        on = sorted(k for k in ("X86_V4", "AVX512_SKX") if f.get(k))
        print(json.dumps([done, env, on]))
        """
    )

    def run(text: str, env: str = "{}") -> list[object]:
        out = subprocess.run(
            [sys.executable, "-c", script, str(_cpuinfo(tmp_path, text)), env],
            capture_output=True,
            text=True,
            check=True,
        )
        return list(json.loads(out.stdout))

    assert run(ZEN4) == [True, {VARIABLE: AVX512_FEATURES}, []]
    assert run(ZEN4, f'{{"{VARIABLE}": ""}}')[:2] == [False, {VARIABLE: ""}]
    assert run(ZEN4.replace(": 25", ": 26"))[:2] == [False, {}]
