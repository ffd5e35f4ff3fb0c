"""Where the end-effector shortcut of the bundled encoders comes from (issues 4 and 6).

``python benchmarks/shortcut.py [--quick] [--sections probe,fit,decoy,oversample,contrast,camera] [--keep]``
writes ``benchmarks/results/shortcut.json`` and ``.md``. Training runs go to ``--cache``
(default ``runs/bench_shortcut``; finished runs are reused), the training videos are the
bundled recipe's (``--data``, default ``runs/weights/data``; collected there when missing), the
held-out episodes are the representation benchmark's (``runs/bench_representation``).

Sections:

* ``probe``: can the bundled CNN *see* object state at all? Per task, the object's joints are
  regressed from frames (a) by the vip-sim architecture trained from scratch, supervised: what
  the pixels and the architecture allow; (b) linearly from each bundled encoder's frozen
  embedding: what its objective kept; (c) linearly from a random encoder of the same
  architecture; (d) by a small MLP on each frozen embedding (:func:`_mlp_readout`): whether a joint
  that reads badly linearly is lost or only curved. R^2 on the held-out episodes.
* ``fit``: on the *training* videos, the distance vip-sim gives a goal-pose-detour frame (the end
  effector at the goal's pose, the task not done) to its own final frame, against the VIP target
  ``(1 - gamma^n) / (1 - gamma)`` for its ``n`` steps left; expert frames with the same steps left
  as the control.
* ``decoy``: how far the representation benchmark's decoy really is: the scripted expert's steps
  to success from the decoy state (the end effector where the episode's own goal has it, objects
  at their start) vs the steps left at the 50%-progress frame it is compared with; and how many
  pixels (64 px) tell the decoy from the goal frame on the ``front`` and ``close`` cameras; and how many steps away
  each encoder puts it (``_value_metrics.apparent_steps``: where the expert episode turns nearer the goal than the
  decoy for good), to set beside the expert's.
* ``oversample``: vip-sim fine-tuned 2500 steps with the goal-pose detours drawn 4x and 10x as
  often as in the recipe: the representation benchmark's decoy / reaching / VOC figures.
* ``contrast``: vip-sim fine-tuned 2500 steps with the VIP loss plus a self-supervised contrastive term
  (:func:`train_contrast`): a successful video's final frame should be nearer (L2, InfoNCE over the
  batch) to another successful video's final frame of the same task than to frames of its own video
  at least ``CONTRAST_GAP`` steps before the end. Does a hard-negative signal make VIP keep object state?
* ``camera``: the vip-sim recipe trained from scratch for the same number of steps on the
  ``front`` camera and on the suite's ``close`` camera (frames re-rendered from the stored
  simulator states), each evaluated on its own camera.
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

import _report
import _value_metrics as V

ROOT = _report.ROOT

#: task -> the object joints its probe regresses (``vip_envs.STATE_LABELS``)
PROBE_JOINTS = {"OpenDrawer": ("drawer",), "SlideDoor": ("door",), "PressButton": ("button",),
                "PushBlock": ("block_x", "block_y"), "PickPlace": ("block_x", "block_y", "block_z")}
PROBE_KINDS = ("expert", "noisy", "play", "goal_pose_detour")
#: probe: the reference column that reads the joints from the true gripper state (the first GRIPPER_STATE entries of
#: ``vip_envs.STATE_LABELS``: end-effector position and velocity, the two fingers) instead of an embedding (session 36)
GRIPPER_STATE = 8
GRIPPER_COLUMN = "the true gripper state"
#: findings appended to the report (edit there, then ``--render-only``)
NOTES = ROOT / "benchmarks" / "notes" / "shortcut.md"
FIT_TASKS = ("OpenDrawer", "CloseDrawer", "SlideDoor", "PressButton")
#: cameras whose pixel differences between a goal frame and its decoy the decoy section counts
PIXEL_CAMERAS = ("front", "close")
#: contrast section: negatives are frames at least this many steps before their video's end
CONTRAST_GAP = 15
GAMMA = 0.98


# ------------------------------------------------------------------------------------------ helpers
@functools.lru_cache(maxsize=None)
def _read(path: Path) -> list[Any]:
    """The episodes of one suite HDF5 file, read once per process (callers do not modify them)."""
    from vip_rl.data import read_episodes

    return list(read_episodes(path))


def _r2(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean R^2 over output columns."""
    pred, target = pred.reshape(len(pred), -1), target.reshape(len(target), -1)
    return float(np.mean([1.0 - np.mean((pred[:, j] - target[:, j]) ** 2) / max(np.var(target[:, j]), 1e-12)
                          for j in range(target.shape[1])]))


def _ridge(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, alpha: float = 1e-3) -> np.ndarray:
    mu, sd = train_x.mean(0), train_x.std(0) + 1e-6
    a = np.c_[(train_x - mu) / sd, np.ones(len(train_x))]
    w = np.linalg.solve(a.T @ a + alpha * len(a) * np.eye(a.shape[1]), a.T @ train_y)
    return np.c_[(test_x - mu) / sd, np.ones(len(test_x))] @ w


def _mlp_readout(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, *, seed: int, steps: int = 3000) -> np.ndarray:
    """A 2x256 ReLU MLP regressing standardised targets from standardised features (Adam 1e-3, weight decay 1e-4,
    batch 256): the nonlinear counterpart of :func:`_ridge`."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    mu, sd = train_x.mean(0), train_x.std(0) + 1e-6
    ymu, ysd = train_y.mean(0), train_y.std(0) + 1e-6
    x = torch.from_numpy((train_x - mu) / sd).float()
    y = torch.from_numpy((train_y - ymu) / ysd).float()
    net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], 256), torch.nn.ReLU(), torch.nn.Linear(256, 256), torch.nn.ReLU(),
                              torch.nn.Linear(256, y.shape[1]))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, weight_decay=1e-4)
    for _ in range(steps):
        idx = torch.from_numpy(rng.integers(len(x), size=256))
        loss = ((net(x[idx]) - y[idx]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return net(torch.from_numpy((test_x - mu) / sd).float()).numpy() * ysd + ymu


# ------------------------------------------------------------------------------------------ probe
def _encoders(extra: dict[str, str] | None = None) -> dict[str, Any]:
    """The bundled encoders (td-sim when its weights are built), a random twin of vip-sim's architecture, and each
    ``extra`` one (column name -> bundled name or checkpoint path): the columns of the probe and decoy sections."""
    from vip_rl.encoders import load_encoder

    encoders = {"vip-sim": load_encoder("vip-sim"), "liv-sim": load_encoder("liv-sim")}
    try:
        encoders["td-sim"] = load_encoder("td-sim")
    except FileNotFoundError:  # weights not built yet (make weights)
        pass
    encoders["random (vip-sim architecture)"] = V.random_twin(encoders["vip-sim"])
    encoders.update({name: load_encoder(path) for name, path in (extra or {}).items()})
    return encoders


def probe(data_dir: Path, eval_eps: dict[str, list[Any]], *, steps: int, seed: int, extra: dict[str, str] | None = None,
          mlp_steps: int = 3000) -> dict[str, Any]:
    """Per :data:`PROBE_JOINTS` task: held-out R^2 of the object joints read by the vip-sim CNN trained supervised
    from scratch (``steps`` steps) and by ridge regression and a small MLP (``mlp_steps`` steps) on each bundled (and a
    random) encoder's embedding, and on each ``extra`` encoder's (column name -> bundled name or checkpoint path).
    The last column, :data:`GRIPPER_COLUMN`, reads the joints from the simulator's own gripper state instead of an
    embedding (:data:`GRIPPER_STATE`): how much of each joint is a function of where the arm is."""
    import torch.nn.functional as F
    import vip_envs
    from vip_rl.encoders.backbones import SmallCNN
    encoders = _encoders(extra)
    ref = encoders["vip-sim"]
    out: dict[str, Any] = {}
    for task, joints in PROBE_JOINTS.items():
        cols = [list(vip_envs.STATE_LABELS).index(j) for j in joints]
        frames, targets, grippers = [], [], []
        for kind in PROBE_KINDS:
            for e in _read(data_dir / f"{task}_{kind}_gripper.h5"):
                frames.append(e.frames["front"])
                targets.append(e.states[:, cols])
                grippers.append(e.states[:, :GRIPPER_STATE])
        x, y = np.concatenate(frames), np.concatenate(targets).astype(np.float32)
        ex = np.concatenate([e.frames["front"] for e in eval_eps[task]])
        ey = np.concatenate([e.states[:, cols] for e in eval_eps[task]]).astype(np.float32)
        g = np.concatenate(grippers).astype(np.float32)
        eg = np.concatenate([e.states[:, :GRIPPER_STATE] for e in eval_eps[task]]).astype(np.float32)
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        net = SmallCNN(len(cols), image_size=ref.image_size, channels=ref.config["cnn_channels"])
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        mu, sd = y.mean(0), y.std(0) + 1e-6
        for _ in range(steps):
            idx = rng.integers(len(x), size=64)
            loss = F.mse_loss(net(ref.preprocess(torch.from_numpy(x[idx]))), torch.from_numpy((y[idx] - mu) / sd))
            opt.zero_grad()
            loss.backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            pred = torch.cat([net(ref.preprocess(torch.from_numpy(ex[i:i + 256]))) for i in range(0, len(ex), 256)]).numpy() * sd + mu
        row = {"joints": list(joints), "train_frames": int(len(x)), "eval_frames": int(len(ex)),
               "supervised_cnn_r2": _r2(pred, ey), "supervised_cnn_mae_cm": float(np.mean(np.abs(pred - ey)) * 100)}
        sub = slice(None, None, 2)
        for name, enc in encoders.items():
            with torch.no_grad():
                z = enc.encode_images(x[sub]).cpu().numpy()
                ez = enc.encode_images(ex).cpu().numpy()
            row[f"linear_r2 {name}"] = _r2(_ridge(z, y[sub], ez), ey)
            row[f"mlp_r2 {name}"] = _r2(_mlp_readout(z, y[sub], ez, seed=seed, steps=mlp_steps), ey)
        row[f"linear_r2 {GRIPPER_COLUMN}"] = _r2(_ridge(g[sub], y[sub], eg), ey)
        row[f"mlp_r2 {GRIPPER_COLUMN}"] = _r2(_mlp_readout(g[sub], y[sub], eg, seed=seed, steps=mlp_steps), ey)
        out[task] = row
        print(f"[probe] {task}: supervised CNN R2 {row['supervised_cnn_r2']:.3f}, linear on vip-sim {row['linear_r2 vip-sim']:.3f}", flush=True)
    return out


# ------------------------------------------------------------------------------------------ fit
def fit(data_dir: Path, encoder_name: str = "vip-sim", gamma: float = GAMMA) -> dict[str, Any]:
    """Per :data:`FIT_TASKS` task: the encoder's distance from each goal-pose detour frame (end of the detour
    prefix) to its video's final frame against the discounted-steps target ``(1 - gamma^n) / (1 - gamma)`` for its
    ``n`` steps left (VIP's with gamma 0.98; td-sim's with its gamma 0.99), and the same ratio for expert frames
    with the same steps left."""
    from vip_rl.encoders import load_encoder

    enc = load_encoder(encoder_name)
    target = lambda n: (1.0 - gamma ** np.asarray(n, dtype=np.float64)) / (1.0 - gamma)  # noqa: E731
    out: dict[str, Any] = {}
    for task in FIT_TASKS:
        detour, control = [], []
        experts = _read(data_dir / f"{task}_expert_gripper.h5")
        for e in _read(data_dir / f"{task}_goal_pose_detour_gripper.h5"):
            k = int(e.attrs["detour_steps"])
            frames = e.frames["front"]
            n = len(frames) - 1 - k
            with torch.no_grad():
                z = enc.encode_images(frames[[k, -1]])
            detour.append((float(enc.distance(z[0], z[1])), float(target(n)), n))
        for e in experts:
            frames = e.frames["front"]
            for n in sorted({d[2] for d in detour}):
                if n < len(frames):
                    with torch.no_grad():
                        z = enc.encode_images(frames[[len(frames) - 1 - n, -1]])
                    control.append((float(enc.distance(z[0], z[1])), float(target(n)), n))
        d = np.array(detour)
        c = np.array(control) if control else np.zeros((0, 3))
        out[task] = {"goal_pose_frames": len(d), "mean_steps_left": float(d[:, 2].mean()),
                     "goal_pose_distance": float(d[:, 0].mean()), "vip_target": float(d[:, 1].mean()),
                     "goal_pose_ratio": float(np.mean(d[:, 0] / d[:, 1])),
                     "expert_ratio_same_steps_left": float(np.mean(c[:, 0] / c[:, 1])) if len(c) else float("nan"),
                     "expert_frames": len(c)}
        print(f"[fit] {task}: goal-pose frames at {out[task]['mean_steps_left']:.0f} steps left: distance "
              f"{out[task]['goal_pose_distance']:.1f} vs target {out[task]['vip_target']:.1f}", flush=True)
    return out


# ------------------------------------------------------------------------------------------ decoy
@torch.no_grad()
def decoy_steps(eval_eps: dict[str, list[Any]], *, max_steps: int = 150, extra: dict[str, str] | None = None) -> dict[str, Any]:
    """Scripted expert's steps to success from each episode's own-goal decoy state, and the steps each encoder
    (:func:`_encoders`) reads into it: ``_value_metrics.apparent_steps`` against the episode's own final frame."""
    import gymnasium
    import vip_envs
    encoders = _encoders(extra)
    out: dict[str, Any] = {}
    for task, eps in eval_eps.items():
        env = gymnasium.make(vip_envs.env_id(task))
        env.reset(seed=0)
        decoys = V.decoy_states(env.unwrapped.layout, eps, range(len(eps)))  # own-goal decoys
        env.close()
        pixels: dict[str, list[int]] = {camera: [] for camera in PIXEL_CAMERAS}
        for e, state in zip(eps, decoys):
            for camera in PIXEL_CAMERAS:  # what tells the decoy from the goal in the picture
                frames = _render(task, np.stack([np.asarray(e.sim_states[-1], np.float64), state]), camera, size=64).astype(np.int32)
                pixels[camera].append(int((np.abs(frames[0] - frames[1]).sum(-1) > 30).sum()))
        steps = V.expert_steps_from(task, decoys, max_steps=max_steps)
        defined = V.decoy_defined(task, eps, range(len(eps)), embodiment="gripper")
        decoy_frames = V.decoy_frames(task, eps, range(len(eps)), embodiment="gripper")  # 96 px front, as the decoy test
        apparent = {}
        for name, enc in encoders.items():
            reads = []
            for e, frame in zip(eps, decoy_frames):
                z = enc.encode_images(np.concatenate([e.frames["front"], frame[None]]))
                d = enc.distance(z, z[-2][None]).cpu().numpy()  # to the episode's own final frame
                reads.append(V.apparent_steps(d[:-1], float(d[-1])))
            apparent[name] = float(np.mean(reads))
        left = [float(len(e.task_progress) - 1 - V.half_progress_index(e)) for e in eps]
        out[task] = {"expert_steps_from_decoy": float(np.nanmean(steps)) if not np.all(np.isnan(steps)) else float("nan"),
                     "solved_from_decoy": float(np.mean(~np.isnan(steps))), "solved_by_zero_action": float(np.mean(~defined)),
                     "steps_left_at_half": float(np.mean(left)),
                     "episode_steps": float(np.mean([len(e.task_progress) - 1 for e in eps])), "apparent_steps": apparent,
                     **{f"changed_pixels_64px {camera}": float(np.mean(v)) for camera, v in pixels.items()}}
        print(f"[decoy] {task}: expert needs {out[task]['expert_steps_from_decoy']:.1f} steps from the decoy, "
              f"{out[task]['steps_left_at_half']:.1f} from the 50% frame", flush=True)
    return out


# ------------------------------------------------------------------------------------------ training jobs
_ENVS: dict[tuple[str, int], Any] = {}


def _render(task: str, sim_states: np.ndarray, camera: str, size: int = 96) -> np.ndarray:
    import gymnasium
    import vip_envs

    key = (task, size)
    if key not in _ENVS:
        env = gymnasium.make(vip_envs.env_id(task), render_mode="rgb_array", image_size=size)
        env.reset(seed=0)
        _ENVS[key] = env
    return np.asarray(_ENVS[key].unwrapped.render_states(np.asarray(sim_states, np.float64), camera=camera))


def _training_videos(data_dir: Path, camera: str) -> Any:
    """The vip-sim recipe's training videos, optionally re-rendered from another camera."""
    import vip_envs
    from vip_rl import weights_recipe as W
    from vip_rl.data import Video

    paths = W.collect_data(data_dir, progress=False)
    if camera == "front":
        return W.load_training_videos(paths, camera="front").select(W.TRAIN_KINDS["vip-sim"])
    column = list(vip_envs.STATE_LABELS).index(W.HELD_OUT_STATE)
    out = W.TrainingVideos([], [], [], [])
    for path in paths:
        for i, ep in enumerate(_read(path)):
            if np.ptp(ep.states[:, column]) > 0.05:  # the recipe's held-out filter
                continue
            kind = str(ep.attrs.get("policy", "expert"))
            play = kind == "play"
            frames = _render(str(ep.task), ep.sim_states, camera)
            out.videos.append(Video(np.ascontiguousarray(frames), text=W.PLAY_TEXT if play else ep.instruction, source=f"{path}:demo_{i}"))
            out.groups.append("play" if play else str(ep.task))
            out.final_goal_ok.append(bool(ep.success) and not play)
            out.kinds.append(kind)
    return out.select(W.TRAIN_KINDS["vip-sim"])


def train_job(job: dict[str, Any]) -> dict[str, Any]:
    """One training run (in a worker process): ``job`` = name, camera, steps, init_from, oversample, data, out."""
    torch.set_num_threads(1)
    from vip_rl import weights_recipe as W
    from vip_rl.pretrain import pretrain

    out = Path(job["out"])
    tic = time.perf_counter()
    data = _training_videos(Path(job["data"]), job["camera"])
    weights = None
    if job["oversample"] != 1.0:
        counts: dict[str, int] = {}
        for video in data.videos:
            source = video.source.rsplit(":", 1)[0]
            counts[source] = counts.get(source, 0) + 1
        weights = {s: n * (job["oversample"] if "goal_pose_detour" in s else 1.0) for s, n in counts.items()}
    overrides: dict[str, Any] = {"steps": job["steps"]}
    if job["init_from"]:
        overrides.update(lr=3e-4, warmup_steps=50)  # a fine-tune: lower lr, short warm-up
    cfg = dataclasses.replace(W.CONFIGS["vip-sim"], **overrides)
    pretrain(cfg, data.videos, out_dir=out, groups=data.groups, final_goal_ok=data.final_goal_ok, goal_swap_prob=W.GOAL_SWAP_PROB,
             source_weights=weights, init_from=job["init_from"], progress=False)
    return {"name": job["name"], "encoder": str(out / "encoder"), "seconds": time.perf_counter() - tic, "config": cfg.to_dict(),
            "videos": len(data.videos)}


def train_contrast(job: dict[str, Any]) -> dict[str, Any]:
    """Fine-tune vip-sim with ``VIP + weight * InfoNCE(final frame; other episode's final frame of the task
    vs own frames >= CONTRAST_GAP steps before the end)`` (in a worker process; ``job`` as :func:`train_job`
    plus ``weight``, ``temperature``)."""
    torch.set_num_threads(1)
    import torch.nn.functional as F
    from vip_rl import weights_recipe as W
    from vip_rl.data.samplers import TupleSampler
    from vip_rl.encoders import load_encoder, save_encoder
    from vip_rl.objectives import vip_loss

    out = Path(job["out"])
    done = out / "encoder"
    tic = time.perf_counter()
    if done.exists():
        return {"name": job["name"], "encoder": str(done), "seconds": float("nan")}
    data = _training_videos(Path(job["data"]), "front")
    cfg = dataclasses.replace(W.CONFIGS["vip-sim"], steps=job["steps"], lr=3e-4)
    torch.manual_seed(cfg.seed)
    encoder = load_encoder("vip-sim")
    encoder.train()
    for p in encoder.parameters():
        p.requires_grad_(True)
    sampler = TupleSampler(data.videos, batch_size=cfg.batch_size, image_size=encoder.image_size, crop_scale=cfg.crop_scale,
                           goal_mode=cfg.goal_mode, final_goal_prob=cfg.final_goal_prob, final_goal_ok=data.final_goal_ok,
                           groups=data.groups, goal_swap_prob=W.GOAL_SWAP_PROB, seed=cfg.seed)
    ok = [i for i, good in enumerate(data.final_goal_ok) if good and len(data.videos[i].frames) > CONTRAST_GAP + 1]
    by_group: dict[str, list[int]] = {}
    for i in ok:
        by_group.setdefault(data.groups[i], []).append(i)
    ok = [i for i in ok if len(by_group[data.groups[i]]) > 1]
    rng = np.random.default_rng(cfg.seed)
    params = [p for p in encoder.parameters() if p.requires_grad]
    optim = torch.optim.Adam(params, lr=cfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(optim, lambda step: 0.5 * (1 + math.cos(math.pi * step / max(cfg.steps, 1))))
    log = []
    for step in range(cfg.steps):
        batch = sampler.batch(step)
        pixels = encoder.preprocess(torch.cat([batch.initial, batch.goal, batch.current, batch.next], 0))
        e0, eg, et, et1 = encoder(pixels).chunk(4, 0)
        loss_vip, _ = vip_loss(e0, eg, et, et1, gamma=cfg.gamma, is_goal=batch.is_goal, num_negatives=cfg.num_negatives,
                               generator=torch.Generator().manual_seed(step))
        anchors = rng.choice(ok, size=cfg.batch_size)
        frames = []
        for i in anchors:
            video = data.videos[i].frames
            partner = by_group[data.groups[i]][int(rng.integers(len(by_group[data.groups[i]])))]
            while partner == i:
                partner = by_group[data.groups[i]][int(rng.integers(len(by_group[data.groups[i]])))]
            frames += [video[-1], data.videos[partner].frames[-1], video[int(rng.integers(0, len(video) - CONTRAST_GAP))]]
        z = encoder(encoder.preprocess(torch.from_numpy(np.stack(frames)))).view(cfg.batch_size, 3, -1)
        anchor, positive, negative = z[:, 0], z[:, 1], z[:, 2]
        candidates = torch.cat([positive, negative])  # [2B, D]: row i's positive is column i
        logits = -torch.cdist(anchor, candidates) / job["temperature"]
        loss_nce = F.cross_entropy(logits, torch.arange(cfg.batch_size))
        loss = loss_vip + job["weight"] * loss_nce
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
        sched.step()
        if step % 250 == 0 or step == cfg.steps - 1:
            log.append({"step": step, "vip": float(loss_vip), "nce": float(loss_nce)})
    encoder.eval()
    save_encoder(encoder, done)
    return {"name": job["name"], "encoder": str(done), "seconds": time.perf_counter() - tic, "log": log}


def _train(job: dict[str, Any]) -> dict[str, Any]:
    """Run one training job in this process: :func:`train_contrast` for ``kind="contrast"``, else :func:`train_job`."""
    return train_contrast(job) if job.get("kind") == "contrast" else train_job(job)


def evaluate(encoder_path: str, eval_eps: dict[str, list[Any]], camera: str) -> dict[str, Any]:
    """The representation benchmark's value metrics, on ``camera`` (eval frames re-rendered when not front)."""
    from vip_rl.encoders import load_encoder

    eps = eval_eps
    if camera != "front":
        eps = {task: [dataclasses.replace(e, frames={"front": _render(task, e.sim_states, camera)}) for e in es] for task, es in eval_eps.items()}
    partners = {task: [(i + 1) % len(es) for i in range(len(es))] for task, es in eps.items()}
    decoys = {task: V.decoy_frames(task, es, partners[task], embodiment="gripper", camera=camera) for task, es in eps.items()}
    defined = {task: V.decoy_defined(task, es, partners[task], embodiment="gripper") for task, es in eps.items()}
    enc = load_encoder(encoder_path)
    per_task = V.value_metrics(enc, eps, decoys=decoys, defined=defined)
    return {"summary": V.summarise(per_task, "FlipSwitch"), "per_task": per_task}


# ------------------------------------------------------------------------------------------ report
def _f(x: Any) -> str:
    return "nan" if x is None or (isinstance(x, float) and not np.isfinite(x)) else f"{x:.3f}" if isinstance(x, float) else str(x)


def to_markdown(res: dict[str, Any]) -> str:
    lines = ["# Where the end-effector shortcut comes from", "",
             _report.generated_by(res["provenance"]), "", "Held-out episodes: the representation benchmark's (12 expert episodes per task, new seeds). "
             "See the module docstring for each section.", ""]
    if "probe" in res:
        first = next(iter(res["probe"].values()))
        names = [k.removeprefix("linear_r2 ") for k in first if k.startswith("linear_r2 ")]  # encoder column names
        lines += ["## Can the CNN see object state? (R^2 of the object's joints on held-out frames)", "",
                  "| task | joints | vip-sim CNN trained supervised, from scratch | " + " | ".join(f"linear on {n}" for n in names) + " |",
                  "|---" * (3 + len(names)) + "|"]
        for task, row in res["probe"].items():
            lines.append(f"| {task} | {', '.join(row['joints'])} | {_f(row['supervised_cnn_r2'])} ({row['supervised_cnn_mae_cm']:.2f} cm) | "
                         + " | ".join(_f(row[f"linear_r2 {n}"]) for n in names) + " |")
        lines.append("")
        mlp = [n for n in names if f"mlp_r2 {n}" in first]
        if mlp:
            lines += ["Lost or curved? The same frozen embeddings read by a small MLP (2 x 256 ReLU) instead of a linear map, "
                      "same frames; a joint the MLP reads well and the linear map does not is kept, on a curved manifold.", "",
                      "| task | " + " | ".join(f"linear / MLP on {n}" for n in mlp) + " |", "|---" * (1 + len(mlp)) + "|"]
            for task, row in res["probe"].items():
                lines.append(f"| {task} | " + " | ".join(f"{_f(row[f'linear_r2 {n}'])} / {_f(row[f'mlp_r2 {n}'])}" for n in mlp) + " |")
            lines.append("")
    if "fit" in res:
        lines += ["## Does vip-sim fit its own training videos? (goal-pose detour frames vs expert frames)", "",
                  "Distance from a training frame to its own final frame divided by the VIP target (1-gamma^n)/(1-gamma), n = steps left. "
                  "1.0 = fitted.", "",
                  "| task | goal-pose frames | mean steps left | distance | target | ratio | expert frames, same steps left: ratio |",
                  "|---|---|---|---|---|---|---|"]
        for task, row in res["fit"].items():
            lines.append(f"| {task} | {row['goal_pose_frames']} | {row['mean_steps_left']:.1f} | {row['goal_pose_distance']:.2f} | "
                         f"{row['vip_target']:.2f} | {_f(row['goal_pose_ratio'])} | {_f(row['expert_ratio_same_steps_left'])} |")
        lines.append("")
    if "fit_td" in res:
        lines += ["## Does td-sim fit the same videos? (temporal-distance objective, gamma 0.99)", "",
                  "The same measurement for `td-sim`, against its own target (1-0.99^n)/(1-0.99). 1.0 = fitted.", "",
                  "| task | goal-pose frames | mean steps left | distance | target | ratio | expert frames, same steps left: ratio |",
                  "|---|---|---|---|---|---|---|"]
        for task, row in res["fit_td"].items():
            lines.append(f"| {task} | {row['goal_pose_frames']} | {row['mean_steps_left']:.1f} | {row['goal_pose_distance']:.2f} | "
                         f"{row['vip_target']:.2f} | {_f(row['goal_pose_ratio'])} | {_f(row['expert_ratio_same_steps_left'])} |")
        lines.append("")
    if "decoy" in res:
        names = list(next(iter(res["decoy"].values())).get("apparent_steps", {}))
        lines += ["## How far is the decoy really? (scripted expert, held-out episodes)", "",
                  "| task | expert steps from the decoy | solved from it | solved by one zero action | steps left at the 50%-progress "
                  "frame | episode steps | pixels that differ from the goal, front 64 px | close 64 px |"
                  + "".join(f" apparent steps, {n} |" for n in names),
                  "|---|---|---|---|---|---|---|---|" + "---|" * len(names)]
        for task, row in res["decoy"].items():
            lines.append(f"| {task} | {row['expert_steps_from_decoy']:.1f} | {row['solved_from_decoy']:.2f} | "
                         f"{_report.fmt(row.get('solved_by_zero_action'), '{:.2f}')} | {row['steps_left_at_half']:.1f} | "
                         f"{row['episode_steps']:.1f} | {row.get('changed_pixels_64px front', float('nan')):.0f} | "
                         f"{row.get('changed_pixels_64px close', float('nan')):.0f} |"
                         + "".join(f" {_report.fmt(row['apparent_steps'].get(n), '{:.1f}')} |" for n in names))
        if names:
            lines += ["", "Apparent steps: the steps left on the expert episode at the frame from which every later frame is "
                      "nearer its goal (the episode's final frame) than the decoy, in the encoder's distance "
                      "(`_value_metrics.apparent_steps`). A value that counts steps reads about the expert's steps from the "
                      "decoy (at most the episode's length); fewer is the end-effector shortcut: the decoy looks nearer "
                      "than it is.",
                      "", "Solved by one zero action: the share of decoy states that a single step with the arm held still "
                      "(the zero action) already solves (`_value_metrics.decoy_defined`). Such a state is no decoy: the goal "
                      "pose overlaps the untouched object and the simulator resolves the overlap by moving it, so the "
                      "scripted expert's steps overstate its distance; the decoy pass rates leave it out."]
        lines.append("")
    if "runs" in res:
        lines += ["## Training changes: the representation benchmark's figures", "",
                  "| run | camera | steps | VOC other (trained min) | VOC other (held-out) | reaching VOC | decoy pass | decoy OpenDrawer | decoy SlideDoor | "
                  "fit ratio: goal-pose / expert frames | train s |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for run in res["runs"]:
            s, pt = run["eval"]["summary"], run["eval"]["per_task"]
            lines.append(f"| {run['name']} | {run['camera']} | {run['steps']} | {_f(s['voc_other_trained_min'])} | {_f(s['voc_other_heldout'])} | "
                         f"{_f(s['reach_voc_mean'])} | {_f(s['decoy_pass_rate'])} | {_f(pt['OpenDrawer']['decoy_pass_rate'])} | "
                         f"{_f(pt['SlideDoor']['decoy_pass_rate'])} | "
                         + (f"{run['fit_ratio_goal_pose']:.2f} / {run['fit_ratio_expert']:.2f}" if "fit_ratio_goal_pose" in run else "-")
                         + f" | {run.get('seconds', float('nan')):.0f} |")
        lines += ["", "Targets (issue 4): VOC other >= 0.95 trained / >= 0.85 held-out, reaching VOC >= 0.8, decoy pass >= 0.9.", ""]
    if res.get("notes"):
        lines += ["## Notes", "", *[f"- {n}" for n in res["notes"]], ""]
    if NOTES.exists():
        lines += ["## Findings", "", NOTES.read_text().strip(), ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes (smoke run)")
    p.add_argument("--sections", default="probe,fit,decoy,oversample,contrast,camera")
    p.add_argument("--keep", action="store_true", help="keep the sections of the existing <out>.json that this run does not measure")
    p.add_argument("--data", default="runs/weights/data", help="the recipe's training videos (collected there when missing)")
    p.add_argument("--cache", default="runs/bench_shortcut")
    p.add_argument("--probe-steps", type=int, default=600)
    p.add_argument("--oversample-steps", type=int, default=2500)
    p.add_argument("--camera-steps", type=int, default=4000)
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--extra-encoder", action="append", default=[], metavar="NAME=PATH",
                   help="probe: also read the joints from this encoder's embedding (bundled name or checkpoint path; repeatable)")
    p.add_argument("--note", action="append", default=[])
    _report.add_output_args(p, "shortcut")
    args = p.parse_args(argv)
    if args.render_only:  # the render reads the findings from the notes file
        return _report.render_only(args.out, to_markdown)
    torch.set_num_threads(1)
    import vip_envs

    try:
        extra = _report.name_value_pairs(args.extra_encoder, "--extra-encoder", value="PATH")
    except ValueError as exc:
        p.error(str(exc))
    sections = set(args.sections.split(","))
    unknown = sections - {"probe", "fit", "decoy", "oversample", "contrast", "camera"}
    if unknown:
        p.error(f"--sections: unknown {sorted(unknown)}")
    if args.quick:
        args.probe_steps, args.oversample_steps, args.camera_steps = 20, 20, 20
    data_dir, cache = Path(args.data), Path(args.cache) / ("quick" if args.quick else "full")
    res: dict[str, Any] = {"provenance": _report.provenance(__file__, argv, quick=args.quick, note="1 torch thread per process"),
                           "notes": list(args.note)}
    from vip_rl.weights_recipe import collect_data

    collect_data(data_dir, progress=False)
    eval_eps = V.collect_eval(vip_envs.TASKS, 4 if args.quick else 12, cache=Path("runs/bench_representation"))
    jobs = []
    if "oversample" in sections:
        jobs += [dict(name=f"vip-sim + goal-pose detours x{m:g}", camera="front", steps=args.oversample_steps, init_from="vip-sim",
                      oversample=float(m), data=str(data_dir), out=str(cache / f"oversample_x{m:g}")) for m in (4, 10)]
    if "contrast" in sections:
        jobs += [dict(name="vip-sim + far-frame InfoNCE (weight 1)", camera="front", steps=args.oversample_steps, init_from="vip-sim",
                      oversample=1.0, data=str(data_dir), out=str(cache / "contrast_w1"), weight=1.0, temperature=1.0, kind="contrast")]
    if "camera" in sections:
        jobs += [dict(name=f"vip-sim recipe, {cam} camera", camera=cam, steps=args.camera_steps, init_from=None, oversample=1.0,
                      data=str(data_dir), out=str(cache / f"camera_{cam}")) for cam in ("front", "close")]
    pool = ProcessPoolExecutor(max_workers=args.workers, mp_context=get_context("spawn")) if jobs and args.workers > 1 else None
    futures = [pool.submit(_train, job) for job in jobs] if pool else []
    if "probe" in sections:
        res["probe"] = probe(data_dir, eval_eps, steps=args.probe_steps, seed=args.seed, extra=extra,
                             mlp_steps=20 if args.quick else 3000)
    if "fit" in sections:
        res["fit"] = fit(data_dir)
        try:
            from vip_rl.weights_recipe import CONFIGS

            res["fit_td"] = fit(data_dir, "td-sim", gamma=CONFIGS["td-sim"].gamma)
        except FileNotFoundError:  # td-sim weights not built yet
            pass
    if "decoy" in sections:
        res["decoy"] = decoy_steps(eval_eps, max_steps=10 if args.quick else 150, extra=extra)
    if jobs:
        done = [f.result() for f in futures] if pool else [_train(job) for job in jobs]
        if pool:
            pool.shutdown()
        res["runs"] = []
        bundled = {"name": "vip-sim (bundled, 8000 steps)", "camera": "front", "steps": 8000, "eval": evaluate("vip-sim", eval_eps, "front")}
        res["runs"].append(bundled)
        for job, trained in zip(jobs, done):
            print(f"[runs] {job['name']}: trained in {trained['seconds']:.0f} s", flush=True)
            res["runs"].append({**{k: job[k] for k in ("name", "camera", "steps", "init_from", "oversample")}, "seconds": trained["seconds"],
                                "encoder": trained["encoder"], "eval": evaluate(trained["encoder"], eval_eps, job["camera"])})
        for run in res["runs"]:  # the training-video fit of the front-camera runs
            if run["camera"] == "front":
                encoder = run.get("encoder", "vip-sim")
                fitted = res["fit"] if encoder == "vip-sim" and "fit" in res else fit(data_dir, encoder)
                run["fit_ratio_goal_pose"] = float(np.mean([v["goal_pose_ratio"] for v in fitted.values()]))
                run["fit_ratio_expert"] = float(np.mean([v["expert_ratio_same_steps_left"] for v in fitted.values()]))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.keep and out.with_suffix(".json").exists():
        earlier = json.loads(out.with_suffix(".json").read_text())
        for key in ("probe", "fit", "fit_td", "decoy"):
            if key not in sections and key in earlier and key not in res:
                res[key] = earlier[key]
                _report.add_part(res["provenance"], f"section {key}", earlier["provenance"])
        if "runs" in earlier:  # training rows of sections not rerun now are kept, in their order
            fresh = {run["name"] for run in res.get("runs", [])}
            kept = [run for run in earlier["runs"] if run["name"] not in fresh]
            if kept:
                current = res.get("runs", [])
                bundled = [r for r in current if r["name"].startswith("vip-sim (bundled")]
                res["runs"] = bundled + kept + [r for r in current if r not in bundled]
                for run in kept:
                    if not run["name"].startswith("vip-sim (bundled"):
                        _report.add_part(res["provenance"], f"row {run['name']}", earlier["provenance"])
    _report.write(out, res, to_markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
