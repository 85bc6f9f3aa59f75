#!/usr/bin/env bash
# Build KenLM's lmplz, query and build_binary (the references for benchmarks/kenlm_compare.py and
# benchmarks/arpa_scoring.py) from the kenlm
# source distribution on PyPI, into benchmarks/.kenlm/bin (git-ignored).
# Needs cmake, g++ and, on Debian/Ubuntu:
#   apt-get install libboost-program-options-dev libboost-system-dev libboost-thread-dev \
#                   libboost-test-dev zlib1g-dev libbz2-dev liblzma-dev
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
dest="$here/.kenlm"
url="https://files.pythonhosted.org/packages/02/6e/f4e159cef39ea4ef2244b4aa32857d447d60a5d0ee269e1b1f8d3723c03e/kenlm-0.3.0.tar.gz"
sha256="c4628bb9fb63c8a6f9240035b8b037385cfc404cb72e933cf48878291edac1e8"
mkdir -p "$dest"
cd "$dest"
if [ ! -f kenlm-0.3.0.tar.gz ]; then
  curl -fsSL -o kenlm-0.3.0.tar.gz.part "$url"
  echo "$sha256  kenlm-0.3.0.tar.gz.part" | sha256sum -c - >/dev/null
  mv kenlm-0.3.0.tar.gz.part kenlm-0.3.0.tar.gz
fi
rm -rf src && mkdir src && tar xzf kenlm-0.3.0.tar.gz -C src --strip-components 1
cmake -S src -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build --target lmplz query build_binary -j "$(nproc)" >/dev/null
mkdir -p bin && cp build/bin/lmplz build/bin/query build/bin/build_binary bin/
echo "built $dest/bin/lmplz, query and build_binary"
