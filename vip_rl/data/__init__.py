"""Datasets: suite HDF5 (robomimic-style), D4RL-flat HDF5, videos (frame folders, mp4/gif, arrays,
LIV manifests) and Minari export. See DESIGN.md (`vip_rl/data/`).

Example:
    >>> from vip_rl.data import read_episodes, load_videos
    >>> episodes = read_episodes("demos.h5")                     # doctest: +SKIP
    >>> videos = load_videos("videos/", camera="front")          # doctest: +SKIP
"""
from .episode import Episode
from .hdf5 import FORMAT_VERSION, EpisodeFile, EpisodeWriter, read_episodes, write_episodes
from .video import Video, load_videos, read_video_file, write_frame_folder, write_video
from .d4rl import export_d4rl, load_episodes, read_d4rl, write_d4rl
from .minari_io import export_minari, read_minari

__all__ = [
    "Episode", "EpisodeFile", "EpisodeWriter", "FORMAT_VERSION", "read_episodes", "write_episodes", "load_episodes",
    "Video", "load_videos", "read_video_file", "write_video", "write_frame_folder",
    "export_d4rl", "read_d4rl", "write_d4rl", "export_minari", "read_minari",
]
