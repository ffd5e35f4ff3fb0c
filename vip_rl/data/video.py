"""Videos for pretraining: one `Video` type and one loader for every supported layout.

`load_videos(path)` dispatches on what ``path`` is:

=================================  ===============================================================
suite HDF5 (``data/demo_<i>``)     one video per demo (``obs/<camera>``), text = the instruction
D4RL-flat HDF5                     one video per episode from ``observations_images/<camera>`` (or
                                   uint8 image ``observations``), split on terminals | timeouts
``<root>/**/<video>/<i>.png``      frame folders at any depth (the official VIP layout is
                                   ``<root>/<video>/<i>.png``; ``<root>/<task>/<video>/<i>.png`` and deeper
                                   trees work too): a video is a folder that directly holds frame
                                   images (sorted numerically); a single folder of frames is one video
``*.mp4`` / ``*.gif`` (or folder)  decoded with imageio-ffmpeg / Pillow
``*.npy`` / ``*.npz``              uint8 ``[T, H, W, 3]`` or ``[N, T, H, W, 3]``; npz: every such array,
                                   texts from an optional string array ``text``
``manifest.csv`` (LIV)             columns ``directory,num_frames,text``; directories relative to the csv;
                                   a folder holding ``manifest.csv`` is read through it
=================================  ===============================================================

Folders are walked depth first in natural order (``2`` before ``10``); hidden entries (``.name``) are
skipped, and so are sub-folders that hold nothing loadable. A folder that holds frame images *and*
other videos (a sub-folder with frames at any depth, a video file, an array or an HDF5 file) is
ambiguous (are the images one video, or stray files next to the videos?) and is refused with an error
naming both; a folder holding a ``manifest.csv`` is read through the manifest only.
"""
from __future__ import annotations

import csv
import os
import re
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .._io import atomic_dir, atomic_path
from .d4rl import load_d4rl_videos
from .episode import Video
from .hdf5 import EpisodeFile, open_hdf5

__all__ = ["Video", "load_videos", "write_video", "read_video_file", "write_frame_folder",
           "IMAGE_EXTENSIONS", "VIDEO_EXTENSIONS"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
VIDEO_EXTENSIONS = (".mp4", ".gif", ".avi", ".mov", ".mkv", ".webm")
HDF5_EXTENSIONS = (".h5", ".hdf5", ".hdf")
ARRAY_EXTENSIONS = (".npy", ".npz")


def _natural_key(path: Path) -> tuple:
    # "10.png" after "9.png": compare digit runs as ints
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.stem)) + (path.name,)


def _image_files(folder: Path) -> list[Path]:
    images = (p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    return sorted(images, key=_natural_key)


def _read_image(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise ValueError(f"cannot read image {str(path)!r}: unreadable or corrupt ({err})") from err


def _read_frame_folder(folder: Path, *, num_frames: int | None = None) -> np.ndarray:
    files = _image_files(folder)
    if num_frames is not None:
        if len(files) < num_frames:
            raise ValueError(f"frame folder {str(folder)!r} has {len(files)} images, expected num_frames={num_frames}")
        files = files[:num_frames]
    if not files:
        return np.zeros((0, 1, 1, 3), np.uint8)
    frames = [_read_image(f) for f in files]
    first = frames[0].shape
    for f, frame in zip(files, frames):
        if frame.shape != first:
            raise ValueError(f"frame {str(f)!r} has shape {list(frame.shape)}, "
                             f"expected {list(first)} like {files[0].name}")
    return np.stack(frames)


_GIF_COMMENT = "vip_rl frame_ms="


def _gif_base_duration(comment: bytes | str | None) -> int | None:
    if isinstance(comment, bytes):
        comment = comment.decode("latin-1")
    if not comment or not comment.startswith(_GIF_COMMENT):
        return None
    try:
        return max(1, int(comment[len(_GIF_COMMENT):]))
    except ValueError:
        return None


def read_video_file(path: str | os.PathLike) -> np.ndarray:
    """Decode an mp4 / gif / other video file to uint8 ``[T, H, W, 3]``.

    Raises:
        FileNotFoundError: missing file. ValueError: unreadable / corrupt file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"video file {str(path)!r} does not exist")
    if path.suffix.lower() == ".gif":
        from PIL import Image, ImageSequence, UnidentifiedImageError

        try:
            with Image.open(path) as image:
                base = _gif_base_duration(image.info.get("comment"))
                frames = []
                for frame in ImageSequence.Iterator(image):
                    rgb = np.asarray(frame.convert("RGB"), dtype=np.uint8)
                    # Pillow merges identical consecutive frames into one longer frame; undo it for our gifs
                    repeat = max(1, int(round(frame.info.get("duration", base or 0) / base))) if base else 1
                    frames.extend([rgb] * repeat)
        except (UnidentifiedImageError, OSError, ValueError) as err:
            raise ValueError(f"cannot read video {str(path)!r}: unreadable or corrupt gif ({err})") from err
        return np.stack(frames) if frames else np.zeros((0, 1, 1, 3), np.uint8)
    import imageio_ffmpeg

    try:
        reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
        meta = next(reader)
        width, height = meta["size"]
        frames = [np.frombuffer(buf, dtype=np.uint8).reshape(height, width, 3) for buf in reader]
    except (OSError, RuntimeError, StopIteration, KeyError, ValueError) as err:
        raise ValueError(f"cannot read video {str(path)!r}: unreadable or corrupt ({_ffmpeg_reason(err)})") from err
    return np.stack(frames) if frames else np.zeros((0, height, width, 3), np.uint8)


def _ffmpeg_reason(err: BaseException) -> str:
    """imageio-ffmpeg's error without the ffmpeg banner it appends (version, build flags, libraries): the
    first line and ffmpeg's last verdict, e.g. "Could not load meta information: Invalid data found ..."."""
    text = str(err) or type(err).__name__
    head, marker, tail = text.partition("=== stderr ===")
    if not marker:
        return " ".join(text.split())
    lines = [re.sub(r"^\[[^\]]*\]\s*", "", line.strip()) for line in tail.splitlines() if line.strip()]
    verdict = lines[-1] if lines else ""
    return " ".join(f"{head.strip()}: {verdict}".split()) if verdict else " ".join(head.split())


def _check_frames(frames: np.ndarray, name: str = "frames") -> np.ndarray:
    if not isinstance(frames, np.ndarray) or frames.dtype != np.uint8:
        kind = frames.dtype if isinstance(frames, np.ndarray) else type(frames).__name__
        raise TypeError(f"{name} must be a uint8 numpy array [T, H, W, 3], got {kind}")
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] < 1:
        raise ValueError(f"{name} must be uint8 [T>=1, H, W, 3], got shape {list(frames.shape)}")
    return frames


def _stack_frames(frames: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    if isinstance(frames, np.ndarray) or not isinstance(frames, (list, tuple)) or not frames:
        return _check_frames(frames)  # type: ignore[arg-type]
    for i, frame in enumerate(frames):
        if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8:
            kind = frame.dtype if isinstance(frame, np.ndarray) else type(frame).__name__
            raise TypeError(f"frames[{i}] must be a uint8 numpy array [H, W, 3], got {kind}")
        if frame.shape != frames[0].shape or frame.ndim != 3 or frame.shape[-1] != 3:
            raise ValueError(f"frames[{i}] must be uint8 {list(frames[0].shape) if frames[0].ndim == 3 else '[H, W, 3]'} "
                             f"like frames[0], got shape {list(frame.shape)}")
    return np.stack(frames)


def write_video(path: str | os.PathLike, frames: np.ndarray | Sequence[np.ndarray], *, fps: float = 20,
                quality: int = 8) -> Path:
    """Write uint8 frames atomically as mp4 (H.264 via imageio-ffmpeg) or gif (by extension).

    The toolkit's one video writer: CLIs, evaluation and the demo write their videos through it.

    Args:
        path: ``.mp4`` or ``.gif`` destination (missing parent folders are created).
        frames: uint8 ``[T, H, W, 3]``, or a list of uint8 ``[H, W, 3]`` frames of one size.
        fps: frames per second (> 0).
        quality: mp4 quality 0..10 (imageio-ffmpeg's scale; 10 is best).

    Returns:
        ``Path(path)``.

    Note:
        mp4 is lossy; odd sizes are encoded as yuv444p (yuv420p needs even sides). GIFs use a 256-colour
        palette; Pillow merges identical consecutive frames, which `read_video_file` expands again for
        gifs written here (the frame duration is stored in the gif comment).

    Raises:
        ValueError: unknown extension, bad frames or fps. TypeError: frames not uint8.

    Example:
        >>> import tempfile
        >>> frames = [np.full((32, 48, 3), 16 * t, np.uint8) for t in range(8)]
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = write_video(Path(folder) / "clip.gif", frames, fps=10)
        ...     read_video_file(path).shape
        (8, 32, 48, 3)
    """
    path = Path(path)
    frames = _stack_frames(frames)
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps!r}")
    suffix = path.suffix.lower()
    if suffix not in (".mp4", ".gif"):
        raise ValueError(f"path must end in .mp4 or .gif, got {str(path)!r}")
    with atomic_path(path) as tmp:
        if suffix == ".gif":
            from PIL import Image

            images = [Image.fromarray(frame) for frame in frames]
            duration = max(1, int(round(1000 / fps)))
            images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=duration, loop=0,
                           comment=f"{_GIF_COMMENT}{duration}".encode())
        else:
            import imageio_ffmpeg

            height, width = frames.shape[1:3]
            pix_fmt = "yuv420p" if height % 2 == 0 and width % 2 == 0 else "yuv444p"
            writer = imageio_ffmpeg.write_frames(str(tmp), (width, height), fps=fps, codec="libx264",
                                                 pix_fmt_in="rgb24", pix_fmt_out=pix_fmt, quality=quality,
                                                 macro_block_size=1, ffmpeg_log_level="error")
            writer.send(None)
            try:
                for frame in frames:
                    writer.send(np.ascontiguousarray(frame))
            finally:
                writer.close()
    return path


def write_frame_folder(root: str | os.PathLike, videos: Iterable[Video | np.ndarray], *,
                       names: Sequence[str] | None = None, manifest: bool | None = None) -> Path:
    """Write videos in the official VIP layout ``<root>/<name>/<i>.png`` (atomically, as one folder).

    Args:
        root: destination folder; must not exist or be empty.
        videos: `Video` objects or uint8 ``[T, H, W, 3]`` arrays.
        names: folder name per video (default ``"0", "1", ...``).
        manifest: also write a LIV ``manifest.csv`` (``directory,num_frames,text``; directories relative
            to root). Default: when every video has a text.

    Raises:
        FileExistsError: ``root`` exists and is not empty. ValueError: bad frames / names, or
            ``manifest=True`` with a video that has no text.
    """
    from PIL import Image

    root = Path(root)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise FileExistsError(f"root {str(root)!r} already exists and is not an empty folder")
    videos = [v if isinstance(v, Video) else Video(_check_frames(v, "videos[i]"), None, "array") for v in videos]
    names = [str(i) for i in range(len(videos))] if names is None else [str(n) for n in names]
    if len(names) != len(videos) or len(set(names)) != len(names):
        raise ValueError(f"names must be {len(videos)} unique folder names, got {names!r}")
    if manifest is None:
        manifest = bool(videos) and all(v.text for v in videos)
    if manifest:
        missing = [i for i, v in enumerate(videos) if not v.text]
        if missing:
            raise ValueError(f"manifest=True needs a text for every video; videos {missing} have none")
    with atomic_dir(root) as tmp:
        for name, video in zip(names, videos):
            folder = tmp / name
            folder.mkdir()
            for i, frame in enumerate(video.frames):
                Image.fromarray(frame).save(folder / f"{i}.png")
        if manifest:
            with open(tmp / "manifest.csv", "w", newline="") as fh:
                writer = csv.writer(fh)
                writer.writerow(["directory", "num_frames", "text"])
                for name, video in zip(names, videos):
                    writer.writerow([name, len(video), video.text])
        if root.exists():
            root.rmdir()  # only an empty folder is replaced (OSError if files appeared meanwhile)
    return root


def _read_manifest(path: Path, *, min_frames: int) -> list[Video]:
    try:
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            header = reader.fieldnames or []
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise ValueError(f"cannot read manifest {str(path)!r}: {err}") from err
    missing = [c for c in ("directory", "num_frames", "text") if c not in header]
    if missing:
        raise ValueError(f"manifest {str(path)!r} must have columns directory,num_frames,text; missing {missing} "
                         f"(header: {header})")
    videos = []
    for row_number, row in enumerate(rows, start=2):  # header is line 1
        where = f"{path}:row {row_number}"
        directory, text = (row.get("directory") or "").strip(), (row.get("text") or "").strip()
        if not directory:
            raise ValueError(f"manifest {where}: empty 'directory'")
        if not text:
            raise ValueError(f"manifest {where}: missing 'text' for directory {directory!r}")
        try:
            num_frames = int(row.get("num_frames") or "")
        except ValueError:
            raise ValueError(f"manifest {where}: 'num_frames' must be an int, got {row.get('num_frames')!r}") from None
        folder = Path(directory) if os.path.isabs(directory) else path.parent / directory
        if not folder.is_dir():
            raise ValueError(f"manifest {where}: directory {str(folder)!r} does not exist")
        frames = _read_frame_folder(folder, num_frames=num_frames)
        videos.append(_checked(Video(frames, text, str(folder)), min_frames, where))
    return videos


def _checked(video: Video, min_frames: int, where: str | None = None) -> Video:
    if len(video) < min_frames:
        raise ValueError(f"video {where or video.source!r} has {len(video)} frames, "
                         f"expected at least min_frames={min_frames}")
    return video


def _load_array_file(path: Path, *, min_frames: int) -> list[Video]:
    try:
        if path.suffix.lower() == ".npy":
            arrays, texts = {"": np.load(path, allow_pickle=False)}, None
        else:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files if k not in ("text", "texts")}
                key = "text" if "text" in npz.files else "texts" if "texts" in npz.files else None
                texts = [str(t) for t in np.atleast_1d(npz[key])] if key else None
    except (OSError, ValueError, EOFError) as err:
        raise ValueError(f"cannot read array file {str(path)!r}: unreadable or corrupt ({err})") from err
    videos: list[Video] = []
    for key, array in arrays.items():
        where = f"{path}:{key}" if key else str(path)
        if array.dtype != np.uint8 or array.ndim not in (4, 5) or array.shape[-1] != 3:
            raise ValueError(f"{where} must hold uint8 [T, H, W, 3] or [N, T, H, W, 3], "
                             f"got {array.dtype} {list(array.shape)}")
        clips = [array] if array.ndim == 4 else list(array)
        for i, clip in enumerate(clips):
            source = where if array.ndim == 4 else f"{where}[{i}]"
            videos.append(_checked(Video(np.ascontiguousarray(clip), None, source), min_frames))
    if texts is not None:
        if len(texts) != len(videos):
            raise ValueError(f"{str(path)!r}: 'text' has {len(texts)} entries for {len(videos)} videos")
        for video, text in zip(videos, texts):
            video.text = text or None
    return videos


#: The camera read from HDF5 files when none is named and an episode has several (the suite's default view).
DEFAULT_CAMERA = "front"


def _episode_camera(ep_file: EpisodeFile, index: int, camera: str | None) -> str:
    """``camera``, or (None) the episode's only camera, else :data:`DEFAULT_CAMERA` when it has it."""
    if camera is not None:
        return camera
    have = ep_file.available_cameras(index)
    if len(have) == 1:
        return have[0]
    if DEFAULT_CAMERA in have:
        return DEFAULT_CAMERA
    raise ValueError(f"{str(ep_file.path)!r}: episode {index} has the cameras {have}; name the one to read (camera=..., "
                     "--camera)")


def _load_hdf5(path: Path, *, camera: str | None, min_frames: int) -> list[Video]:
    with open_hdf5(path) as file:
        is_suite = "data" in file
        is_d4rl = "observations" in file
    if is_suite:
        videos = []
        with EpisodeFile(path) as ep_file:
            for index, demo in enumerate(ep_file.demo_keys):
                frames = ep_file._read(demo, ep_file.frames(index, _episode_camera(ep_file, index, camera)))
                text = ep_file.episode_attrs(index).get("instruction") or None
                videos.append(_checked(Video(frames, text, f"{path}:{demo}"), min_frames))
        return videos
    if is_d4rl:
        return [_checked(v, min_frames) for v in load_d4rl_videos(path, camera=DEFAULT_CAMERA if camera is None else camera)]
    raise ValueError(f"HDF5 file {str(path)!r} is neither a suite file (group 'data') nor D4RL-flat ('observations')")


def load_videos(path: str | os.PathLike, *, camera: str | None = None, min_frames: int = 2) -> list[Video]:
    """Load every video under ``path`` (layouts in the module docstring).

    Args:
        path: a file or folder.
        camera: camera to read from HDF5 files; None: each episode's only camera, else ``"front"``
            (:data:`DEFAULT_CAMERA`) when it has several (an error names them when it has no ``"front"``).
        min_frames: shortest accepted video (VIP tuples need at least 2 frames).

    Returns:
        list of `Video` (uint8 ``[T, H, W, 3]``), in a deterministic order.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: unsupported / unreadable / corrupt file, a video shorter than ``min_frames``,
            a manifest row without text, a folder with nothing loadable.

    Example:
        >>> videos = load_videos("demos.h5", camera="front")        # doctest: +SKIP
        >>> videos[0].frames.shape, videos[0].text                  # doctest: +SKIP
        ((101, 96, 96, 3), 'open the drawer')
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:          # an npz of clips with their texts
        ...     np.savez(Path(folder) / "clips.npz", a=np.zeros((5, 8, 8, 3), np.uint8), text=["push the block"])
        ...     [(len(v), v.text) for v in load_videos(Path(folder) / "clips.npz")]
        [(5, 'push the block')]
    """
    if isinstance(min_frames, bool) or not isinstance(min_frames, int) or min_frames < 1:
        raise ValueError(f"min_frames must be an int >= 1, got {min_frames!r}")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"video path {str(path)!r} does not exist")
    if path.is_dir():
        return _load_folder(path, camera=camera, min_frames=min_frames)
    suffix = path.suffix.lower()
    if suffix in HDF5_EXTENSIONS:
        return _load_hdf5(path, camera=camera, min_frames=min_frames)
    if suffix in VIDEO_EXTENSIONS:
        return [_checked(Video(read_video_file(path), None, str(path)), min_frames)]
    if suffix in ARRAY_EXTENSIONS:
        return _load_array_file(path, min_frames=min_frames)
    if suffix == ".csv":
        return _read_manifest(path, min_frames=min_frames)
    raise ValueError(f"unsupported video path {str(path)!r}: expected a folder or one of "
                     f"{HDF5_EXTENSIONS + VIDEO_EXTENSIONS + ARRAY_EXTENSIONS + ('.csv',)}")


def _load_folder(folder: Path, *, camera: str | None, min_frames: int) -> list[Video]:
    videos: list[Video] = []
    for kind, path in _plan_folder(folder, seen=set()):
        if kind == "manifest":
            videos.extend(_read_manifest(path, min_frames=min_frames))
        elif kind == "frames":
            videos.append(_checked(Video(_read_frame_folder(path), None, str(path)), min_frames))
        elif kind == "video":
            videos.append(_checked(Video(read_video_file(path), None, str(path)), min_frames))
        elif kind == "array":
            videos.extend(_load_array_file(path, min_frames=min_frames))
        else:
            videos.extend(_load_hdf5(path, camera=camera, min_frames=min_frames))
    if not videos:
        raise ValueError(f"folder {str(folder)!r} holds no videos: expected frame images, <video>/<i>.png "
                         f"folders (at any depth), video files {VIDEO_EXTENSIONS}, arrays, HDF5 files or a manifest.csv")
    return videos


_SOURCE_KINDS = {**{s: "video" for s in VIDEO_EXTENSIONS}, **{s: "array" for s in ARRAY_EXTENSIONS},
                 **{s: "hdf5" for s in HDF5_EXTENSIONS}}


def _plan_folder(folder: Path, *, seen: set[str]) -> list[tuple[str, Path]]:
    """What ``folder`` holds, depth first in natural order, as ``(kind, path)`` with kind ``manifest`` |
    ``frames`` (a frame folder: one video) | ``video`` | ``array`` | ``hdf5``; nothing is read yet.

    Raises:
        ValueError: a folder holds frame images and other videos (the rule in the module docstring).
    """
    real = os.path.realpath(folder)
    if real in seen:  # a symlink back up the tree
        return []
    seen.add(real)
    if (folder / "manifest.csv").is_file():
        return [("manifest", folder / "manifest.csv")]
    with os.scandir(folder) as scan:
        entries = sorted((e for e in scan if not e.name.startswith(".")), key=lambda e: _natural_key(Path(e.name)))
    images = [e.name for e in entries if e.is_file() and Path(e.name).suffix.lower() in IMAGE_EXTENSIONS]
    found: list[tuple[str, Path]] = []
    for entry in entries:
        path = Path(entry.path)
        if entry.is_dir():
            found.extend(_plan_folder(path, seen=seen))
        elif entry.is_file() and path.suffix.lower() in _SOURCE_KINDS:
            found.append((_SOURCE_KINDS[path.suffix.lower()], path))
        if images and found:
            other = found[0][1]
            raise ValueError(
                f"folder {str(folder)!r} is ambiguous: it holds frame images ({len(images)}, e.g. {images[0]!r}) "
                f"and other videos ({str(other.relative_to(folder))!r}); a video folder must hold only its frames: "
                "move the frames into a sub-folder of their own, or the other videos out"
            )
    return [("frames", folder)] if images else found
