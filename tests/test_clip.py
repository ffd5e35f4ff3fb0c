"""Tests of the CLIP ResNet encoder (vip_rl.encoders.clip), its tokenizer and the official LIV / CLIP loaders.

The checkpoints are synthetic (random weights) in the official layouts, with every key of CLIP's
``clip/model.py`` (written out here from CLIP's naming, not from our modules); a reduced-width model keeps the
tests fast and one check covers the full RN50 key set. The forward pass is compared with a plain functional
transcription of CLIP's ``ModifiedResNet`` / ``encode_text`` (``F.multi_head_attention_forward`` for the pool,
an explicit -inf causal mask over all 77 positions for the text).
"""
from __future__ import annotations

import csv
import re
import gzip
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vip_rl.encoders import load_encoder, load_official_clip, load_official_liv, save_encoder
from vip_rl.encoders.clip import CLIP_MEAN, CLIP_STD, RN50, ClipDims, encoder_to_clip_state
from vip_rl.encoders.clip_tokenizer import EOT_TOKEN, SOT_TOKEN, VOCAB_SIZE, ClipTokenizer, basic_fix_text, default_tokenizer
from vip_rl.encoders.factory import clip_config, encoder_from_config

TINY = ClipDims(embed_dim=32, image_resolution=64, vision_layers=(1, 2, 2, 1), vision_width=8, vision_heads=4,
                transformer_width=128, transformer_heads=2, transformer_layers=2)
"""Heads follow CLIP's convention (``width * 32 // 64`` and ``width // 64``), so the loader infers the same dims."""


# ----------------------------------------------------------------------------------------------- synthetic files
def clip_key_shapes(dims: ClipDims) -> dict[str, tuple[int, ...]]:
    """Every key of OpenAI CLIP's ResNet ``state_dict()`` with its shape, written from ``clip/model.py``."""
    shapes: dict[str, tuple[int, ...]] = {}

    def bn(prefix: str, channels: int) -> None:
        for name in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{prefix}.{name}"] = (channels,)
        shapes[f"{prefix}.num_batches_tracked"] = ()

    w = dims.vision_width
    shapes["visual.conv1.weight"] = (w // 2, 3, 3, 3)
    bn("visual.bn1", w // 2)
    shapes["visual.conv2.weight"] = (w // 2, w // 2, 3, 3)
    bn("visual.bn2", w // 2)
    shapes["visual.conv3.weight"] = (w, w // 2, 3, 3)
    bn("visual.bn3", w)
    inplanes = w
    for stage, count in enumerate(dims.vision_layers, start=1):
        planes = w * 2 ** (stage - 1)
        for i in range(count):
            p = f"visual.layer{stage}.{i}"
            shapes[f"{p}.conv1.weight"] = (planes, inplanes, 1, 1)
            bn(f"{p}.bn1", planes)
            shapes[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
            bn(f"{p}.bn2", planes)
            shapes[f"{p}.conv3.weight"] = (planes * 4, planes, 1, 1)
            bn(f"{p}.bn3", planes * 4)
            if i == 0:  # stride 2, or inplanes != planes * 4 in layer1
                shapes[f"{p}.downsample.0.weight"] = (planes * 4, inplanes, 1, 1)
                bn(f"{p}.downsample.1", planes * 4)
            inplanes = planes * 4
    feat, grid = w * 32, dims.image_resolution // 32
    shapes["visual.attnpool.positional_embedding"] = (grid * grid + 1, feat)
    for name in ("q_proj", "k_proj", "v_proj"):
        shapes[f"visual.attnpool.{name}.weight"] = (feat, feat)
        shapes[f"visual.attnpool.{name}.bias"] = (feat,)
    shapes["visual.attnpool.c_proj.weight"] = (dims.embed_dim, feat)
    shapes["visual.attnpool.c_proj.bias"] = (dims.embed_dim,)
    tw = dims.transformer_width
    shapes["positional_embedding"] = (dims.context_length, tw)
    shapes["text_projection"] = (tw, dims.embed_dim)
    shapes["logit_scale"] = ()
    for i in range(dims.transformer_layers):
        p = f"transformer.resblocks.{i}"
        shapes.update({
            f"{p}.attn.in_proj_weight": (3 * tw, tw), f"{p}.attn.in_proj_bias": (3 * tw,),
            f"{p}.attn.out_proj.weight": (tw, tw), f"{p}.attn.out_proj.bias": (tw,),
            f"{p}.ln_1.weight": (tw,), f"{p}.ln_1.bias": (tw,),
            f"{p}.mlp.c_fc.weight": (4 * tw, tw), f"{p}.mlp.c_fc.bias": (4 * tw,),
            f"{p}.mlp.c_proj.weight": (tw, 4 * tw), f"{p}.mlp.c_proj.bias": (tw,),
            f"{p}.ln_2.weight": (tw,), f"{p}.ln_2.bias": (tw,),
        })
    shapes["token_embedding.weight"] = (dims.vocab_size, tw)
    shapes["ln_final.weight"] = (tw,)
    shapes["ln_final.bias"] = (tw,)
    return shapes


def random_clip_state(dims: ClipDims = TINY, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights of sane scale (finite activations) for every CLIP key."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in clip_key_shapes(dims).items():
        if key.endswith("num_batches_tracked"):
            value = torch.tensor(100)
        elif key.endswith("running_var"):
            value = 0.5 + torch.rand(shape, generator=gen)
        elif key.endswith(("bn1.weight", "bn2.weight", "bn3.weight", "downsample.1.weight", "ln_1.weight", "ln_2.weight", "ln_final.weight")):
            value = 1.0 + 0.1 * torch.randn(shape, generator=gen)
        elif key == "logit_scale":
            value = torch.tensor(math.log(1 / 0.07))
        elif len(shape) >= 2:
            fan_in = math.prod(shape[1:]) if key.endswith("weight") and "embedding" not in key else shape[-1]
            value = torch.randn(shape, generator=gen) / math.sqrt(fan_in if "embedding" not in key else 4.0)
        else:
            value = 0.1 * torch.randn(shape, generator=gen)
        state[key] = value
    return state


def save_liv(path: Path, state: dict[str, torch.Tensor], *, prefix: str = "module.model.") -> Path:
    """The official LIV ``model.pt``: ``{'liv': DataParallel(LIV).state_dict(), 'optimizer': ..., 'global_step': ...}``."""
    torch.save({"liv": {prefix + k: v for k, v in state.items()}, "global_step": 5}, path)
    return path


# ----------------------------------------------------------------------------------------------- transcription
def reference_image(state: dict[str, torch.Tensor], dims: ClipDims, images: np.ndarray) -> torch.Tensor:
    """uint8 [B, S, S, 3] -> [B, D], CLIP's ModifiedResNet written out functionally (eval BatchNorm)."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    x = (x - torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)) / torch.tensor(CLIP_STD).view(1, 3, 1, 1)

    def bn(t: torch.Tensor, p: str) -> torch.Tensor:
        return F.batch_norm(t, state[f"{p}.running_mean"], state[f"{p}.running_var"], state[f"{p}.weight"], state[f"{p}.bias"], False, 0.0, 1e-5)

    x = F.relu(bn(F.conv2d(x, state["visual.conv1.weight"], stride=2, padding=1), "visual.bn1"))
    x = F.relu(bn(F.conv2d(x, state["visual.conv2.weight"], padding=1), "visual.bn2"))
    x = F.relu(bn(F.conv2d(x, state["visual.conv3.weight"], padding=1), "visual.bn3"))
    x = F.avg_pool2d(x, 2)
    for stage, count in enumerate(dims.vision_layers, start=1):
        for i in range(count):
            p = f"visual.layer{stage}.{i}"
            stride = 2 if stage > 1 and i == 0 else 1
            out = F.relu(bn(F.conv2d(x, state[f"{p}.conv1.weight"]), f"{p}.bn1"))
            out = F.relu(bn(F.conv2d(out, state[f"{p}.conv2.weight"], padding=1), f"{p}.bn2"))
            if stride > 1:
                out = F.avg_pool2d(out, stride)
            out = bn(F.conv2d(out, state[f"{p}.conv3.weight"]), f"{p}.bn3")
            if f"{p}.downsample.0.weight" in state:
                shortcut = F.avg_pool2d(x, stride) if stride > 1 else x
                shortcut = bn(F.conv2d(shortcut, state[f"{p}.downsample.0.weight"]), f"{p}.downsample.1")
            else:
                shortcut = x
            x = F.relu(out + shortcut)
    seq = x.flatten(2).permute(2, 0, 1)  # (HW, B, C)
    seq = torch.cat([seq.mean(0, keepdim=True), seq], 0) + state["visual.attnpool.positional_embedding"][:, None, :]
    a = "visual.attnpool"
    pooled, _ = F.multi_head_attention_forward(
        query=seq[:1], key=seq, value=seq, embed_dim_to_check=seq.shape[-1], num_heads=dims.vision_heads,
        q_proj_weight=state[f"{a}.q_proj.weight"], k_proj_weight=state[f"{a}.k_proj.weight"], v_proj_weight=state[f"{a}.v_proj.weight"],
        in_proj_weight=None, in_proj_bias=torch.cat([state[f"{a}.q_proj.bias"], state[f"{a}.k_proj.bias"], state[f"{a}.v_proj.bias"]]),
        bias_k=None, bias_v=None, add_zero_attn=False, dropout_p=0.0,
        out_proj_weight=state[f"{a}.c_proj.weight"], out_proj_bias=state[f"{a}.c_proj.bias"], use_separate_proj_weight=True,
        training=False, need_weights=False,
    )
    return pooled[0]


def reference_text(state: dict[str, torch.Tensor], dims: ClipDims, tokens: torch.Tensor) -> torch.Tensor:
    """int [B, 77] -> [B, D]: CLIP's encode_text with an explicit additive causal mask over all positions."""
    width, heads = dims.transformer_width, dims.transformer_heads
    x = state["token_embedding.weight"][tokens] + state["positional_embedding"]  # [B, L, W]
    length = x.shape[1]
    mask = torch.full((length, length), float("-inf")).triu(1)
    for i in range(dims.transformer_layers):
        p = f"transformer.resblocks.{i}"
        h = F.layer_norm(x, (width,), state[f"{p}.ln_1.weight"], state[f"{p}.ln_1.bias"])
        q, k, v = (h @ state[f"{p}.attn.in_proj_weight"].T + state[f"{p}.attn.in_proj_bias"]).split(width, dim=-1)
        q, k, v = (t.reshape(t.shape[0], length, heads, width // heads).transpose(1, 2) for t in (q, k, v))
        weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(width // heads) + mask, dim=-1)
        attended = (weights @ v).transpose(1, 2).reshape(x.shape)
        x = x + attended @ state[f"{p}.attn.out_proj.weight"].T + state[f"{p}.attn.out_proj.bias"]
        h = F.layer_norm(x, (width,), state[f"{p}.ln_2.weight"], state[f"{p}.ln_2.bias"])
        h = h @ state[f"{p}.mlp.c_fc.weight"].T + state[f"{p}.mlp.c_fc.bias"]
        h = h * torch.sigmoid(1.702 * h)
        x = x + h @ state[f"{p}.mlp.c_proj.weight"].T + state[f"{p}.mlp.c_proj.bias"]
    x = F.layer_norm(x, (width,), state["ln_final.weight"], state["ln_final.bias"])
    return x[torch.arange(x.shape[0]), tokens.argmax(-1)] @ state["text_projection"]


def fixed_images(size: int = 64, count: int = 3) -> np.ndarray:
    return np.random.default_rng(7).integers(0, 256, (count, size, size, 3), dtype=np.uint8)


# publicly documented ids: "a photo of a cat" (CLIP examples), "a painting of a cat" and "bozuman"
# (clip.tokenize outputs quoted in nishio/external_brain_in_markdown pages/CLIP.md), "n kabrie"
# (zer0int/CLIP-tokenizer README); the rest were produced by openai/CLIP's simple_tokenizer.py (with ftfy 6.3.1).
KNOWN_IDS = {
    "a photo of a cat": [320, 1125, 539, 320, 2368],
    "a painting of a cat": [320, 3086, 539, 320, 2368],
    "bozuman": [647, 4091, 786],
    "n kabrie": [333, 6554, 5322],
    "open the drawer": [1488, 518, 23219],
    "press the button": [2124, 518, 8007],
    "Pick up the RED block & place it in the bowl!": [3142, 705, 518, 736, 4593, 261, 1445, 585, 530, 518, 3814, 256],
    "don’t  slide the door\t\n left": [847, 713, 8837, 518, 2489, 1823],
    "it's 3.14159 o'clock, we'll see": [585, 568, 274, 269, 272, 275, 272, 276, 280, 334, 262, 6716, 267, 649, 1342, 862],
    "Ｆｕｌｌｗｉｄｔｈ ｔｅｘｔ": [9407, 23571, 4160],
    "ﬁnd the ﬂag": [1416, 518, 4859],
    "naïve café Ünïcode": [1097, 35689, 563, 15304, 6522, 77, 35689, 3217],
    "日本語のテキスト": [39121, 44353, 34002, 252, 21575, 2429, 228, 47121, 32421, 486],
    "emoji 🤖🦾 robot": [16327, 1793, 244, 6040, 378, 8797],
    "&amp;lt;b&amp;gt; html": [283, 321, 285, 18231],
    "x²+½ ⅷ ٣": [343, 41175, 266, 33613, 158, 227, 371, 149, 352],
    "“quoted” ‘single’ ʼtick": [257, 27706, 257, 568, 17005, 262, 713, 1068],
    "wipe\x00the\x7ftable": [820, 661, 599, 2175],
    "   ": [],
}


# ----------------------------------------------------------------------------------------------- tokenizer
@pytest.mark.parametrize("text, ids", list(KNOWN_IDS.items()))
def test_tokenizer_known_ids(text: str, ids: list[int]) -> None:
    assert default_tokenizer().encode(text) == ids


@pytest.mark.parametrize("fix_text, use_regex", [(basic_fix_text, None), (basic_fix_text, False)])
def test_tokenizer_fallbacks_give_the_same_ids(fix_text, use_regex) -> None:
    """Without ftfy (a subset of fix_text) and without ``regex`` (classes built from unicodedata)."""
    tok = ClipTokenizer(fix_text=fix_text, use_regex=use_regex)
    for text, ids in KNOWN_IDS.items():
        assert tok.encode(text) == ids, text


def test_tokenizer_with_ftfy() -> None:
    ftfy = pytest.importorskip("ftfy")
    tok = ClipTokenizer(fix_text=ftfy.fix_text)
    for text, ids in KNOWN_IDS.items():
        assert tok.encode(text) == ids, text


def test_tokenize_padding_and_specials() -> None:
    tok = default_tokenizer()
    assert tok.vocab_size == VOCAB_SIZE == 49408 and (SOT_TOKEN, EOT_TOKEN) == (49406, 49407)
    assert tok.vocab["<|startoftext|>"] == SOT_TOKEN and tok.vocab["<|endoftext|>"] == EOT_TOKEN
    tokens = tok(["a photo of a cat", "open the drawer"])
    assert tokens.shape == (2, 77) and tokens.dtype == torch.long
    assert tokens[0, :7].tolist() == [49406, 320, 1125, 539, 320, 2368, 49407] and not tokens[0, 7:].any()
    assert tokens[1, :5].tolist() == [49406, 1488, 518, 23219, 49407]
    assert tok.decode(tok.encode("Open the DRAWER!")) == "open the drawer ! "
    assert tok([]).shape == (0, 77)


def test_tokenize_errors() -> None:
    tok = default_tokenizer()
    long_text = " ".join(["drawer"] * 80)
    with pytest.raises(ValueError, match=r"texts\[1\] = 'drawer drawer.*needs 82 tokens.*holds 77"):
        tok(["ok", long_text])
    truncated = tok([long_text], truncate=True)
    assert truncated[0, -1].item() == EOT_TOKEN and truncated[0, 0].item() == SOT_TOKEN
    with pytest.raises(TypeError, match="texts must be a list of strings, got str"):
        tok("a photo of a cat")
    with pytest.raises(TypeError, match=r"texts\[0\] must be a str, got int"):
        tok([3])
    with pytest.raises(ValueError, match="context_length must be an int >= 2, got 1"):
        tok(["a"], context_length=1)


def test_tokenizer_vocabulary_file_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="vocabulary file not found"):
        ClipTokenizer(tmp_path / "absent.txt.gz")
    (tmp_path / "plain.txt.gz").write_text("not gzip")
    with pytest.raises(ValueError, match="not a gzipped UTF-8 BPE merges file"):
        ClipTokenizer(tmp_path / "plain.txt.gz")
    (tmp_path / "short.txt.gz").write_bytes(gzip.compress(b"#version\na b\nc d\n"))
    with pytest.raises(ValueError, match="expected 48894 merge lines"):
        ClipTokenizer(tmp_path / "short.txt.gz")


# ----------------------------------------------------------------------------------------------- model + loaders
@pytest.mark.slow
def test_full_size_rn50_has_clips_key_set() -> None:
    encoder = encoder_from_config(clip_config())
    ours = {k: tuple(v.shape) for k, v in encoder_to_clip_state(encoder).items()}
    assert ours == clip_key_shapes(RN50)
    assert len(ours) == len(clip_key_shapes(RN50))
    assert sum(p.numel() for p in encoder.parameters()) == pytest.approx(102.0e6, rel=0.01)  # CLIP RN50: 102 M
    assert encoder.embed_dim == 1024 and encoder.image_size == 224 and encoder.metric == "cos" and encoder.has_text


@pytest.fixture(scope="module")
def tiny_state() -> dict[str, torch.Tensor]:
    return random_clip_state(TINY, seed=0)


@pytest.fixture(scope="module")
def liv_file(tmp_path_factory: pytest.TempPathFactory, tiny_state) -> Path:
    return save_liv(tmp_path_factory.mktemp("liv") / "model.pt", tiny_state)


@pytest.mark.slow  # over a second: make test runs it, make test-fast skips it
def test_official_liv_matches_the_transcription(liv_file: Path, tiny_state) -> None:
    encoder = load_official_liv(liv_file)
    assert encoder.config["arch"] == "clip" and encoder.config["name"] == "liv-official" and encoder.metric == "cos"
    assert ClipDims.from_dict(encoder.config["clip"]) == TINY
    images = fixed_images()
    expected = reference_image(tiny_state, TINY, images)
    torch.testing.assert_close(encoder.encode_images(images), expected, atol=2e-5, rtol=1e-4)
    texts = ["open the drawer", "press the red button quickly", "a photo of a cat"]
    tokens = default_tokenizer()(texts)
    expected_text = reference_text(tiny_state, TINY, tokens)
    torch.testing.assert_close(encoder.encode_text(texts), expected_text, atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(encoder.text.encode_tokens(tokens), expected_text, atol=2e-5, rtol=1e-4)  # all 77 positions
    # load_encoder detects the layout; the state round-trips to CLIP's names
    again = load_encoder(liv_file)
    torch.testing.assert_close(again.encode_images(images), expected, atol=2e-5, rtol=1e-4)
    exported = encoder_to_clip_state(encoder)
    assert exported.keys() == tiny_state.keys() and all(torch.equal(exported[k], tiny_state[k]) for k in tiny_state)
    # distances against a text goal: cosine
    z, goal = encoder.encode_images(images), encoder.encode_text(["open the drawer"])
    torch.testing.assert_close(encoder.distance(z, goal), 1 - F.cosine_similarity(expected, expected_text[:1], dim=-1), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("layout", ["snapshot", "clip", "clip-jit-scalars", "fp16", "no-bn-counters"])
def test_other_layouts_load(tmp_path: Path, tiny_state, layout: str) -> None:
    path = tmp_path / "model.pt"
    if layout == "snapshot":  # LIV's own training snapshot: model.module.state_dict(), no 'module.'
        save_liv(path, tiny_state, prefix="model.")
    elif layout == "clip":
        torch.save(tiny_state, path)
    elif layout == "clip-jit-scalars":  # the TorchScript file's state_dict() also holds three ints
        torch.save({**tiny_state, "input_resolution": torch.tensor(64), "context_length": torch.tensor(77), "vocab_size": torch.tensor(49408)}, path)
    elif layout == "no-bn-counters":
        save_liv(path, {k: v for k, v in tiny_state.items() if not k.endswith("num_batches_tracked")})
    else:  # LIV's GPU snapshots: convolutions and linear layers in half precision
        save_liv(path, {k: v.half() if v.ndim >= 2 and "embedding" not in k else v for k, v in tiny_state.items()})
    encoder = load_encoder(path)
    assert all(p.dtype == torch.float32 for p in encoder.parameters())
    images = fixed_images(count=2)
    tolerance = dict(atol=5e-2, rtol=5e-2) if layout == "fp16" else dict(atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(encoder.encode_images(images), reference_image(tiny_state, TINY, images), **tolerance)
    if layout.startswith("clip"):
        assert encoder.config["name"] == "clip-official"
        torch.testing.assert_close(load_official_clip(path).encode_text(["a dog"]), encoder.encode_text(["a dog"]))


def test_save_and_reload_rebuilds_the_architecture(tmp_path: Path, liv_file: Path) -> None:
    encoder = load_official_liv(liv_file)
    save_encoder(encoder, tmp_path / "enc")
    reloaded = load_encoder(tmp_path / "enc")
    images = fixed_images(count=2)
    torch.testing.assert_close(reloaded.encode_images(images), encoder.encode_images(images))
    torch.testing.assert_close(reloaded.encode_text(["wipe the table"]), encoder.encode_text(["wipe the table"]))


def test_text_tower_runs_only_to_the_longest_text(liv_file: Path) -> None:
    encoder = load_official_liv(liv_file)
    texts = ["push", "open the top drawer of the cabinet slowly"]
    full = encoder.text.encode_tokens(default_tokenizer()(texts))
    torch.testing.assert_close(encoder.encode_text(texts), full, atol=1e-5, rtol=1e-5)
    assert encoder.encode_text([]).shape == (0, TINY.embed_dim)
    with pytest.raises(ValueError, match="needs .* tokens"):
        encoder.encode_text([" ".join(["open"] * 90)])
    with pytest.raises(ValueError, match="tokens must be int64"):
        encoder.text.encode_tokens(torch.zeros(1, 78, dtype=torch.long))


def _drop(state: dict, key: str) -> dict:
    return {k: v for k, v in state.items() if k != key}


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda s: {"liv": {f"module.model.{k}": v for k, v in _drop(s, "visual.attnpool.c_proj.bias").items()}},
         r"keys do not match.*missing \['module.model.visual.attnpool.c_proj.bias'\]"),
        (lambda s: {"liv": {**{f"module.model.{k}": v for k, v in s.items()}, "module.model.visual.extra.weight": torch.zeros(1)}},
         r"unexpected \['module.model.visual.extra.weight'\]"),
        (lambda s: {"liv": {f"module.convnet.{k}": v for k, v in s.items()}}, r"under 'module.model.'.*unexpected prefix"),
        (lambda s: {"liv": {f"module.model.{k}": (torch.zeros(3, 3) if k == "text_projection" else v) for k, v in s.items()}},
         r"shape mismatch.*module.model.(text_projection|ln_final)"),
        (lambda s: {"liv": [1, 2]}, "'liv' entry must be a state dict, got list"),
        (lambda s: {**s, "visual.proj": torch.zeros(4, 4), "visual.class_embedding": torch.zeros(4)}, "ViT CLIP"),
        (lambda s: {"liv": {f"module.model.{k}": v for k, v in _drop(s, "visual.layer1.0.conv1.weight").items()}},
         r"not a CLIP ResNet state dict: missing keys \['visual.layer1.0.conv1.weight'\]"),
        (lambda s: {"liv": {f"module.model.{k}": (3 if k == "logit_scale" else v) for k, v in s.items()}}, "non-tensor values"),
    ],
    ids=["missing", "unexpected", "prefix", "shape", "not-dict", "vit", "no-resnet", "non-tensor"],
)
def test_wrong_layouts_are_refused(tmp_path: Path, tiny_state, make, match: str) -> None:
    torch.save(make(tiny_state), tmp_path / "bad.pt")
    with pytest.raises(ValueError, match=match):
        load_encoder(tmp_path / "bad.pt")


def test_loader_entry_points_check_the_layout(tmp_path: Path, tiny_state, liv_file: Path) -> None:
    torch.save(tiny_state, tmp_path / "clip.pt")
    with pytest.raises(ValueError, match="top-level key 'liv'"):
        load_official_liv(tmp_path / "clip.pt")
    with pytest.raises(ValueError, match="expected an OpenAI CLIP state dict"):
        load_official_clip(liv_file)
    with pytest.raises(FileNotFoundError, match=r"absent\.pt"):
        load_official_liv(tmp_path / "absent.pt")
    with pytest.raises(ValueError, match="config\\['metric'\\] must be 'cos'"):
        encoder_from_config({**clip_config(TINY), "metric": "l2"})
    with pytest.raises(ValueError, match="vocab_size must be CLIP's 49408"):
        ClipDims(vocab_size=1000)
    with pytest.raises(ValueError, match="image_resolution must be a multiple of 32, got 100"):
        ClipDims(image_resolution=100)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit.script/save themselves are deprecated
def test_torchscript_archive_is_refused_with_a_hint(tmp_path: Path) -> None:
    scripted = torch.jit.script(torch.nn.Linear(2, 2))
    torch.jit.save(scripted, str(tmp_path / "RN50.pt"))
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="TorchScript archive.*torch.jit.load"):
        load_encoder(tmp_path / "RN50.pt")


# ----------------------------------------------------------------------------------------------- downstream
def test_goal_reward_with_a_text_goal(liv_file: Path) -> None:
    import gymnasium as gym

    from vip_rl.wrappers import GoalReward

    class Frames(gym.Env):
        """Renders a fixed sequence of random frames."""

        observation_space = gym.spaces.Box(0, 1, (1,), np.float32)
        action_space = gym.spaces.Box(-1, 1, (1,), np.float32)
        metadata = {"render_modes": ["rgb_array"]}
        render_mode = "rgb_array"

        def __init__(self) -> None:
            self.frames, self.t = fixed_images(48, count=4), 0

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            self.t = 0
            return np.zeros(1, np.float32), {}

        def step(self, action):
            self.t += 1
            return np.zeros(1, np.float32), 0.5, False, self.t >= 3, {}

        def render(self):
            return self.frames[self.t]

    encoder = load_encoder(liv_file)
    env = GoalReward(Frames(), encoder, "open the drawer")
    _, info = env.reset(seed=0)
    goal = encoder.encode_text(["open the drawer"])
    for t in range(1, 4):
        _, reward, _, _, info = env.step(np.zeros(1, np.float32))
        expected = encoder.distance(encoder.encode_images(fixed_images(48, count=4)[t]), goal).item()
        assert info["goal_distance"] == pytest.approx(expected, abs=1e-5) and info["env_reward"] == 0.5
        assert np.isfinite(reward)


# ----------------------------------------------------------------------------------------------- fine-tuning
def write_instruction_videos(root: Path, count: int = 4, length: int = 8) -> Path:
    from vip_rl.data import Video, write_frame_folder

    rng = np.random.default_rng(0)
    videos = []
    for i in range(count):
        frames = np.repeat(rng.integers(0, 120, (1, 48, 48, 3), dtype=np.uint8), length, axis=0)
        for t in range(length):
            frames[t, 10:18, 4 + 4 * t : 12 + 4 * t, 0] = 255
        videos.append(Video(frames, text="move the square right" if i % 2 else "slide the red block"))
    write_frame_folder(root, videos)
    return root / "manifest.csv"


@pytest.mark.slow  # fine-tune, kill and resume through the CLI
def test_fine_tune_and_resume_through_the_cli(tmp_path: Path, tiny_state, liv_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from vip_rl.pretrain import CHECKPOINT_FILE, cli

    data = write_instruction_videos(tmp_path / "videos")
    args = ["--data", str(data), "--objective", "liv", "--init-from", str(liv_file), "--lr", "1e-3", "--batch-size", "4",
            "--train-blocks", "1", "--freeze-text", "--eval-videos", "0", "--eval-every", "0", "--ckpt-every", "2",
            "--log-every", "1", "--prefetch", "0", "--no-progress"]
    assert cli([*args, "--steps", "4", "--out", str(tmp_path / "straight")]) == 0
    assert cli([*args, "--steps", "2", "--out", str(tmp_path / "resumed")]) == 0
    assert torch.load(tmp_path / "resumed" / CHECKPOINT_FILE, weights_only=True)["step"] == 2
    assert cli([*args, "--steps", "4", "--out", str(tmp_path / "resumed")]) == 0
    straight, resumed = load_encoder(tmp_path / "straight" / "encoder"), load_encoder(tmp_path / "resumed" / "encoder")
    assert straight.config["arch"] == "clip" and ClipDims.from_dict(straight.config["clip"]) == TINY
    assert straight.config["training"]["pretrain_config"]["train_blocks"] == 1
    for key, value in straight.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key
    # resuming without the same --init-from names the problem
    capsys.readouterr()  # drop the earlier runs' output (their eval-on-training-videos warnings)
    code = cli([*args[:4], *args[6:10], *args[12:], "--text", "hashing", "--steps", "6", "--out", str(tmp_path / "resumed")])  # no --init-from, --train-blocks
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and re.search("vip-rl pretrain: error: .*checkpoint's encoder has arch='clip'.*pass the same --init-from to resume, or --no-resume$", err[0]), err
    tuned = encoder_to_clip_state(straight)
    changed = {k for k in tiny_state if not torch.equal(tuned[k], tiny_state[k])}
    # trained: the last bottleneck and the attention pool (weights and BN statistics); everything else as loaded
    assert changed and all(k.startswith(("visual.layer4.0.", "visual.attnpool.")) for k in changed), sorted(changed)[:5]
    assert "visual.attnpool.c_proj.weight" in changed and "visual.layer4.0.bn1.running_mean" in changed
    with open(tmp_path / "straight" / "log.csv") as handle:
        tags = {row["tag"] for row in csv.DictReader(handle)}
    assert {"train/loss", "train/nce", "eval/voc_own", "eval/voc_text"} <= tags


def test_trainable_blocks_and_frozen_batchnorm(liv_file: Path) -> None:
    from vip_rl.pretrain import PretrainConfig, _build_encoder

    encoder = _build_encoder(PretrainConfig(objective="liv", train_blocks=2), liv_file, torch.device("cpu"))
    trainable = {k for k, p in encoder.named_parameters() if p.requires_grad}
    assert any(k.startswith("vision.layer4.0.") for k in trainable) and any(k.startswith("vision.layer3.1.") for k in trainable)
    assert not any(k.startswith(("vision.layer3.0.", "vision.conv1", "text.token_embedding", "text.positional_embedding")) for k in trainable)
    assert {"text.transformer.resblocks.0.attn.in_proj_weight", "text.ln_final.weight", "text.text_projection"} <= trainable
    assert "text.logit_scale" not in trainable
    encoder.train()
    assert not encoder.vision.bn1.training and encoder.vision.layer4[0].bn1.training
    everything = _build_encoder(PretrainConfig(objective="liv"), liv_file, torch.device("cpu"))
    assert all(p.requires_grad for k, p in everything.named_parameters() if k != "text.logit_scale")
    with pytest.raises(ValueError, match="train_blocks=1 applies to CLIP encoders"):
        _build_encoder(PretrainConfig(objective="liv", text="hashing", train_blocks=1, arch="cnn"), None, torch.device("cpu"))
    with pytest.raises(ValueError, match="freeze_text=True needs an encoder with a text tower"):
        _build_encoder(PretrainConfig(objective="vip", freeze_text=True), None, torch.device("cpu"))
    with pytest.raises(ValueError, match="train_blocks must be an int >= 0, got -1"):
        PretrainConfig(train_blocks=-1)


def _ddp_worker(rank: int, world: int, port: int, out_dir: str, data: str, liv: str) -> None:
    import os

    from vip_rl.pretrain import PretrainConfig, pretrain

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    config = PretrainConfig(objective="liv", batch_size=4, steps=2, lr=1e-3, train_blocks=1, eval_every=0, ckpt_every=2, prefetch=0, eval_videos=0)
    pretrain(config, data, out_dir=out_dir, init_from=liv, progress=False)


@pytest.mark.slow  # two DDP processes
def test_fine_tune_under_ddp(tmp_path: Path, tiny_state, liv_file: Path) -> None:
    """Two gloo ranks fine-tune the CLIP towers (BatchNorm statistics are per rank, as in LIV's DataParallel)."""
    import socket

    import torch.multiprocessing as mp

    data = write_instruction_videos(tmp_path / "videos")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    mp.spawn(_ddp_worker, args=(2, port, str(tmp_path / "ddp"), str(data), str(liv_file)), nprocs=2, join=True)
    tuned = encoder_to_clip_state(load_encoder(tmp_path / "ddp" / "encoder"))
    changed = {k for k in tiny_state if not torch.equal(tuned[k], tiny_state[k])}
    assert {"visual.attnpool.c_proj.weight", "text_projection", "transformer.resblocks.1.mlp.c_fc.weight"} <= changed
    assert not any(k.startswith(("visual.layer1.", "token_embedding", "transformer.resblocks.0.")) for k in changed)
