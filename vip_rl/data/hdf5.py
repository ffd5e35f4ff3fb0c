"""The suite's robomimic-style HDF5 files: streaming atomic writer and lazy / eager readers.

Layout (``format_version`` 1)::

    data                      attrs: env_id, cameras, image_size, format_version, total, num_episodes
    data/demo_<i>             attrs: env_id, task, instruction, seed, success, embodiment, policy, noise,
                                     num_samples (= T), ... (whatever the collector recorded)
    data/demo_<i>/obs/<cam>           uint8   [T+1, H, W, 3]  o_0..o_T, chunked one frame per chunk, compressed
    data/demo_<i>/obs/state           float32 [T+1, S]
    data/demo_<i>/obs/task_progress   float32 [T+1]
    data/demo_<i>/actions             float32 [T, A]
    data/demo_<i>/rewards             float32 [T]
    data/demo_<i>/dones               bool    [T]
    data/demo_<i>/states              float64 [T+1, nstate]   optional: exact simulator states
    data/demo_<i>/successes           bool    [T]             optional: info["success"] of each step

Images are compressed with gzip level 4 by default (measured against lzf on suite frames, see
``DEFAULT_COMPRESSION``); ``compression="lzf"`` or ``None`` are accepted too.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from types import TracebackType
from typing import Any, ContextManager, Iterable, Iterator, Sequence

import h5py
import numpy as np

from .._io import atomic_path
from .episode import Episode

__all__ = [
    "FORMAT_VERSION", "DEFAULT_COMPRESSION", "EpisodeWriter", "EpisodeFile",
    "write_episodes", "read_episodes", "open_hdf5",
]

FORMAT_VERSION = 1
# Measured on 557-600 96x96 OpenDrawer play frames, two runs on 2 shared cores (load 4-6): gzip-4
# 1.8 KiB/frame, writes 3.6-5.0k frames/s, reads 7-9k frames/s; lzf 2.9 KiB/frame, 8-11k / 9-10k
# frames/s; none 27.6 KiB/frame. `vip-rl collect` produces ~400 frames/s, so gzip-4 writing costs
# ~10% of collection; it gives 1.6x smaller files, reads as fast, and unlike lzf (an h5py-only filter)
# any HDF5 reader can decode it.
DEFAULT_COMPRESSION = "gzip"
_COMPRESSIONS = ("gzip", "lzf", None)
_DEMO_RE = re.compile(r"^demo_(\d+)$")


class _Aborted(Exception):
    """Thrown into the atomic write of an aborted `EpisodeWriter` so that it discards the temp file."""


def _check_attr_value(key: str, value: Any) -> Any:
    if isinstance(value, (str, bool, int, float, np.bool_, np.integer, np.floating)):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    if isinstance(value, (list, tuple, np.ndarray)):
        array = np.asarray(value)
        if array.dtype.kind in "biuf":
            return array
    raise TypeError(f"attribute {key!r} must be a str, bool, number or a list of them, "
                    f"got {type(value).__name__}: {value!r}")


def _write_attrs(target: h5py.AttributeManager, attrs: dict[str, Any]) -> None:
    for key, value in attrs.items():
        if value is None:
            continue  # HDF5 has no null; absent attrs read back as missing
        target[key] = _check_attr_value(key, value)


def _read_attr(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "OSU":
            return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in value.tolist()]
        return value.tolist()
    return value


def _read_attrs(source: h5py.AttributeManager) -> dict[str, Any]:
    return {key: _read_attr(source[key]) for key in source.keys()}


def _check_compression(compression: str | None, compression_opts: int | None) -> dict[str, Any]:
    if compression not in _COMPRESSIONS:
        raise ValueError(f"compression must be one of {_COMPRESSIONS}, got {compression!r}")
    if compression == "gzip":
        level = 4 if compression_opts is None else compression_opts
        if not isinstance(level, int) or not 0 <= level <= 9:
            raise ValueError(f"compression_opts must be a gzip level 0..9, got {compression_opts!r}")
        return {"compression": "gzip", "compression_opts": level}
    if compression_opts is not None:
        raise ValueError(f"compression_opts is only valid with compression='gzip', "
                         f"got {compression_opts!r} with {compression!r}")
    return {"compression": compression} if compression else {}


def open_hdf5(path: str | os.PathLike) -> h5py.File:
    """Open an HDF5 file read-only with the toolkit's errors.

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: the path is a directory, not an HDF5 file, or corrupt / truncated.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"HDF5 file {str(path)!r} does not exist")
    if path.is_dir():
        raise ValueError(f"expected an HDF5 file, got the directory {str(path)!r}")
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise ValueError(f"{str(path)!r} is not a readable HDF5 file: it is corrupt or truncated ({err})") from err


class EpisodeWriter:
    """Stream episodes into a suite HDF5 file; the file appears atomically on ``close()``.

    Writes go to a temp file in the destination directory which replaces ``path`` only when the
    writer is closed without error; on an exception inside ``with`` (or ``abort()``) the temp file
    is deleted and ``path`` is left as it was.

    Args:
        path: destination ``.h5``.
        env_id: Gymnasium id recorded in ``data.attrs["env_id"]``.
        cameras: camera names; every appended episode must have frames for each.
        image_size: side of the square frames (every frame must be ``[image_size, image_size, 3]``).
        compression: ``"gzip"`` (level ``compression_opts``, default 4), ``"lzf"`` or None, for images.
        attrs: extra ``data`` attributes.

    Example:
        >>> with EpisodeWriter("demos.h5", env_id="vip_envs/OpenDrawer-v0", cameras=["front"], image_size=96) as w:
        ...     w.append(episode)                                       # doctest: +SKIP
    """

    def __init__(self, path: str | os.PathLike, *, env_id: str, cameras: Sequence[str], image_size: int,
                 compression: str | None = DEFAULT_COMPRESSION, compression_opts: int | None = None,
                 attrs: dict[str, Any] | None = None) -> None:
        if not isinstance(env_id, str) or not env_id:
            raise ValueError(f"env_id must be a non-empty str, got {env_id!r}")
        if isinstance(cameras, str) or not cameras or not all(isinstance(c, str) and c for c in cameras):
            raise ValueError(f"cameras must be a non-empty sequence of camera names, got {cameras!r}")
        if len(set(cameras)) != len(cameras):
            raise ValueError(f"cameras must be unique, got {list(cameras)!r}")
        if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or image_size <= 0:
            raise ValueError(f"image_size must be a positive int, got {image_size!r}")
        self.path = Path(path)
        self.env_id = env_id
        self.cameras = list(cameras)
        self.image_size = int(image_size)
        self._image_filter = _check_compression(compression, compression_opts)
        # the temp file lives beside ``path`` until close(); no parent folders are created
        self._atomic: ContextManager[Path] | None = atomic_path(self.path, parents=False)
        self._tmp: Path | None = self._atomic.__enter__()
        self.num_episodes = 0
        self._total = 0
        try:
            self._file = h5py.File(self._tmp, "w")
            self._data = self._file.create_group("data")
            _write_attrs(self._data.attrs, {
                **(attrs or {}), "env_id": env_id, "cameras": self.cameras, "image_size": self.image_size,
                "format_version": FORMAT_VERSION, "total": 0, "num_episodes": 0,
            })
        except BaseException:
            self.abort()
            raise

    def append(self, episode: Episode) -> str:
        """Write one episode as ``data/demo_<n>``; returns the group name.

        Raises:
            TypeError: ``episode`` is not an `Episode`.
            ValueError: a camera is missing or frames are not ``[T+1, image_size, image_size, 3]``.
        """
        if self._file is None:
            raise ValueError(f"EpisodeWriter for {str(self.path)!r} is already closed")
        if not isinstance(episode, Episode):
            raise TypeError(f"episode must be an Episode, got {type(episode).__name__}")
        name = f"demo_{self.num_episodes}"
        expected = (episode.num_steps + 1, self.image_size, self.image_size, 3)
        for camera in self.cameras:
            if camera not in episode.frames:
                raise ValueError(f"episode {name} has no frames for camera {camera!r}; it has {episode.cameras}")
            if episode.frames[camera].shape != expected:
                raise ValueError(f"episode {name} frames[{camera!r}] must be uint8 {list(expected)}, "
                                 f"got {list(episode.frames[camera].shape)}")
        try:
            group = self._data.create_group(name)
            obs = group.create_group("obs")
            for camera in self.cameras:
                obs.create_dataset(camera, data=episode.frames[camera], dtype=np.uint8,
                                   chunks=(1, self.image_size, self.image_size, 3), **self._image_filter)
            obs.create_dataset("state", data=episode.states, dtype=np.float32)
            obs.create_dataset("task_progress", data=episode.task_progress, dtype=np.float32)
            group.create_dataset("actions", data=episode.actions, dtype=np.float32)
            group.create_dataset("rewards", data=episode.rewards, dtype=np.float32)
            group.create_dataset("dones", data=episode.dones, dtype=bool)
            if episode.sim_states is not None:
                group.create_dataset("states", data=episode.sim_states, dtype=np.float64)
            if episode.successes is not None:
                group.create_dataset("successes", data=episode.successes, dtype=bool)
            _write_attrs(group.attrs, {**episode.attrs, "num_samples": episode.num_steps})
        except BaseException:
            self.abort()
            raise
        self.num_episodes += 1
        self._total += episode.num_steps
        return name

    def close(self) -> Path:
        """Finish the file and move it onto ``path``; returns ``path``."""
        if self._file is None:
            raise ValueError(f"EpisodeWriter for {str(self.path)!r} is already closed")
        try:
            self._data.attrs["total"] = self._total
            self._data.attrs["num_episodes"] = self.num_episodes
            self._file.close()
            self._file = None
        except BaseException:
            self.abort()
            raise
        atomic, self._atomic, self._tmp = self._atomic, None, None
        if atomic is not None:
            atomic.__exit__(None, None, None)  # renames the temp file onto ``path``
        return self.path

    def abort(self) -> None:
        """Discard everything written so far (removes the temp file; ``path`` is untouched)."""
        if getattr(self, "_file", None) is not None:
            try:
                self._file.close()
            except (OSError, ValueError):
                pass  # the temp file is deleted below anyway
        self._file = None
        atomic, self._atomic, self._tmp = getattr(self, "_atomic", None), None, None
        if atomic is not None:
            aborted = _Aborted()
            atomic.__exit__(_Aborted, aborted, None)  # deletes the temp file; ``path`` is untouched

    def __enter__(self) -> "EpisodeWriter":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __del__(self) -> None:
        # a writer dropped without close() leaves no temp file behind
        if getattr(self, "_tmp", None) is not None and getattr(self, "_file", None) is not None:
            self.abort()


def write_episodes(path: str | os.PathLike, episodes: Iterable[Episode], *, env_id: str,
                   cameras: Sequence[str], image_size: int, compression: str | None = DEFAULT_COMPRESSION,
                   compression_opts: int | None = None, attrs: dict[str, Any] | None = None) -> Path:
    """Write episodes to a suite HDF5 file atomically (see `EpisodeWriter` for the arguments).

    ``episodes`` may be a generator: episodes are written as they come, so memory stays bounded.

    Returns:
        ``Path(path)``.

    Raises:
        ValueError / TypeError: on invalid arguments or an episode that does not match ``cameras`` /
            ``image_size``; nothing is left on disk in that case.
    """
    with EpisodeWriter(path, env_id=env_id, cameras=cameras, image_size=image_size,
                       compression=compression, compression_opts=compression_opts, attrs=attrs) as writer:
        for episode in episodes:
            writer.append(episode)
    return Path(path)


def _demo_sort_key(name: str) -> tuple[int, str]:
    match = _DEMO_RE.match(name)
    return (int(match.group(1)), name) if match else (1 << 62, name)


class EpisodeFile:
    """Lazy reader of a suite HDF5 file (context manager); only what you ask for is read.

    Args:
        path: the ``.h5`` file.

    Attributes:
        env_id, cameras, image_size, attrs (``data`` attributes), demo_keys (``demo_<i>`` sorted by i).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: not an HDF5 file, corrupt / truncated, or no ``data`` group.

    Note:
        An h5py handle must not cross a ``fork``: in DataLoader workers open one `EpisodeFile` per
        worker (e.g. lazily on first use), not in the parent.

    Example:
        >>> with EpisodeFile("demos.h5") as f:                          # doctest: +SKIP
        ...     for i in range(f.num_episodes):
        ...         first = f.frames(i, "front")[0]          # one frame, read on demand
        ...     episode = f.episode(3, cameras=["front"])
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._file: h5py.File | None = open_hdf5(self.path)
        try:
            if "data" not in self._file or not isinstance(self._file["data"], h5py.Group):
                hint = ("; it looks like a D4RL-flat file: use vip_rl.data.read_d4rl or load_episodes"
                        if "observations" in self._file else "")
                raise ValueError(f"{str(self.path)!r} is not a suite HDF5 file: missing group 'data' "
                                 f"(top-level keys: {sorted(self._file.keys())}){hint}")
            self._data = self._file["data"]
            self.attrs = _read_attrs(self._data.attrs)
            self.demo_keys = sorted((k for k in self._data.keys() if isinstance(self._data[k], h5py.Group)),
                                    key=_demo_sort_key)
        except ValueError:
            self.close()
            raise
        except (OSError, KeyError, RuntimeError) as err:
            self.close()
            raise ValueError(f"{str(self.path)!r} is corrupt or truncated: {err}") from err
        self.env_id: str | None = self.attrs.get("env_id")
        cameras = self.attrs.get("cameras")
        self.cameras: list[str] = [cameras] if isinstance(cameras, str) else list(cameras or [])
        self.image_size: int | None = self.attrs.get("image_size")

    @property
    def num_episodes(self) -> int:
        return len(self.demo_keys)

    def __len__(self) -> int:
        return self.num_episodes

    def _demo(self, index: int | str) -> tuple[str, h5py.Group]:
        if self._file is None:
            raise ValueError(f"EpisodeFile {str(self.path)!r} is closed")
        if isinstance(index, str):
            if index not in self.demo_keys:
                raise KeyError(f"no demo {index!r} in {str(self.path)!r}; it has {len(self.demo_keys)} demos")
            return index, self._data[index]
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"index must be an int or a demo name, got {type(index).__name__}")
        if not -self.num_episodes <= index < self.num_episodes:
            raise IndexError(f"episode index {index} out of range for {self.num_episodes} episodes "
                             f"in {str(self.path)!r}")
        name = self.demo_keys[int(index)]
        return name, self._data[name]

    def _dataset(self, demo: str, group: h5py.Group, key: str) -> h5py.Dataset:
        try:
            item = group[key]
        except KeyError:
            raise ValueError(f"{str(self.path)!r}: demo {demo!r} has no key {key!r}") from None
        except (OSError, RuntimeError) as err:
            raise ValueError(f"{str(self.path)!r}: reading {demo}/{key} failed, "
                             f"the file is corrupt or truncated ({err})") from err
        if not isinstance(item, h5py.Dataset):
            raise ValueError(f"{str(self.path)!r}: {demo}/{key} must be a dataset, got a group")
        return item

    def _read(self, demo: str, dataset: h5py.Dataset, selection: Any = ()) -> np.ndarray:
        try:
            return dataset[selection]
        except (OSError, RuntimeError) as err:
            raise ValueError(f"{str(self.path)!r}: reading {dataset.name} of {demo!r} failed, "
                             f"the file is corrupt or truncated ({err})") from err

    def num_steps(self, index: int | str) -> int:
        """T of episode ``index`` (number of actions)."""
        demo, group = self._demo(index)
        return int(self._dataset(demo, group, "actions").shape[0])

    def episode_attrs(self, index: int | str) -> dict[str, Any]:
        """The attributes of episode ``index`` (instruction, success, seed, ...)."""
        demo, group = self._demo(index)
        return _read_attrs(group.attrs)

    def available_cameras(self, index: int | str) -> list[str]:
        """Image keys present under ``obs/`` of episode ``index``."""
        demo, group = self._demo(index)
        if "obs" not in group:
            raise ValueError(f"{str(self.path)!r}: demo {demo!r} has no key 'obs'")
        obs = group["obs"]
        return [k for k in obs.keys() if isinstance(obs[k], h5py.Dataset) and obs[k].ndim == 4]

    def frames(self, index: int | str, camera: str) -> h5py.Dataset:
        """The lazy h5py dataset uint8 ``[T+1, H, W, 3]`` of one camera; slice it to read frames.

        Raises:
            ValueError: the camera is not in this episode.
        """
        demo, group = self._demo(index)
        if "obs" not in group or camera not in group["obs"]:
            have = self.available_cameras(index) if "obs" in group else []
            raise ValueError(f"{str(self.path)!r}: demo {demo!r} has no key 'obs/{camera}' "
                             f"(camera {camera!r}); cameras present: {have}")
        return self._dataset(demo, group, f"obs/{camera}")

    def episode(self, index: int | str, *, cameras: Sequence[str] | None = None, load_images: bool = True) -> Episode:
        """Read episode ``index`` (position in ``demo_keys`` or the demo name) fully into memory.

        Args:
            cameras: which cameras to load (default: all in ``data.attrs["cameras"]``, else every image key).
            load_images: False skips frames (``Episode.frames == {}``), much faster for state-only use.

        Raises:
            ValueError: missing key, wrong shapes (naming the demo and key), or a corrupt file.
        """
        demo, group = self._demo(index)
        read = lambda key: self._read(demo, self._dataset(demo, group, key))  # noqa: E731
        actions = read("actions")
        num_steps = actions.shape[0] if actions.ndim else -1
        if actions.ndim != 2:
            raise ValueError(f"{str(self.path)!r}: {demo}/actions must be [T, A], got shape {list(actions.shape)}")
        fields = {"states": read("obs/state"), "task_progress": read("obs/task_progress"),
                  "rewards": read("rewards"), "dones": read("dones")}
        for key, expected in (("states", num_steps + 1), ("task_progress", num_steps + 1),
                              ("rewards", num_steps), ("dones", num_steps)):
            if fields[key].ndim == 0 or fields[key].shape[0] != expected:
                raise ValueError(f"{str(self.path)!r}: {demo}/{key} has shape {list(fields[key].shape)}, "
                                 f"expected length {expected} for {num_steps} actions")
        frames: dict[str, np.ndarray] = {}
        if load_images:
            wanted = list(cameras) if cameras is not None else (self.cameras or self.available_cameras(index))
            for camera in wanted:
                images = self._read(demo, self.frames(index, camera))
                if (images.dtype != np.uint8 or images.ndim != 4 or images.shape[0] != num_steps + 1
                        or images.shape[-1] != 3):
                    raise ValueError(f"{str(self.path)!r}: {demo}/obs/{camera} must be uint8 "
                                     f"[T+1={num_steps + 1}, H, W, 3], "
                                     f"got {images.dtype} {list(images.shape)}")
                frames[camera] = images
        sim_states = read("states") if "states" in group else None
        successes = read("successes") if "successes" in group else None
        try:
            return Episode(frames=frames, actions=actions, sim_states=sim_states, successes=successes,
                           attrs=_read_attrs(group.attrs), **fields)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{str(self.path)!r}: demo {demo!r} is inconsistent: {err}") from err

    def __getitem__(self, index: int | str) -> Episode:
        return self.episode(index)

    def __iter__(self) -> Iterator[Episode]:
        for index in range(self.num_episodes):
            yield self.episode(index)

    def iter_episodes(self, *, cameras: Sequence[str] | None = None, load_images: bool = True) -> Iterator[Episode]:
        """Yield episodes one by one (bounded memory)."""
        for index in range(self.num_episodes):
            yield self.episode(index, cameras=cameras, load_images=load_images)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> "EpisodeFile":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"EpisodeFile({str(self.path)!r}, num_episodes={self.num_episodes}, env_id={self.env_id!r}, "
                f"cameras={self.cameras}, image_size={self.image_size})")


def read_episodes(path: str | os.PathLike, *, cameras: Sequence[str] | None = None,
                  load_images: bool = True) -> list[Episode]:
    """Read every episode of a suite HDF5 file into memory.

    Args:
        path: the ``.h5`` file written by `write_episodes` / ``vip-rl collect``.
        cameras: cameras to load (default: all recorded).
        load_images: False loads no frames (``Episode.frames == {}``).

    Returns:
        list of `Episode`, in ``demo_<i>`` order.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: not HDF5 / corrupt / truncated, missing group or key (naming the demo and key),
            or inconsistent lengths.
    """
    with EpisodeFile(path) as file:
        return list(file.iter_episodes(cameras=cameras, load_images=load_images))
