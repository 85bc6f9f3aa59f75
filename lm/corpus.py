"""Corpora: the registry, a verified download-once cache, and reading text line by line.

A corpus is a named registry entry (``data/corpora.toml``: URL + sha256), a local file,
folder or glob (plain, ``.gz`` or ``.zip``), or explicit train/valid/test files. Text is read as
bytes cut into lines at ``\\n`` (whole lines in blocks of about ``READ_CHUNK`` bytes, a longer
line in pieces: ``iter_blocks``), decoded as strict UTF-8 (an error names the file and byte
offset) unless ``errors="replace"``, which counts what it replaced.
"""

from __future__ import annotations

import errno
import gzip
import io
import os
import re
import socket
import tomllib
import urllib.error
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from itertools import repeat
from pathlib import Path
from typing import Any

from lmpipe.lm.errors import CorpusError, DownloadError
from lmpipe.lm.fileio import atomic_path, sha256_file, sha256_text

# Package data (``lmpipe.data``, the repository's ``data/`` folder): the registry and the
# embedded copies of the default experiment's corpora.
DATA_PACKAGE = "lmpipe.data"
REGISTRY_FILE = "corpora.toml"
EMBEDDED_DIR = "corpora"
SPLITS = ("train", "valid", "test")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")
TEXT_SUFFIXES = (".txt", ".text", ".tokens", ".gz", ".zip", "")
READ_CHUNK = 1 << 20


@dataclass(frozen=True)
class RegistryEntry:
    name: str
    title: str
    url: str
    file: str
    sha256: str
    language: str
    tokenizer: str
    members: dict[str, str] = field(default_factory=dict)
    prefixes: tuple[str, ...] = ()
    min_freq: int = 1
    neural: dict[str, Any] = field(default_factory=dict)  # the corpus's own training settings


@dataclass(frozen=True)
class TextSource:
    """One text to read: a plain or gzip file, or a member of a zip archive."""

    path: Path
    member: str | None = None

    def __str__(self) -> str:
        return f"{self.path}:{self.member}" if self.member else str(self.path)


@dataclass(frozen=True)
class CorpusSource:
    """Where a corpus's text is: either ``all`` (split by the contiguous rule) or one list of
    sources per split. ``sha256`` identifies the content (a cache key component)."""

    name: str
    sha256: str
    parts: dict[str, tuple[TextSource, ...]]
    tokenizer: str = "char"
    prefixes: tuple[str, ...] = ()
    origin: str = ""
    min_freq: int = 1  # the corpus's own vocabulary policy (registry), unless the config says

    @property
    def has_own_split(self) -> bool:
        return "all" not in self.parts


def load_registry(path: Path | None = None) -> dict[str, RegistryEntry]:
    """The corpus registry: the packaged ``corpora.toml`` unless ``path`` names another."""
    if path is None:
        raw = tomllib.loads(
            resources.files(DATA_PACKAGE).joinpath(REGISTRY_FILE).read_text("utf-8")
        )
    else:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    return {
        name: RegistryEntry(
            name=name,
            title=e["title"],
            url=e["url"],
            file=e["file"],
            sha256=e["sha256"],
            language=e.get("language", ""),
            tokenizer=e.get("tokenizer", "char"),
            members=dict(e.get("members", {})),
            prefixes=tuple(e.get("prefixes", ())),
            min_freq=int(e.get("min_freq", 1)),
            neural=dict(e.get("neural", {})),
        )
        for name, e in raw.items()
    }


def check_name(name: str, what: str = "corpus name") -> str:
    """Refuse names that could escape the home folder (``../x``, ``/abs``) or are not plain."""
    if not NAME_RE.match(name) or ".." in name:
        raise CorpusError(
            f"{what} {name!r} is not a plain name (letters, digits, '_', '-', '.', '+'; "
            "no '/', no '..'); give a file with --train/--test or define it in the config"
        )
    return name


# ----------------------------------------------------------------------------- fetching


def embedded_path(entry: RegistryEntry) -> Path | None:
    """The copy of a registry file that ships inside the package, if there is one (the two
    corpora of the default experiment; ``data/corpora/PROVENANCE.md``)."""
    res = resources.files(DATA_PACKAGE).joinpath(EMBEDDED_DIR, entry.file)
    return Path(str(res)) if res.is_file() else None


def local_path(
    entry: RegistryEntry, cache_dir: Path, corpora_dir: Path | None = None
) -> Path | None:
    """Where a registry file already is on this machine, in look-up order: ``corpora_dir``
    (``$LMPIPE_CORPORA_DIR``), the home's download cache, the copy embedded in the package.
    Verified against the registry's sha256; None when it must be downloaded."""
    candidates = [corpora_dir / entry.file if corpora_dir is not None else None]
    candidates += [cache_dir / entry.file, embedded_path(entry)]
    for path in candidates:
        if path is not None and path.is_file():
            _verify(path, entry)
            return path
    return None


def fetch(entry: RegistryEntry, cache_dir: Path, corpora_dir: Path | None = None) -> Path:
    """The verified local path of a registry file (:func:`local_path`), else downloaded into
    the cache (temporary name, checked, then renamed: a partial or mismatching download is
    never kept). A download that cannot succeed now (no network: the name does not resolve,
    the connection is refused) raises a :class:`DownloadError` that is not ``transient``, so
    nothing retries it; timeouts and server errors are ``transient``."""
    found = local_path(entry, cache_dir, corpora_dir)
    if found is not None:
        return found
    cached = cache_dir / entry.file
    try:
        with atomic_path(cached) as tmp:
            _download(entry.url, tmp)
            got = sha256_file(tmp)
            if got != entry.sha256:
                raise DownloadError(
                    f"download of {entry.url} has sha256 {got}, expected {entry.sha256}; "
                    f"nothing was kept: retry, or put a verified {entry.file} in "
                    "$LMPIPE_CORPORA_DIR",
                    transient=False,
                )
    except OSError as e:
        where = corpora_dir or "$LMPIPE_CORPORA_DIR"
        raise DownloadError(
            f"cannot download corpus {entry.name!r} from {entry.url} ({_reason(e)}); offline? "
            f"put {entry.file} (sha256 {entry.sha256[:12]}…) into {where} or into {cache_dir}",
            transient=_transient(e),
        ) from e
    return cached


def _download(url: str, dest: Path) -> None:
    import urllib.request  # http.client, email and ssl: imported when a download happens

    with urllib.request.urlopen(url, timeout=30) as resp, open(dest, "wb") as out:
        while block := resp.read(READ_CHUNK):
            out.write(block)


def _reason(e: OSError) -> str:
    if isinstance(e, urllib.error.HTTPError):
        return f"HTTP {e.code} {e.reason}"
    if isinstance(e, urllib.error.URLError):
        return str(e.reason)
    return e.strerror or type(e).__name__


def _transient(e: OSError) -> bool:
    """Whether a failed download may succeed if tried again in a moment: a timeout, a reset
    connection or a server error (5xx, 429) may; no network at all (the host name does not
    resolve, the connection is refused, the network is unreachable) or a 4xx answer will not."""
    if isinstance(e, urllib.error.HTTPError):
        return e.code >= 500 or e.code == 429
    cause = e.reason if isinstance(e, urllib.error.URLError) else e
    if isinstance(cause, socket.gaierror | ConnectionRefusedError):
        return False
    if isinstance(cause, OSError) and cause.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        return False
    return isinstance(cause, TimeoutError | ConnectionError | socket.timeout) or not isinstance(
        cause, OSError
    )


def _verify(path: Path, entry: RegistryEntry) -> None:
    got = sha256_file(path)
    if got != entry.sha256:
        raise CorpusError(
            f"{path} has sha256 {got}, expected {entry.sha256} for corpus {entry.name!r}; "
            "replace it with the published file or remove it to download again"
        )


# ----------------------------------------------------------------------------- resolving


def resolve_registry(name: str, cache_dir: Path, corpora_dir: Path | None = None) -> CorpusSource:
    registry = load_registry()
    if name not in registry:
        check_name(name)
        raise CorpusError(
            f"unknown corpus {name!r}; known corpora: {', '.join(sorted(registry))} "
            "(or give files with --train/--test, or define the corpus in the config)"
        )
    entry = registry[name]
    path = fetch(entry, cache_dir, corpora_dir)
    members: dict[str, str | None] = {**entry.members} if entry.members else {"all": None}
    parts: dict[str, tuple[TextSource, ...]] = {
        split: (TextSource(path, member),) for split, member in members.items()
    }
    return CorpusSource(
        name=name,
        sha256=entry.sha256,
        parts=parts,
        tokenizer=entry.tokenizer,
        prefixes=entry.prefixes,
        origin=entry.url,
        min_freq=entry.min_freq,
    )


def expand_path(spec: str | Path) -> tuple[TextSource, ...]:
    """A file, a folder (every text file below it, sorted) or a glob, as text sources."""
    spec_s = str(spec)
    if any(ch in spec_s for ch in "*?["):
        paths = sorted(p for p in _glob(spec_s) if p.is_file())
        if not paths:
            raise CorpusError(f"the pattern {spec_s!r} matches no file; check the path")
    else:
        p = Path(spec_s)
        if not p.exists():
            raise CorpusError(f"corpus path {spec_s} does not exist; check the path")
        if p.is_dir():
            paths = sorted(
                q
                for q in p.rglob("*")
                if q.is_file()
                and not any(part.startswith(".") for part in q.relative_to(p).parts)
                and q.suffix.lower() in TEXT_SUFFIXES
            )
            if not paths:
                raise CorpusError(
                    f"folder {p} holds no text files (.txt, .gz, .zip or no suffix); "
                    "point at the folder that holds the corpus"
                )
        elif not p.is_file():
            raise CorpusError(
                f"corpus path {spec_s} is not a regular file (a pipe, a device or a socket): "
                "lmpipe hashes a corpus and reads it more than once; save it to a file first"
            )
        else:
            paths = [p]
    out: list[TextSource] = []
    for p in _distinct(paths):
        if p.suffix.lower() == ".zip":
            out.extend(TextSource(p, m) for m in _zip_text_members(p))
        else:
            out.append(TextSource(p))
    return tuple(out)


def _glob(spec: str) -> list[Path]:
    """The files a glob names. ``**`` does not descend into symlinked folders (pathlib's rule;
    the glob module follows them and never ends on a symlink loop)."""
    parts = Path(spec).parts
    first = next(i for i, part in enumerate(parts) if any(ch in part for ch in "*?["))
    base = Path(*parts[:first]) if first else Path(".")
    return list(base.glob(str(Path(*parts[first:]))))


def _distinct(paths: list[Path]) -> list[Path]:
    """Each file once, in order, however many links or spellings lead to it."""
    seen: set[Path] = set()
    out = []
    for p in paths:
        real = p.resolve()
        if real not in seen:
            seen.add(real)
            out.append(p)
    return out


def _zip_text_members(path: Path) -> list[str]:
    try:
        with zipfile.ZipFile(path) as z:
            names = [
                i.filename
                for i in z.infolist()
                if not i.is_dir()
                and not Path(i.filename).name.startswith(".")
                and not i.filename.startswith("__MACOSX/")
            ]
    except (zipfile.BadZipFile, OSError) as e:
        raise CorpusError(f"{path} is not a readable zip archive ({e}); re-download it") from e
    if not names:
        raise CorpusError(f"zip archive {path} holds no file; check the archive")
    return sorted(names)


def resolve_files(
    name: str,
    all_text: str | Path | None = None,
    train: str | Path | None = None,
    valid: str | Path | None = None,
    test: str | Path | None = None,
    tokenizer: str = "char",
    prefixes: tuple[str, ...] = (),
) -> CorpusSource:
    """A user's own corpus: one text split by the contiguous rule, or explicit split files
    (train and test required; valid optional)."""
    check_name(name)
    parts: dict[str, tuple[TextSource, ...]] = {}
    if all_text is not None:
        parts["all"] = expand_path(all_text)
    else:
        if train is None or test is None:
            raise CorpusError(f"corpus {name!r}: give either one text or both train and test files")
        parts["train"] = expand_path(train)
        parts["test"] = expand_path(test)
        if valid is not None:
            parts["valid"] = expand_path(valid)
    digest = sha256_text(
        *(f"{split}={src}:{sha256_file(src.path)}" for split, srcs in parts.items() for src in srcs)
    )
    origin = ", ".join(f"{k}={';'.join(map(str, v))}" for k, v in parts.items())
    return CorpusSource(
        name=name, sha256=digest, parts=parts, tokenizer=tokenizer, prefixes=prefixes, origin=origin
    )


# ----------------------------------------------------------------------------- reading


@dataclass
class DecodeStats:
    """Counts gathered while reading; ``replaced`` (bytes that were not UTF-8, each run of them
    now one U+FFFD) is non-zero only with errors="replace"."""

    replaced: int = 0
    raw_lines: int = 0
    # files that began with a UTF-8 byte-order mark (dropped: it is no character of the text)
    bom: set[str] = field(default_factory=set)
    # files whose lines end in \r alone (classic Mac OS): read as one line, since lines end at \n
    cr_only: set[str] = field(default_factory=set)

    def add(self, other: DecodeStats) -> None:
        """Count ``other``'s reading too (files read by another pass)."""
        self.replaced += other.replaced
        self.raw_lines += other.raw_lines
        self.bom |= other.bom
        self.cr_only |= other.cr_only


def _open_binary(src: TextSource) -> io.BufferedIOBase:
    path = src.path
    if not path.exists():
        raise CorpusError(f"corpus file {path} does not exist; check the path")
    if src.member is not None:
        try:
            z = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as e:
            raise CorpusError(f"{path} is not a readable zip archive ({e}); re-download it") from e
        try:
            return z.open(src.member)  # type: ignore[return-value]
        except KeyError as e:
            raise CorpusError(
                f"zip archive {path} has no member {src.member!r} "
                f"(it has: {', '.join(z.namelist()[:5])}); use the published archive"
            ) from e
    if path.suffix.lower() == ".gz":
        return gzip.open(path, "rb")
    return open(path, "rb")


def iter_lines(
    src: TextSource, errors: str = "strict", stats: DecodeStats | None = None
) -> Iterator[str]:
    """Decoded lines of ``src`` without their newline (one whole line in memory at a time; see
    ``iter_pieces`` for lines too long for that).

    Raises ``CorpusError`` naming the file and byte offset on bytes that are not UTF-8
    (``errors="strict"``), on NUL bytes (a binary file), and on a corrupt archive."""
    parts: list[str] = []
    for text, ends_line in iter_pieces(src, errors, stats):
        parts.append(text)
        if ends_line:
            yield "".join(parts)
            parts = []


Block = list[str] | tuple[str, bool]


def iter_pieces(
    src: TextSource,
    errors: str = "strict",
    stats: DecodeStats | None = None,
    chunk: int | None = None,
) -> Iterator[tuple[str, bool]]:
    """The text of ``src`` as ``(piece, ends_line)`` pairs, streamed with bounded memory: a line
    comes whole or, once it runs past ``chunk`` bytes without a newline, as pieces of at most
    ``chunk`` bytes (never cutting a UTF-8 sequence); its last piece is flagged ``ends_line`` and
    has no newline (``\n``, ``\r\n``). A file that does
    not end with a newline still ends its last line; an empty file has no line.

    Same errors as ``iter_lines``; byte offsets count from the start of the (decompressed) file."""
    for block in iter_blocks(src, errors, stats, chunk):
        if isinstance(block, list):
            yield from zip(block, repeat(True))
        else:
            yield block


def iter_blocks(
    src: TextSource,
    errors: str = "strict",
    stats: DecodeStats | None = None,
    chunk: int | None = None,
) -> Iterator[Block]:
    """The text of ``src`` as blocks, for reading at the speed of ``bytes.split``: a list of
    whole lines (each without its newline) of about ``chunk`` bytes in all, or, for a line
    longer than ``chunk``, that line's pieces one by one as ``(piece, ends_line)`` pairs (see
    ``iter_pieces``), so that memory stays bounded whatever a line's length.

    Same errors as ``iter_lines``; byte offsets count from the start of the (decompressed) file."""
    stats = stats if stats is not None else DecodeStats()
    chunk = chunk or READ_CHUNK
    offset = 0  # of data[0] in the file
    data = b""  # read, not yet given out: whole lines are given out as soon as they are read
    long_line = False  # inside a line longer than ``chunk``, given out in pieces
    newline = carriage = False  # whether the file holds a \n, a \r
    try:
        with _open_binary(src) as f:
            block = _drop_bom(f.read(chunk), src, stats)
            offset = 3 if str(src) in stats.bom else 0
            while True:
                if b"\x00" in block:
                    at = offset + len(data) + block.index(b"\x00")
                    raise CorpusError(
                        f"{src} contains NUL bytes at byte {at}: "
                        "it looks like a binary file, not text; point at the text file"
                    )
                newline = newline or b"\n" in block
                carriage = carriage or b"\r" in block
                eof = not block
                if eof and carriage and not newline:
                    stats.cr_only.add(str(src))
                data += block
                while data:
                    if long_line:
                        nl = data.find(b"\n", 0, chunk + 1)  # the line ends within a piece
                        if nl >= 0 or (eof and len(data) <= chunk):
                            end = nl + 1 if nl >= 0 else len(data)
                            stats.raw_lines += 1
                            text = _decode(data[:end], src, offset, errors, stats)
                            yield _without_newline(text), True
                            data, offset, long_line = data[end:], offset + end, False
                            continue
                        if len(data) < chunk and not eof:
                            break
                        cut = _utf8_cut(data[:chunk])
                        if data[cut - 1 : cut] == b"\r":  # perhaps half of a \r\n
                            cut -= 1
                        yield _decode(data[:cut], src, offset, errors, stats), False
                        data, offset = data[cut:], offset + cut
                        continue
                    end = data.rfind(b"\n") + 1
                    if not end and len(data) >= chunk:  # a chunk's worth, no newline: long
                        long_line = True
                        continue
                    if not end and eof:  # the last line has no newline
                        end = len(data)
                    if end:
                        lines = _decode(data[:end], src, offset, errors, stats).split("\n")
                        if data[end - 1 : end] == b"\n":
                            lines.pop()  # the empty text after the last newline
                        if carriage:
                            lines = [ln[:-1] if ln.endswith("\r") else ln for ln in lines]
                        stats.raw_lines += len(lines)
                        yield lines
                        data, offset = data[end:], offset + end
                        continue
                    break
                if eof:
                    if long_line:  # the file's last line ran to its end in pieces
                        stats.raw_lines += 1
                        yield "", True
                    return
                block = f.read(chunk)
    except (gzip.BadGzipFile, zlib.error, EOFError, zipfile.BadZipFile) as e:
        raise CorpusError(f"{src} is a corrupt or truncated archive ({e}); re-create it") from e


def _without_newline(text: str) -> str:
    text = text[:-1] if text.endswith("\n") else text
    return text[:-1] if text.endswith("\r") else text


def _drop_bom(block: bytes, src: TextSource, stats: DecodeStats) -> bytes:
    """The first line without a UTF-8 byte-order mark (EF BB BF, which some editors write
    first); a UTF-16 one means the file is not UTF-8 at all."""
    if block.startswith(b"\xef\xbb\xbf"):
        stats.bom.add(str(src))
        return block[3:]
    if block[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise CorpusError(
            f"{src} is UTF-16 text (it starts with a UTF-16 byte-order mark), not UTF-8; "
            "convert it, e.g. iconv -f UTF-16 -t UTF-8 FILE > FILE.utf8.txt"
        )
    return block


def _utf8_cut(raw: bytes) -> int:
    """Where an incomplete UTF-8 sequence at the end of ``raw`` starts (``len(raw)`` if none)."""
    n = len(raw)
    for i in range(n - 1, max(n - 4, -1), -1):
        b = raw[i]
        if b < 0x80:
            return n
        if b >= 0xC0:  # a lead byte: is its sequence complete?
            need = 2 if b < 0xE0 else 3 if b < 0xF0 else 4
            return i if n - i < need else n
    return n


def _decode(raw: bytes, src: TextSource, offset: int, errors: str, stats: DecodeStats) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        if errors != "replace":
            raise CorpusError(
                f"{src} is not valid UTF-8 at byte {offset + e.start} "
                f"(bytes {raw[e.start : e.end]!r}); fix the file or pass --encoding-errors replace"
            ) from e
    out: list[str] = []
    pos = 0
    while True:
        try:
            out.append(raw[pos:].decode("utf-8"))
            return "".join(out)
        except UnicodeDecodeError as e:
            out.append(raw[pos : pos + e.start].decode("utf-8"))
            out.append("\ufffd")
            stats.replaced += e.end - e.start  # bytes replaced (docs/design.md §2: "says how many")
            pos += e.end


def source_bytes(srcs: tuple[TextSource, ...]) -> int:
    return sum(os.path.getsize(s.path) for s in srcs)
