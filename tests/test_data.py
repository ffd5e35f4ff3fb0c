"""Tests for vip_rl.data: suite HDF5, D4RL-flat, videos, Minari export."""
from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pytest

from vip_rl.data import (
    Episode, EpisodeFile, EpisodeWriter, Video, export_d4rl, export_minari, load_episodes, load_videos, read_d4rl,
    read_minari,
    read_episodes, read_video_file, write_d4rl, write_episodes, write_frame_folder, write_video,
)

ENV_ID = "vip_envs/OpenDrawer-v0"
CAMERAS = ["front", "left"]
SIZE = 16


def smooth_frames(num_frames: int, size: int = SIZE, seed: int = 0) -> np.ndarray:
    """A moving square on a gradient: codec-friendly uint8 [T, size, size, 3]."""
    rng = np.random.default_rng(seed)
    base = np.linspace(30, 200, size, dtype=np.float32)
    frames = np.empty((num_frames, size, size, 3), np.uint8)
    colour = rng.integers(0, 255, 3)
    for t in range(num_frames):
        image = np.stack([np.add.outer(base, base) / 2] * 3, axis=-1)
        x = (t * 2) % (size - 4)
        image[4:8, x:x + 4] = colour
        frames[t] = image.astype(np.uint8)
    return frames


def make_episode(num_steps: int = 6, *, seed: int = 0, cameras: list[str] = CAMERAS, size: int = SIZE,
                 instruction: str | None = "open the drawer") -> Episode:
    rng = np.random.default_rng(seed)
    frames = {c: rng.integers(0, 256, (num_steps + 1, size, size, 3), dtype=np.uint8) for c in cameras}
    successes = np.zeros(num_steps, bool)
    successes[-1] = True
    attrs = {"env_id": ENV_ID, "task": "OpenDrawer", "instruction": instruction, "seed": seed, "success": True,
             "embodiment": "gripper", "policy": "expert", "noise": 0.25, "terminated": seed % 2 == 0}
    return Episode(frames=frames, states=rng.normal(size=(num_steps + 1, 5)),
                   task_progress=np.linspace(0, 1, num_steps + 1), actions=rng.uniform(-1, 1, (num_steps, 4)),
                   rewards=rng.normal(size=num_steps), dones=successes.copy(), attrs=attrs,
                   sim_states=rng.normal(size=(num_steps + 1, 9)), successes=successes)


def write(path: Path, episodes: list[Episode], **kwargs) -> Path:
    cameras = kwargs.pop("cameras", CAMERAS)
    return write_episodes(path, episodes, env_id=ENV_ID, cameras=cameras, image_size=SIZE, **kwargs)


def assert_same_episode(a: Episode, b: Episode, *, cameras=CAMERAS, attrs: bool = True) -> None:
    for key in ("states", "task_progress", "actions", "rewards", "dones", "sim_states", "successes"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key), err_msg=key)
    for camera in cameras:
        np.testing.assert_array_equal(a.frames[camera], b.frames[camera], err_msg=camera)
    if attrs:
        for key, value in a.attrs.items():
            if value is not None:
                assert b.attrs[key] == value, key


@pytest.fixture
def suite_file(tmp_path: Path) -> tuple[Path, list[Episode]]:
    episodes = [make_episode(6, seed=0), make_episode(3, seed=1), make_episode(8, seed=2)]
    return write(tmp_path / "demos.h5", episodes), episodes


# --------------------------------------------------------------------------- Episode

def test_episode_properties_and_validation() -> None:
    ep = make_episode(4)
    assert ep.num_steps == len(ep) == 4 and ep.instruction == "open the drawer"
    assert ep.success and ep.task == "OpenDrawer"
    assert ep.states.dtype == np.float32 and ep.dones.dtype == bool and ep.sim_states.dtype == np.float64
    with pytest.raises(ValueError, match="rewards must have length 4"):
        Episode(frames={}, states=ep.states, task_progress=ep.task_progress, actions=ep.actions,
                rewards=ep.rewards[:3], dones=ep.dones)
    with pytest.raises(TypeError, match=r"frames\['front'\] must be a uint8"):
        Episode(frames={"front": ep.frames["front"].astype(np.float32)}, states=ep.states,
                task_progress=ep.task_progress, actions=ep.actions, rewards=ep.rewards, dones=ep.dones)
    with pytest.raises(ValueError, match=r"frames\['front'\] must be uint8 \[T\+1=5"):
        Episode(frames={"front": ep.frames["front"][:4]}, states=ep.states,
                task_progress=ep.task_progress, actions=ep.actions, rewards=ep.rewards, dones=ep.dones)


# --------------------------------------------------------------------------- suite HDF5

def test_hdf5_round_trip_all_fields(suite_file) -> None:
    path, episodes = suite_file
    assert sorted(os.listdir(path.parent)) == ["demos.h5"]  # no temp file left
    loaded = read_episodes(path)
    assert len(loaded) == 3
    for a, b in zip(episodes, loaded):
        assert_same_episode(a, b)
        assert b.attrs["num_samples"] == a.num_steps
    with h5py.File(path) as f:
        data = f["data"]
        assert data.attrs["env_id"] == ENV_ID and list(data.attrs["cameras"]) == CAMERAS
        assert data.attrs["image_size"] == SIZE and data.attrs["format_version"] == 1 and data.attrs["total"] == 17
        images = data["demo_0/obs/front"]
        assert images.dtype == np.uint8 and images.chunks == (1, SIZE, SIZE, 3) and images.compression == "gzip"
        assert data["demo_1/actions"].shape == (3, 4) and data["demo_1/obs/state"].shape == (4, 5)


def test_hdf5_cameras_subset_no_images_and_lazy_reader(suite_file) -> None:
    path, episodes = suite_file
    only_left = read_episodes(path, cameras=["left"])
    assert list(only_left[0].frames) == ["left"]
    no_images = read_episodes(path, load_images=False)
    assert no_images[2].frames == {} and no_images[2].num_steps == 8
    with EpisodeFile(path) as f:
        assert f.num_episodes == len(f) == 3 and f.cameras == CAMERAS and f.image_size == SIZE and f.env_id == ENV_ID
        np.testing.assert_array_equal(f.frames(1, "front")[2], episodes[1].frames["front"][2])
        assert f.num_steps(2) == 8 and f.episode_attrs(1)["seed"] == 1
        assert_same_episode(episodes[2], f.episode(2))
        assert [ep.num_steps for ep in f] == [6, 3, 8]
        with pytest.raises(ValueError, match="camera 'right'"):
            f.frames(0, "right")
        with pytest.raises(IndexError, match="out of range"):
            f.episode(3)
    with pytest.raises(ValueError, match="closed"):
        f.episode(0)


def test_hdf5_demo_order_is_numeric(tmp_path: Path) -> None:
    episodes = [make_episode(1, seed=i, size=SIZE, cameras=["front"]) for i in range(12)]
    path = write(tmp_path / "many.h5", episodes, cameras=["front"])
    assert [ep.attrs["seed"] for ep in read_episodes(path, load_images=False)] == list(range(12))


@pytest.mark.parametrize("compression", ["gzip", "lzf", None])
def test_hdf5_compressions(tmp_path: Path, compression) -> None:
    ep = make_episode(2)
    path = write(tmp_path / "c.h5", [ep], compression=compression)
    assert_same_episode(ep, read_episodes(path)[0])


def test_hdf5_writer_streaming(tmp_path: Path) -> None:
    path = tmp_path / "stream.h5"
    with EpisodeWriter(path, env_id=ENV_ID, cameras=CAMERAS, image_size=SIZE) as writer:
        assert writer.append(make_episode(2)) == "demo_0"
        assert not path.exists()  # only the temp file exists until close
    assert len(read_episodes(path)) == 1


def test_hdf5_write_is_atomic_on_failure(tmp_path: Path) -> None:
    path = tmp_path / "demos.h5"

    def failing():
        yield make_episode(3)
        raise RuntimeError("simulated crash mid-write")

    with pytest.raises(RuntimeError, match="simulated crash"):
        write(path, failing())
    assert os.listdir(tmp_path) == []
    # an existing file is left untouched by a failed overwrite
    write(path, [make_episode(2)])
    before = path.read_bytes()
    with pytest.raises(RuntimeError, match="simulated crash"):
        write(path, failing())
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["demos.h5"]


def test_hdf5_write_rejects_bad_episodes_and_args(tmp_path: Path) -> None:
    path = tmp_path / "bad.h5"
    with pytest.raises(ValueError, match="no frames for camera 'right'"):
        write(path, [make_episode(2)], cameras=["front", "right"])
    with pytest.raises(ValueError, match=r"frames\['front'\] must be uint8 \[3, 16, 16, 3\], got \[3, 8, 8, 3\]"):
        write(path, [make_episode(2, size=8)])
    with pytest.raises(ValueError, match="compression must be one of"):
        write(path, [make_episode(2)], compression="zstd")
    with pytest.raises(ValueError, match="image_size must be a positive int"):
        write_episodes(path, [], env_id=ENV_ID, cameras=CAMERAS, image_size=0)
    with pytest.raises(TypeError, match="attribute 'meta' must be"):
        ep = make_episode(2)
        ep.attrs["meta"] = {"a": 1}
        write(path, [ep])
    with pytest.raises(FileNotFoundError, match="output directory"):
        write(tmp_path / "missing" / "x.h5", [make_episode(2)])
    assert os.listdir(tmp_path) == []


def test_read_missing_corrupt_truncated(tmp_path: Path, suite_file) -> None:
    path, _ = suite_file
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_episodes(tmp_path / "nope.h5")
    with pytest.raises(ValueError, match="directory"):
        read_episodes(tmp_path)
    text = tmp_path / "text.h5"
    text.write_text("not an hdf5 file")
    with pytest.raises(ValueError, match=r"text\.h5.*corrupt or truncated"):
        read_episodes(text)
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match=r"truncated\.h5.*corrupt or truncated"):
        read_episodes(truncated)


def test_read_missing_keys_and_shape_mismatch(tmp_path: Path, suite_file) -> None:
    path, _ = suite_file
    with h5py.File(path, "a") as f:
        del f["data/demo_1/obs/state"]
    with pytest.raises(ValueError, match=r"demo 'demo_1' has no key 'obs/state'"):
        read_episodes(path)
    with h5py.File(path, "a") as f:
        del f["data/demo_1"]
        del f["data/demo_2/rewards"]
        f["data/demo_2/rewards"] = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match=r"demo_2/rewards has shape \[3\], expected length 8"):
        read_episodes(path)
    with h5py.File(path, "a") as f:
        del f["data/demo_2"]
        del f["data/demo_0/obs/front"]
        f["data/demo_0/obs/front"] = np.zeros((3, SIZE, SIZE, 3), np.uint8)
    with pytest.raises(ValueError, match=r"demo_0/obs/front must be uint8 \[T\+1=7"):
        read_episodes(path)
    no_data = tmp_path / "nodata.h5"
    with h5py.File(no_data, "w") as f:
        f["x"] = 1
    with pytest.raises(ValueError, match="missing group 'data'"):
        read_episodes(no_data)


# --------------------------------------------------------------------------- D4RL

def test_d4rl_export_read_round_trip(tmp_path: Path, suite_file) -> None:
    path, episodes = suite_file
    dst = export_d4rl(path, tmp_path / "d4rl.h5", camera=None)
    with h5py.File(dst) as f:
        n = 6 + 3 + 8
        for key in ("observations", "next_observations", "actions", "rewards", "terminals", "timeouts",
                    "infos/success", "infos/task_progress", "observations_images/front"):
            assert f[key].shape[0] == n, key
        np.testing.assert_array_equal(np.flatnonzero(f["terminals"][()] | f["timeouts"][()]), [5, 8, 16])
        assert list(f["terminals"][()][[5, 8, 16]]) == [True, False, True]  # from attrs["terminated"]
        assert f["metadata/final_images/left"].shape == (3, SIZE, SIZE, 3)
    loaded = read_d4rl(dst)
    assert len(loaded) == 3
    for a, b in zip(episodes, loaded):
        assert_same_episode(a, b, attrs=False)
        assert b.instruction == a.instruction and b.attrs["seed"] == a.attrs["seed"] and b.success
        assert b.attrs["env_id"] == ENV_ID
    state_only = export_d4rl(path, tmp_path / "state.h5", include_images=False)
    assert read_d4rl(state_only)[1].frames == {}
    with pytest.raises(ValueError, match="camera 'right' not in the source"):
        export_d4rl(path, tmp_path / "x.h5", camera="right")
    assert not (tmp_path / "x.h5").exists()


def test_load_episodes_dispatches(tmp_path: Path, suite_file) -> None:
    path, episodes = suite_file
    flat = export_d4rl(path, tmp_path / "flat.h5", camera="front")
    for loaded in (load_episodes(path, cameras=["front"]), load_episodes(flat)):
        assert [ep.num_steps for ep in loaded] == [6, 3, 8]
        np.testing.assert_array_equal(loaded[1].frames["front"], episodes[1].frames["front"])
        assert loaded[2].attrs["policy"] == "expert" and loaded[2].attrs["noise"] == 0.25
    with pytest.raises(ValueError, match="looks like a D4RL-flat file"):
        read_episodes(flat)


def test_write_d4rl_matches_export(tmp_path: Path) -> None:
    episodes = [make_episode(4, seed=3), make_episode(2, seed=4)]
    loaded = read_d4rl(write_d4rl(tmp_path / "w.h5", episodes, cameras=["front"], env_id=ENV_ID))
    for a, b in zip(episodes, loaded):
        assert_same_episode(a, b, cameras=["front"], attrs=False)


def test_d4rl_foreign_file_splitting(tmp_path: Path) -> None:
    """A minimal D4RL file (no next_observations, no timeouts): split on terminals, trailing rows kept."""
    path = tmp_path / "foreign.h5"
    terminals = np.zeros(10, bool)
    terminals[[3, 6]] = True
    with h5py.File(path, "w") as f:
        f["observations"] = np.arange(20, dtype=np.float32).reshape(10, 2)
        f["actions"] = np.arange(10, dtype=np.float32)[:, None].repeat(4, 1)
        f["rewards"] = np.arange(10, dtype=np.float32)
        f["terminals"] = terminals
    episodes = read_d4rl(path)
    # rows [0,4) [4,7) [7,10): without a final observation each loses its last transition
    assert [ep.num_steps for ep in episodes] == [3, 2, 2]
    np.testing.assert_array_equal(episodes[1].states[:, 0], [8, 10, 12])
    np.testing.assert_array_equal(episodes[1].actions[:, 0], [4, 5])
    assert np.isnan(episodes[0].task_progress).all() and episodes[0].attrs["terminated"]
    # with next_observations and timeouts nothing is lost
    with h5py.File(path, "a") as f:
        f["next_observations"] = f["observations"][()] + 100
        timeouts = np.zeros(10, bool)
        timeouts[8] = True
        f["timeouts"] = timeouts
    episodes = read_d4rl(path)
    assert [ep.num_steps for ep in episodes] == [4, 3, 2, 1]
    np.testing.assert_array_equal(episodes[2].states[:, 0], [14, 16, 116])
    assert not episodes[2].attrs["terminated"]


def test_d4rl_errors(tmp_path: Path) -> None:
    path = tmp_path / "bad.h5"
    with h5py.File(path, "w") as f:
        f["observations"] = np.zeros((5, 2), np.float32)
        f["actions"] = np.zeros((5, 4), np.float32)
    with pytest.raises(ValueError, match=r"missing required key\(s\) \['rewards', 'terminals'\]"):
        read_d4rl(path)
    with h5py.File(path, "a") as f:
        f["rewards"] = np.zeros(4, np.float32)
        f["terminals"] = np.zeros(5, bool)
    with pytest.raises(ValueError, match=r"'rewards' has shape \[4\], expected first dimension 5"):
        read_d4rl(path)
    with pytest.raises(FileNotFoundError, match=r"HDF5 file '.*missing\.h5' does not exist"):
        read_d4rl(tmp_path / "missing.h5")


def test_d4rl_pixel_observations(tmp_path: Path) -> None:
    frames = smooth_frames(6)
    path = tmp_path / "pixels.h5"
    with h5py.File(path, "w") as f:
        f["observations"] = frames
        f["next_observations"] = np.concatenate([frames[1:], frames[:1]])
        f["actions"] = np.zeros((6, 4), np.float32)
        f["rewards"] = np.zeros(6, np.float32)
        f["terminals"] = np.array([0, 0, 1, 0, 0, 1], bool)
    videos = load_videos(path)
    assert [len(v) for v in videos] == [4, 4]
    np.testing.assert_array_equal(videos[1].frames[:3], frames[3:])


# --------------------------------------------------------------------------- videos

def test_load_videos_suite_and_d4rl(tmp_path: Path, suite_file) -> None:
    path, episodes = suite_file
    videos = load_videos(path, camera="left")
    assert [len(v) for v in videos] == [7, 4, 9] and videos[0].text == "open the drawer"
    assert videos[1].source.endswith("demos.h5:demo_1")
    np.testing.assert_array_equal(videos[2].frames, episodes[2].frames["left"])
    with pytest.raises(ValueError, match="camera 'right'"):
        load_videos(path, camera="right")
    flat = export_d4rl(path, tmp_path / "flat.h5", camera="front")
    d4rl_videos = load_videos(flat)
    assert [len(v) for v in d4rl_videos] == [7, 4, 9] and d4rl_videos[2].text == "open the drawer"
    np.testing.assert_array_equal(d4rl_videos[0].frames, episodes[0].frames["front"])
    with pytest.raises(ValueError, match="no images for camera 'left'"):
        load_videos(flat, camera="left")


def test_frame_folder_root_single_and_manifest(tmp_path: Path) -> None:
    clips = [Video(smooth_frames(12, seed=0), "open the drawer", "a"), Video(smooth_frames(3, seed=1), "close it", "b")]
    root = write_frame_folder(tmp_path / "vip", clips)
    assert sorted(os.listdir(root)) == ["0", "1", "manifest.csv"]
    assert sorted(os.listdir(root / "0"), key=lambda n: int(n.split(".")[0]))[-1] == "11.png"
    for videos in (load_videos(root), load_videos(root / "manifest.csv")):
        assert [v.text for v in videos] == ["open the drawer", "close it"]
        np.testing.assert_array_equal(videos[0].frames, clips[0].frames)  # png is lossless; 10.png after 9.png
    (root / "manifest.csv").unlink()
    videos = load_videos(root)
    assert [len(v) for v in videos] == [12, 3] and videos[0].text is None
    single = load_videos(root / "1")
    assert len(single) == 1 and np.array_equal(single[0].frames, clips[1].frames)
    with pytest.raises(FileExistsError, match="already exists and is not an empty folder"):
        write_frame_folder(root, clips)


def _frames_at(folder: Path, frames: np.ndarray) -> Path:
    from PIL import Image

    folder.mkdir(parents=True)
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"{i}.png")
    return folder


@pytest.mark.parametrize("depth", [2, 3])
def test_nested_frame_folder_trees(tmp_path: Path, depth: int) -> None:
    """``<root>/**/<video>/<i>.png``: a video is a folder that directly holds frames, at any depth, depth first
    in natural order; empty and hidden folders are skipped."""
    root = tmp_path / "tree"
    parents = ["a", "b"] if depth == 2 else ["a/x", "a/y", "b/x"]
    clips = {}
    for p, parent in enumerate(parents):
        for v, name in enumerate(["2", "10"]):  # natural order: 2 before 10
            clips[f"{parent}/{name}"] = smooth_frames(3 + p + v, seed=10 * p + v)
            _frames_at(root / parent / name, clips[f"{parent}/{name}"])
    (root / "a" / "empty").mkdir()
    _frames_at(root / ".hidden" / "0", smooth_frames(2))
    videos = load_videos(root)
    assert [Path(v.source).relative_to(root).as_posix() for v in videos] == list(clips)
    for video, frames in zip(videos, clips.values()):
        np.testing.assert_array_equal(video.frames, frames)
    # a sub-tree loads the same way, and a leaf is one video
    assert len(load_videos(root / "a")) == (2 if depth == 2 else 4)
    assert len(load_videos(root / "a" / ("2" if depth == 2 else "x/2"))) == 1


def test_nested_tree_next_to_other_layouts(tmp_path: Path) -> None:
    root = tmp_path / "mixed"
    _frames_at(root / "task" / "0", smooth_frames(4))
    write_video(root / "task" / "clip.gif", smooth_frames(5), fps=10)
    np.save(root / "arr.npy", smooth_frames(6))
    assert sorted(len(v) for v in load_videos(root)) == [4, 5, 6]


@pytest.mark.parametrize("other", ["sub/0/0.png", "deep/sub/0/0.png", "clip.gif"])
def test_frames_next_to_other_videos_are_ambiguous(tmp_path: Path, other: str) -> None:
    root = _frames_at(tmp_path / "root", smooth_frames(3))
    if other.endswith(".png"):
        _frames_at((root / other).parent, smooth_frames(2))
    else:
        write_video(root / other, smooth_frames(3), fps=10)
    shown = other.split("/0/")[0] if other.endswith(".png") else other
    with pytest.raises(ValueError, match=rf"folder '.*root' is ambiguous: it holds frame images \(3, e\.g\. '0\.png'\) "
                                         rf"and other videos \('{shown}.*'\)"):
        load_videos(root)
    with pytest.raises(ValueError, match="is ambiguous"):  # also when the mixed folder lies deeper
        load_videos(tmp_path)


def test_manifest_errors(tmp_path: Path) -> None:
    root = write_frame_folder(tmp_path / "liv", [smooth_frames(4), smooth_frames(1)], manifest=False)
    manifest = root / "manifest.csv"
    manifest.write_text("directory,num_frames,text\n0,4,open the drawer\n1,1,\n")
    with pytest.raises(ValueError, match=r"manifest\.csv:row 3: missing 'text'"):
        load_videos(manifest)
    manifest.write_text("directory,num_frames,text\n0,4,open\n1,1,close\n")
    with pytest.raises(ValueError, match="has 1 frames, expected at least min_frames=2"):
        load_videos(manifest)
    assert len(load_videos(manifest, min_frames=1)) == 2
    manifest.write_text("directory,num_frames,text\n0,9,open\n")
    with pytest.raises(ValueError, match="has 4 images, expected num_frames=9"):
        load_videos(manifest)
    manifest.write_text("dir,text\n0,open\n")
    with pytest.raises(ValueError, match=r"missing \['directory', 'num_frames'\]"):
        load_videos(manifest)


@pytest.mark.parametrize("suffix,tolerance", [(".mp4", 12.0), (".gif", 8.0)])
def test_video_file_round_trip(tmp_path: Path, suffix: str, tolerance: float) -> None:
    frames = smooth_frames(10, size=32)
    path = write_video(tmp_path / f"clip{suffix}", frames, fps=10)
    assert os.listdir(tmp_path) == [f"clip{suffix}"]
    decoded = read_video_file(path)
    assert decoded.shape == frames.shape and decoded.dtype == np.uint8
    assert np.abs(decoded.astype(int) - frames.astype(int)).mean() < tolerance
    videos = load_videos(tmp_path)  # folder of video files
    assert len(videos) == 1 and videos[0].source == str(path)


def test_gif_keeps_repeated_frames(tmp_path: Path) -> None:
    frames = np.zeros((6, 8, 8, 3), np.uint8)
    frames[2:4] = 200  # Pillow merges identical consecutive frames when saving
    np.testing.assert_array_equal(read_video_file(write_video(tmp_path / "still.gif", frames, fps=7)), frames)


def test_write_video_odd_size_and_errors(tmp_path: Path) -> None:
    odd = smooth_frames(4, size=15)
    assert read_video_file(write_video(tmp_path / "odd.mp4", odd)).shape == odd.shape
    with pytest.raises(TypeError, match="uint8"):
        write_video(tmp_path / "f.mp4", odd.astype(np.float32))
    with pytest.raises(ValueError, match=r"\.mp4 or \.gif"):
        write_video(tmp_path / "f.avi", odd)
    with pytest.raises(ValueError, match="fps must be > 0"):
        write_video(tmp_path / "f.mp4", odd, fps=0)
    assert sorted(os.listdir(tmp_path)) == ["odd.mp4"]


def test_numpy_videos(tmp_path: Path) -> None:
    one, many = smooth_frames(5), np.stack([smooth_frames(4, seed=s) for s in range(3)])
    np.save(tmp_path / "one.npy", one)
    np.save(tmp_path / "many.npy", many)
    np.savez(tmp_path / "texts.npz", clips=many, text=np.array(["a", "b", "c"]))
    assert np.array_equal(load_videos(tmp_path / "one.npy")[0].frames, one)
    assert [len(v) for v in load_videos(tmp_path / "many.npy")] == [4, 4, 4]
    texts = load_videos(tmp_path / "texts.npz")
    assert [v.text for v in texts] == ["a", "b", "c"] and np.array_equal(texts[2].frames, many[2])
    np.save(tmp_path / "float.npy", one.astype(np.float32))
    with pytest.raises(ValueError, match=r"must hold uint8 \[T, H, W, 3\]"):
        load_videos(tmp_path / "float.npy")


def test_short_and_unreadable_videos(tmp_path: Path) -> None:
    np.save(tmp_path / "short.npy", smooth_frames(1))
    with pytest.raises(ValueError, match=r"short\.npy' has 1 frames, expected at least min_frames=2"):
        load_videos(tmp_path / "short.npy")
    (tmp_path / "broken.mp4").write_bytes(b"\x00not a video" * 10)
    with pytest.raises(ValueError, match=r"broken\.mp4.*unreadable"):
        load_videos(tmp_path / "broken.mp4")
    folder = tmp_path / "frames"
    folder.mkdir()
    Video(smooth_frames(2), None, "")  # valid
    from PIL import Image

    Image.fromarray(smooth_frames(1)[0]).save(folder / "0.png")
    (folder / "1.png").write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"1\.png.*unreadable or corrupt"):
        load_videos(folder)
    with pytest.raises(ValueError, match="unsupported video path"):
        (tmp_path / "notes.txt").write_text("x")
        load_videos(tmp_path / "notes.txt")
    with pytest.raises(FileNotFoundError, match=r"video path '.*missing\.mp4' does not exist"):
        load_videos(tmp_path / "missing.mp4")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="holds no videos"):
        load_videos(empty)


def test_video_validation() -> None:
    with pytest.raises(TypeError, match="uint8"):
        Video(np.zeros((2, 4, 4, 3), np.float32), None, "x")
    with pytest.raises(ValueError, match=r"\[T, H, W, 3\]"):
        Video(np.zeros((2, 4, 4), np.uint8), None, "x")


def test_minari_export(tmp_path: Path, suite_file, monkeypatch) -> None:
    try:
        import minari  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match=r"pip install 'vip-rl\[minari\]'"):
            export_minari(suite_file[0], "vipenvs/test/expert-v0")
        return
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    dataset = export_minari(suite_file[0], "vipenvs/test/expert-v0", camera="front", author="vip-rl tests")
    assert dataset.total_episodes == 3
    loaded = read_minari("vipenvs/test/expert-v0")
    for a, b in zip(suite_file[1], loaded):
        np.testing.assert_array_equal(a.frames["front"], b.frames["pixels"])
        np.testing.assert_array_equal(a.actions, b.actions)
        assert a.success == b.success


def test_read_minari_hdf5_layout(tmp_path: Path, monkeypatch) -> None:
    """A dataset laid out like Minari's HDF5 storage (built by hand: minari is an optional extra)."""
    data = tmp_path / "vip_envs" / "drawer" / "expert-v0" / "data"
    data.mkdir(parents=True)
    frames = smooth_frames(5)
    with h5py.File(data / "main_data.hdf5", "w") as f:
        for i, steps in enumerate((4, 2)):
            group = f.create_group(f"episode_{i}")
            group.attrs.update({"id": i, "seed": 10 + i, "total_steps": steps})
            obs = group.create_group("observations")
            obs["state"] = np.arange((steps + 1) * 2, dtype=np.float32).reshape(steps + 1, 2)
            obs["pixels"] = frames[: steps + 1]
            group["actions"] = np.ones((steps, 4), np.float32)
            group["rewards"] = np.arange(steps, dtype=np.float32)
            group["terminations"] = np.eye(steps, dtype=bool)[-1] if i == 0 else np.zeros(steps, bool)
            group["truncations"] = np.zeros(steps, bool) if i == 0 else np.eye(steps, dtype=bool)[-1]
            infos = group.create_group("infos")
            infos["success"] = np.eye(steps + 1, dtype=bool)[-1] if i == 0 else np.zeros(steps + 1, bool)
            infos["task_progress"] = np.linspace(0, 1, steps + 1)
    episodes = read_minari(tmp_path / "vip_envs" / "drawer" / "expert-v0")
    assert [ep.num_steps for ep in episodes] == [4, 2]
    first, second = episodes
    assert first.success and first.attrs["terminated"] and first.attrs["seed"] == 10 and not second.success
    np.testing.assert_array_equal(first.frames["pixels"], frames)
    np.testing.assert_array_equal(second.states, [[0, 1], [2, 3], [4, 5]])
    assert second.dones[-1] and not second.attrs["terminated"]
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    assert len(read_minari("vip_envs/drawer/expert-v0", load_images=False)) == 2
    with pytest.raises(FileNotFoundError, match=r"Minari dataset '.*nope' does not exist"):
        read_minari(tmp_path / "nope")
    with h5py.File(data / "main_data.hdf5", "a") as f:
        del f["episode_1/rewards"]
    with pytest.raises(ValueError, match="episode 'episode_1' has no key 'rewards'"):
        read_minari(data / "main_data.hdf5")


@pytest.mark.parametrize("cameras, expected", [(["corner"], "corner"), (["left", "front"], "front"), (["corner", "left"], None)])
def test_load_videos_reads_the_only_camera_else_front_when_none_is_named(tmp_path: Path, cameras, expected) -> None:
    episode = make_episode(cameras=cameras)
    path = write(tmp_path / "demos.h5", [episode], cameras=cameras)
    if expected is None:
        with pytest.raises(ValueError, match=r"has the cameras \['corner', 'left'\]; name the one to read"):
            load_videos(path)
        assert np.array_equal(load_videos(path, camera="left")[0].frames, episode.frames["left"])
        return
    (video,) = load_videos(path)
    assert np.array_equal(video.frames, episode.frames[expected])
