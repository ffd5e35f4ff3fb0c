"""CLIP's byte-level BPE tokenizer, written from the reference without importing it.

Reference: OpenAI CLIP ``clip/simple_tokenizer.py`` and ``clip/clip.py:tokenize``
(https://github.com/openai/CLIP, MIT). The behaviour reproduced here:

1. clean: ``ftfy.fix_text`` (see the fallback below), HTML entities unescaped twice, stripped;
   runs of whitespace collapsed to one space; lower-cased;
2. split with CLIP's pattern ``<|startoftext|>|<|endoftext|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+``
   (case-insensitive): words of letters, single digits, runs of other symbols;
3. each piece -> its UTF-8 bytes -> GPT-2's reversible byte-to-character alphabet, the last character
   marked with ``</w>``, merged greedily by the 48,894 ranked merges of ``bpe_simple_vocab_16e6.txt.gz``;
4. ids: 256 byte characters, the same 256 with ``</w>``, the merges in rank order, then
   ``<|startoftext|>`` = 49406 and ``<|endoftext|>`` = 49407 (49,408 in all); a text becomes
   ``[SOT, ids..., EOT]`` zero-padded to the 77-token context.

The vocabulary file is shipped in ``vip_rl/encoders/assets/`` with OpenAI's MIT licence (nothing is
downloaded). Optional dependencies, both used when installed:

* ``regex`` (installed with ``transformers``, i.e. ``vip-rl[text]``) for ``\\p{L}`` / ``\\p{N}``. Without it the
  same classes are built once from :mod:`unicodedata` (every code point whose category is ``L*`` / ``N*``)
  for the standard :mod:`re` module: identical splits, up to the Unicode version of the two databases.
* ``ftfy`` (``vip-rl[clip]``) for ``fix_text``. Without it a documented subset runs
  (:func:`basic_fix_text`): ftfy's tables for curly quotes, Latin ligatures, full/half-width forms and control
  characters, then NFC. What it skips is ftfy's mojibake repair (text decoded with the wrong codec, e.g.
  ``"Ã©"`` for ``"é"``) and terminal escape removal; instructions typed in UTF-8 tokenize the same either way.

Example:
    >>> tok = ClipTokenizer()
    >>> tok.encode("a photo of a cat")
    [320, 1125, 539, 320, 2368]
    >>> tok(["a photo of a cat"])[0, :7].tolist()
    [49406, 320, 1125, 539, 320, 2368, 49407]
"""
from __future__ import annotations

import functools
import gzip
import html
import os
import re
import sys
import unicodedata
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

VOCAB_FILE = Path(__file__).resolve().parent / "assets" / "bpe_simple_vocab_16e6.txt.gz"
NUM_MERGES = 49152 - 256 - 2
"""Merges CLIP reads from the vocabulary file (its lines 1 .. 48,894; line 0 is a version header)."""
VOCAB_SIZE = 2 * 256 + NUM_MERGES + 2
"""49,408: byte symbols, byte symbols ending a word, merges, SOT, EOT."""
CONTEXT_LENGTH = 77
SOT_TOKEN = VOCAB_SIZE - 2  # 49406
EOT_TOKEN = VOCAB_SIZE - 1  # 49407
_SOT_TEXT, _EOT_TEXT = "<|startoftext|>", "<|endoftext|>"
_END = "</w>"


def byte_alphabet() -> list[tuple[int, str]]:
    """GPT-2's reversible byte -> printable character table, in CLIP's vocabulary order.

    The printable Latin-1 bytes (``!``..``~``, ``¡``..``¬``, ``®``..``ÿ``) stand for themselves and come first;
    the other 68 bytes (controls, space, soft hyphen, ...) follow in byte order, mapped to ``chr(256 + k)``.
    """
    printable = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    shifted = [b for b in range(256) if b not in set(printable)]
    return [(b, chr(b)) for b in printable] + [(b, chr(256 + k)) for k, b in enumerate(shifted)]


# ---------------------------------------------------------------------------------------------- cleaning
def _fix_text_table() -> dict[int, str | None]:
    """ftfy 6's character tables (``ftfy/chardata.py``): control chars, ligatures, widths, curly quotes."""
    table: dict[int, str | None] = {}
    for code in [*range(0x00, 0x09), 0x0B, *range(0x0E, 0x20), 0x7F, *range(0x206A, 0x2070), 0xFEFF, *range(0xFFF9, 0xFFFD)]:
        table[code] = None
    for char in "ĲĳǱǲǳǄǅǆǇǈǉǊǋǌﬀﬁﬂﬃﬄﬆ":
        table[ord(char)] = unicodedata.normalize("NFKC", char)
    table[ord("ŉ")] = "'n"  # ftfy: "ʼn", whose apostrophe its quote step then straightens
    table[ord("ﬅ")] = "ſt"
    table[0x3000] = " "
    for code in range(0xFF01, 0xFFF0):
        alternate = unicodedata.normalize("NFKC", chr(code))
        if alternate != chr(code):
            table[code] = alternate
    for code in [0x02BC, *range(0x2018, 0x201C)]:
        table[code] = "'"
    for code in range(0x201C, 0x2020):
        table[code] = '"'
    return table


@functools.lru_cache(maxsize=1)
def _cached_fix_table() -> dict[int, str | None]:
    return _fix_text_table()


def basic_fix_text(text: str) -> str:
    """The ftfy-free subset of ``ftfy.fix_text`` used when ftfy is not installed (see the module docstring)."""
    return unicodedata.normalize("NFC", text.translate(_cached_fix_table()))


def _resolve_fix_text() -> Callable[[str], str]:
    try:
        import ftfy
    except ImportError:
        return basic_fix_text
    return ftfy.fix_text


def clean_text(text: str, *, fix_text: Callable[[str], str] | None = None) -> str:
    """CLIP's cleaning: fix the text, unescape HTML twice, collapse whitespace, strip, lower-case."""
    fixed = (fix_text or _resolve_fix_text())(text)
    fixed = html.unescape(html.unescape(fixed)).strip()
    return re.sub(r"\s+", " ", fixed).strip().lower()


# ---------------------------------------------------------------------------------------------- splitting
def _class_of(categories: str) -> str:
    """A ``re`` character class body covering every code point whose category starts with one of ``categories``."""
    ranges: list[tuple[int, int]] = []
    start = None
    for code in range(sys.maxunicode + 2):
        inside = code <= sys.maxunicode and unicodedata.category(chr(code))[0] in categories
        if inside and start is None:
            start = code
        elif not inside and start is not None:
            ranges.append((start, code - 1))
            start = None
    return "".join(re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges)


@functools.lru_cache(maxsize=2)
def split_pattern(use_regex: bool | None = None) -> Any:
    """CLIP's pre-tokenisation pattern, compiled with ``regex`` (default when installed) or ``re``.

    Args:
        use_regex: ``True`` requires the ``regex`` module, ``False`` builds the ``re`` form, ``None`` picks.
    """
    specials = r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d"
    if use_regex is not False:
        try:
            import regex
        except ImportError:
            if use_regex:
                raise
        else:
            return regex.compile(specials + r"|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+", regex.IGNORECASE)
    letters, numbers = _class_of("L"), _class_of("N")
    return re.compile(f"{specials}|[{letters}]+|[{numbers}]|[^\\s{letters}{numbers}]+", re.IGNORECASE)


# ---------------------------------------------------------------------------------------------- the tokenizer
class ClipTokenizer:
    """CLIP's tokenizer: ``list[str] -> LongTensor [B, context_length]`` (``[SOT, ..., EOT, 0, ...]``).

    Args:
        vocab_path: the gzipped merges file; default: the copy shipped in ``vip_rl/encoders/assets/``.
        fix_text: text fixer; default ``ftfy.fix_text`` when installed, else :func:`basic_fix_text`.
        use_regex: see :func:`split_pattern`.

    Raises:
        FileNotFoundError: missing vocabulary file. ValueError: a file that is not CLIP's merges list.
    """

    def __init__(self, vocab_path: str | os.PathLike[str] | None = None, *, fix_text: Callable[[str], str] | None = None,
                 use_regex: bool | None = None) -> None:
        path = Path(VOCAB_FILE if vocab_path is None else vocab_path)
        if not path.is_file():
            raise FileNotFoundError(f"CLIP vocabulary file not found: {path}")
        try:
            lines = gzip.decompress(path.read_bytes()).decode("utf-8").split("\n")
        except (OSError, EOFError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path}: not a gzipped UTF-8 BPE merges file ({exc})") from exc
        merges = [tuple(line.split()) for line in lines[1 : NUM_MERGES + 1]]
        if len(merges) != NUM_MERGES or any(len(pair) != 2 for pair in merges):
            bad = next((i + 1 for i, pair in enumerate(merges) if len(pair) != 2), len(merges))
            raise ValueError(f"{path}: expected {NUM_MERGES} merge lines of two symbols after the header, got a problem at line {bad} "
                             f"({len(merges)} lines read)")
        alphabet = byte_alphabet()
        self._byte_char = {b: c for b, c in alphabet}
        symbols = [c for _, c in alphabet] + [c + _END for _, c in alphabet] + [a + b for a, b in merges] + [_SOT_TEXT, _EOT_TEXT]
        self.vocab: dict[str, int] = {symbol: i for i, symbol in enumerate(symbols)}
        self._symbols = symbols
        self._ranks: dict[tuple[str, str], int] = {pair: rank for rank, pair in enumerate(merges)}  # type: ignore[misc]
        self._fix_text = fix_text or _resolve_fix_text()
        self._pattern = split_pattern(use_regex)
        self._cache: dict[str, list[int]] = {}
        self.vocab_size = len(symbols)

    # one piece (already mapped to the byte alphabet) -> BPE symbols
    def _merge(self, piece: str) -> list[str]:
        symbols = list(piece[:-1]) + [piece[-1] + _END]
        while len(symbols) > 1:
            ranked = [(self._ranks.get(pair, NUM_MERGES), pair) for pair in zip(symbols, symbols[1:])]
            rank, best = min(ranked, key=lambda item: item[0])
            if rank == NUM_MERGES:
                break
            merged: list[str] = []
            i = 0
            while i < len(symbols):  # every non-overlapping occurrence, left to right
                if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == best:
                    merged.append(symbols[i] + symbols[i + 1])
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            symbols = merged
        return symbols

    def _piece_ids(self, piece: str) -> list[int]:
        ids = self._cache.get(piece)
        if ids is None:
            if piece in (_SOT_TEXT, _EOT_TEXT):  # CLIP keeps the special strings whole
                ids = [self.vocab[piece]]
            else:
                mapped = "".join(self._byte_char[b] for b in piece.encode("utf-8"))
                ids = [self.vocab[s] for s in self._merge(mapped)]
            self._cache[piece] = ids
        return ids

    def encode(self, text: str) -> list[int]:
        """One string -> its BPE ids, without SOT/EOT.

        Raises:
            TypeError: ``text`` is not a str.
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__} {text!r:.60}")
        ids: list[int] = []
        for piece in self._pattern.findall(clean_text(text, fix_text=self._fix_text)):
            ids.extend(self._piece_ids(piece))
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        """BPE ids -> text (``</w>`` becomes a space; SOT/EOT are kept as their strings)."""
        byte_of = {c: b for b, c in self._byte_char.items()}
        text = "".join(self._symbols[int(i)] for i in ids)
        return bytes(byte_of[c] for c in text).decode("utf-8", errors="replace").replace(_END, " ")

    def token_lists(self, texts: Sequence[str], *, context_length: int = CONTEXT_LENGTH, truncate: bool = False) -> list[list[int]]:
        """``[SOT, ids..., EOT]`` per text (unpadded).

        Raises:
            TypeError: ``texts`` is a single str or holds non-strings.
            ValueError: a text needs more than ``context_length`` tokens and ``truncate`` is False.
        """
        if isinstance(texts, str) or not isinstance(texts, Sequence):
            raise TypeError(f"texts must be a list of strings, got {type(texts).__name__} {texts!r:.60}")
        if isinstance(context_length, bool) or not isinstance(context_length, int) or context_length < 2:
            raise ValueError(f"context_length must be an int >= 2, got {context_length!r}")
        rows = []
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"texts[{i}] must be a str, got {type(text).__name__} {text!r:.60}")
            row = [SOT_TOKEN, *self.encode(text), EOT_TOKEN]
            if len(row) > context_length:
                if not truncate:
                    raise ValueError(f"texts[{i}] = {text!r:.80} needs {len(row)} tokens with SOT/EOT; CLIP's context holds "
                                     f"{context_length} (shorten it, or pass truncate=True)")
                row = row[: context_length - 1] + [EOT_TOKEN]
            rows.append(row)
        return rows

    def __call__(self, texts: Sequence[str], *, context_length: int = CONTEXT_LENGTH, truncate: bool = False) -> torch.Tensor:
        """``list[str]`` (B) -> int64 ``[B, context_length]``, zero-padded (``clip.tokenize``; CLIP returns int32).

        Raises:
            TypeError / ValueError: see :meth:`token_lists`.
        """
        rows = self.token_lists(texts, context_length=context_length, truncate=truncate)
        out = torch.zeros(len(rows), context_length, dtype=torch.long)
        for i, row in enumerate(rows):
            out[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        return out


@functools.lru_cache(maxsize=1)
def default_tokenizer() -> ClipTokenizer:
    """The shipped vocabulary's tokenizer, built once per process (about 0.2 s)."""
    return ClipTokenizer()
