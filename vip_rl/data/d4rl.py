"""D4RL's flat HDF5 layout: export from suite files, write from episodes, read back into `Episode`s.

Only h5py is needed (the ``d4rl`` package does not install here). Every top-level array has one row
per transition (N rows), so ``d4rl``'s ``get_dataset`` / ``qlearning_dataset`` / ``sequence_dataset``
read these files unchanged; per-episode extras live under ``metadata/`` (which ``sequence_dataset``
skips)::

    observations               float32 [N, S]   o_t (state)
    next_observations          float32 [N, S]   o_{t+1}
    actions                    float32 [N, A]
    rewards                    float32 [N]      reward of step t
    terminals                  bool    [N]      the env terminated after step t
    timeouts                   bool    [N]      the episode was cut (time limit / early stop) after step t
    infos/success              bool    [N]      info["success"] returned by step t (describes o_{t+1})
    infos/task_progress        float32 [N]      true progress of o_t
    infos/next_task_progress   float32 [N]      true progress of o_{t+1}
    infos/states               float64 [N, n]   exact simulator state of o_t (when recorded)
    observations_images/<cam>  uint8 [N, H, W, 3]  image of o_t (chunked per frame, compressed)
    metadata/final_images/<cam>   uint8 [E, H, W, 3]  image of each episode's last observation o_T
    metadata/final_states         float64 [E, n]      simulator state of o_T (when recorded)
    metadata/episode_lengths      int64 [E];  metadata/success bool [E];  metadata/seeds int64 [E]
    metadata/instructions         str [E]  (empty string = none)
    metadata/episode_attrs/<key>  [E]      every scalar episode attr (task, policy, noise, ...)
    metadata attrs: env_id, cameras, image_size, format="vip_rl-d4rl", format_version

Episodes end at ``terminals | timeouts`` (D4RL semantics); rows after the last end form a final
episode. A foreign D4RL file without ``next_observations`` (or without final images while images are
read) loses each episode's last transition, because an `Episode` needs ``T + 1`` observations.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

import h5py
import numpy as np

from .._io import atomic_path
from .episode import Episode, Video
from .hdf5 import DEFAULT_COMPRESSION, EpisodeFile, _check_compression, _read_attrs, open_hdf5, read_episodes

__all__ = ["export_d4rl", "write_d4rl", "read_d4rl", "load_episodes", "load_d4rl_videos", "D4RL_REQUIRED_KEYS"]

D4RL_REQUIRED_KEYS = ("observations", "actions", "rewards", "terminals")
D4RL_FORMAT_VERSION = 1


def _cameras_arg(camera: str | Sequence[str] | None, available: Sequence[str]) -> list[str]:
    if camera is None:
        return list(available)
    cameras = [camera] if isinstance(camera, str) else list(camera)
    for cam in cameras:
        if cam not in available:
            raise ValueError(f"camera {cam!r} not in the source; cameras available: {list(available)}")
    return cameras


def _write_flat(dst: Path, lengths: list[int], get_episode: Callable[[int], Episode], *, cameras: list[str],
                image_size: int | None, env_id: str | None, compression: str | None,
                extra_attrs: dict[str, Any]) -> Path:
    image_filter = _check_compression(compression, None)
    num_rows, num_episodes = int(sum(lengths)), len(lengths)
    with atomic_path(dst, parents=False) as tmp, h5py.File(tmp, "w") as out:
        created: dict[str, h5py.Dataset] = {}

        def dataset(name: str, shape: tuple[int, ...], dtype: Any, **kwargs: Any) -> h5py.Dataset:
            if name not in created:
                created[name] = out.create_dataset(name, shape=shape, dtype=dtype, **kwargs)
            return created[name]

        instructions, successes, seeds = [], np.zeros(num_episodes, bool), np.full(num_episodes, -1, np.int64)
        episode_attrs: list[dict[str, Any]] = []
        row = 0
        for index in range(num_episodes):
            ep = get_episode(index)
            t_len = ep.num_steps
            rows = slice(row, row + t_len)
            state_dim, action_dim = ep.states.shape[1], ep.actions.shape[1]
            dataset("observations", (num_rows, state_dim), np.float32)[rows] = ep.states[:-1]
            dataset("next_observations", (num_rows, state_dim), np.float32)[rows] = ep.states[1:]
            dataset("actions", (num_rows, action_dim), np.float32)[rows] = ep.actions
            dataset("rewards", (num_rows,), np.float32)[rows] = ep.rewards
            terminal = bool(ep.attrs.get("terminated", False))
            terminals, timeouts = np.zeros(t_len, bool), np.zeros(t_len, bool)
            if t_len:
                terminals[-1], timeouts[-1] = terminal, not terminal
            dataset("terminals", (num_rows,), bool)[rows] = terminals
            dataset("timeouts", (num_rows,), bool)[rows] = timeouts
            if ep.successes is not None:
                step_success = ep.successes
            else:
                step_success = np.zeros(t_len, bool)
                if t_len:
                    step_success[-1] = ep.success
            dataset("infos/success", (num_rows,), bool)[rows] = step_success
            dataset("infos/task_progress", (num_rows,), np.float32)[rows] = ep.task_progress[:-1]
            dataset("infos/next_task_progress", (num_rows,), np.float32)[rows] = ep.task_progress[1:]
            if ep.sim_states is not None:
                nstate = ep.sim_states.shape[1]
                dataset("infos/states", (num_rows, nstate), np.float64)[rows] = ep.sim_states[:-1]
                dataset("metadata/final_states", (num_episodes, nstate), np.float64)[index] = ep.sim_states[-1]
            for cam in cameras:
                images = ep.frames[cam]
                height, width = images.shape[1:3]
                dataset(f"observations_images/{cam}", (num_rows, height, width, 3), np.uint8,
                        chunks=(1, height, width, 3), **image_filter)[rows] = images[:-1]
                dataset(f"metadata/final_images/{cam}", (num_episodes, height, width, 3), np.uint8,
                        chunks=(1, height, width, 3), **image_filter)[index] = images[-1]
            episode_attrs.append(ep.attrs)
            instructions.append(ep.instruction or "")
            successes[index] = ep.success
            seed = ep.attrs.get("seed")
            if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
                seeds[index] = seed
            row += t_len
        meta = out.require_group("metadata")
        meta.create_dataset("episode_lengths", data=np.asarray(lengths, np.int64))
        meta.create_dataset("success", data=successes)
        meta.create_dataset("seeds", data=seeds)
        meta.create_dataset("instructions", data=np.asarray(instructions, dtype=object),
                            dtype=h5py.string_dtype("utf-8"))
        _write_episode_attrs(meta.create_group("episode_attrs"), episode_attrs)
        attrs = {**extra_attrs, "format": "vip_rl-d4rl", "format_version": D4RL_FORMAT_VERSION,
                 "cameras": cameras, "num_episodes": num_episodes}
        if env_id:
            attrs["env_id"] = env_id
        if image_size:
            attrs["image_size"] = int(image_size)
        for key, value in attrs.items():
            meta.attrs[key] = value
    return dst


def _write_episode_attrs(group: h5py.Group, episode_attrs: list[dict[str, Any]]) -> None:
    """Per-episode scalar attrs present in every episode -> ``metadata/episode_attrs/<key>`` [E]."""
    keys = set.intersection(*(set(a) for a in episode_attrs)) if episode_attrs else set()
    for key in sorted(keys):
        values = [a[key] for a in episode_attrs]
        if all(isinstance(v, str) for v in values):
            group.create_dataset(key, data=np.asarray(values, dtype=object), dtype=h5py.string_dtype("utf-8"))
        elif all(isinstance(v, (bool, np.bool_)) for v in values):
            group.create_dataset(key, data=np.asarray(values, bool))
        elif all(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in values):
            group.create_dataset(key, data=np.asarray(values, np.int64))
        elif all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))
                 for v in values):
            group.create_dataset(key, data=np.asarray(values, np.float64))
        # other kinds (lists, mixed types) stay in the suite file only


def _episode_attr(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return value.item() if isinstance(value, np.generic) else value


def export_d4rl(src_h5: str | os.PathLike, dst_h5: str | os.PathLike, *, camera: str | Sequence[str] | None = "front",
                include_images: bool = True, compression: str | None = DEFAULT_COMPRESSION) -> Path:
    """Convert a suite HDF5 file into D4RL's flat layout (module docstring), atomically.

    Episodes are streamed one at a time, so memory stays at one episode.

    Args:
        src_h5: suite file (`write_episodes` / ``vip-rl collect``).
        dst_h5: destination ``.h5``.
        camera: camera(s) written under ``observations_images/`` (None: all cameras).
        include_images: False writes state-only data.
        compression: image compression (``"gzip"``, ``"lzf"`` or None).

    Returns:
        ``Path(dst_h5)``. Episodes with 0 steps have no rows in this layout and are skipped.

    Raises:
        FileNotFoundError / ValueError: as `read_episodes`; ValueError for a camera not in the source.
    """
    with EpisodeFile(src_h5) as src:
        if src.num_episodes == 0:
            raise ValueError(f"{str(src_h5)!r} has no episodes to export")
        available = src.cameras or src.available_cameras(0)
        cameras = _cameras_arg(camera, available) if include_images else []
        # a 0-step episode has no row in the flat layout, so it is skipped (its metadata would misalign)
        kept = [i for i in range(src.num_episodes) if src.num_steps(i) > 0]
        lengths = [src.num_steps(i) for i in kept]
        skip = ("cameras", "image_size", "format_version", "total", "num_episodes", "seed")
        extra = {k: v for k, v in src.attrs.items() if k not in skip}
        extra["source"] = os.path.basename(str(src_h5))
        return _write_flat(Path(dst_h5), lengths,
                           lambda i: src.episode(kept[i], cameras=cameras, load_images=bool(cameras)),
                           cameras=cameras, image_size=src.image_size, env_id=src.env_id,
                           compression=compression, extra_attrs=extra)


def write_d4rl(path: str | os.PathLike, episodes: Sequence[Episode], *, cameras: Sequence[str] | None = None,
               env_id: str | None = None, compression: str | None = DEFAULT_COMPRESSION) -> Path:
    """Write in-memory episodes in D4RL's flat layout, atomically.

    Args:
        cameras: cameras to write as images (default: those of the first episode; ``[]`` for none).
        env_id: recorded in ``metadata.attrs``.
    """
    episodes = [ep for ep in episodes if not isinstance(ep, Episode) or ep.num_steps > 0]  # 0 steps: no rows
    if not episodes:
        raise ValueError("episodes must contain at least one Episode with at least one step, got none")
    for i, ep in enumerate(episodes):
        if not isinstance(ep, Episode):
            raise TypeError(f"episodes[{i}] must be an Episode, got {type(ep).__name__}")
    cameras = list(episodes[0].frames) if cameras is None else list(cameras)
    for i, ep in enumerate(episodes):
        missing = [c for c in cameras if c not in ep.frames]
        if missing:
            raise ValueError(f"episodes[{i}] has no frames for cameras {missing}; it has {ep.cameras}")
    size = episodes[0].frames[cameras[0]].shape[1] if cameras else None
    return _write_flat(Path(path), [ep.num_steps for ep in episodes], episodes.__getitem__, cameras=cameras,
                       image_size=size, env_id=env_id, compression=compression, extra_attrs={})


def _episode_bounds(ends: np.ndarray) -> list[tuple[int, int]]:
    bounds, start = [], 0
    for end in np.flatnonzero(ends):
        bounds.append((start, int(end) + 1))
        start = int(end) + 1
    if start < len(ends):
        bounds.append((start, len(ends)))
    return bounds


def read_d4rl(path: str | os.PathLike, *, camera: str | Sequence[str] | None = None,
              load_images: bool = True) -> list[Episode]:
    """Read a D4RL-flat HDF5 file (ours or a foreign one) into episodes split on ``terminals | timeouts``.

    Args:
        path: the ``.h5`` file.
        camera: image camera(s) to load from ``observations_images/`` (None: all present). When
            ``observations`` itself is uint8 ``[N, H, W, 3]`` it becomes ``frames["pixels"]`` and
            ``states`` is empty ``[T+1, 0]``.
        load_images: False loads no frames.

    Returns:
        list of `Episode`; ``attrs`` carries instruction / success / seed from ``metadata/`` when present,
        ``terminated`` (last row's terminal flag) and the file-level ``metadata`` attrs.

    Raises:
        FileNotFoundError: missing file.
        ValueError: not HDF5 / corrupt / truncated, a missing required key (observations, actions,
            rewards, terminals), or arrays whose first dimension disagrees.
    """
    path = Path(path)
    with open_hdf5(path) as file:
        missing = [k for k in D4RL_REQUIRED_KEYS if k not in file]
        if missing:
            raise ValueError(f"{str(path)!r} is not a D4RL-flat file: missing required key(s) {missing} "
                             f"(top-level keys: {sorted(file.keys())})")
        try:
            return _read_flat(path, file, camera=camera, load_images=load_images)
        except (OSError, RuntimeError) as err:
            raise ValueError(f"{str(path)!r} is corrupt or truncated: {err}") from err


def _read_flat(path: Path, file: h5py.File, *, camera: str | Sequence[str] | None,
               load_images: bool) -> list[Episode]:
    observations = file["observations"]
    num_rows = observations.shape[0]

    def rows_key(key: str, *, required: bool = False) -> np.ndarray | None:
        if key not in file:
            if required:
                raise ValueError(f"{str(path)!r}: missing key {key!r}")
            return None
        array = file[key][()]
        if array.ndim == 0 or array.shape[0] != num_rows:
            raise ValueError(f"{str(path)!r}: {key!r} has shape {list(array.shape)}, expected first dimension "
                             f"{num_rows} like 'observations'")
        return array

    pixel_obs = observations.dtype == np.uint8 and observations.ndim == 4
    obs = rows_key("observations")
    if not pixel_obs and obs.ndim == 1:
        obs = obs[:, None]
    actions = rows_key("actions")
    if actions.ndim == 1:
        actions = actions[:, None]
    rewards = rows_key("rewards").reshape(num_rows).astype(np.float32)
    terminals = rows_key("terminals").reshape(num_rows).astype(bool)
    timeouts = rows_key("timeouts")
    timeouts = np.zeros(num_rows, bool) if timeouts is None else timeouts.reshape(num_rows).astype(bool)
    next_obs = rows_key("next_observations")
    step_success = rows_key("infos/success")
    progress, next_progress = rows_key("infos/task_progress"), rows_key("infos/next_task_progress")
    sim_states = rows_key("infos/states")
    meta = file["metadata"] if "metadata" in file and isinstance(file["metadata"], h5py.Group) else None
    meta_attrs = _read_attrs(meta.attrs) if meta is not None else {}

    image_group = file["observations_images"] if "observations_images" in file else None
    available = list(image_group.keys()) if image_group is not None else []
    cameras: list[str] = []
    if load_images and not pixel_obs:
        if camera is None:
            cameras = available
        else:
            cameras = [camera] if isinstance(camera, str) else list(camera)
            for cam in cameras:
                if cam not in available:
                    raise ValueError(f"{str(path)!r}: no key 'observations_images/{cam}' (camera {cam!r}); "
                                     f"cameras present: {available}")
    images = {cam: image_group[cam] for cam in cameras}
    for cam, dset in images.items():
        if dset.dtype != np.uint8 or dset.ndim != 4 or dset.shape[0] != num_rows or dset.shape[-1] != 3:
            raise ValueError(f"{str(path)!r}: observations_images/{cam} must be uint8 [N={num_rows}, H, W, 3], "
                             f"got {dset.dtype} {list(dset.shape)}")

    bounds = _episode_bounds(terminals | timeouts)

    def meta_key(key: str) -> np.ndarray | None:
        if meta is None or key not in meta:
            return None
        array = meta[key][()]
        return array if array.ndim >= 1 and array.shape[0] == len(bounds) else None

    final_images = {cam: meta_key(f"final_images/{cam}") for cam in cameras}
    final_states = meta_key("final_states")
    instructions, success, seeds = meta_key("instructions"), meta_key("success"), meta_key("seeds")
    per_episode: dict[str, np.ndarray] = {}
    if meta is not None and isinstance(meta.get("episode_attrs"), h5py.Group):
        for key in meta["episode_attrs"]:
            values = meta_key(f"episode_attrs/{key}")
            if values is not None:
                per_episode[key] = values
    # a final observation exists for every episode only with next_observations (and final images if read)
    has_final = (next_obs is not None or pixel_obs) and all(v is not None for v in final_images.values())
    if pixel_obs:
        has_final = next_obs is not None

    episodes = []
    for index, (start, end) in enumerate(bounds):
        cut = end if has_final else end - 1  # rows whose transitions are kept
        if cut - start < 1 and not has_final:
            continue  # a 1-row episode without its final observation holds no transition
        t_rows = slice(start, cut)
        last = end - 1
        if pixel_obs:
            frames_all = obs[start:end]
            if has_final:
                frames_all = np.concatenate([frames_all, next_obs[last:end]])
            frames = {"pixels": frames_all} if load_images else {}
            states = np.zeros((cut - start + 1, 0), np.float32)
        else:
            states = obs[start:end] if not has_final else np.concatenate([obs[start:end], next_obs[last:end]])
            frames = {}
            for cam, dset in images.items():
                clip = dset[start:end]
                frames[cam] = np.concatenate([clip, final_images[cam][index][None]]) if has_final else clip
        if progress is not None:
            prog = progress[start:end]
            if has_final:
                tail = next_progress[last:end] if next_progress is not None else np.full(1, np.nan, np.float32)
                prog = np.concatenate([prog, tail])
        else:
            prog = np.full(cut - start + 1, np.nan, np.float32)
        sims = None
        if sim_states is not None:
            if has_final and final_states is not None:
                sims = np.concatenate([sim_states[start:end], final_states[index][None]])
            elif not has_final:
                sims = sim_states[start:end]
        attrs: dict[str, Any] = {k: v for k, v in meta_attrs.items() if k not in ("cameras", "num_episodes")}
        attrs.update({key: _episode_attr(values[index]) for key, values in per_episode.items()})
        attrs["terminated"] = bool(terminals[last])
        if instructions is not None:
            text = instructions[index]
            text = text.decode("utf-8") if isinstance(text, bytes) else str(text)
            if text:
                attrs["instruction"] = text
        if success is not None:
            attrs["success"] = bool(success[index])
        elif step_success is not None:
            attrs["success"] = bool(step_success[cut - 1]) if cut > start else False
        if seeds is not None and int(seeds[index]) >= 0:
            attrs["seed"] = int(seeds[index])
        dones = (terminals | timeouts)[t_rows]
        episodes.append(Episode(
            frames=frames, states=states, task_progress=prog, actions=actions[t_rows], rewards=rewards[t_rows],
            dones=dones, attrs=attrs, sim_states=sims,
            successes=step_success[t_rows] if step_success is not None else None))
    return episodes


def load_d4rl_videos(path: str | os.PathLike, *, camera: str = "front") -> list[Video]:
    """One `Video` per episode of a D4RL-flat file with images (used by `load_videos`)."""
    path = Path(path)
    with open_hdf5(path) as file:
        pixel_obs = "observations" in file and file["observations"].dtype == np.uint8 and file["observations"].ndim == 4
        available = list(file["observations_images"].keys()) if "observations_images" in file else []
    if not pixel_obs and camera not in available:
        raise ValueError(f"D4RL file {str(path)!r} has no images for camera {camera!r}: expected "
                         f"'observations_images/{camera}' (cameras present: {available}) or uint8 image observations")
    episodes = read_d4rl(path, camera=None if pixel_obs else camera)
    key = "pixels" if pixel_obs else camera
    return [Video(ep.frames[key], ep.instruction, f"{path}:episode_{i}") for i, ep in enumerate(episodes)]


def load_episodes(path: str | os.PathLike, *, cameras: Sequence[str] | None = None,
                  load_images: bool = True) -> list[Episode]:
    """Read episodes from a suite HDF5 file or a D4RL-flat HDF5 file, whichever ``path`` is.

    Raises:
        FileNotFoundError / ValueError: as `vip_rl.data.read_episodes` / `read_d4rl`.
    """
    with open_hdf5(path) as file:
        is_d4rl = "data" not in file and "observations" in file
    if is_d4rl:
        return read_d4rl(path, camera=cameras, load_images=load_images)
    return read_episodes(path, cameras=cameras, load_images=load_images)
