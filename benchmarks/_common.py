"""Helpers several benchmarks share: library entry points, encoders, episode summaries.

Not a benchmark: it measures nothing and writes nothing. A helper lands here when two or more
``benchmarks/*.py`` need it and it is not a library concern; helpers of one family of benchmarks live
beside them (``_mppi_cells.py``, ``_wrapper_setup.py``, ``_value_metrics.py``).

The library entry points every benchmark uses are re-exported here (``expert_goal``, ``resolve_encoder``
from ``vip_rl.goals``; ``run_episode`` from ``vip_rl.planning.episode``), so no benchmark imports a CLI module.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from vip_rl._gl import default_mujoco_gl  # noqa: E402

default_mujoco_gl()  # before anything imports mujoco: every benchmark renders

from vip_rl.goals import expert_goal, resolve_encoder  # noqa: E402
from vip_rl.planning.episode import run_episode  # noqa: E402

__all__ = ["expert_goal", "resolve_encoder", "run_episode", "has_encoder", "describe_encoder", "describe_encoders",
           "summarise_episodes", "vip_rl_script", "GOAL_SEED_OFFSET"]

#: image goals of the MPPI benchmarks: the final frame of a scripted-expert run from ``episode seed + 10000``
GOAL_SEED_OFFSET = 10_000


def vip_rl_script() -> str:
    """The ``vip-rl`` console script of this interpreter's environment (next to ``sys.executable``), for the
    benchmarks that run the command as a user would."""
    return str(Path(sys.executable).with_name("vip-rl"))


def has_encoder(name: str) -> bool:
    """Whether the bundled encoder ``name`` has its weights in this checkout (``make weights`` builds them)."""
    from vip_rl.encoders import list_encoders

    return name in list_encoders(available_only=True)


def bundled_metadata(name: str) -> dict[str, Any] | None:
    """The metadata JSON next to a bundled encoder's weights (``vip_rl/weights/<name>.json``), or None."""
    from vip_rl.encoders.checkpoint import weights_dir

    path = weights_dir() / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def describe_encoder(config: dict[str, Any], *, name: str | None = None) -> str:
    """One line naming the checkpoint behind a figure (bundled weights change over time).

    ``config`` is an encoder's ``config`` (``name``: the name it was resolved from, ``"random"`` for an
    untrained one); the training step count is the metadata's ``steps_done``, else
    its pretraining config's ``steps`` (a run that finished: the recipe writes the weights at the end).
    """
    training = config.get("training") or {}
    if config.get("arch") == "ensemble":  # vip_rl.encoders.ensemble: describe each member
        members = "; ".join(f"[{describe_encoder(member)}]" for member in config.get("members") or [])
        note = training.get("note") or (f"made by ({training['command']})" if training.get("command") else "")
        return f"ensemble of {len(config.get('members') or [])} (RMS of distances): {members}" + (f"; {note}" if note else "")
    steps = training.get("steps_done") or (training.get("pretrain_config") or {}).get("steps")
    if (name or config.get("name")) == "random":
        trained = f"untrained (random init, seed {config.get('seed', 0)})"
    else:
        trained = f"steps {steps if steps is not None else '?'}"
    note = training.get("note") or (f"trained by the recipe ({training['command']})" if training.get("command") else "")
    return (f"{config.get('arch')} {config.get('image_size')}px D={config.get('embed_dim')} {config.get('metric')}; "
            f"{trained}; {note}").strip("; ")


def describe_encoders(encoders: dict[str, Any]) -> dict[str, str]:
    """:func:`describe_encoder` for each ``name -> encoder``."""
    return {name: describe_encoder(encoder.config, name=name) for name, encoder in encoders.items()}


def summarise_episodes(rows: list[dict[str, Any]], *, seconds: float) -> dict[str, Any]:
    """One table cell from ``run_episode`` results: success rate, mean final progress, steps, ms per command."""
    return {
        "episodes": len(rows),
        "success_rate": float(np.mean([r["success"] for r in rows])),
        "mean_progress": float(np.mean([r["task_progress"] for r in rows])),
        "mean_steps": float(np.mean([r["steps"] for r in rows])),
        "ms_per_command": 1000 * float(np.mean([r["seconds_per_command"] for r in rows])),
        "seconds": seconds,
        "per_episode": [{k: r[k] for k in ("seed", "success", "steps", "task_progress")} for r in rows],
    }
