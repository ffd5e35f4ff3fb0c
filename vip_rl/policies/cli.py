"""``vip-rl train bc|rwr`` and ``vip-rl evaluate``.

Examples::

    vip-rl collect PressButton --episodes 20 --policy noisy --noise 0.4 --out demos.h5
    vip-rl train rwr --data demos.h5 --encoder td-sim --out runs/rwr --temperature 0.5
    vip-rl train bc  --data demos.h5 --encoder td-sim --out runs/bc
    vip-rl evaluate runs/rwr --env vip_envs/PressButton-v0 --episodes 20 --video runs/rwr/videos
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from vip_rl._io import atomic_write_json
from vip_rl.cli import ArgumentParser, UsageError, check_output_dir, check_output_file, command
from vip_rl.goals import goal_from_arg, resolve_encoder

ENCODER_DIR = "encoder"


def _resolve_device(device: str) -> str:
    from vip_rl.cli import resolve_device

    return str(resolve_device(device))


def _set_threads(threads: int) -> None:
    if threads < 0:
        raise UsageError(f"--threads must be >= 0 (0 = torch default), got {threads}")
    if threads:
        import torch

        torch.set_num_threads(threads)


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "vip_rl" / "embeddings"


#: ``--goal`` keywords of ``vip-rl train`` (see :meth:`PolicyDataset.from_file`); anything else is a goal
#: file or an instruction (:func:`vip_rl.goals.goal_from_arg`)
GOAL_KEYWORDS = ("success", "final", "instruction")


def load_goal_arg(goal: str) -> Any:
    """``--goal``: ``success`` | ``final`` | ``instruction`` | a goal file (image, video: its last frame, or
    ``.npy``; see :func:`vip_rl.goals.load_goal`) | other text (an instruction).

    Raises:
        FileNotFoundError: a goal path that does not exist. ValueError: an unreadable goal file.
    """
    if goal in GOAL_KEYWORDS:
        return goal
    return goal_from_arg(goal)


def _train_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="vip-rl train", description="Train a BC or RWR policy from demos.")
    parser.add_argument("algo", choices=("bc", "rwr"))
    parser.add_argument("--data", required=True, help="suite HDF5 (vip-rl collect), D4RL-flat HDF5 or Minari dataset")
    parser.add_argument("--encoder", default="td-sim", help="td-sim (default) | vip-sim | liv-sim | random | checkpoint path")
    parser.add_argument("--encoder-seed", type=int, default=0, help="seed of --encoder random")
    parser.add_argument("--out", required=True, help="output directory (policy.safetensors, policy.json, train_log.csv)")
    parser.add_argument("--camera", default="front", help="camera the encoder embeds (rewards, and the MLP policy's input)")
    parser.add_argument("--goal", default="success",
                        help="success (mean final frame of the successful demos, default) | final (each demo's own "
                             "final frame) | instruction (each demo's own, needs a text encoder) | goal file "
                             "(image, video: its last frame, or .npy) | instruction text")
    parser.add_argument("--reward", default="progress", choices=("progress", "distance", "true"),
                        help="RWR weights: embedding progress / distance to the goal, or the file's true env reward")
    parser.add_argument("--returns", default="return", choices=("reward", "reward_to_go", "return"),
                        help="RWR return: episode return (default; ranks whole demos), per-step reward or reward-to-go")
    parser.add_argument("--temperature", type=float, default=0.5, help="RWR temperature on standardised returns (inf = BC)")
    parser.add_argument("--max-weight", type=float, default=20.0)
    parser.add_argument("--gamma", type=float, default=0.99)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--hidden", default="256,256", help="comma-separated hidden widths")
    parser.add_argument("--head", default="deterministic", choices=("deterministic", "gaussian"))
    parser.add_argument("--arch", default="mlp", choices=("mlp", "cnn"))
    parser.add_argument("--extra-cameras", default=None,
                        help="--arch mlp: comma-separated cameras whose --encoder embeddings the policy also sees, after "
                             "--camera's (e.g. wrist); rewards still come from --camera")
    parser.add_argument("--policy-camera", default=None,
                        help="--arch cnn: the camera the CNN policy sees (default --camera), e.g. wrist; rewards still "
                             "come from --camera")
    parser.add_argument("--pixel-pool", type=int, default=1,
                        help="--arch cnn: average-pool frames by this factor first (2: 96 px seen at 48 px)")
    parser.add_argument("--random-shift", type=int, default=0,
                        help="--arch cnn: shift training frames by up to this many pixels (DrQ augmentation; 0 = off)")
    parser.add_argument("--cnn-channels", default="32,64,64,64",
                        help="--arch cnn: comma-separated widths of the conv stages")
    parser.add_argument("--cnn-strides", default=None,
                        help="--arch cnn: comma-separated stride of each conv stage (default 2 each); 2,1,2,1 keeps a "
                             "12 x 12 map at 48 px, as the front-camera PushBlock policies of benchmarks/results/few_shot_wrist_long.md")
    parser.add_argument("--state", default="proprio", choices=("proprio", "all", "none"),
                        help="state fed to the policy: proprio (vip_envs end-effector + fingers, default), all "
                             "(includes privileged object state), none (embeddings only)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ensemble", type=int, default=1,
                        help="train N policies (seeds seed*N .. seed*N+N-1) and save them as one that averages their "
                             "actions (N times the training time; benchmarks/results/few_shot_wrist_ensemble.md)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: small MLP policies run fastest on one; 0 = torch default)")
    parser.add_argument("--cache-dir", default=None, help=f"embedding cache (default {_default_cache_dir()})")
    parser.add_argument("--env", default=None,
                        help="optional Gymnasium id or module:Id: check the dataset's action size against it")
    parser.add_argument("--env-kwargs", default=None, metavar="JSON", help="constructor kwargs of --env as a JSON object")
    return parser


def _parse_ints(text: str, flag: str, example: str) -> tuple[int, ...]:
    """``"256,256"`` -> ``(256, 256)``; UsageError naming ``flag`` unless every entry is a positive int."""
    try:
        values = tuple(int(h) for h in text.split(",") if h.strip())
    except ValueError:
        values = ()
    if not values or min(values) < 1:
        raise UsageError(f"{flag} must be comma-separated positive ints such as {example}, got {text!r}")
    return values


def _parse_hidden(text: str) -> tuple[int, ...]:
    return _parse_ints(text, "--hidden", "256,256")


def _env_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """``--env-kwargs`` as a dict (refused without ``--env``).

    Raises:
        UsageError: not a JSON object, or given without ``--env``.
    """
    from vip_rl.planning.episode import parse_env_kwargs

    if args.env_kwargs is not None and not args.env:
        raise UsageError("--env-kwargs needs --env")
    try:
        return parse_env_kwargs(args.env_kwargs, flag="--env-kwargs")
    except ValueError as err:
        raise UsageError(str(err)) from err


def _action_dim_of(env_id: str, env_kwargs: dict[str, Any] | None = None) -> int:
    """The flat action size of ``env_id`` made with ``env_kwargs`` (any id :func:`vip_rl.planning.episode.make_env`
    takes: ``vip_envs/...`` ids register the suite first, ``module:Id`` imports ``module``).

    Raises:
        UsageError: an unknown env id, or kwargs the env refuses.
    """
    from vip_rl.planning.episode import EnvKwargsError, make_env

    try:
        env = make_env(env_id, render_mode=None, **(env_kwargs or {}))
    except EnvKwargsError as err:
        raise UsageError(f"--env-kwargs {json.dumps(env_kwargs)}: {err}" if env_kwargs else str(err)) from err
    except ValueError as err:
        raise UsageError(str(err)) from err
    try:
        return int(np.prod(env.action_space.shape))
    finally:
        env.close()


@command("train")
def train_cli(argv: list[str]) -> int:
    """``vip-rl train bc|rwr --data demos.h5 --encoder td-sim --out DIR [...]``.

    The config, the output folder, ``--env``, the goal, the encoder and the data are all checked before
    anything is written to ``--out`` (the encoder copy included); a failure is one line on stderr.
    """
    args = _train_parser().parse_args(argv)
    from vip_rl.encoders import save_encoder

    from .dataset import PolicyDataset
    from .networks import checked_cnn_strides, checked_extra_cameras, save_policy
    from .trainers import PROPRIO_INDICES, BCConfig, RWRConfig, config_to_dict, policy_config_for, train_bc, train_rwr

    hidden = _parse_hidden(args.hidden)
    extra_cameras = tuple(c.strip() for c in args.extra_cameras.split(",")) if args.extra_cameras is not None else ()
    if args.extra_cameras is not None and args.arch != "mlp":
        raise UsageError("--extra-cameras only applies to --arch mlp (the CNN policy sees one camera: --policy-camera)")
    try:  # the rule lives in checked_extra_cameras; the message names the flags
        checked_extra_cameras(extra_cameras, args.camera)
    except ValueError as exc:
        raise UsageError(f"--extra-cameras {args.extra_cameras!r} must name distinct cameras other than --camera {args.camera}, "
                         "comma-separated, e.g. wrist") from exc
    if args.arch != "cnn":
        given = [flag for flag, value, default in (("--policy-camera", args.policy_camera, None),
                                                   ("--pixel-pool", args.pixel_pool, 1), ("--random-shift", args.random_shift, 0),
                                                   ("--cnn-channels", args.cnn_channels, "32,64,64,64"),
                                                   ("--cnn-strides", args.cnn_strides, None))
                 if value != default]
        if given:
            raise UsageError(f"{', '.join(given)} only apply to --arch cnn (the MLP policy sees the embeddings of --camera and --extra-cameras)")
    cnn_channels = _parse_ints(args.cnn_channels, "--cnn-channels", "32,64,64,64")
    cnn_strides = None if args.cnn_strides is None else _parse_ints(args.cnn_strides, "--cnn-strides", "2,1,2,1")
    try:  # the rule lives in checked_cnn_strides; the message names the flags
        checked_cnn_strides(cnn_strides, cnn_channels)
    except ValueError as exc:
        raise UsageError(f"--cnn-strides gives {len(cnn_strides or ())} strides for {len(cnn_channels)} conv stages "
                         f"(--cnn-channels {args.cnn_channels}); give one per stage") from exc
    common = dict(steps=args.steps, batch_size=args.batch_size, lr=args.lr, hidden=hidden, head=args.head,
                  arch=args.arch, use_state=args.state != "none",
                  state_indices=PROPRIO_INDICES if args.state == "proprio" else None,
                  pixel_pool=args.pixel_pool, random_shift=args.random_shift, cnn_channels=cnn_channels,
                  cnn_strides=cnn_strides, ensemble=args.ensemble)
    if args.algo == "bc":
        config: BCConfig = BCConfig(**common)
    else:
        config = RWRConfig(**common, temperature=args.temperature, returns=args.returns, max_weight=args.max_weight,
                           gamma=args.gamma, reward_source="true" if args.reward == "true" else "relabelled")
    out = check_output_dir(args.out, flag="--out")
    device = _resolve_device(args.device)
    _set_threads(args.threads)
    env_kwargs = _env_kwargs(args)
    env_action_dim = _action_dim_of(args.env, env_kwargs) if args.env else None
    goal = load_goal_arg(args.goal)
    text_goal = isinstance(goal, str) and (goal == "instruction" or goal not in GOAL_KEYWORDS)
    encoder = resolve_encoder(args.encoder, seed=args.encoder_seed, device=device, text=text_goal)
    mode = "progress" if args.reward == "true" else args.reward
    dataset = PolicyDataset.from_file(
        args.data, encoder, camera=args.camera, goal=goal, mode=mode,
        cache_dir=args.cache_dir or _default_cache_dir(), keep_frames=args.arch == "cnn", frames_camera=args.policy_camera,
        extra_cameras=extra_cameras,
    )
    if env_action_dim is not None:
        dataset.check_action_dim(env_action_dim, env_id=args.env)
    state_dim = dataset.states.shape[1] if dataset.states.ndim == 2 else 0
    if config.use_state and config.state_indices is not None and max(config.state_indices) >= state_dim:
        raise UsageError(f"--state proprio feeds state entries 0-{max(config.state_indices)} (vip_envs: effector "
                         f"position / velocity, fingers), but {args.data} has {state_dim} state entries per step; "
                         "use --state all or --state none")
    policy_config_for(config, dataset)  # the network the trainer will build fits this data (e.g. --pixel-pool vs the frame size)
    # the inputs are good: from here on files are written
    encoder_ref = args.encoder
    if args.encoder == "random" or Path(args.encoder).exists():
        # store the encoder next to the policy so evaluation needs nothing else
        save_encoder(encoder, out / ENCODER_DIR)
        encoder_ref = ENCODER_DIR
    trainer = train_bc if args.algo == "bc" else train_rwr
    result = trainer(config, dataset, device=device, seed=args.seed, encoder=encoder_ref, log_dir=out)
    metadata = {"algo": args.algo, "train_config": config_to_dict(config), "dataset": dataset.metadata,
                "seed": args.seed, "steps": config.steps, "reward": args.reward}
    save_policy(result.policy, out, metadata=metadata)
    final = result.history[-1] if result.history else {}
    summary = {"out": str(out), "algo": args.algo, "transitions": len(dataset), "episodes": dataset.num_episodes,
               "final_loss": final.get("train/loss"), "train_time_s": final.get("time_s")}
    atomic_write_json(out / "train_summary.json", summary)
    print(json.dumps(summary, indent=2))
    return 0


def load_policy_encoder(policy_dir: str | os.PathLike[str], *, device: str = "cpu") -> Any:
    """The encoder a saved policy was trained with (its bundled name or the copy saved next to it), or None."""
    from .networks import read_policy_json

    config = read_policy_json(policy_dir)["config"]
    ref = config.get("encoder")
    if config.get("arch") != "mlp" or not config.get("embed_dim"):
        return None
    if ref is None:
        raise ValueError(f"policy {str(policy_dir)!r} records no encoder; cannot rebuild its inputs")
    local = Path(policy_dir) / ref
    return resolve_encoder(str(local) if local.exists() else ref, device=device)


def _evaluate_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="vip-rl evaluate", description="Evaluate a trained policy on a task.")
    parser.add_argument("policy", help="policy directory written by `vip-rl train`")
    parser.add_argument("--env", required=True,
                        help="Gymnasium id or module:Id of an env with vip_envs' pixel observations, e.g. vip_envs/PressButton-v0")
    parser.add_argument("--env-kwargs", default=None, metavar="JSON",
                        help="constructor kwargs of --env as a JSON object (the policy's camera and image size are set)")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1000, help="first reset seed (use seeds not in the demos)")
    parser.add_argument("--video", default=None, help="directory for one mp4 per episode")
    parser.add_argument("--out", default=None, help="results JSON (default <policy>/eval_<task>.json)")
    parser.add_argument("--num-envs", type=int, default=10)
    parser.add_argument("--stochastic", action="store_true", help="sample from the Gaussian head instead of its mean")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (0 = torch default)")
    return parser


@command("evaluate")
def evaluate_cli(argv: list[str]) -> int:
    """``vip-rl evaluate <policy dir> --env vip_envs/<Task>-v0 --episodes N [--video DIR]``.

    The counts, the output paths, the env id and the policy are checked before any episode runs.
    """
    args = _evaluate_parser().parse_args(argv)
    from .evaluate import evaluate_policy
    from .networks import load_policy

    for flag, value in (("--episodes", args.episodes), ("--num-envs", args.num_envs)):
        if value < 1:
            raise UsageError(f"{flag} must be a positive int, got {value}")
    env_kwargs = _env_kwargs(args)
    task = args.env.split(":")[-1].split("/")[-1].removesuffix("-v0")
    out = check_output_file(Path(args.out) if args.out else Path(args.policy) / f"eval_{task}.json", flag="--out")
    if args.video is not None:
        check_output_dir(args.video, flag="--video")
    device = _resolve_device(args.device)
    _set_threads(args.threads)
    policy = load_policy(args.policy, device=device)
    encoder = load_policy_encoder(args.policy, device=device)
    _action_dim_of(args.env, env_kwargs)  # an unknown env id or refused kwargs are refused before any episode runs
    result = evaluate_policy(policy, args.env, episodes=args.episodes, seed=args.seed, encoder=encoder,
                             video_dir=args.video, device=device, num_envs=args.num_envs,
                             deterministic=not args.stochastic, env_kwargs=env_kwargs)
    atomic_write_json(out, result)
    print(json.dumps({k: result[k] for k in ("env_id", "episodes", "success_rate", "mean_return")} | {"json": str(out)}, indent=2))
    return 0
