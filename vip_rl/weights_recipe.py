"""The recipe of the bundled encoders ``td-sim``, ``vip-sim`` and ``liv-sim`` (``make weights``).

``python -m vip_rl.weights_recipe [--out runs/weights] [--only td-sim|vip-sim|liv-sim] [--steps N] [--no-export] [--seed N]``
(collected files and finished or interrupted runs under ``--out`` are reused: a rerun resumes; ``--no-export`` writes
``OUT/final/<name>.safetensors`` instead of the bundled file, to compare a fresh run with it).

td-sim starts from a VIP-trained trunk (:data:`TRUNKS`, session 20): its first stage starts from the conv trunk of
vip-sim's first stage at draw 3, the draw :data:`TRUNKS` pins, which is the bundled vip-sim's (trained or resumed
first, in ``OUT/vip-sim``; a pin at another draw trains in ``OUT/vip-sim-draw<N>`` and is never exported), with a
fresh head (:func:`trunk_start`); its image stages train without a text tower (the text term sends no gradient to the
image tower), which is attached for the text fit (:func:`with_text_tower`). Sessions 20-26 pinned draw 0; the bundled
vip-sim became draw 3 in session 26, and td-sim's trunk followed it in session 27.

Candidate recipes (never exported; the default command is unchanged):
``python -m vip_rl.weights_recipe --variant NAME [--data runs/weights/data] --out DIR`` trains the
:data:`VARIANTS` entry ``NAME`` into ``DIR/NAME`` (``--data``: reuse videos collected elsewhere).
``python -m vip_rl.weights_recipe --only td-sim --set KEY=VALUE [...] --no-export --out DIR`` runs the whole multi-stage
recipe of one encoder with :class:`~vip_rl.pretrain.PretrainConfig` overrides (e.g. ``--set embed_dim=256 --set seed=6``:
another width and draw; its later stages inherit them, its trunk source does not): the candidate draws that
``benchmarks/dev_select.py`` ranks on dev seeds by the rule a bundled draw must win.

1. Collect training videos from the suite: for every task except the held-out
   :data:`HELD_OUT_TASK`, gripper embodiment, front camera, 96 px (:data:`DATA`):
   clean expert demos, noisy expert demos (action noise 0.3), play (smooth random exploration
   that touches every object; ``vip_rl.collect``), detour demos (a random play prefix, then the
   expert) and goal-pose detour demos (the end effector first travels to where the same
   episode's expert ends, objects untouched, then the expert solves the task;
   :func:`collect_detours`). Expert-only videos teach an end-effector-pose shortcut (issue 6):
   the detours are its counterexamples (the goal's end-effector pose with the task undone is
   many steps from the goal). Episodes in which the held-out task's object moved are dropped,
   so the held-out task never appears in the data. ``td-sim``'s second stage adds high detours
   (the end effector first wanders through random points high over the table, then the expert
   solves the task): the states a planner reaches by lifting the arm, which no other video visits.
   The files, and td-sim's planner rounds, are collected on ``--workers`` processes (default one per core): each file
   has its own seed, so they are the same for any count (``benchmarks/results/weights_collect.md``: 1.75x and 1.90x
   on 2 cores).
2. Train each encoder with :func:`vip_rl.pretrain.pretrain` and :data:`CONFIGS` (CPU, single
   process; small CNN at 64 px, cosine lr): goals are the final frames of successful episodes
   half of the time (``final_goal_prob``), swapped for another successful episode's final frame
   of the same task half of those times (:data:`GOAL_SWAP_PROB`), 3 shuffled negatives.
   ``td-sim`` is trained in six stages (:data:`FINETUNES`): the temporal-distance config on the
   five kinds above, then a short fine-tune at a lower rate with the high detours added (issue 17:
   MPPI exploited the value in those unvisited states), then twice: planner detours are collected with
   the encoder so far (MPPI for a few dozen steps, then the expert: :func:`collect_planner_detours`) and a
   short fine-tune adds them (a DAgger round), then twice a longer fine-tune at the first stage's rate on all of
   it, with half the tuples recoloured by per-channel RGB gains (``colour_gain_prob``, session 33), the second with the
   focused reconstruction too (``recon_weight``, ``recon_focus``, session 37). A recipe in :data:`VALUE_HEADS` then
   fits a value head on the last image stage's frozen features (:func:`vip_rl.pretrain.fit_value_head`, one more
   stage, session 39). Its last step refits the text tower onto the final image tower (:data:`TEXT_FITS`), on vectors.
   ``--from-stage K`` runs stages K.. on the bundled weights, which must record stages 1..K-1 and no more (weights
   that hold stage K already would be trained through it twice).
3. Export ``vip_rl/weights/<name>.safetensors`` + ``<name>.json`` with ``save_encoder``;
   the JSON's ``training`` entry records the command, data recipe, config and training time, and for the export
   and each stage the code that ran it (``vip_rl._provenance.code_version``: a digest of the sources, the git commit).

Everything is seeded, each bundled encoder's draw is part of its recipe (:data:`DRAWS`), and the recipe trains on one
torch thread (:data:`RECIPE_THREADS`: another thread count rounds differently and parts the runs), so a run is
deterministic on one machine, and across machines that run the same CPU math paths (session 36: MKL's code branch parts
the training, PyTorch's vectorised kernels the planner rounds; an AMD CPU trained other draws in session 35;
``benchmarks/weights_reproduce.py --check-probe`` tells in two minutes): two runs of td-sim's recipe from nothing wrote
the same tensors (session 26; so did three runs on the draw-0 trunk that sessions 21-22 ran; the SHA-256 is in
``benchmarks/results/weights_reproduce.md``), and the bundled
td-sim is this module's run of its draw (sessions 27 and 30; session 33's stages 5-6 with the colour gains were
trained on from session 30's stage 4 and exported, and a run from nothing gave the same tensors; session 37's stage 6
with the focused reconstruction was exported by a run from nothing, resumed after stage 5). The bundled vip-sim
is this module's run of its draw 3 too (session 26; two runs agree bit for bit). liv-sim was trained by the module of 2026-11-25, and
today's command trains another draw of it (deterministic too: two runs of draw 0 agree, session 25). td-sim from
nothing took 50 min on an idle machine in session 22, 42 of them its own stages. The text fit runs on PyTorch's
deterministic kernels from an empty sentence-embedding cache (without them two fits of one seed drifted to 0.2 in a
weight). td-sim is draw 5 of its recipe at 128-d (:data:`TD_SIM_WIDTH`) on vip-sim's draw-3 trunk, with the text fit's
seed 7 (session 30; sessions 27-29 shipped draw 3 at 64-d, sessions 16-19 draw 1 without a trunk, sessions 20-23 a
file of draw 3 on the draw-0 trunk that sessions 18-19's scratch scripts trained, which no command gives back, and
sessions 24-26 this recipe's run on the draw-0 trunk): on the dev seeds 100-139 it planned OpenDrawer + PressButton in
80 of 80 image-goal episodes, the other draws on the draw-3 trunk 66-77 (64-d: 77, 71; 128-d: 73, 76; 256-d: 74, 66),
on the draw-0 trunk 72 to 78, without a trunk 56-69 (``benchmarks/results/dev_stage5_draws/README.md``); what each
switch cost on the benchmarks is in ``benchmarks/notes/temporal_distance.md``. ``--seed N`` adds N to the draw of
every stage, the trunk source's included: another one.
``--no-export`` writes such a run to ``OUT/final/<name>.safetensors`` to benchmark it beside the bundled one.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from vip_rl._gl import default_mujoco_gl
from vip_rl._provenance import code_version, cpu_model
from vip_rl.pretrain import PretrainConfig, ResumeMismatchError, TextFitConfig, ValueHeadConfig, trained_seconds as _trained_seconds

#: The suite task kept out of the bundled encoders' training data (zero-shot transfer test).
HELD_OUT_TASK = "FlipSwitch"
#: Joint of the held-out task's object in the suite's state observation (``vip_envs.STATE_LABELS``).
HELD_OUT_STATE = "switch"
#: Text given to play videos for LIV (they follow no instruction).
PLAY_TEXT = "play with the objects on the table"
#: Sources of the training videos.
KINDS = ("expert", "noisy", "play", "detour", "goal_pose_detour")
#: Detours through the space over the table (td-sim's second stage only, see :data:`FINETUNES`).
HIGH_DETOUR = "high_detour"
#: Planner detours (td-sim's third stage only, see :data:`FINETUNES`): MPPI with the previous stage's encoder, then
#: the expert. Collected during training (they depend on that encoder), not by :func:`collect_data`.
PLANNER_DETOUR = "planner_detour"


@dataclass(frozen=True)
class DataRecipe:
    """Which videos are collected for the bundled encoders."""

    tasks: tuple[str, ...] = ("OpenDrawer", "CloseDrawer", "SlideDoor", "PressButton", "PushBlock", "PickPlace")
    """Training tasks (all but :data:`HELD_OUT_TASK`)."""
    expert_episodes: int = 30
    """Clean scripted-expert episodes per task."""
    noisy_episodes: int = 30
    """Noisy-expert episodes per task."""
    noise: float = 0.3
    """Action noise of the noisy expert."""
    play_episodes: int = 20
    """Play episodes (100 steps) per task env."""
    detour_episodes: int = 30
    """Detour demos per task: a play prefix of ``detour_steps`` steps, then the expert (``detour_noise``)
    until success. The prefix leaves the end effector anywhere with the objects untouched, so the
    end-effector pose alone stops predicting the time to the goal (the issue-6 shortcut)."""
    detour_steps: tuple[int, int] = (8, 40)
    """Range of the play prefix length (uniform)."""
    detour_noise: float = 0.1
    """Action noise of the expert after the prefix."""
    goal_pose_detour_episodes: int = 30
    """Goal-pose detour demos per task: the end effector first travels to (near, 2 cm noise) the pose
    the expert ends the same episode in, with the objects untouched, then the expert solves the task.
    These are the counterexamples to the end-effector shortcut: the goal's end-effector pose with the
    task undone is many steps from the goal."""
    high_detour_episodes: int = 30
    """High detours per task (collected only for a recipe that trains on them): the end effector first
    visits up to three random points over the table (``high_detour_box``, 8 cm/step P control, random
    gripper) for ``high_detour_steps`` steps, then the expert (``detour_noise``) solves the task."""
    high_detour_steps: tuple[int, int] = (15, 49)
    """Range of the high prefix length (uniform, inclusive)."""
    high_detour_box: tuple[tuple[float, float, float], tuple[float, float, float]] = ((-0.3, -0.22, 0.12), (0.3, 0.22, 0.35))
    """Corners (x, y, z in m) of the box the high waypoints are drawn from."""
    high_detour_seed: int = 7000
    """Seed of task ``t``'s high-detour file: ``high_detour_seed + t`` (the seeds the shipped td-sim used)."""
    planner_detour_episodes: int = 40
    """Planner detours per task (a DAgger-style stage, :func:`collect_planner_detours`): MPPI (the suite's table
    settings, K=32, H=10) drives toward another seed's expert goal image with the previous stage's encoder for
    ``planner_detour_steps`` steps, then the expert (``detour_noise``) solves the task."""
    planner_detour_steps: tuple[int, int] = (10, 40)
    """Range of the planner prefix length (uniform, inclusive)."""
    planner_detour_seed: int = 9000
    """Seed of task ``t``'s planner-detour file of round ``k``: ``planner_detour_seed + 100 * (k - 1) + t``."""
    image_size: int = 96
    """Rendered frame side (the encoder resizes to its own input size)."""
    camera: str = "front"
    embodiment: str = "gripper"
    seed: int = 2024
    """Base seed; each (task, kind) file uses ``seed + 100 * task_index + kind_index``."""

    def __post_init__(self) -> None:
        if HELD_OUT_TASK in self.tasks:
            raise ValueError(f"tasks must not contain the held-out task {HELD_OUT_TASK!r}, got {self.tasks!r}")
        for name in ("expert_episodes", "noisy_episodes", "play_episodes", "detour_episodes", "goal_pose_detour_episodes",
                     "high_detour_episodes", "planner_detour_episodes"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")


DATA = DataRecipe()

#: Shared architecture of both bundled encoders: small CNN, 64 px input, fast on CPU.
_ARCH = dict(arch="cnn", embed_dim=64, image_size=64, cnn_channels=(16, 32, 64, 64))

_TRAIN = dict(batch_size=32, lr=1e-3, lr_schedule="cosine", warmup_steps=100, gamma=0.98, num_negatives=3,
              crop_scale=(0.85, 1.0), goal_mode="random", final_goal_prob=0.5, eval_every=1000, eval_videos=16,
              ckpt_every=250, seed=0)

#: The temporal-distance encoder (issue 17): HILP's expectile TD (gamma 0.99, expectile 0.7, 2 heads,
#: Polyak target 0.005, 37.5% goals from any video) on the same CNN with an MLP head, plus a MiniLM text
#: tower regressed onto successful videos' goal frames.
_TDIST = dict(objective="tdist", arch="cnn", embed_dim=64, image_size=64, cnn_channels=(16, 32, 64, 64), head_hidden=(256,),
              batch_size=64, lr=3e-4, lr_schedule="cosine", warmup_steps=200, gamma=0.99, expectile=0.7, value_heads=2,
              target_tau=0.005, random_goal_prob=0.375, crop_scale=(0.85, 1.0), eval_every=2000, eval_videos=16,
              ckpt_every=500, seed=0)

#: The draw of each bundled encoder's recipe: added to its first stage's seed (the later stages' seeds follow from it)
#: and its text fit's, so that ``make weights`` trains exactly the bundled weights (td-sim's, bit for bit since session
#: 24). td-sim is draw 5 at 128-d (:data:`TD_SIM_WIDTH`) on vip-sim's draw-3 trunk (:data:`TRUNKS`, session 30); on
#: the dev seeds 100-139 (OpenDrawer + PressButton, image goal) it plans 80 of 80, the other draws on that trunk 66-77
#: (draw 3 at 64-d, shipped in sessions 27-29: 77), three runs on the draw-0 trunk 78 / 74 / 72 (the last one shipped
#: in sessions 24-26), the draws 0-3 without a trunk 56 / 68 / 69 / 60 (benchmarks/results/dev_stage5_draws/README.md).
#: vip-sim is draw 3 (session 26): on the dev seeds 100-139 (K=32, H=10, image goal, the five tasks) draws 0-3 planned
#: 85 / 86 / 65 / 87 of 200 episodes and the file of 2026-11-25, which no command gives back, 87
#: (benchmarks/results/dev_baseline_draws/README.md; the rule was written before the draws were scored). liv-sim stays
#: draw 0 and is not the bundled file (its draws plan 25-49 there, the file 105). ``--seed N`` adds N on top: another
#: draw.
DRAWS: dict[str, int] = {"vip-sim": 3, "liv-sim": 0, "td-sim": 5}
#: Bundled encoders whose first stage starts from the conv trunk of another bundled recipe's first stage: name ->
#: (source recipe, the source's draw, plus ``--seed``), with a fresh head (:func:`trunk_start`); their image stages train
#: without a text tower (its term sends no gradient to the image tower) and the text tower is attached for the text fit
#: (:func:`with_text_tower`). The trunk's draw is pinned here, not read from :data:`DRAWS`, so that another bundled draw
#: of the source leaves this recipe as it is (a trunk of another draw than the exported source's trains in
#: ``OUT/<source>-draw<N>``). td-sim (session 20, issue 17): the temporal-distance stages on vip-sim's trunk planned 157
#: of 200 dev episodes against 148 for draw 1 without it (benchmarks/results/dev_stage5_draws/README.md). Its trunk was
#: draw 0 until session 26 and is draw 3, the bundled vip-sim's, since session 27: on the dev seeds the draw-3 trunk
#: planned OpenDrawer + PressButton in 77 of 80 image-goal episodes against 72 for the file it replaced.
TRUNKS: dict[str, tuple[str, int]] = {"td-sim": ("vip-sim", 3)}
#: Torch threads the recipe trains with (``main`` sets them). Floating-point sums split over another number of threads
#: round differently, and over 12000 steps the runs part: td-sim's first stage with 2 threads ended up to 0.24 from
#: the same seed with 1 in a weight (its loss differed from step 20). One thread is what the shipped draw was trained
#: with, and it gives the same weights on any machine with the same CPU math paths (session 36: MKL's code branch parts
#: the training and PyTorch's own vectorised kernels part the planner rounds' MPPI, oneDNN's do not; the bundled files
#: came from MKL's AVX-512 branch and ATen's AVX-512 kernels on an Intel Xeon; ``benchmarks/weights_reproduce.py
#: --check-probe`` tells a machine in two minutes). The value head uses the second core where there is one, each op on
#: this many threads (:func:`vip_rl.pretrain._side_threads`: the same tensors, session 43); the image stages do not
#: (it made them slower here, ``benchmarks/notes/recipe_speed.md``).
RECIPE_THREADS = 1

#: td-sim's embedding width since session 30 (64 before, as :data:`_TDIST`). On the dev seeds 100-139 (sessions 28-29,
#: td-sim's recipe on the draw-3 trunk, but for the width and the draw): 64-d draws planned OpenDrawer + PressButton in
#: 77 / 71 of 80 image-goal episodes, 128-d in 73 / 76 / 80, 256-d in 74 / 66; the 128-d draw 5 scored best by the rule
#: of :data:`DRAWS` (benchmarks/results/dev_stage5_draws/README.md). The td-sim :data:`VARIANTS` stay at 64-d, the
#: width they were measured with.
TD_SIM_WIDTH = 128

#: Each bundled encoder's recipe at draw 0 (the :data:`VARIANTS` start from these: the draw they were measured with).
RECIPES: dict[str, PretrainConfig] = {
    "vip-sim": PretrainConfig(objective="vip", **_ARCH, **_TRAIN, steps=8000),
    "liv-sim": PretrainConfig(objective="liv", **_ARCH, **_TRAIN, steps=6000, text="minilm", temperature=0.1),
    "td-sim": PretrainConfig(**{**_TDIST, "embed_dim": TD_SIM_WIDTH}, steps=12000, text="minilm"),
}
#: The first stage's config of each bundled encoder: its recipe at its draw (a recipe in :data:`TRUNKS` without its text
#: tower, which the text fit attaches).
CONFIGS: dict[str, PretrainConfig] = {name: dataclasses.replace(config, seed=config.seed + DRAWS[name],
                                                                **({"text": "none"} if name in TRUNKS else {}))
                                      for name, config in RECIPES.items()}
#: Video kinds each bundled encoder trains on.
TRAIN_KINDS: dict[str, tuple[str, ...]] = {
    "vip-sim": KINDS,
    "liv-sim": ("expert", "noisy", "play", "detour"),  # goal-pose detours cost held-out retrieval (PressButton), see the benchmark
    "td-sim": KINDS,
}
#: Candidate recipes for experiments (issue 4): name -> (bundled recipe it modifies, config overrides,
#: video kinds). Trained only with ``--variant``; never exported to ``vip_rl/weights``.
VARIANTS: dict[str, tuple[str, dict[str, Any], tuple[str, ...]]] = {
    # LIV with the goal-pose detours (decoy) and a 3x heavier image-text InfoNCE (held-out retrieval).
    "liv-sim-gpd-nce3": ("liv-sim", {"nce_weight": 3.0}, KINDS),
    # the same with another seed: is its held-out retrieval (a near-tie on PressButton) seed noise?
    "liv-sim-gpd-nce3-seed1": ("liv-sim", {"nce_weight": 3.0, "seed": 1}, KINDS),
    # vip-sim at 96 px input (the data is rendered at 96 px): is resolution what hides small object changes?
    "vip-sim-96": ("vip-sim", {"image_size": 96}, KINDS),
    # issue 17 experiments: the temporal-distance objective without the text tower (image value only)
    "td-img": ("td-sim", {"text": "none"}, KINDS),
    # faster value propagation: shorter horizon and a faster target (worse at 7000 steps: decoy 0.73, VOC-other min 0.58)
    "td-img-fast": ("td-sim", {"text": "none", "gamma": 0.98, "target_tau": 0.02}, KINDS),
    # nearer the shortest path through the data (HILP uses 0.95 on states)
    "td-img-e09": ("td-sim", {"text": "none", "expectile": 0.9}, KINDS),
    # fewer goals from random videos: distractors (block, push target, switch) differ between episodes, and random
    # goals teach that another episode's frames are far, whatever their task state
    "td-img-r01": ("td-sim", {"text": "none", "random_goal_prob": 0.1}, KINDS),
    # every final-frame goal of a successful video swapped for another successful episode's final frame (same task)
    "td-img-swap1": ("td-sim", {"text": "none", "steps": 8000}, KINDS),
    # the td-sim recipe once the geometric sampler marks s' = a successful final frame as reaching a swapped goal
    # (next_is_goal: no bootstrap); and the same with every final-frame goal swapped
    "td-sim-v2": ("td-sim", {}, KINDS),
    "td-img-v2-swap1": ("td-sim", {"text": "none"}, KINDS),
}
#: The td-sim variants keep the width they were measured with (:data:`_TDIST`'s, 64), not :data:`TD_SIM_WIDTH`.
VARIANTS = {name: (base, {"embed_dim": _TDIST["embed_dim"], **overrides} if base == "td-sim" else overrides, kinds)
            for name, (base, overrides, kinds) in VARIANTS.items()}


@dataclass(frozen=True)
class FineTune:
    """A later training stage: fine-tune the previous stage's encoder (and a fresh copy of it as the
    target network) with these overrides of its config, on these video kinds. ``planner_round`` k > 0: first
    collect round k of the planner detours with the previous stage's encoder (:func:`collect_all_planner_detours`);
    the stage trains on every round collected so far (kind :data:`PLANNER_DETOUR`)."""

    overrides: dict[str, Any]
    kinds: tuple[str, ...]
    planner_round: int = 0
    seed_offset: int = 0
    """Added to the previous stage's seed (a stage chosen among draws keeps its draw; ``--seed N`` still adds N)."""


#: Bundled encoders trained in more than one stage (stage 2 starts from stage 1's encoder, written to OUT/NAME-ft;
#: stage k > 2 from stage k - 1's, written to OUT/NAME-ft<k-1>).
#: td-sim stage 2: the stage-1 value is right on the videos, but MPPI lifted the arm into states no video visits,
#: where the distance read smaller than at the start (benchmarks/notes/temporal_distance.md); 3000 steps at lr 1e-4
#: with the high detours make those states far (dev check, 6 episodes: OpenDrawer 5/6 vs 2/6 for the same
#: fine-tune without them).
#: td-sim stages 3 and 4 (session 6, DAgger): planner detours collected with the previous stage's encoder, then
#: 1500 steps at lr 1e-4 on every video, twice. Dev check on seeds 100-119 (not the benchmark's), image goal,
#: stage 2 / 3 / 4: SlideDoor 0.15 / 0.50 / 0.90, OpenDrawer 0.45 / 0.50 / 0.45; stage 3's 1500 steps without the
#: planner detours: 0.25 and 0.50 (benchmarks/notes/temporal_distance.md).
#: td-sim stage 5 (session 10, consolidation): 4000 more steps at stage 1's rate (3e-4) on every video of stage 4, no
#: new data. Dev check (K=32, H=10, image goal, seeds 100-139), stage 4 / + 1500 steps at 1e-4 / a scratch run of
#: stage 5 / the recipe's (bundled until session 13): OpenDrawer 17/40 / 7/20 / 32/40 / 26/40; SlideDoor (100-119)
#: 0.90 / - / 0.95 / 0.95. It costs a little elsewhere (benchmarks/notes/temporal_distance.md).
#: td-sim stage 6 (session 13, recorded in session 14): the same consolidation again, with seed offset 4. Session 13
#: meant to redraw stage 5 on stages 1-4 (``--from-stage 5 --seed N``), but the bundled weights it started from held
#: stage 5 already, so each draw was a second consolidation. Dev check (K=32, H=10, image goal, seeds 100-139), one
#: consolidation (seed 0) vs a second one with seed 1 / 2 / 3 / 4, on the bundled stages 1-5: OpenDrawer 26 vs 38 / 37 /
#: 34 / 38 of 40; the shipped one is seed 4. On a fresh run's stages 1-5 it gained little: 17 -> 19 of 40
#: (benchmarks/results/dev_stage5_draws/README.md).
#: Both consolidations (session 33) multiply half the tuples' frames by per-channel RGB gains U(0.7, 1.3)
#: (``colour_gain_prob``), a colour augmentation that keeps the hue order. Chosen by the written dev rule among nine
#: candidates of sessions 31-32 (benchmarks/results/dev_select.md, as the scratch run ``gainc``): the only one to pass
#: every gate; plain redraws of the stages all stopped at VOC with another episode's goal (0.937-0.957 for 0.96), and
#: channel permutations lost the drawer (benchmarks/notes/temporal_distance.md).
#: td-sim stage 6 (session 37) adds the focused reconstruction (``recon_weight`` 10, ``recon_focus`` 0.9: a decoder,
#: dropped at export, rebuilds each frame from its embedding, with most of the error on the pixels that moved since the
#: video's first frame). Chosen by the same dev rule among four candidates of sessions 36-37 on this lineage's stages
#: 4-5 (benchmarks/results/dev_stage5_draws/s37_dev.md): the only one to pass every gate, it ties the bundled file's
#: planning (75 of 80) and decoys and reads the door 0.755 on dev (0.602). The same lever on stages 5-6 failed the
#: VOC-other gate at weights 3, 5 (decoded at full size) and 10.
_DAGGER = {"steps": 1500, "lr": 1e-4, "warmup_steps": 100}
_CONSOLIDATE = {"steps": 4000, "lr": 3e-4, "warmup_steps": 100, "colour_gain_prob": 0.5, "colour_gain_range": (0.7, 1.3)}
_FOCUS = {"recon_weight": 10.0, "recon_focus": 0.9}
FINETUNES: dict[str, tuple[FineTune, ...]] = {
    "td-sim": (FineTune({"steps": 3000, "lr": 1e-4, "warmup_steps": 100}, KINDS + (HIGH_DETOUR,)),
               FineTune(_DAGGER, KINDS + (HIGH_DETOUR, PLANNER_DETOUR), planner_round=1),
               FineTune(_DAGGER, KINDS + (HIGH_DETOUR, PLANNER_DETOUR), planner_round=2),
               FineTune(_CONSOLIDATE, KINDS + (HIGH_DETOUR, PLANNER_DETOUR)),
               FineTune({**_CONSOLIDATE, **_FOCUS}, KINDS + (HIGH_DETOUR, PLANNER_DETOUR), seed_offset=4)),
}
#: Bundled encoders whose text tower is fitted last, onto the final image tower (stage 3,
#: :func:`vip_rl.pretrain.fit_text_tower`, on the last stage's videos). td-sim: during training the text head chased the
#: target network's goal frames and stage 2 moved the image tower again, so an instruction sat farther from its
#: task's goal frames than a typical goal (OpenDrawer: 2.5 vs 2.2 steps from their mean). The first refit (session 5:
#: the goal term alone, the goal frames' geometric median) planned OpenDrawer 0.50 and PressButton 0.75 (20 episodes);
#: adding the steps-to-success regression on every 2nd frame of the successful videos (session 6) gave 0.80 and 0.90
#: in a dev run with the same seeds, and 0.70 on OpenDrawer with goal_weight 2 (benchmarks/notes/temporal_distance.md).
#: On today's image tower it is the other way round (session 24, dev seeds 100-139, 40 episodes, training instruction):
#: the goal term alone plans OpenDrawer / CloseDrawer / SlideDoor / PressButton in 35 / 40 / 40 / 35, the regression
#: added 33 / 40 / 38 / 27; so td-sim's instruction is again the geometric median of its goal frames. Its seed is 7, the
#: text fit of draw 3 (4 + the draw until session 29): draw 5's image stages were scored and chosen with that fit, so
#: the shipped text tower is the one the choice measured (``--seed N`` still adds N).
TEXT_FITS: dict[str, TextFitConfig] = {
    "td-sim": TextFitConfig(steps=4000, lr=1e-3, batch_size=1024, seed=7, goal_weight=1.0, value_weight=0.0),
}
#: Bundled encoders with a value head fitted on the last image stage's frozen features, before the text fit (issue 17,
#: session 39; :func:`vip_rl.pretrain.fit_value_head`): the temporal-distance objective trained again as an MLP on the
#: CNN's last hidden layer, on the last stage's videos; the embedding keeps the old 128 dimensions beside the value's
#: 64 (its distance is the root mean square of the two parts'). Why: on the dev seeds the same objective on the true
#: simulator state read PushBlock's decoy 30 steps from the goal (the expert needs 35, td-sim's stage 6 read 10), and an
#: MLP on td-sim's frozen features 24: the features held what the value needs. Session 39 shipped seed 1 without
#: augmentation (``dev_stage5_draws/s39_dev.md``: planning 76 of 80, image decoy 0.861); it read small shifts of a goal
#: image as far (the wrappers' success threshold, calibrated on shifted copies, OpenDrawer 25 -> 40 on dev) and lost
#: the held-out switch's VOC with another episode's goal (0.82 -> 0.50 on dev). Session 40 added ``views=4`` (each
#: frame and three random-resized crops, one view per frame of a tuple drawn each step): the same seed planned 80 of
#: 80, switch VOC-other 0.78, the threshold back to 24.5, image decoy 0.806 (``s40_dev.md``, chosen by the rule).
#: Session 41: smaller crops (area 0.95-1) at seeds 1 and 2 read the image decoy at 0.806 and 0.819, PushBlock's at
#: 0.67 and 0.75 (0.58), but the held-out switch's VOC-other at 0.64 (0.78); the pairwise rule chose seed 2 on the decoy
#: (planning 78 of 80, within the tie band; ``s41_dev.md``).
VALUE_HEADS: dict[str, ValueHeadConfig] = {"td-sim": ValueHeadConfig(seed=2, views=4, crop_scale=(0.95, 1.0))}
#: Goal-swap probability of the variants whose sampler differs from :data:`GOAL_SWAP_PROB` (see :func:`train`): the
#: first temporal-distance runs drew no swapped goals (the geometric sampler did not swap yet).
GOAL_SWAP: dict[str, float] = {"td-img": 0.0, "td-img-fast": 0.0, "td-img-e09": 0.0, "td-img-swap1": 1.0, "td-img-v2-swap1": 1.0}
#: Probability that a final-frame goal is swapped for another successful episode's final frame of the same task.
GOAL_SWAP_PROB = 0.5


def collect_data(out_dir: str | os.PathLike[str], recipe: DataRecipe = DATA, *, progress: bool = True,
                 workers: int = 1) -> list[Path]:
    """Collect the recipe's HDF5 files into ``out_dir`` (existing complete files are kept), on ``workers``
    processes (:func:`_in_workers`; each file has its own seed, so the files are the same for any count).

    Returns:
        the paths, one per (task, kind), :data:`KINDS` then :data:`HIGH_DETOUR`.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    counts = {"expert": recipe.expert_episodes, "noisy": recipe.noisy_episodes, "play": recipe.play_episodes,
              "detour": recipe.detour_episodes, "goal_pose_detour": recipe.goal_pose_detour_episodes,
              HIGH_DETOUR: recipe.high_detour_episodes}
    paths, jobs = [], []
    for t, task in enumerate(recipe.tasks):
        for k, kind in enumerate(KINDS + (HIGH_DETOUR,)):
            if counts[kind] == 0:
                continue
            path = out / f"{task}_{kind}_{recipe.embodiment}.h5"
            paths.append(path)
            if not path.is_file():
                jobs.append((task, t, kind, k, counts[kind], recipe, str(path), progress and workers == 1))
    _in_workers(_collect_file, jobs, workers)
    return paths


def _collect_file(task: str, t: int, kind: str, k: int, episodes: int, recipe: DataRecipe, path: str, progress: bool) -> None:
    """One file of :func:`collect_data` (a worker's job)."""
    from vip_rl.collect import collect

    if kind == HIGH_DETOUR:
        collect_high_detours(task, episodes=episodes, recipe=recipe, seed=recipe.high_detour_seed + t, out=path)
    elif kind in ("detour", "goal_pose_detour"):
        collect_detours(task, episodes=episodes, recipe=recipe, seed=recipe.seed + 100 * t + k, out=path,
                        to_goal_pose=kind == "goal_pose_detour")
    else:
        collect(task, episodes=episodes, policy=kind, noise=recipe.noise if kind == "noisy" else None,
                cameras=(recipe.camera,), image_size=recipe.image_size, embodiment=recipe.embodiment,
                seed=recipe.seed + 100 * t + k, out=path, progress=progress)


def _worker_init() -> None:
    """A collection worker runs on the recipe's torch thread count (the planner detours embed frames with torch)."""
    import torch

    torch.set_num_threads(RECIPE_THREADS)


def _check_workers(workers: Any) -> None:
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an int >= 1, got {workers!r}")


def _in_workers(function: Any, jobs: Sequence[tuple[Any, ...]], workers: int) -> None:
    """``function(*job)`` for every job: in this process when ``workers`` is 1 (or one job), else on
    ``min(workers, len(jobs))`` spawned processes (a fresh interpreter each: no GL context or torch state is
    inherited) on :data:`RECIPE_THREADS` torch threads. Jobs are independent and seeded, so their files do not depend
    on the count; a job's error is raised here once the others are done, and a file is written only whole (each
    writer renames a temp file). A script that calls this with ``workers`` > 1 needs the ``if __name__ ==
    "__main__":`` guard (spawned processes import the main module)."""
    _check_workers(workers)
    if workers == 1 or len(jobs) <= 1:
        for job in jobs:
            function(*job)
        return
    import concurrent.futures
    import multiprocessing

    with concurrent.futures.ProcessPoolExecutor(min(workers, len(jobs)), mp_context=multiprocessing.get_context("spawn"),
                                                initializer=_worker_init) as pool:
        futures = [pool.submit(function, *job) for job in jobs]
        concurrent.futures.wait(futures)
        for future in futures:
            future.result()


def _expert_final_ee(env: Any, env_seed: int, noise: float) -> np.ndarray:
    """End-effector position at the end of the (noisy) expert's episode from this seed."""
    import vip_envs

    obs, _ = env.reset(seed=env_seed)
    policy = vip_envs.expert(env, noise=noise, seed=env_seed)
    done = False
    while not done:
        obs, _, terminated, truncated, _ = env.step(policy(obs))
        done = terminated or truncated
    unwrapped = env.unwrapped
    return unwrapped.layout.ee_pos(unwrapped.data.qpos[None])[0].copy()


def _detour_env(task: str, recipe: DataRecipe, max_steps: int) -> Any:
    import gymnasium
    import vip_envs

    return gymnasium.make(vip_envs.env_id(task), render_mode="rgb_array", obs_mode="state", cameras=(recipe.camera,),
                          image_size=recipe.image_size, embodiment=recipe.embodiment, max_episode_steps=max_steps)


def _p_control(unwrapped: Any, target: np.ndarray, grip: float, rng: np.random.Generator) -> np.ndarray:
    """Drive the end effector toward ``target`` (gain 8, saturating, 5 cm/step noise) with a fixed gripper."""
    ee = unwrapped.layout.ee_pos(unwrapped.data.qpos[None])[0]
    action = np.empty(4, np.float32)
    action[:3] = np.clip(8.0 * (target - ee), -1.0, 1.0) + rng.normal(0.0, 0.05, 3)
    action[3] = grip
    return np.clip(action, -1.0, 1.0)


def _run_detour(env: Any, *, env_seed: int, prefix: int, prefix_policy: Any, noise: float) -> dict[str, Any] | None:
    """One detour episode: ``prefix_policy(obs)`` for ``prefix`` steps (built after the reset by calling it
    with no argument when it is a factory), then the expert until the episode ends.

    Returns the recorded arrays, or None when the prefix already solved the task or the expert failed.
    """
    import vip_envs

    unwrapped = env.unwrapped
    obs, info = env.reset(seed=env_seed)
    policy = prefix_policy()
    states, sims, progress = [obs], [unwrapped.get_state()], [float(info["task_progress"])]
    actions, rewards, dones, successes = [], [], [], []
    done = False
    while not done:
        if len(actions) == prefix:
            if successes and successes[-1]:
                break
            policy = vip_envs.expert(env, noise=noise, seed=env_seed)
        action = np.asarray(policy(obs), np.float32)
        obs, reward, terminated, truncated, info = env.step(action)
        done = bool(terminated or truncated) and len(actions) + 1 > prefix
        if terminated and len(actions) + 1 <= prefix:
            break  # solved during the prefix: not a detour demo
        states.append(obs)
        sims.append(unwrapped.get_state())
        progress.append(float(info["task_progress"]))
        actions.append(action)
        rewards.append(float(reward))
        dones.append(done)
        successes.append(bool(info["success"]))
    if len(actions) <= prefix or not successes[-1]:
        return None
    return {"states": states, "sims": np.stack(sims), "progress": progress, "actions": actions, "rewards": rewards,
            "dones": dones, "successes": successes}


def _detour_episode(env: Any, run: dict[str, Any], *, recipe: DataRecipe, task: str, instruction: str, env_seed: int,
                    policy: str, prefix: int) -> Any:
    from vip_rl.data import Episode

    frames = np.asarray(env.unwrapped.render_states(run["sims"], camera=recipe.camera))
    return Episode(
        frames={recipe.camera: frames}, states=np.stack(run["states"]).astype(np.float32),
        task_progress=np.asarray(run["progress"], np.float32), actions=np.stack(run["actions"]), rewards=run["rewards"],
        dones=run["dones"],
        attrs={"env_id": env.spec.id, "task": task, "instruction": instruction, "seed": env_seed, "success": True,
               "terminated": True, "early_stopped": False, "embodiment": recipe.embodiment, "policy": policy,
               "noise": recipe.detour_noise, "detour_steps": prefix},
        sim_states=run["sims"], successes=run["successes"],
    )


def _write_detours(out: str | os.PathLike[str], episodes: list[Any], *, task: str, recipe: DataRecipe, policy: str,
                   seed: int) -> Path:
    """Write a detour collector's episodes like ``vip_rl.collect`` files (the file's ``policy`` and ``seed`` attrs)."""
    import vip_envs
    from vip_rl.data import write_episodes

    return write_episodes(out, episodes, env_id=vip_envs.env_id(task), cameras=(recipe.camera,), image_size=recipe.image_size,
                          attrs={"task": task, "embodiment": recipe.embodiment, "policy": policy, "seed": seed})


def collect_detours(task: str, *, episodes: int, recipe: DataRecipe, seed: int, out: str | os.PathLike[str], max_steps: int = 160,
                    to_goal_pose: bool = False) -> Path:
    """Detour demos: play for a random number of steps, then the (noisy) expert until success.

    With ``to_goal_pose`` the prefix instead drives the end effector (P control, random gripper) to
    within ~2 cm of where the expert's own run from the same seed ends, objects untouched.

    Episodes where the play prefix already solved the task, or the expert did not finish within
    ``max_steps``, are skipped (so fewer than ``episodes`` may be written). Written like
    ``vip_rl.collect`` files (policy attr ``"detour"``, ``detour_steps`` attr).
    """
    import vip_envs

    rng = np.random.default_rng(seed)
    env = _detour_env(task, recipe, max_steps)
    train_instructions = list(vip_envs.instructions(task, split="train"))
    written: list[Any] = []
    try:
        for _ in range(episodes):
            env_seed = int(rng.integers(0, 2**31 - 1))
            instruction = str(train_instructions[int(rng.integers(len(train_instructions)))])
            prefix = int(rng.integers(recipe.detour_steps[0], recipe.detour_steps[1] + 1))
            if to_goal_pose:
                target = _expert_final_ee(env, env_seed, recipe.detour_noise) + rng.normal(0.0, 0.02, 3) * [1.0, 1.0, 0.5]
                target[2] = max(target[2], 0.02)
                grip = float(rng.choice([-1.0, 1.0]))

                def make_prefix(target: np.ndarray = target, grip: float = grip) -> Any:
                    return lambda _obs: _p_control(env.unwrapped, target, grip, rng)
            else:
                def make_prefix(env_seed: int = env_seed) -> Any:
                    return vip_envs.play_policy(env, seed=env_seed)
            run = _run_detour(env, env_seed=env_seed, prefix=prefix, prefix_policy=make_prefix, noise=recipe.detour_noise)
            if run is not None:
                written.append(_detour_episode(env, run, recipe=recipe, task=task, instruction=instruction, env_seed=env_seed,
                                               policy="goal_pose_detour" if to_goal_pose else "detour", prefix=prefix))
    finally:
        env.close()
    return _write_detours(out, written, task=task, recipe=recipe, policy="detour", seed=seed)


def collect_high_detours(task: str, *, episodes: int, recipe: DataRecipe, seed: int, out: str | os.PathLike[str],
                         max_steps: int = 200) -> Path:
    """High detours: the end effector visits up to three random points of ``recipe.high_detour_box`` (the
    space over the table, up to the top of the front camera's frame), then the (noisy) expert solves the task.

    They connect the states a planner reaches by lifting the arm to the goal with their true step counts.
    Skipped like :func:`collect_detours`; policy attr ``"high_detour"``.
    """
    import vip_envs

    rng = np.random.default_rng(seed)
    env = _detour_env(task, recipe, max_steps)
    train_instructions = list(vip_envs.instructions(task, split="train"))
    low, high = (np.asarray(corner, np.float64) for corner in recipe.high_detour_box)
    written: list[Any] = []
    try:
        for _ in range(episodes):
            env_seed = int(rng.integers(0, 2**31 - 1))
            prefix = int(rng.integers(recipe.high_detour_steps[0], recipe.high_detour_steps[1] + 1))
            points = [np.array([rng.uniform(low[i], high[i]) for i in range(3)]) for _ in range(3)]
            grip = float(rng.choice([-1.0, 1.0]))

            def make_prefix(points: list[np.ndarray] = points, grip: float = grip) -> Any:
                def wander(_obs: Any) -> np.ndarray:
                    ee = env.unwrapped.layout.ee_pos(env.unwrapped.data.qpos[None])[0]
                    if len(points) > 1 and np.linalg.norm(points[0] - ee) < 0.03:
                        points.pop(0)
                    return _p_control(env.unwrapped, points[0], grip, rng)
                return wander

            run = _run_detour(env, env_seed=env_seed, prefix=prefix, prefix_policy=make_prefix, noise=recipe.detour_noise)
            if run is not None:
                instruction = str(train_instructions[int(rng.integers(len(train_instructions)))])
                written.append(_detour_episode(env, run, recipe=recipe, task=task, instruction=instruction, env_seed=env_seed,
                                               policy=HIGH_DETOUR, prefix=prefix))
    finally:
        env.close()
    return _write_detours(out, written, task=task, recipe=recipe, policy=HIGH_DETOUR, seed=seed)


def collect_planner_detours(task: str, *, episodes: int, recipe: DataRecipe, seed: int, out: str | os.PathLike[str],
                            encoder: Any, max_steps: int = 160) -> Path:
    """Planner detours (DAgger for a value): MPPI with ``encoder`` toward another seed's expert goal image for a
    random ``recipe.planner_detour_steps`` steps, then the (noisy) expert solves the task.

    A planner exploits its value wherever no video went (benchmarks/notes/temporal_distance.md); these videos cover
    exactly the states it reaches with this encoder and tie them to the goal with their true step counts, so the
    next stage trained on them reads those states right. MPPI uses the settings of the suite's MPPI tables (K=32,
    H=10, sigma 0.5, lambda 0.05, beta 0.5), seeded per episode. Skipped like :func:`collect_detours`; policy attr
    ``"planner_detour"``.
    """
    import vip_envs
    from vip_rl.goals import expert_goal
    from vip_rl.planning import MPPI, EmbeddingGoalCost, MujocoDynamics
    from vip_rl.planning.episode import mppi_config_for

    rng = np.random.default_rng(seed)
    env = _detour_env(task, recipe, max_steps)
    env.reset(seed=0)
    config = mppi_config_for(env, num_samples=32, horizon=10, noise_sigma=0.5, temperature=0.05, noise_beta=0.5)
    train_instructions = list(vip_envs.instructions(task, split="train"))
    written: list[Any] = []
    try:
        with MujocoDynamics(env, nthread=1) as dynamics:
            for _ in range(episodes):
                env_seed = int(rng.integers(0, 2**31 - 1))
                goal = expert_goal(vip_envs.env_id(task), seed=int(rng.integers(0, 2**31 - 1)))
                prefix = int(rng.integers(recipe.planner_detour_steps[0], recipe.planner_detour_steps[1] + 1))
                planner = MPPI(config, dynamics, EmbeddingGoalCost(encoder, goal), seed=env_seed)

                def make_prefix(planner: Any = planner, env_seed: int = env_seed) -> Any:
                    planner.reset(seed=env_seed)
                    return lambda _obs: planner.plan(dynamics.get_state()).action.cpu().numpy().astype(np.float32)

                run = _run_detour(env, env_seed=env_seed, prefix=prefix, prefix_policy=make_prefix, noise=recipe.detour_noise)
                if run is not None:
                    instruction = str(train_instructions[int(rng.integers(len(train_instructions)))])
                    written.append(_detour_episode(env, run, recipe=recipe, task=task, instruction=instruction, env_seed=env_seed,
                                                   policy=PLANNER_DETOUR, prefix=prefix))
    finally:
        env.close()
    return _write_detours(out, written, task=task, recipe=recipe, policy=PLANNER_DETOUR, seed=seed)


def planner_detour_paths(data_dir: str | os.PathLike[str], round: int, recipe: DataRecipe = DATA) -> list[Path]:
    """Where :func:`collect_all_planner_detours` writes round ``round``'s files, one per task."""
    return [Path(data_dir) / f"{task}_{PLANNER_DETOUR}_r{round}_{recipe.embodiment}.h5" for task in recipe.tasks]


def collect_all_planner_detours(data_dir: str | os.PathLike[str], encoder: Any, round: int, recipe: DataRecipe = DATA,
                                *, workers: int = 1) -> list[Path]:
    """Round ``round`` of the recipe's planner detours with ``encoder``, task ``t`` seeded
    ``recipe.planner_detour_seed + 100 * (round - 1) + t`` (existing files are kept: they belong to the encoder
    that wrote them, so clear them after retraining it). ``workers`` > 1: the tasks are collected on that many
    processes (:func:`_in_workers`), each loading ``encoder`` from a copy saved in ``data_dir`` for the round and
    removed after it; the files are the same as one process on :data:`RECIPE_THREADS` threads writes. A call that
    collects anything records how long it took beside the files (:func:`planner_round_seconds`)."""
    if isinstance(round, bool) or not isinstance(round, int) or round < 1:
        raise ValueError(f"round must be an int >= 1, got {round!r}")
    _check_workers(workers)
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    paths = planner_detour_paths(data_dir, round, recipe)
    jobs = [(task, t, round, recipe, str(path)) for t, (task, path) in enumerate(zip(recipe.tasks, paths)) if not path.is_file()]
    if not jobs:
        return paths
    start = time.perf_counter()
    if workers == 1 or len(jobs) <= 1:
        for task, t, round_, recipe_, path in jobs:
            _collect_planner_round(task, t, round_, recipe_, path, encoder)
    else:
        from vip_rl.encoders import save_encoder

        with tempfile.TemporaryDirectory(prefix=f".encoder-r{round}-", dir=data_dir) as scratch:
            saved = str(save_encoder(encoder, Path(scratch) / "encoder"))
            _in_workers(_collect_planner_round, [(*job, saved) for job in jobs], workers)
    from vip_rl._io import atomic_write_json

    # files_collected < files: a round resumed after a kill, whose first part's time is not in collect_seconds
    atomic_write_json(_planner_round_record(data_dir, round, recipe),
                      {"collect_seconds": time.perf_counter() - start, "files_collected": len(jobs), "files": len(paths),
                       "workers": workers})
    return paths


def _planner_round_record(data_dir: str | os.PathLike[str], round: int, recipe: DataRecipe = DATA) -> Path:
    """Where :func:`collect_all_planner_detours` records how long round ``round`` took to collect."""
    return Path(data_dir) / f"{PLANNER_DETOUR}_r{round}_{recipe.embodiment}.json"


def planner_round_seconds(data_dir: str | os.PathLike[str], round: int, recipe: DataRecipe = DATA) -> float | None:
    """Seconds that :func:`collect_all_planner_detours` took to collect round ``round``'s files in ``data_dir`` (the
    last call that wrote any of them), or None where no call recorded it (files of an earlier version of this
    module). A resumed recipe run reuses the files, so its export records this time, not the seconds of loading them."""
    import json

    try:
        value = json.loads(_planner_round_record(data_dir, round, recipe).read_text())["collect_seconds"]
    except (FileNotFoundError, json.JSONDecodeError, KeyError, TypeError):
        return None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0 else None


def _collect_planner_round(task: str, t: int, round: int, recipe: DataRecipe, path: str, encoder: Any) -> None:
    """Task ``t``'s file of :func:`collect_all_planner_detours` (``encoder``: the encoder, or a saved one's path)."""
    if isinstance(encoder, str):
        from vip_rl.encoders import load_encoder

        encoder = load_encoder(encoder)
    collect_planner_detours(task, episodes=recipe.planner_detour_episodes, recipe=recipe,
                            seed=recipe.planner_detour_seed + 100 * (round - 1) + t, out=path, encoder=encoder)


@dataclass
class TrainingVideos:
    """Videos + the per-video metadata the trainer uses."""

    videos: list[Any]
    groups: list[str]
    final_goal_ok: list[bool]
    kinds: list[str]

    def select(self, kinds: Sequence[str]) -> "TrainingVideos":
        """The videos of the given kinds (order kept)."""
        keep = [i for i, kind in enumerate(self.kinds) if kind in kinds]
        return TrainingVideos([self.videos[i] for i in keep], [self.groups[i] for i in keep],
                              [self.final_goal_ok[i] for i in keep], [self.kinds[i] for i in keep])


def load_training_videos(paths: Sequence[str | os.PathLike[str]], *, camera: str = "front", drop_moved: str | None = HELD_OUT_STATE) -> TrainingVideos:
    """Suite HDF5 files -> videos with text (instruction; :data:`PLAY_TEXT` for play), group (task;
    ``"play"`` for play) and whether the final frame is a valid goal (successful expert/noisy demo).

    Episodes in which the ``drop_moved`` object joint moved by more than 0.05 are dropped.
    """
    import vip_envs
    from vip_rl.data import Video, read_episodes

    column = None if drop_moved is None else list(vip_envs.STATE_LABELS).index(drop_moved)
    out = TrainingVideos([], [], [], [])
    for path in paths:
        for i, episode in enumerate(read_episodes(path)):
            if column is not None and np.ptp(episode.states[:, column]) > 0.05:
                continue
            kind = str(episode.attrs.get("policy", "expert"))
            is_play = kind == "play"
            out.videos.append(Video(np.ascontiguousarray(episode.frames[camera]), text=PLAY_TEXT if is_play else episode.instruction, source=f"{path}:demo_{i}"))
            out.groups.append("play" if is_play else str(episode.task))
            out.final_goal_ok.append(bool(episode.success) and not is_play)
            out.kinds.append(kind)
    return out


def train(name: str, data: TrainingVideos, *, out_dir: str | os.PathLike[str], config: PretrainConfig | None = None, progress: bool = True, resume: bool = True,
          kinds: Sequence[str] | None = None, goal_swap_prob: float = GOAL_SWAP_PROB, init_from: str | os.PathLike[str] | None = None) -> Any:
    """Train bundled encoder ``name`` with its recipe config on ``data`` (see :func:`pretrain`).

    ``kinds``: video kinds to train on (default ``TRAIN_KINDS[name]``); ``goal_swap_prob``: see :data:`GOAL_SWAP_PROB`;
    ``init_from``: start from this encoder (a second stage, :data:`FINETUNES`).
    """
    from vip_rl.pretrain import pretrain

    config = CONFIGS[name] if config is None else config
    data = data.select(TRAIN_KINDS[name] if kinds is None else kinds)
    return pretrain(
        config, data.videos, out_dir=out_dir, groups=data.groups, final_goal_ok=data.final_goal_ok,
        goal_swap_prob=goal_swap_prob, progress=progress, resume=resume, init_from=init_from,
    )


def trunk_start(config: PretrainConfig, source: Any, out: str | os.PathLike[str]) -> Path:
    """A first stage's starting encoder: ``config``'s architecture, initialised with ``config.seed``, its conv trunk
    (``vision.convs.*``) copied from the encoder ``source`` and its MLP head and text tower (if any) left fresh; saved
    to ``out`` (an encoder directory) for ``train(init_from=out)``: the first stage of a recipe in :data:`TRUNKS`
    (td-sim: the temporal-distance stages on a VIP-trained trunk, benchmarks/notes/temporal_distance.md).

    Raises:
        ValueError: ``config`` builds no CNN, or ``source``'s trunk does not fit it (other channels).
    """
    import torch

    from vip_rl.encoders import save_encoder
    from vip_rl.pretrain import _initial_encoder  # what a first stage without init_from builds

    if config.arch != "cnn":
        raise ValueError(f"trunk_start copies a CNN trunk, got arch={config.arch!r}")
    encoder = _initial_encoder(config, None, torch.device("cpu"))
    trunk = {key: value for key, value in source.state_dict().items() if key.startswith("vision.convs.")}
    own = {key: value.shape for key, value in encoder.state_dict().items() if key.startswith("vision.convs.")}
    shapes = {key: value.shape for key, value in trunk.items()}
    if not trunk or shapes != own:
        raise ValueError(f"the source encoder's conv trunk ({len(trunk)} tensors) does not fit cnn_channels="
                         f"{list(config.cnn_channels)} at {config.image_size} px ({len(own)} tensors); give an encoder "
                         "of the same CNN")
    encoder.load_state_dict(trunk, strict=False)
    return save_encoder(encoder, out)


def _first_config(name: str, args: argparse.Namespace) -> PretrainConfig:
    """``name``'s first-stage config in this command: :data:`CONFIGS` with ``--seed`` added and ``--steps`` (if given),
    then the ``--set`` overrides when ``name`` is the ``--only`` encoder (not its trunk source); the later stages
    inherit them (:func:`_fine_tune` replaces only their own keys)."""
    config = dataclasses.replace(CONFIGS[name], seed=CONFIGS[name].seed + args.seed,
                                 **({} if args.steps is None else {"steps": args.steps}))
    return dataclasses.replace(config, **args.overrides) if args.overrides and name in args.only else config


def parse_overrides(items: Sequence[str], base: PretrainConfig | None = None) -> dict[str, Any]:
    """``--set KEY=VALUE`` items as :class:`~vip_rl.pretrain.PretrainConfig` overrides of ``base`` (the config they
    will change, whose own checks they must pass: td-sim's ``recon_weight`` needs its ``objective='tdist'``; default
    ``PretrainConfig()``). ``VALUE`` is read as the field's type: a comma-separated tuple of numbers for a tuple field
    (``none`` where the field may be None), else its default's type (int, float, bool as true/false, str).

    Raises:
        ValueError: an item without ``=``, a key that is no config field, or a value of the wrong type.
    """
    fields = {field.name: field for field in dataclasses.fields(PretrainConfig)}
    defaults = PretrainConfig()
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        if key not in fields:
            raise ValueError(f"--set {item!r}: {key!r} is not a PretrainConfig field (e.g. embed_dim, seed, channel_shuffle_prob)")
        default = getattr(defaults, key)
        kind = str(fields[key].type)
        try:
            if "tuple" in kind:
                value: Any = None if text.strip().lower() == "none" and "None" in kind else tuple(
                    float(v) if "." in v or "e" in v.lower() else int(v) for v in text.split(",") if v.strip())
            elif isinstance(default, bool):
                if text.lower() not in ("true", "false"):
                    raise ValueError("expected true or false")
                value = text.lower() == "true"
            elif isinstance(default, (int, float)):
                value = type(default)(float(text)) if isinstance(default, float) else int(text)
            else:
                value = text
        except ValueError as err:
            raise ValueError(f"--set {item!r}: {key} takes a {kind} ({err})") from None
        out[key] = value
    dataclasses.replace(defaults if base is None else base, **out)  # the config's checks name a bad value now, not an hour in
    return out


def _trunk_source(name: str, args: argparse.Namespace) -> tuple[str, str, int, PretrainConfig]:
    """The trunk of ``name`` (in :data:`TRUNKS`) in this command: ``(source, run key, draw, config)``. The config is the
    source's first stage at the pinned draw plus ``--seed``; the run key (the run's folder under OUT) is the source's
    own when that draw is the one the source exports (:data:`DRAWS`), else ``<source>-draw<N>``."""
    source, draw = TRUNKS[name]
    config = dataclasses.replace(_first_config(source, args), seed=RECIPES[source].seed + draw + args.seed)
    return source, source if draw == DRAWS[source] else f"{source}-draw{draw}", draw + args.seed, config


def with_text_tower(encoder: Any, text: str) -> Any:
    """``encoder`` (no text tower) with a fresh ``text`` tower beside its image tower, for the text fit (which
    starts the tower's trainable parameters afresh anyway): a recipe whose image stages trained without one."""
    from vip_rl.encoders.factory import encoder_from_config

    config = encoder.config
    wider = encoder_from_config({**config, "text": text})
    missing, unexpected = wider.load_state_dict(encoder.state_dict(), strict=False)
    if unexpected or any(not key.startswith("text.") for key in missing):
        raise ValueError(f"with_text_tower: the image towers differ (missing {missing[:3]}, unexpected {unexpected[:3]})")
    wider.config["training"] = config.get("training")
    return wider


def fit_text(name: str, encoder: Any, data: TrainingVideos, *, seed: int = 0) -> dict[str, Any]:
    """Stage 3 of ``name`` (:data:`TEXT_FITS`): fit the text tower onto ``encoder``'s frames of the last stage's
    successful videos, in place; returns the stage's record for the exported JSON. ``seed`` is added to the config's
    seed (``--seed``: another draw)."""
    from vip_rl.pretrain import fit_text_tower

    config = dataclasses.replace(TEXT_FITS[name], seed=TEXT_FITS[name].seed + seed)
    kinds = FINETUNES[name][-1].kinds if name in FINETUNES else TRAIN_KINDS[name]
    videos = data.select(kinds)
    stats = fit_text_tower(encoder, videos.videos, final_goal_ok=videos.final_goal_ok, config=config)
    print(f"{name}: text tower fitted on {stats['pairs']} frames ({stats['goal_pairs']} goal frames) of {stats['instructions']} "
          f"instructions in {stats['seconds']:.0f} s (loss {stats['loss_before']:.3f} -> {stats['loss_after']:.3f}; mean distance "
          f"to the goal frames {stats['goal_distance_before']:.3f} -> {stats['goal_distance_after']:.3f})", flush=True)
    return {"text_fit_config": dataclasses.asdict(config), "videos_used": {k: videos.kinds.count(k) for k in kinds},
            "train_seconds": round(stats["seconds"], 1), "init_from": "previous stage",
            "text_fit": {k: v for k, v in stats.items() if k != "seconds"}, "code": code_version()}


def value_head(name: str, encoder: Any, data: TrainingVideos, *, seed: int = 0) -> tuple[Any, dict[str, Any]]:
    """The value-head stage of ``name`` (:data:`VALUE_HEADS`): :func:`~vip_rl.pretrain.fit_value_head` on ``encoder``
    (the last image stage, frozen) with the last stage's videos; returns the new encoder (no text tower) and the
    stage's record for the exported JSON. ``seed`` is added to the config's seed (``--seed``: another draw)."""
    from vip_rl.pretrain import fit_value_head

    config = dataclasses.replace(VALUE_HEADS[name], seed=VALUE_HEADS[name].seed + seed)
    kinds = FINETUNES[name][-1].kinds if name in FINETUNES else TRAIN_KINDS[name]
    videos = data.select(kinds)
    encoder, stats = fit_value_head(encoder, videos.videos, groups=videos.groups, final_goal_ok=videos.final_goal_ok, config=config)
    print(f"{name}: value head fitted on {stats['frames']} frames of {stats['videos']} videos in {stats['seconds']:.0f} s "
          f"(td loss {stats['loss_first']:.3f} -> {stats['loss_last']:.3f}, distance {stats['distance_last']:.1f})", flush=True)
    return encoder, {"value_head_config": config.to_dict(), "videos_used": {k: videos.kinds.count(k) for k in kinds},
                     "train_seconds": round(stats["seconds"], 1), "init_from": "previous stage",
                     "value_head": {k: v for k, v in stats.items() if k != "seconds"}, "code": code_version()}


def export(name: str, encoder: Any, *, config: PretrainConfig, counts: dict[str, int], seconds: float, command: str,
           stages: list[dict[str, Any]] | None = None, to: str | os.PathLike[str] | None = None) -> Path:
    """Write ``vip_rl/weights/<name>.safetensors`` + ``.json`` (the JSON records the recipe).

    ``counts``: training videos per kind (after the held-out filter); ``stages``: each stage's config, video counts,
    seconds and the code that trained it (``main`` passes them for every recipe, one for a single-stage one; ``config``
    is the last stage's); ``to``: another directory than the bundled weights' (``--no-export`` writes ``OUT/final``: a
    fresh run to compare with the bundled one).
    """
    from vip_rl.encoders import save_encoder
    from vip_rl.encoders.checkpoint import weights_dir

    encoder.config["name"] = name
    training = {
        "command": command,
        "recipe": "vip_rl/weights_recipe.py",
        "held_out_task": HELD_OUT_TASK,
        "held_out_embodiment": "hand",
        "data": {**{k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(DATA).items()}, "videos_used": counts},
        "goal_swap_prob": GOAL_SWAP_PROB,
        "pretrain_config": config.to_dict(),
        "train_seconds": round(seconds, 1),
        "torch_threads": RECIPE_THREADS,
        "cpu_model": cpu_model(),  # the exporting machine's (a stage resumed from an earlier run may have had another)
        "code": code_version(),  # the code of this export; each stage records its own (stages of --from-stage differ)
    }
    if stages is not None:
        training["stages"] = stages
    target = weights_dir() if to is None else Path(to)
    target.mkdir(parents=True, exist_ok=True)
    path = save_encoder(encoder, target / f"{name}.safetensors", training=training)
    for written in (path, path.with_suffix(".json")):
        os.chmod(written, 0o644)  # package data: readable by everyone, whatever the umask
    return path


def _stage_record(config: PretrainConfig, videos_used: dict[str, int], seconds: float, *, encoder: Any = None,
                  **extra: Any) -> dict[str, Any]:
    """One training stage's record in the exported JSON: its config, videos per kind, seconds, ``extra`` (e.g.
    ``init_from``) and the code that trained it: what ``pretrain`` recorded for ``encoder``'s run (``code``, and
    ``code_earlier`` for a run several codes trained), so that a finished stage resumed by a later export keeps the code
    that trained it; this call's code for an encoder without that record."""
    training = (getattr(encoder, "config", None) or {}).get("training") or {}
    code = {key: training[key] for key in ("code", "code_earlier") if key in training} or {"code": code_version()}
    return {"pretrain_config": config.to_dict(), "videos_used": videos_used, "train_seconds": round(seconds, 1), **extra,
            **code}


def _fine_tune(name: str, encoder: Any, config: PretrainConfig, data: TrainingVideos, *, first: int, init_from: Any,
               out: Path, data_dir: Path, paths: Sequence[Path], detours: Sequence[Path] = (), steps: int | None,
               progress: bool, workers: int = 1) -> tuple[Any, PretrainConfig, TrainingVideos, list[dict[str, Any]]]:
    """Stages ``first``, ``first + 1``, ... of ``name``'s :data:`FINETUNES` (stage 2 = the first fine-tune), the first
    one started from ``init_from`` (``encoder``'s weights: a run directory's encoder or a bundled name), each later one
    from the stage before. A stage with a planner round first collects it with the previous stage's encoder and then
    trains on ``paths``, the earlier rounds' ``detours`` and this round's.

    Returns the last encoder and config, the videos the last stage trained on and one record per stage.
    """
    records = []
    for index in range(first - 2, len(FINETUNES.get(name, ()))):
        stage = FINETUNES[name][index]
        start = time.perf_counter()
        collect_seconds, reused = 0.0, False
        if stage.planner_round:
            reused = all(path.is_file() for path in planner_detour_paths(data_dir, stage.planner_round))
            detours = [*detours, *collect_all_planner_detours(data_dir, encoder, stage.planner_round, workers=workers)]
            data = load_training_videos([*paths, *detours], camera=DATA.camera)
            collect_seconds = time.perf_counter() - start
            print(f"{name}: planner detours round {stage.planner_round} with stage {index + 1}'s encoder: "
                  f"{data.kinds.count(PLANNER_DETOUR)} videos of all rounds, "
                  + (f"already on disk (loaded in {collect_seconds:.0f} s)" if reused else f"in {collect_seconds:.0f} s"),
                  flush=True)
        config = dataclasses.replace(config, **{**stage.overrides, **({} if steps is None else {"steps": steps})},
                                     seed=config.seed + stage.seed_offset)
        encoder = train(name, data, out_dir=_stage_dir(out, name, index + 2), config=config, progress=progress,
                        kinds=stage.kinds, init_from=init_from)
        init_from = _stage_dir(out, name, index + 2) / "encoder"
        trained = _trained_seconds(encoder, time.perf_counter() - start - collect_seconds)
        if reused:  # the round's files came from an earlier run: its collection time, not this run's loading time
            collect_seconds = planner_round_seconds(data_dir, stage.planner_round)
        stage_seconds = (collect_seconds or 0.0) + trained
        record = _stage_record(config, {kind: data.kinds.count(kind) for kind in stage.kinds}, stage_seconds, encoder=encoder,
                               init_from=f"stage {index + 1}")
        if stage.planner_round:  # included in train_seconds: it needs the encoder (None: collected, time not recorded)
            record["collect_seconds"] = None if collect_seconds is None else round(collect_seconds, 1)
        records.append(record)
        print(f"{name}: stage {index + 2}: fine-tuned {config.steps} steps in {stage_seconds:.0f} s", flush=True)
    return encoder, config, data, records


def _recipe_command(only: str | None, seed: int, flag: str = "", sets: Sequence[str] = ()) -> str:
    """The command an export records: ``--only`` (when given), ``--seed`` (when not 0), the ``--set`` items (a candidate
    recipe, written with ``--no-export``), then a stage flag (``--from-stage K`` / ``--text-fit-only``: the full recipe
    with that seed would redraw the earlier stages too)."""
    return " ".join(["python -m vip_rl.weights_recipe", *([f"--only {only}"] if only else []),
                     *([f"--seed {seed}"] if seed else []), *(f"--set {item}" for item in sets),
                     *(["--no-export"] if sets else []), *([flag] if flag else [])])


def _later_stages(names: Sequence[str], from_stage: int | None, data: TrainingVideos, *, export_to: Path | None, out: Path,
                  data_dir: Path, paths: Sequence[Path], steps: int | None, progress: bool, seed: int = 0,
                  workers: int = 1) -> int:
    """``--from-stage K``: the recipe's stages K, K + 1, ... of each encoder, started from its bundled weights, which
    must record exactly stages 1 .. K - 1 (their records are kept in the export); ``from_stage=None``
    (``--text-fit-only``): only the text fit, after each encoder's last stage. A stage is added to the bundled weights
    this way without rerunning the ones before it; redrawing a stage the weights hold already takes the full recipe."""
    from vip_rl.encoders import load_encoder

    for name in names:
        value_stage = _image_stages(name) + 1  # the value head's stage number, when the recipe has one
        first = _training_stages(name) + 1 if from_stage is None else from_stage
        flag = "--text-fit-only" if from_stage is None else f"--from-stage {first}"
        encoder = load_encoder(name)
        training = dict(encoder.config.get("training") or {})
        earlier = [stage for stage in training.get("stages") or [] if "text_fit_config" not in stage]
        if len(earlier) != first - 1:  # the weights stand for every stage they record, not for the first K - 1
            again = f"stage {first}" if len(earlier) == first else f"stages {first}-{len(earlier)}"
            more = f"; {again} would be trained a second time on top of itself" if len(earlier) > first - 1 else ""
            raise SystemExit(f"{name}: the bundled weights record {len(earlier)} training stage(s), {flag} needs weights of "
                             f"stages 1-{first - 1} exactly{more}; run the full recipe (--only {name})")
        rounds = [stage.planner_round for stage in FINETUNES.get(name, ())[: first - 2] if stage.planner_round]
        videos = data
        detours = [path for r in rounds for path in planner_detour_paths(data_dir, r)]
        if detours:  # written by the full recipe's earlier stages
            missing = [str(p) for p in detours if not p.is_file()]
            if missing:
                raise SystemExit(f"{name}: {flag} needs the planner detours the earlier stages trained on, missing "
                                 f"{missing[0]} (+{len(missing) - 1} more); run the full recipe (--only {name})")
            videos = load_training_videos([*paths, *detours], camera=DATA.camera)
        config = PretrainConfig.from_dict([stage for stage in earlier if "pretrain_config" in stage][-1]["pretrain_config"])
        config = dataclasses.replace(config, seed=config.seed + seed)
        encoder, config, videos, records = _fine_tune(name, encoder, config, videos, first=first, init_from=name, out=out,
                                                      data_dir=data_dir, paths=paths, detours=detours, steps=steps,
                                                      progress=progress, workers=workers)
        if name in VALUE_HEADS and first <= value_stage:
            encoder, record = value_head(name, encoder, videos, seed=seed)
            records.append(record)
        if name in TEXT_FITS:
            if not encoder.has_text:
                encoder = with_text_tower(encoder, RECIPES[name].text)
            records.append(fit_text(name, encoder, videos, seed=seed))
        command = _recipe_command(name, seed, flag)
        stages = [*earlier, *({**record, "command": command} for record in records)]
        path = export(name, encoder, config=config, counts=stages[-2 if name in TEXT_FITS else -1]["videos_used"],
                      seconds=sum(s["train_seconds"] for s in stages), command=command, stages=stages, to=export_to)
        print(f"{name}: wrote {path} (stages 1-{first - 1} as bundled)", flush=True)
    return 0


def _image_stages(name: str) -> int:
    """How many image-training stages ``name``'s recipe has: its first, then :data:`FINETUNES` (a :data:`VALUE_HEADS`
    stage follows them)."""
    return len(FINETUNES.get(name, ())) + 1


def _training_stages(name: str) -> int:
    """How many training stages ``name``'s recipe has before its text fit: the image stages and its value head."""
    return _image_stages(name) + (name in VALUE_HEADS)


def _stage_dir(out: Path, name: str, stage: int) -> Path:
    """Run directory of ``name``'s training stage ``stage`` (1-based): OUT/NAME, OUT/NAME-ft, OUT/NAME-ft<stage - 1>."""
    return out / (name if stage == 1 else f"{name}-ft" if stage == 2 else f"{name}-ft{stage - 1}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vip_rl.weights_recipe", description="Train the bundled encoders (td-sim, vip-sim, liv-sim) with their recipes; td-sim and vip-sim come out bit for bit, liv-sim as another draw (module docstring).")
    parser.add_argument("--out", default="runs/weights", help="work directory for data and training runs")
    parser.add_argument("--only", choices=sorted(CONFIGS), action="append", help="train only this encoder (repeatable)")
    parser.add_argument("--steps", type=int, default=None, help="override the number of steps (quick checks)")
    parser.add_argument("--no-export", action="store_true",
                        help="write the weights to OUT/final/ instead of vip_rl/weights/ (a fresh run beside the bundled one)")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--variant", choices=sorted(VARIANTS), action="append",
                        help="train this candidate recipe (VARIANTS) into OUT/NAME instead of the bundled ones; never exported (repeatable)")
    parser.add_argument("--data", default=None, help="directory of the collected videos (default OUT/data; missing files are collected there)")
    parser.add_argument("--text-fit-only", action="store_true",
                        help="only the last stage (TEXT_FITS) of the --only encoders, on their bundled weights of the earlier "
                             "stages (the text tower is refitted from a seeded fresh start), then export")
    parser.add_argument("--seed", type=int, default=0,
                        help="added to the seed of every training stage and of the text fit: another draw of the recipe "
                             "(0, the default: the recipe's own draw; the videos are the same). Use another --out: a run "
                             "directory of another seed is refused, not resumed")
    parser.add_argument("--from-stage", type=int, default=None, metavar="K",
                        help="only stages K.. of the --only encoders (FINETUNES; 2 = the first fine-tune), started from their "
                             "bundled weights, which must record stages 1..K-1 and no more, then the text fit and the export")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a candidate recipe: override this field of the --only encoder's config (PretrainConfig; its "
                             "later stages inherit it, its trunk source does not), e.g. --set embed_dim=256 --set seed=6 "
                             "(seed is absolute here: the draw). Needs --only with one encoder and --no-export (repeatable)")
    parser.add_argument("--workers", type=int, default=min(os.cpu_count() or 1, len(DATA.tasks)),
                        help="processes that collect the videos and the planner rounds (default: one per core, at most one "
                             "per task); the files, and so the weights, do not depend on it. Training runs on one thread")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error(f"--workers must be >= 1, got {args.workers}")
    if args.text_fit_only and not (args.only and all(name in TEXT_FITS for name in args.only)):
        parser.error(f"--text-fit-only needs --only with encoders that have a text-fit stage ({sorted(TEXT_FITS)}), got {args.only!r}")
    if args.from_stage is not None:
        if args.text_fit_only:
            parser.error("--from-stage and --text-fit-only are exclusive (--text-fit-only runs the text fit alone)")
        bad = [name for name in args.only or [] if not 2 <= args.from_stage <= _training_stages(name)]
        if not args.only or bad:
            parser.error(f"--from-stage {args.from_stage} needs --only with encoders that have stages 2..K "
                         f"({ {n: _training_stages(n) for n in FINETUNES} } stages), got {args.only!r}")
    if args.seed < 0:
        parser.error(f"--seed must be >= 0, got {args.seed}")
    if args.variant and args.only:
        parser.error(f"--variant and --only are exclusive, got --variant {args.variant!r} and --only {args.only!r}")
    args.overrides = {}
    if args.set:
        if not args.only or len(args.only) != 1 or not args.no_export:
            parser.error(f"--set needs --only with one encoder and --no-export (a candidate recipe is never the bundled "
                         f"file), got --only {args.only!r}{'' if args.no_export else ' without --no-export'}")
        if args.from_stage is not None or args.text_fit_only:
            parser.error("--set trains the full recipe: it cannot be combined with --from-stage or --text-fit-only")
        try:
            args.overrides = parse_overrides(args.set, CONFIGS[args.only[0]])
        except ValueError as err:
            parser.error(str(err))
    default_mujoco_gl()
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(RECIPE_THREADS)
    try:
        return _run(args)
    except ResumeMismatchError as err:  # a run folder under --out from another draw, recipe or set of videos
        print(f"{parser.prog}: error: {err.reason}. The recipe resumes the runs under --out and cannot resume this one (a folder "
              "from an older `make weights` may hold another draw of the recipe): remove that run's folder or pass "
              "another --out", file=sys.stderr)
        return 2
    finally:
        torch.set_num_threads(threads)


def _run(args: argparse.Namespace) -> int:
    """``main`` after its checks, with the recipe's thread count set."""
    out = Path(args.out)
    data_dir = out / "data" if args.data is None else Path(args.data)
    export_to = out / "final" if args.no_export else None
    paths = collect_data(data_dir, progress=not args.no_progress, workers=args.workers)
    data = load_training_videos(paths, camera=DATA.camera)
    print(f"training videos: {len(data.videos)} ({ {k: data.kinds.count(k) for k in KINDS + (HIGH_DETOUR,)} })", flush=True)
    for variant in args.variant or []:
        base, overrides, kinds = VARIANTS[variant]
        config = dataclasses.replace(RECIPES[base], **overrides, **({} if args.steps is None else {"steps": args.steps}))
        config = dataclasses.replace(config, seed=config.seed + args.seed)
        start = time.perf_counter()
        train(base, data, out_dir=out / variant, config=config, progress=not args.no_progress, kinds=kinds,
              goal_swap_prob=GOAL_SWAP.get(variant, GOAL_SWAP_PROB))
        print(f"{variant}: trained {config.steps} steps in {time.perf_counter() - start:.0f} s -> {out / variant / 'encoder'}", flush=True)
    if args.variant:
        return 0
    if args.text_fit_only or args.from_stage is not None:
        return _later_stages(args.only, args.from_stage, data, export_to=export_to, out=out, data_dir=data_dir,
                             paths=paths, steps=args.steps, progress=not args.no_progress, seed=args.seed,
                             workers=args.workers)
    names = sorted(args.only or sorted(CONFIGS, reverse=True), key=lambda name: name in TRUNKS)  # trunk sources first
    first_stages: dict[str, Any] = {}  # each trained first stage, a trunk source for the names after it
    for name in names:
        config = _first_config(name, args)
        source, init_from = None, None
        if name in TRUNKS:
            source, key, draw, source_config = _trunk_source(name, args)
            if key not in first_stages:  # --only without it, or another draw: trained (or resumed) in OUT/KEY, not exported
                first_stages[key] = train(source, data, out_dir=out / key, config=source_config,
                                          progress=not args.no_progress)
                print(f"{name}: conv trunk source {source} (draw {draw}) ready ({out / key / 'encoder'})", flush=True)
            init_from = trunk_start(config, first_stages[key], out / f"{name}-trunk")
        start = time.perf_counter()
        encoder = train(name, data, out_dir=out / name, config=config, progress=not args.no_progress, init_from=init_from)
        first_stages[name] = encoder
        seconds = _trained_seconds(encoder, time.perf_counter() - start)
        print(f"{name}: trained {config.steps} steps in {seconds:.0f} s", flush=True)
        counts = {kind: data.kinds.count(kind) for kind in TRAIN_KINDS[name]}
        first_record = _stage_record(config, counts, seconds, encoder=encoder,
                                     **({} if source is None else {"init_from": f"conv trunk of {source} (draw {draw})"}))
        stages = [first_record]  # a single-stage recipe too: its record names the code that trained the stage
        if name in FINETUNES:
            encoder, config, data, records = _fine_tune(
                name, encoder, config, data, first=2, init_from=_stage_dir(out, name, 1) / "encoder", out=out,
                data_dir=data_dir, paths=paths, steps=args.steps, progress=not args.no_progress, workers=args.workers)
            stages = [first_record, *records]
            counts = records[-1]["videos_used"]
            seconds += sum(record["train_seconds"] for record in records)
        if name in VALUE_HEADS:
            encoder, record = value_head(name, encoder, data, seed=args.seed)
            stages.append(record)
            counts = record["videos_used"]
            seconds += record["train_seconds"]
        if name in TEXT_FITS:
            if not encoder.has_text:  # the image stages trained without a text tower (TRUNKS)
                encoder = with_text_tower(encoder, RECIPES[name].text)
            fit = fit_text(name, encoder, data, seed=args.seed)
            stages.append(fit)
            seconds += fit["train_seconds"]
        command = _recipe_command(name if args.only else None, args.seed, sets=args.set)
        path = export(name, encoder, config=config, counts=counts, seconds=seconds, command=command, stages=stages, to=export_to)
        print(f"{name}: wrote {path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
