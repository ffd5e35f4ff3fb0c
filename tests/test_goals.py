"""vip_rl.goals: goal parsing, goal files, embedding, resolve_encoder and the scripted-expert goal."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vip_rl.goals import (
    GOAL_FILE_EXTENSIONS,
    Goal,
    embed_goal,
    expert_demo_frames,
    expert_goal,
    expert_rollout,
    final_frame,
    goal_from_arg,
    load_goal,
    parse_goal,
    resolve_encoder,
)


def _image(value: int = 10, size: int = 8) -> np.ndarray:
    image = np.full((size, size, 3), value, np.uint8)
    image[0, 0] = (1, 2, 3)  # not symmetric: a transposed or flipped read would differ
    return image


def _video(length: int = 4, size: int = 8) -> np.ndarray:
    return np.stack([_image(20 * t, size) for t in range(length)])


@pytest.fixture(scope="module")
def encoder():
    return resolve_encoder("random", seed=0)


@pytest.fixture(scope="module")
def text_encoder():
    return resolve_encoder("random", seed=0, text=True)


# -- parse_goal: every accepted form ------------------------------------------------------------


def test_text_goals():
    assert parse_goal("open the drawer") == Goal("text", ("open the drawer",))
    assert parse_goal(["open", "close"]) == Goal("text", ("open", "close"))


@pytest.mark.parametrize("to_tensor", [False, True])
def test_image_and_image_stack(to_tensor):
    image, stack = _image(), _video(3)
    convert = torch.from_numpy if to_tensor else (lambda a: a)
    one = parse_goal(convert(image))
    assert one.kind == "images" and one.value.shape == (1, 8, 8, 3)
    np.testing.assert_array_equal(one.value[0], image)
    several = parse_goal(convert(stack))
    assert several.kind == "images" and len(several) == 3
    np.testing.assert_array_equal(several.value, stack)


def test_video_object_gives_its_final_frame():
    from vip_rl.data import Video

    frames = _video(5)
    goal = parse_goal(Video(frames))
    assert goal.kind == "images" and goal.value.shape == (1, 8, 8, 3)
    np.testing.assert_array_equal(goal.value[0], frames[-1])
    np.testing.assert_array_equal(final_frame(Video(frames)), frames[-1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_embeddings(dtype):
    one = parse_goal(np.arange(4, dtype=dtype))
    assert one.kind == "embedding" and one.value.shape == (1, 4) and one.value.dtype == np.float32
    several = parse_goal(torch.ones(3, 4, dtype=torch.float64))
    assert several.kind == "embedding" and several.value.shape == (3, 4)


def test_a_parsed_goal_is_returned_as_is():
    goal = Goal("text", ("x",))
    assert parse_goal(goal) is goal


@pytest.mark.parametrize(
    "goal, error, match",
    [
        ("", ValueError, r"goal text must be a non-empty instruction, got ''"),
        (["ok", " "], ValueError, "texts must be non-empty"),
        (np.zeros((8, 8, 3), np.float32), TypeError, r"goal must be uint8 .* got float32 \[8, 8, 3\]"),
        (np.zeros((8, 8, 3), np.int64), TypeError, r"got int64 \[8, 8, 3\]"),
        (np.zeros((3, 8, 8), np.uint8), ValueError, r"goal image must be uint8 \[H, W, 3\] .* got shape \[3, 8, 8\]"),
        (np.zeros((8, 8), np.uint8), ValueError, r"got shape \[8, 8\]"),
        (np.zeros((0, 8, 8, 3), np.uint8), ValueError, r"K >= 1\), got shape \[0, 8, 8, 3\]"),
        (np.array([1.0, np.nan], np.float32), ValueError, "embedding must be finite"),
        (np.zeros((0, 4), np.float32), ValueError, r"K, D >= 1, got shape \[0, 4\]"),
        (12, TypeError, "goal must be an instruction string, .* got int"),
        ([1, 2], TypeError, "got list"),
    ],
)
def test_parse_errors(goal, error, match):
    with pytest.raises(error, match=match):
        parse_goal(goal)


def test_errors_name_the_argument():
    with pytest.raises(TypeError, match=r"^target must be"):
        parse_goal(3.5, name="target")


# -- goal files ---------------------------------------------------------------------------------


def test_image_files(tmp_path):
    import imageio.v3 as iio

    image = _image(50, 16)
    iio.imwrite(tmp_path / "goal.png", image)
    np.testing.assert_array_equal(load_goal(tmp_path / "goal.png"), image)
    rgba = np.concatenate([image, np.full((16, 16, 1), 255, np.uint8)], -1)
    iio.imwrite(tmp_path / "rgba.png", rgba)
    np.testing.assert_array_equal(load_goal(tmp_path / "rgba.png"), image)  # alpha dropped
    iio.imwrite(tmp_path / "grey.png", image[..., 0])
    np.testing.assert_array_equal(load_goal(tmp_path / "grey.png"), np.repeat(image[..., :1], 3, -1))
    goal = parse_goal(tmp_path / "goal.png")  # a Path is a file, a str is text
    assert goal.kind == "images" and goal.value.shape == (1, 16, 16, 3)


def test_npy_files(tmp_path):
    image, video = _image(), _video(4)
    np.save(tmp_path / "image.npy", image)
    np.save(tmp_path / "video.npy", video)
    np.save(tmp_path / "float.npy", image.astype(np.float32))
    np.testing.assert_array_equal(load_goal(tmp_path / "image.npy"), image)
    np.testing.assert_array_equal(load_goal(tmp_path / "video.npy"), video[-1])  # a video: its last frame
    with pytest.raises(ValueError, match=r"must hold uint8 \[H, W, 3\] .* got float32 \[8, 8, 3\]"):
        load_goal(tmp_path / "float.npy")


@pytest.mark.parametrize("suffix", [".gif", ".mp4"])
def test_video_files_give_their_last_frame(tmp_path, suffix):
    from vip_rl.data import write_video

    frames = np.stack([np.full((16, 16, 3), value, np.uint8) for value in (0, 0, 0, 200)])
    write_video(tmp_path / f"clip{suffix}", frames, fps=10)
    last = load_goal(tmp_path / f"clip{suffix}")
    assert last.shape == (16, 16, 3) and last.dtype == np.uint8
    assert abs(float(last.mean()) - 200) < 8  # the last frame, not the first (mp4 is lossy)


def test_goal_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"goal file '.*missing.png' does not exist"):
        load_goal(tmp_path / "missing.png")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match=r"has suffix '.txt'; expected an image, a video or a .npy"):
        load_goal(tmp_path / "notes.txt")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="unreadable"):
        load_goal(tmp_path / "broken.png")
    assert set(GOAL_FILE_EXTENSIONS) >= {".png", ".jpg", ".npy", ".mp4", ".gif"}


def test_goal_from_arg(tmp_path):
    np.save(tmp_path / "goal.npy", _image())
    assert goal_from_arg("open the drawer") == "open the drawer"
    np.testing.assert_array_equal(goal_from_arg(str(tmp_path / "goal.npy")), _image())
    # a missing path is an error, never an instruction
    with pytest.raises(FileNotFoundError, match="--goal file .*nope.png' does not exist"):
        goal_from_arg(str(tmp_path / "nope.png"))
    (tmp_path / "plain").write_text("x")  # an existing file without a goal suffix is still a path
    with pytest.raises(ValueError, match="has suffix ''"):
        goal_from_arg(str(tmp_path / "plain"))
    with pytest.raises(ValueError, match="--goal must be a goal file or a non-empty instruction"):
        goal_from_arg("  ")
    # a folder, or a string that looks like a path (no blank, a '/' or a file suffix), is never an instruction
    with pytest.raises(ValueError, match=r"--goal '.*' is a folder; expected a goal file \(an image, a video: its last frame"):
        goal_from_arg(str(tmp_path))
    for missing in ("goals/target", "goal.tiff", str(tmp_path / "nope")):
        with pytest.raises(FileNotFoundError, match=f"--goal file '{missing}' does not exist"):
            goal_from_arg(missing)
    for text in ("open_the_drawer", "reach the cup.", "push v1.2"):
        assert goal_from_arg(text) == text


# -- embed_goal ---------------------------------------------------------------------------------


def test_embed_images_text_and_embeddings(encoder, text_encoder):
    stack = _video(2)
    z = embed_goal(encoder, stack)
    torch.testing.assert_close(z, encoder.encode_images(stack))
    assert z.shape == (2, encoder.embed_dim) and not z.requires_grad
    text = embed_goal(text_encoder, ["open", "close"])
    torch.testing.assert_close(text, text_encoder.encode_text(["open", "close"]))
    given = np.linspace(0, 1, encoder.embed_dim)
    torch.testing.assert_close(embed_goal(encoder, given)[0], torch.as_tensor(given, dtype=torch.float32))


def test_embed_errors(encoder):
    with pytest.raises(ValueError, match="goal is an instruction .* has no text tower"):
        embed_goal(encoder, "open the drawer")
    with pytest.raises(ValueError, match=rf"goal embedding must be float \[{encoder.embed_dim}\] .* got shape \[1, 5\]"):
        embed_goal(encoder, np.zeros(5, np.float32))


# -- resolve_encoder ----------------------------------------------------------------------------


def _same_weights(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_random_encoder_is_seeded():
    a, b, c = (resolve_encoder("random", seed=s) for s in (0, 0, 1))
    assert _same_weights(a, b) and not _same_weights(a, c)
    assert a.config["name"] == "random" and a.metric == "l2" and not a.has_text
    text = resolve_encoder("random", seed=0, text=True, metric="cos")
    assert text.has_text and text.metric == "cos"


def test_bundled_name_and_checkpoint_path(tmp_path):
    from vip_rl.encoders import list_encoders, save_encoder

    if "vip-sim" not in list_encoders(available_only=True):
        pytest.skip("bundled vip-sim weights not built")
    bundled = resolve_encoder("vip-sim")
    assert bundled.config["name"] == "vip-sim"
    save_encoder(bundled, tmp_path / "copy")
    copy = resolve_encoder(tmp_path / "copy")
    assert _same_weights(bundled, copy)
    with pytest.raises(ValueError, match="encoder 'vip-sim' has no text tower, but the goal is an instruction"):
        resolve_encoder("vip-sim", text=True)


@pytest.mark.parametrize(
    "spec, error, match",
    [
        ("no-such-encoder", ValueError, r"unknown encoder name 'no-such-encoder': expected one of \[.*'vip-sim'.*\], a checkpoint path or 'random'"),
        ("runs/missing/model.safetensors", FileNotFoundError, "encoder checkpoint not found"),
        (3, TypeError, "encoder must be a bundled name, a checkpoint path or 'random', got int"),
    ],
)
def test_resolve_encoder_errors(spec, error, match):
    with pytest.raises(error, match=match):
        resolve_encoder(spec)


def test_resolve_encoder_checks_the_seed():
    with pytest.raises(TypeError, match="seed must be an int, got 1.5"):
        resolve_encoder("random", seed=1.5)


# -- the scripted-expert goal -------------------------------------------------------------------


def test_expert_goal_is_the_last_frame_of_the_expert_demo():
    vip_envs = pytest.importorskip("vip_envs")
    env_id = vip_envs.env_id("PressButton")
    kwargs = {"image_size": 32}
    goal = expert_goal(env_id, seed=3, env_kwargs=kwargs)
    assert goal.shape == (32, 32, 3) and goal.dtype == np.uint8
    np.testing.assert_array_equal(goal, expert_goal(env_id, seed=3, env_kwargs=kwargs))  # seeded
    frames = expert_demo_frames(env_id, seed=3, env_kwargs=kwargs)
    np.testing.assert_array_equal(frames[-1], goal)
    assert not np.array_equal(frames[0], goal)
    run = expert_rollout(env_id, seed=3, env_kwargs=kwargs, record_states=True)
    assert run.success and run.frames is None and run.states.shape[0] == run.steps + 1 == len(frames)
    short = expert_rollout(env_id, seed=3, env_kwargs=kwargs, max_steps=2)
    assert short.steps == 2 and not short.success


def test_expert_goal_errors():
    pytest.importorskip("vip_envs")
    with pytest.raises(ValueError, match="env_id must be a vip_envs task with a scripted expert .* got 'NoSuch-v0'"):
        expert_goal("NoSuch-v0", seed=0)
    with pytest.raises(ValueError, match="max_steps must be None or a positive int, got 0"):
        expert_goal("vip_envs/PressButton-v0", seed=0, max_steps=0)
    with pytest.raises(ValueError, match=r"env 'Pusher-v5' has no scripted expert \(envs with one: vip_envs/OpenDrawer-v0, "):
        expert_goal("Pusher-v5", seed=0)
    with pytest.raises(ValueError, match=r"env 'vip_envs/PressButton-v0' refused the env_kwargs \{'bogus': 1\}: .*'bogus'"):
        expert_goal("vip_envs/PressButton-v0", seed=0, env_kwargs={"bogus": 1})


def test_load_demo_frames_names_the_flag(tmp_path):
    from vip_rl.goals import load_demo_frames

    np.save(tmp_path / "demo.npy", np.zeros((4, 8, 8, 3), np.uint8))
    assert load_demo_frames(tmp_path / "demo.npy").shape == (4, 8, 8, 3)
    (tmp_path / "goal.png").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"--subgoals demo: unsupported video path '.*goal\.png'"):
        load_demo_frames(tmp_path / "goal.png")
    with pytest.raises(FileNotFoundError, match=r"--subgoals demo '.*missing\.mp4' does not exist"):
        load_demo_frames(tmp_path / "missing.mp4")
