"""One data path for BC and RWR: read demos, embed every frame once, relabel rewards with a goal.

:class:`PolicyDataset` holds flat per-transition arrays (``N = sum_e T_e``)::

    embeddings  float32 [N, D]   phi(o_t) of the chosen camera (D = 0 without an encoder), followed by
                                 phi of each ``extra_cameras`` view (an MLP policy that sees several cameras)
    states      float32 [N, S]   proprioceptive / low-dim state s_t
    actions     float32 [N, A]   a_t
    rewards     float32 [N]      relabelled reward r_t (mode "progress" | "distance" | "true")
    true_rewards float32 [N]     the env reward stored in the file (may hold NaN; checked when used)
    episode_ids int64   [N]      index of the episode each transition came from
    timesteps   int64   [N]      t within its episode
    frames      uint8   [N, H, W, 3] (only with ``keep_frames=True``; the end-to-end CNN policy), from
                                 ``frames_camera`` (default: the embedded camera; e.g. the wrist view for
                                 the policy while the rewards come from the front view's embedding)

Reward modes (same definitions as :mod:`vip_rl.wrappers`, ``d = encoder.distance``):

* ``"progress"``: ``r_t = d(phi(o_t), g) - d(phi(o_{t+1}), g)`` (the VIP reward),
* ``"distance"``: ``r_t = -d(phi(o_{t+1}), g)``,
* ``"true"``: the rewards stored in the file.

Goals: ``"final"`` (each episode's own last frame ``o_T``), ``"success"`` (the mean embedding of the
last frames of the episodes whose ``attrs["success"]`` is true: one shared goal, so failed episodes
do not count as reaching it), ``"instruction"`` (each episode's own
instruction through ``encoder.encode_text``), or any other goal :func:`vip_rl.goals.parse_goal` reads: a
uint8 image ``[H, W, 3]`` (or ``[K, H, W, 3]``: the mean of their embeddings), a float goal embedding
``[D]``, a Video (its final frame), a goal file ``Path``, or any other string (an instruction).

Embeddings are cached on disk (``cache_dir``) in a ``.npz`` keyed by a hash of the encoder's weights
and config, the dataset's absolute path, mtime and size, and the camera (one file per embedded camera).
"""
from __future__ import annotations

import hashlib
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal, Sequence

import numpy as np
import torch

from vip_rl._io import atomic_path
from vip_rl.goals import embed_goal, parse_goal

from .networks import checked_extra_cameras

RewardMode = Literal["progress", "distance", "true"]
ReturnKind = Literal["reward", "reward_to_go", "return"]
REWARD_MODES: tuple[str, ...] = ("progress", "distance", "true")
RETURN_KINDS: tuple[str, ...] = ("reward", "reward_to_go", "return")
CACHE_VERSION = 1


def encoder_fingerprint(encoder: Any) -> str:
    """sha256 (hex, 16 chars) of what determines an encoder's embeddings.

    Covers every tensor of its state dict, the pixel normalisation, ``metric``, ``image_size`` and
    ``embed_dim`` (not the free-form ``config``, which gains bookkeeping keys on save/load).
    """
    digest = hashlib.sha256()
    digest.update(f"{getattr(encoder, 'metric', '')}|{getattr(encoder, 'image_size', '')}|{getattr(encoder, 'embed_dim', '')}".encode())
    tensors = dict(encoder.state_dict())
    for name in ("mean", "std"):
        if isinstance(getattr(encoder, name, None), torch.Tensor):
            tensors[f"__{name}"] = getattr(encoder, name)
    for key, value in sorted(tensors.items()):
        digest.update(key.encode())
        tensor = value.detach().to("cpu").contiguous()
        digest.update(str(tensor.dtype).encode() + str(list(tensor.shape)).encode())
        digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()[:16]


# ----------------------------------------------------------------------------------------- reading


def read_demo_file(path: str | os.PathLike[str], *, camera: str | None = None) -> list[Any]:
    """Read a demo dataset into a list of :class:`vip_rl.data.Episode`.

    Accepts the suite HDF5 layout (``data/demo_<i>/...``), D4RL-flat HDF5 (``observations, actions,
    rewards, terminals, timeouts`` + ``observations_images/<camera>``) and local Minari HDF5 datasets
    (a folder with ``data/main_data.hdf5``, or that file).

    Args:
        path: the file (or Minari dataset directory).
        camera: load only this camera's frames (all cameras when None).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: unreadable / corrupt file, missing keys, or a missing camera (naming the cameras present).
    """
    import h5py

    from vip_rl import data as vdata

    source = Path(path)
    if not source.exists():
        raise FileNotFoundError(f"data file {str(source)!r} does not exist")
    if source.is_dir():
        if (source / "data" / "main_data.hdf5").is_file() or (source / "main_data.hdf5").is_file():
            from vip_rl.data.minari_io import read_minari

            return list(read_minari(source, camera=camera))
        raise ValueError(f"data path {str(source)!r} is a directory but not a Minari dataset (no data/main_data.hdf5); "
                         "expected a suite / D4RL-flat HDF5 file or a Minari dataset folder")
    try:
        with h5py.File(source, "r") as handle:
            top_keys = set(handle.keys())
    except OSError as exc:
        raise ValueError(f"data file {str(source)!r} is not a readable HDF5 file (corrupt or truncated?): {exc}") from exc
    if "data" not in top_keys and "observations" in top_keys:
        return list(vdata.read_d4rl(source, camera=camera))
    if "data" not in top_keys and any(k.startswith("episode_") for k in top_keys):
        from vip_rl.data.minari_io import read_minari

        return list(read_minari(source, camera=camera))
    if camera is not None and "data" in top_keys:
        with vdata.EpisodeFile(source) as file:
            if file.num_episodes == 0:
                raise ValueError(f"dataset {str(source)!r} is empty: no episodes")
            have = file.available_cameras(0)
            if camera not in have:
                raise ValueError(f"camera={camera!r} not found in {str(source)!r}; the dataset has cameras {sorted(have)}")
        return list(vdata.read_episodes(source, cameras=[camera]))
    return list(vdata.read_episodes(source))


# ----------------------------------------------------------------------------------------- goals


def _goal_embeddings(encoder: Any, goal: Any, episodes: Sequence[Any], frame_embeddings: list[torch.Tensor]) -> list[torch.Tensor]:
    """One goal embedding ``[D]`` per episode."""
    if isinstance(goal, str):
        if goal == "final":
            return [z[-1] for z in frame_embeddings]
        if goal == "success":
            winners = [i for i, ep in enumerate(episodes) if bool(getattr(ep, "attrs", {}).get("success", False))]
            if not winners:
                raise ValueError(
                    "goal='success' uses the final frames of the successful episodes, but no episode has attrs['success'] "
                    "= True; pass goal='final', a goal image or an instruction"
                )
            embedding = torch.stack([frame_embeddings[i][-1] for i in winners]).mean(0)
            return [embedding] * len(episodes)
        if goal == "instruction":
            texts = [ep.instruction for ep in episodes]
            missing = [i for i, t in enumerate(texts) if not isinstance(t, str) or not t]
            if missing:
                raise ValueError(f"goal='instruction' but episodes {missing[:5]} have no instruction attribute")
            unique = sorted(set(texts))
            table = dict(zip(unique, encoder.encode_text(unique).float().cpu()))
            return [table[t] for t in texts]
    # any other goal (see vip_rl.goals.parse_goal): one shared goal, the mean of its K embeddings
    embedding = embed_goal(encoder, goal).cpu().mean(0)
    return [embedding] * len(episodes)


def _describe_goal(goal: Any) -> str:
    if isinstance(goal, str):
        return goal if goal in ("final", "success", "instruction") else f"text:{goal}"
    if isinstance(goal, os.PathLike):
        return f"file:{os.fspath(goal)}"
    parsed = parse_goal(goal)
    if parsed.kind == "text":
        return "text:" + "|".join(parsed.value)
    # the caller's array as given (an image [H, W, 3] keeps its shape in the description)
    array = goal.detach().cpu().numpy() if isinstance(goal, torch.Tensor) else np.asarray(goal) if isinstance(goal, np.ndarray) else parsed.value
    return f"{array.dtype}{list(array.shape)}:{hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()[:12]}"


# ----------------------------------------------------------------------------------------- cache


def _cache_file(cache_dir: Path, source: Path, camera: str, fingerprint: str) -> Path:
    stat = source.stat()
    key = f"v{CACHE_VERSION}|{fingerprint}|{source.resolve()}|{stat.st_mtime_ns}|{stat.st_size}|{camera}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:20]
    return cache_dir / f"{source.stem}.{camera}.{digest}.npz"


def _load_cache(path: Path, lengths: list[int], embed_dim: int) -> np.ndarray | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            embeddings = data["embeddings"]
            cached_lengths = data["lengths"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None  # a corrupt cache entry is recomputed and overwritten
    if list(cached_lengths) != lengths or embeddings.shape != (sum(lengths), embed_dim):
        return None
    return embeddings.astype(np.float32, copy=False)


def _save_cache(path: Path, embeddings: np.ndarray, lengths: list[int]) -> None:
    # write through a handle: np.savez given a path would append ".npz" to a name without it
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, embeddings=embeddings, lengths=np.asarray(lengths, np.int64))


# ----------------------------------------------------------------------------------------- dataset


def _embed_frames(encoder: Any, frames: list[np.ndarray], *, batch_size: int, progress: bool) -> np.ndarray:
    from tqdm.auto import tqdm

    total = sum(len(f) for f in frames)
    out = np.empty((total, encoder.embed_dim), np.float32)
    flat = np.concatenate(frames, 0) if frames else np.zeros((0, 1, 1, 3), np.uint8)
    with tqdm(total=total, desc="embedding frames", unit="frame", disable=not progress, leave=False) as bar:
        for start in range(0, total, batch_size):
            chunk = flat[start : start + batch_size]
            out[start : start + len(chunk)] = encoder.encode_images(chunk).float().cpu().numpy()
            bar.update(len(chunk))
    return out


def _returns_for(rewards: np.ndarray, episode_ids: np.ndarray, kind: str, gamma: float) -> np.ndarray:
    if kind == "reward":
        return rewards.astype(np.float64)
    out = np.empty(len(rewards), np.float64)
    boundaries = np.flatnonzero(np.diff(episode_ids)) + 1
    for segment in np.split(np.arange(len(rewards)), boundaries):
        r = rewards[segment].astype(np.float64)
        if kind == "return":
            out[segment] = r.sum()
            continue
        acc = 0.0
        rtg = np.empty(len(r))
        for i in range(len(r) - 1, -1, -1):
            acc = r[i] + gamma * acc
            rtg[i] = acc
        out[segment] = rtg
    return out


@dataclass
class PolicyDataset:
    """Flat per-transition arrays for BC/RWR (see the module docstring for shapes).

    Build with :meth:`from_file` (an HDF5 demo file) or :meth:`from_episodes` (in-memory episodes).
    """

    embeddings: np.ndarray
    states: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    true_rewards: np.ndarray
    episode_ids: np.ndarray
    timesteps: np.ndarray
    episode_success: np.ndarray
    frames: np.ndarray | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.actions.shape[0])

    @property
    def num_episodes(self) -> int:
        return int(self.episode_success.shape[0])

    @property
    def embed_dim(self) -> int:
        return int(self.embeddings.shape[1])

    @property
    def state_dim(self) -> int:
        return int(self.states.shape[1])

    @property
    def action_dim(self) -> int:
        return int(self.actions.shape[1])

    # --------------------------------------------------------------------------------- builders

    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike[str],
        encoder: Any | None,
        *,
        camera: str = "front",
        goal: Any = "final",
        mode: RewardMode = "progress",
        cache_dir: str | os.PathLike[str] | None = None,
        keep_frames: bool = False,
        frames_camera: str | None = None,
        extra_cameras: Sequence[str] = (),
        image_size: int | None = None,
        batch_size: int = 256,
        progress: bool = True,
    ) -> "PolicyDataset":
        """Read a suite HDF5 demo file, embed every frame of ``camera`` once and relabel rewards.

        Args:
            path: HDF5 file written by ``vip-rl collect`` / ``vip_rl.data.write_episodes``.
            encoder: a frozen :class:`~vip_rl.encoders.Encoder`; ``None`` only with ``mode="true"``
                (no embeddings; the end-to-end CNN policy).
            camera: which ``obs/<camera>`` frames to embed.
            goal: ``"final" | "success" | "instruction" | str | uint8 [H, W, 3] | uint8 [K, H, W, 3] | float [D]``.
            mode: ``"progress" | "distance" | "true"``.
            cache_dir: where embeddings are cached (``None``: no cache).
            keep_frames: keep uint8 frames ``[N, H, W, 3]`` (for ``arch="cnn"``).
            frames_camera: whose frames ``keep_frames`` keeps (default: ``camera``), e.g. ``"wrist"`` for a
                pixel policy on the wrist view whose rewards come from the front view's embedding.
            extra_cameras: more cameras to embed with the same encoder, appended to ``camera``'s embedding
                (``embeddings [N, D * (1 + len(extra_cameras))]``) for an MLP policy that sees several views;
                rewards still come from ``camera`` alone.
            image_size: if given, the frame side the consumer expects; other sizes raise.
            batch_size: encoder batch size.
            progress: show a progress bar while embedding.

        Raises:
            FileNotFoundError: no such file. ValueError: corrupt file, no episodes, missing camera,
            wrong image size, NaN rewards, inconsistent actions.
        """
        source = Path(path)
        extra_cameras = checked_extra_cameras(extra_cameras, camera)
        second = bool(extra_cameras) or (keep_frames and frames_camera is not None and frames_camera != camera)
        episodes = read_demo_file(source, camera=None if second else camera)
        cache_file, extra_cache_files = None, None
        if cache_dir is not None and encoder is not None:
            fingerprint = encoder_fingerprint(encoder)
            cache_file = _cache_file(Path(cache_dir), source, camera, fingerprint)
            extra_cache_files = [_cache_file(Path(cache_dir), source, cam, fingerprint) for cam in extra_cameras]
        dataset = cls.from_episodes(
            episodes, encoder, camera=camera, goal=goal, mode=mode, keep_frames=keep_frames, frames_camera=frames_camera,
            extra_cameras=extra_cameras, image_size=image_size, batch_size=batch_size, progress=progress,
            cache_file=cache_file, extra_cache_files=extra_cache_files, source=str(source),
        )
        return dataset

    @classmethod
    def from_episodes(
        cls,
        episodes: Sequence[Any],
        encoder: Any | None,
        *,
        camera: str = "front",
        goal: Any = "final",
        mode: RewardMode = "progress",
        keep_frames: bool = False,
        frames_camera: str | None = None,
        extra_cameras: Sequence[str] = (),
        image_size: int | None = None,
        batch_size: int = 256,
        progress: bool = False,
        cache_file: str | os.PathLike[str] | None = None,
        extra_cache_files: Sequence[str | os.PathLike[str]] | None = None,
        source: str = "<memory>",
    ) -> "PolicyDataset":
        """Build from in-memory episodes (``vip_rl.data.Episode`` or anything with the same fields).

        Each episode needs ``frames[camera]`` uint8 ``[T+1, H, W, 3]`` (and ``frames[frames_camera]`` when
        frames are kept from another camera, and ``frames[c]`` of each of ``extra_cameras``), ``states [T+1, S]``,
        ``actions [T, A]``, ``rewards [T]`` and ``attrs`` (``success``, ``instruction``, ``env_id``).
        ``extra_cache_files``: one embedding cache per extra camera (as ``cache_file`` is ``camera``'s).
        See :meth:`from_file` for the other arguments and the errors.
        """
        if mode not in REWARD_MODES:
            raise ValueError(f"mode must be one of {REWARD_MODES}, got {mode!r}")
        if encoder is None and mode != "true":
            raise ValueError(f"mode={mode!r} relabels rewards with an encoder; pass encoder= or use mode='true'")
        episodes = list(episodes)
        if not episodes:
            raise ValueError(f"dataset {source!r} is empty: no episodes")
        frames_camera = camera if frames_camera is None else frames_camera
        extra_cameras = checked_extra_cameras(extra_cameras, camera)
        if extra_cameras and encoder is None:
            raise ValueError(f"extra_cameras={list(extra_cameras)} are embedded by the encoder; pass encoder=")
        if extra_cache_files is not None and len(extra_cache_files) != len(extra_cameras):
            raise ValueError(f"extra_cache_files must hold one file per extra camera ({len(extra_cameras)}), got {len(extra_cache_files)}")
        # every camera read, named as its argument names it: camera, the kept camera's, the extra ones
        labels = {camera: f"camera={camera!r}"}
        if keep_frames and frames_camera != camera:
            labels[frames_camera] = f"frames_camera={frames_camera!r}"
        labels.update({cam: f"extra camera {cam!r}" for cam in extra_cameras if cam not in labels})
        extra_views: dict[str, list[np.ndarray]] = {cam: [] for cam in extra_cameras}
        frames_list: list[np.ndarray] = []
        kept_list: list[np.ndarray] = []
        lengths: list[int] = []
        action_dim: int | None = None
        state_dim: int | None = None
        frame_shape: tuple[int, ...] | None = None
        for index, ep in enumerate(episodes):
            frames_by_cam = getattr(ep, "frames", None)
            views: dict[str, np.ndarray] = {}
            for cam, label in labels.items():
                if not isinstance(frames_by_cam, dict) or cam not in frames_by_cam:
                    available = sorted(frames_by_cam) if isinstance(frames_by_cam, dict) else []
                    raise ValueError(f"{label} not found in episode {index} of {source!r}; the dataset has cameras {available}")
                view = np.asarray(frames_by_cam[cam])
                if view.dtype != np.uint8 or view.ndim != 4 or view.shape[-1] != 3:
                    raise ValueError(f"episode {index} frames[{cam!r}] must be uint8 [T+1, H, W, 3], got {view.dtype} {list(view.shape)}")
                if views and view.shape[0] != views[camera].shape[0]:
                    raise ValueError(f"episode {index} of {source!r}: frames[{cam!r}] and frames[{camera!r}] differ in length")
                views[cam] = view
            frames = views[camera]
            if keep_frames and frames_camera != camera:
                kept = views[frames_camera]
                if kept_list and kept.shape[1:] != kept_list[0].shape[1:]:
                    raise ValueError(f"episode {index} of {source!r} has {frames_camera!r} frames {list(kept.shape[1:])}, "
                                     f"earlier episodes have {list(kept_list[0].shape[1:])}")
                kept_list.append(kept)
            for cam in extra_cameras:
                extra_views[cam].append(views[cam])
            actions = np.asarray(ep.actions)
            if actions.ndim != 2 or actions.shape[0] < 1:
                raise ValueError(f"episode {index} of {source!r}: actions must be [T, A] with T >= 1, got {list(actions.shape)}")
            if frames.shape[0] != actions.shape[0] + 1:
                raise ValueError(
                    f"episode {index} of {source!r}: expected T+1={actions.shape[0] + 1} frames for T={actions.shape[0]} actions, got {frames.shape[0]}"
                )
            if action_dim is None:
                action_dim = actions.shape[1]
            elif actions.shape[1] != action_dim:
                raise ValueError(f"episode {index} of {source!r} has action dim {actions.shape[1]}, earlier episodes have {action_dim}")
            if not np.all(np.isfinite(actions)):
                raise ValueError(f"episode {index} of {source!r} has non-finite actions")
            states = np.asarray(ep.states)
            if states.ndim != 2 or states.shape[0] != frames.shape[0]:
                raise ValueError(f"episode {index} of {source!r}: states must be [T+1, S] = [{frames.shape[0]}, S], got {list(states.shape)}")
            if state_dim is None:
                state_dim = states.shape[1]
            elif states.shape[1] != state_dim:
                raise ValueError(f"episode {index} of {source!r} has state dim {states.shape[1]}, earlier episodes have {state_dim}")
            if frame_shape is None:
                frame_shape = frames.shape[1:]
            elif frames.shape[1:] != frame_shape:
                raise ValueError(f"episode {index} of {source!r} has frames {list(frames.shape[1:])}, earlier episodes have {list(frame_shape)}")
            frames_list.append(frames)
            lengths.append(frames.shape[0])
        assert frame_shape is not None and action_dim is not None and state_dim is not None
        if not kept_list:
            kept_list = frames_list
        kept_shape = kept_list[0].shape[1:] if keep_frames else frame_shape
        if image_size is not None and tuple(kept_shape[:2]) != (image_size, image_size):
            raise ValueError(
                f"dataset {source!r} has {frames_camera if keep_frames else camera!r} frames of size {kept_shape[0]}x{kept_shape[1]}, "
                f"expected {image_size}x{image_size} (re-collect with --size {image_size} or train a policy for this size)"
            )
        trained_camera = None if encoder is None else getattr(encoder, "config", {}).get("camera")
        if trained_camera is not None and trained_camera != camera:
            raise ValueError(f"encoder was trained on camera {trained_camera!r} but camera={camera!r} was requested")

        # ---- embed every frame once (per camera: the cache file, else the encoder)
        fingerprint = None
        extra_embeddings: list[np.ndarray] = []
        if encoder is not None:
            fingerprint = encoder_fingerprint(encoder)

            def embed(views: list[np.ndarray], file: str | os.PathLike[str] | None, cam: str) -> np.ndarray:
                cached = _load_cache(Path(file), lengths, encoder.embed_dim) if file is not None else None
                if cached is None:
                    cached = _embed_frames(encoder, views, batch_size=batch_size, progress=progress)
                    if not np.all(np.isfinite(cached)):
                        raise ValueError(f"encoder produced non-finite embeddings of camera {cam!r} for {source!r} "
                                         "(corrupt encoder weights?)")
                    if file is not None:
                        _save_cache(Path(file), cached, lengths)
                return cached

            all_embeddings = embed(frames_list, cache_file, camera)
            extra_embeddings = [embed(extra_views[cam], None if extra_cache_files is None else extra_cache_files[k], cam)
                                for k, cam in enumerate(extra_cameras)]
        else:
            all_embeddings = np.zeros((sum(lengths), 0), np.float32)
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        per_episode = [torch.from_numpy(all_embeddings[offsets[i] : offsets[i + 1]]) for i in range(len(episodes))]
        if extra_cameras:  # the policy input: camera's embedding, then each extra camera's; rewards use camera's alone
            all_embeddings = np.concatenate([all_embeddings, *extra_embeddings], axis=1)

        # ---- relabel
        rewards_list: list[np.ndarray] = []
        true_list: list[np.ndarray] = []
        for index, ep in enumerate(episodes):
            steps = lengths[index] - 1
            stored = getattr(ep, "rewards", None)
            true_r = np.asarray(np.full(steps, np.nan) if stored is None else stored, np.float32).reshape(-1)
            if true_r.shape[0] != steps:
                raise ValueError(f"episode {index} of {source!r}: rewards must be [T]=[{steps}], got {list(true_r.shape)}")
            true_list.append(true_r)
        if mode == "true":
            rewards_list = true_list
            bad = [i for i, r in enumerate(true_list) if not np.all(np.isfinite(r))]
            if bad:
                raise ValueError(f"mode='true' but episodes {bad[:5]} of {source!r} have NaN/inf rewards")
            goal_desc = "true"
        else:
            goals = _goal_embeddings(encoder, goal, episodes, per_episode)
            for z, g in zip(per_episode, goals):
                with torch.no_grad():
                    dist = encoder.distance(z.to(encoder.device), g.to(encoder.device)).float().cpu().numpy()
                rewards_list.append((dist[:-1] - dist[1:]) if mode == "progress" else -dist[1:])
            goal_desc = _describe_goal(goal)
        rewards = np.concatenate(rewards_list).astype(np.float32)
        if mode != "true" and not np.all(np.isfinite(rewards)):
            raise ValueError(f"relabelled rewards of {source!r} are not finite (encoder produced NaN/inf distances)")

        transition_index = np.concatenate([np.arange(offsets[i], offsets[i + 1] - 1) for i in range(len(episodes))])
        attrs0 = dict(getattr(episodes[0], "attrs", {}) or {})
        dataset = cls(
            embeddings=np.ascontiguousarray(all_embeddings[transition_index]),
            states=np.concatenate([np.asarray(ep.states, np.float32)[:-1] for ep in episodes]),
            actions=np.concatenate([np.asarray(ep.actions, np.float32) for ep in episodes]),
            rewards=rewards,
            true_rewards=np.concatenate(true_list).astype(np.float32),
            episode_ids=np.concatenate([np.full(n - 1, i, np.int64) for i, n in enumerate(lengths)]),
            timesteps=np.concatenate([np.arange(n - 1, dtype=np.int64) for n in lengths]),
            episode_success=np.asarray([bool(getattr(ep, "attrs", {}).get("success", False)) for ep in episodes]),
            frames=np.concatenate([f[:-1] for f in kept_list]) if keep_frames else None,
            metadata={
                "source": source,
                "camera": camera,
                "frames_camera": frames_camera if keep_frames else None,
                "extra_cameras": list(extra_cameras),
                "image_size": int(kept_shape[0]),
                "env_id": attrs0.get("env_id"),
                "task": attrs0.get("task"),
                "mode": mode,
                "goal": goal_desc,
                "encoder_fingerprint": fingerprint,
                "num_episodes": len(episodes),
            },
        )
        return dataset

    # --------------------------------------------------------------------------------- views

    def select_episodes(self, indices: Iterable[int]) -> "PolicyDataset":
        """A dataset holding only the given episodes (renumbered 0..k-1 in the given order)."""
        indices = [int(i) for i in indices]
        if not indices:
            raise ValueError("indices must select at least one episode, got []")
        bad = [i for i in indices if not 0 <= i < self.num_episodes]
        if bad:
            raise ValueError(f"episode indices {bad[:5]} out of range [0, {self.num_episodes})")
        parts = [np.flatnonzero(self.episode_ids == i) for i in indices]
        order = np.concatenate(parts)
        new_ids = np.concatenate([np.full(len(p), k, np.int64) for k, p in enumerate(parts)])
        meta = dict(self.metadata, num_episodes=len(indices))
        return PolicyDataset(
            embeddings=self.embeddings[order], states=self.states[order], actions=self.actions[order],
            rewards=self.rewards[order], true_rewards=self.true_rewards[order], episode_ids=new_ids,
            timesteps=self.timesteps[order], episode_success=self.episode_success[indices],
            frames=None if self.frames is None else self.frames[order], metadata=meta,
        )

    def returns(self, kind: ReturnKind = "reward", *, source: Literal["relabelled", "true"] = "relabelled", gamma: float = 1.0) -> np.ndarray:
        """Per-transition return ``R [N]`` (float64) used by RWR.

        Args:
            kind: ``"reward"`` (``r_t``), ``"reward_to_go"`` (``sum_k gamma^k r_{t+k}``) or ``"return"`` (episode sum).
            source: ``"relabelled"`` (:attr:`rewards`) or ``"true"`` (:attr:`true_rewards`, the file's env reward).
            gamma: discount of ``"reward_to_go"``.

        Raises:
            ValueError: bad arguments, or NaN/inf in the chosen rewards.
        """
        if kind not in RETURN_KINDS:
            raise ValueError(f"kind must be one of {RETURN_KINDS}, got {kind!r}")
        if source not in ("relabelled", "true"):
            raise ValueError(f"source must be 'relabelled' or 'true', got {source!r}")
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {gamma}")
        rewards = self.rewards if source == "relabelled" else self.true_rewards
        if not np.all(np.isfinite(rewards)):
            bad = sorted(set(self.episode_ids[~np.isfinite(rewards)].tolist()))
            raise ValueError(f"{source} rewards contain NaN/inf (episodes {bad[:5]}); RWR needs finite rewards")
        return _returns_for(rewards, self.episode_ids, kind, gamma)

    def check_action_dim(self, action_dim: int, *, env_id: str = "<env>") -> None:
        """Raise ValueError if the dataset's action size differs from an env's ``action_dim``."""
        if self.action_dim != action_dim:
            raise ValueError(
                f"dataset {self.metadata.get('source')!r} has action dim {self.action_dim}, but env {env_id!r} expects {action_dim}"
            )
