"""Minari datasets: export a suite HDF5 file (needs the optional extra ``minari``, imported lazily) and
read a local Minari HDF5 dataset back into `Episode`s with h5py alone (no ``minari`` needed).

Minari's HDF5 storage (``<dataset>/data/main_data.hdf5``): one group ``episode_<id>`` per episode with
``observations`` (``[T+1, ...]``; a group for Dict spaces), ``actions [T, ...]``, ``rewards``,
``terminations``, ``truncations`` (``[T]``) and ``infos`` (a group of ``[T+1]`` arrays) plus attrs
``id``, ``seed``, ``total_steps``.
"""
from __future__ import annotations

import inspect
import os
from typing import Any

import numpy as np

from pathlib import Path

import h5py

from .episode import Episode
from .hdf5 import EpisodeFile, _read_attrs, open_hdf5

__all__ = ["export_minari", "read_minari"]


def _require_minari() -> Any:
    try:
        import minari
    except ImportError as err:
        raise ImportError("export_minari needs the optional dependency 'minari': "
                          "pip install 'vip-rl[minari]'") from err
    return minari


def export_minari(src_h5: str | os.PathLike, dataset_id: str, *, camera: str | None = None,
                  author: str | None = None, description: str | None = None) -> Any:
    """Create a local Minari dataset ``dataset_id`` (e.g. ``"vip_envs/opendrawer/expert-v0"``) from a suite file.

    Observations are the state vectors, or ``{"state", "pixels"}`` dicts when ``camera`` is given.
    Each episode ends truncated unless its ``terminated`` attr is True; infos carry ``success`` and
    ``task_progress``.

    Returns:
        the ``minari.MinariDataset``.

    Raises:
        ImportError: minari is not installed (names ``pip install 'vip-rl[minari]'``).
        FileNotFoundError / ValueError: as `read_episodes`.
    """
    minari = _require_minari()
    from gymnasium import spaces
    from minari.data_collector import EpisodeBuffer

    buffers: list[dict[str, Any]] = []
    with EpisodeFile(src_h5) as src:
        if src.num_episodes == 0:
            raise ValueError(f"{str(src_h5)!r} has no episodes to export")
        for index in range(src.num_episodes):
            ep = src.episode(index, cameras=[camera] if camera else [], load_images=camera is not None)
            t_len = ep.num_steps
            terminated = bool(ep.attrs.get("terminated", False))
            terminations, truncations = np.zeros(t_len, bool), np.zeros(t_len, bool)
            if t_len:
                terminations[-1], truncations[-1] = terminated, not terminated
            observations: Any = ep.states
            if camera is not None:
                observations = {"state": ep.states, "pixels": ep.frames[camera]}
            step_success = ep.successes if ep.successes is not None else np.zeros(t_len, bool)
            seed = ep.attrs.get("seed")
            buffers.append(EpisodeBuffer(
                id=index, seed=int(seed) if isinstance(seed, (int, np.integer)) else None,
                observations=observations, actions=ep.actions, rewards=ep.rewards,
                terminations=terminations, truncations=truncations,
                infos={"success": np.concatenate([[False], step_success]), "task_progress": ep.task_progress}))
        state_space = spaces.Box(-np.inf, np.inf, shape=ep.states.shape[1:], dtype=np.float32)
        action_space = spaces.Box(-1.0, 1.0, shape=ep.actions.shape[1:], dtype=np.float32)
        observation_space: spaces.Space = state_space
        if camera is not None:
            observation_space = spaces.Dict({
                "state": state_space,
                "pixels": spaces.Box(0, 255, shape=ep.frames[camera].shape[1:], dtype=np.uint8),
            })
        env_id = src.env_id
    env_spec_id = None
    if env_id:
        import gymnasium

        if env_id.startswith("vip_envs/"):
            import vip_envs  # noqa: F401  registers the suite so Minari can store the env spec
        env_spec_id = env_id if env_id in gymnasium.registry else None
    kwargs: dict[str, Any] = {}
    if "jpeg_encoding" in inspect.signature(minari.create_dataset_from_buffers).parameters:
        kwargs["jpeg_encoding"] = False  # keep frames lossless (and readable by read_minari)
    return minari.create_dataset_from_buffers(
        dataset_id=dataset_id, buffer=buffers, env=env_spec_id, observation_space=observation_space,
        action_space=action_space, algorithm_name="vip_rl.collect", author=author, data_format="hdf5",
        description=description or f"exported from {os.path.basename(str(src_h5))} by vip_rl.data.export_minari",
        **kwargs)


def _minari_file(path: str | os.PathLike) -> Path:
    candidate = Path(path)
    if not candidate.exists() and not candidate.is_absolute():
        root = Path(os.environ.get("MINARI_DATASETS_PATH", Path.home() / ".minari" / "datasets"))
        if (root / candidate).exists():
            candidate = root / candidate  # a dataset id such as "vip_envs/opendrawer/expert-v0"
    if not candidate.exists():
        raise FileNotFoundError(f"Minari dataset {str(path)!r} does not exist (as a path or a local dataset id)")
    if candidate.is_file():
        return candidate
    for inner in (candidate / "data" / "main_data.hdf5", candidate / "main_data.hdf5"):
        if inner.is_file():
            return inner
    raise ValueError(f"{str(candidate)!r} is not a Minari HDF5 dataset: no data/main_data.hdf5 "
                     "(Minari's arrow storage is not supported; re-save it with data_format='hdf5')")


def _episode_key(name: str) -> int:
    try:
        return int(name.split("_", 1)[1])
    except (IndexError, ValueError):
        return 1 << 62


def read_minari(path: str | os.PathLike, *, camera: str | None = None, load_images: bool = True) -> list[Episode]:
    """Read a local Minari HDF5 dataset into episodes (h5py only).

    Args:
        path: the dataset folder, its ``data/main_data.hdf5``, or a dataset id under
            ``$MINARI_DATASETS_PATH`` (default ``~/.minari/datasets``).
        camera: for Dict observations, the uint8 ``[T+1, H, W, 3]`` key to load as frames (default: all
            such keys; `export_minari` names it ``"pixels"``).
        load_images: False loads no frames.

    Returns:
        list of `Episode`: float observation arrays (flattened, Dict keys in sorted order) become
        ``states``; ``infos/task_progress`` and ``infos/success`` fill ``task_progress`` (NaN if absent)
        and ``successes``; attrs ``seed``, ``id``, ``success`` and ``terminated``.

    Raises:
        FileNotFoundError: missing dataset. ValueError: not HDF5 / corrupt, missing keys (naming the
        episode and key) or inconsistent lengths.
    """
    file_path = _minari_file(path)
    episodes: list[Episode] = []
    with open_hdf5(file_path) as file:
        names = sorted((k for k in file.keys() if k.startswith("episode_")), key=_episode_key)
        if not names:
            raise ValueError(f"{str(file_path)!r} is not a Minari dataset: no 'episode_<id>' groups")
        for name in names:
            group = file[name]
            try:
                episodes.append(_read_minari_episode(group, name, camera=camera, load_images=load_images))
            except KeyError as err:
                raise ValueError(f"{str(file_path)!r}: episode {name!r} has no key {err.args[0]!r}") from None
            except (OSError, RuntimeError) as err:
                raise ValueError(f"{str(file_path)!r}: reading {name!r} failed, "
                                 f"the file is corrupt or truncated ({err})") from err
            except (TypeError, ValueError) as err:
                raise ValueError(f"{str(file_path)!r}: episode {name!r} is inconsistent: {err}") from err
    return episodes


def _read_minari_episode(group: h5py.Group, name: str, *, camera: str | None, load_images: bool) -> Episode:
    for key in ("observations", "actions", "rewards", "terminations", "truncations"):
        if key not in group:
            raise KeyError(key)
    actions = group["actions"][()]
    num_steps = actions.shape[0]
    actions = actions.reshape(num_steps, -1)
    obs = group["observations"]
    items = {"": obs} if isinstance(obs, h5py.Dataset) else {k: obs[k] for k in sorted(obs.keys())}
    frames: dict[str, np.ndarray] = {}
    state_parts = []
    for key, dset in items.items():
        if not isinstance(dset, h5py.Dataset):
            continue  # nested Dict / Tuple spaces are not flattened
        if dset.dtype == np.uint8 and dset.ndim == 4 and dset.shape[-1] == 3:
            label = key or "pixels"
            if load_images and (camera is None or camera == label):
                frames[label] = dset[()]
        else:
            state_parts.append(dset[()].reshape(dset.shape[0], -1).astype(np.float32))
    if camera is not None and load_images and camera not in frames:
        raise ValueError(f"no image observation {camera!r}; observation keys: {sorted(items)}")
    states = np.concatenate(state_parts, axis=1) if state_parts else np.zeros((num_steps + 1, 0), np.float32)
    terminations = group["terminations"][()].astype(bool)
    truncations = group["truncations"][()].astype(bool)
    infos = group["infos"] if "infos" in group and isinstance(group["infos"], h5py.Group) else None
    progress = np.full(num_steps + 1, np.nan, np.float32)
    successes = None
    if infos is not None and "task_progress" in infos:
        progress = infos["task_progress"][()].astype(np.float32)
    if infos is not None and "success" in infos:
        success_all = infos["success"][()].astype(bool)
        successes = success_all[1:] if success_all.shape[0] == num_steps + 1 else success_all
    attrs = {k: v for k, v in _read_attrs(group.attrs).items() if k in ("id", "seed", "total_steps")}
    attrs["terminated"] = bool(terminations[-1]) if num_steps else False
    attrs["success"] = bool(successes[-1]) if successes is not None and num_steps else False
    return Episode(frames=frames, states=states, task_progress=progress, actions=actions,
                   rewards=group["rewards"][()], dones=terminations | truncations, attrs=attrs, successes=successes)
