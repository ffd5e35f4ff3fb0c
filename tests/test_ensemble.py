"""Tests for vip_rl.encoders.ensemble: the RMS-of-distances ensemble of L2 encoders."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from vip_rl.encoders import Encoder, build_encoder, load_encoder, save_encoder
from vip_rl.encoders import ensemble_encoder


def _images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 40, 40, 3), dtype=np.uint8)


def _member(seed: int, **kwargs) -> Encoder:
    kwargs = {"embed_dim": 8, "image_size": 32, "cnn_channels": (8, 8), "seed": seed, **kwargs}
    return build_encoder("cnn", **kwargs)


def test_distance_is_the_rms_of_the_members_distances() -> None:
    members = [_member(0), _member(1), _member(2, embed_dim=5)]
    both = ensemble_encoder(members, name="trio")
    a, b = _images(4, 0), _images(4, 1)
    expected = torch.sqrt(torch.stack([m.distance(m.encode_images(a), m.encode_images(b)) ** 2 for m in members]).mean(0))
    got = both.distance(both.encode_images(a), both.encode_images(b))
    torch.testing.assert_close(got, expected)
    assert both.embed_dim == 21 and both.config["name"] == "trio" and both.config["arch"] == "ensemble"
    # plain transcription for one pair: sqrt((d0^2 + d1^2 + d2^2) / 3)
    d = [float(m.distance(m.encode_images(a[:1]), m.encode_images(b[:1]))) for m in members]
    assert float(got[0]) == pytest.approx(math.sqrt(sum(x * x for x in d) / 3), rel=1e-5)


def test_text_goes_through_every_member() -> None:
    members = [_member(0, text="hashing"), _member(1, text="hashing")]
    both = ensemble_encoder(members)
    texts = ["open the drawer", "press the button"]
    expected = torch.cat([m.encode_text(texts) for m in members], -1) / math.sqrt(2)
    torch.testing.assert_close(both.encode_text(texts), expected)


def test_save_load_round_trip(tmp_path: Path) -> None:
    both = ensemble_encoder([_member(0, text="hashing"), _member(1, text="hashing")], name="pair")
    path = save_encoder(both, tmp_path / "pair.safetensors")
    config = json.loads(path.with_suffix(".json").read_text())
    assert [m["seed"] for m in config["members"]] == [0, 1]
    again = load_encoder(path)
    x = _images(3)
    torch.testing.assert_close(again.encode_images(x), both.encode_images(x))
    torch.testing.assert_close(again.encode_text(["slide the door"]), both.encode_text(["slide the door"]))


def test_members_that_cannot_form_an_ensemble() -> None:
    with pytest.raises(ValueError, match="at least 2 members"):
        ensemble_encoder([_member(0)])
    with pytest.raises(ValueError, match="metric 'cos'"):
        ensemble_encoder([_member(0), _member(1, metric="cos")])
    with pytest.raises(ValueError, match="disagree on image_size"):
        ensemble_encoder([_member(0), _member(1, image_size=24)])
    with pytest.raises(ValueError, match="either every member has a text tower or none"):
        ensemble_encoder([_member(0), _member(1, text="hashing")])
    with pytest.raises(ValueError, match="itself an ensemble"):
        ensemble_encoder([ensemble_encoder([_member(0), _member(1)]), _member(2)])
    with pytest.raises(TypeError, match="member 1 must be a vip_rl.encoders.Encoder"):
        ensemble_encoder([_member(0), torch.nn.Linear(2, 2)])  # type: ignore[list-item]


def test_corrupt_ensemble_config_is_named(tmp_path: Path) -> None:
    both = ensemble_encoder([_member(0), _member(1)])
    path = save_encoder(both, tmp_path / "pair.safetensors")
    config = json.loads(path.with_suffix(".json").read_text())
    config["members"] = config["members"][:1]
    path.with_suffix(".json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="at least 2 members"):
        load_encoder(path)
    config["members"] = "two"
    path.with_suffix(".json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"config\['members'\] must be a list"):
        load_encoder(path)


def test_random_twin_of_an_ensemble_is_untrained_member_by_member(benchmark_module) -> None:
    metrics = benchmark_module("_value_metrics")
    trained = [_member(0), _member(1)]
    for member in trained:
        member.config["training"] = {"command": "python -m vip_rl.weights_recipe"}
    twin = metrics.random_twin(ensemble_encoder(trained))
    assert twin.config["arch"] == "ensemble" and [m["seed"] for m in twin.config["members"]] == [12345, 12346]
    assert all("training" not in m for m in twin.config["members"])
    x = _images(2)
    assert not torch.equal(twin.encode_images(x), ensemble_encoder(trained).encode_images(x))
