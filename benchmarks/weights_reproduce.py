"""Does ``make weights`` reproduce the bundled encoders? A fresh recipe run's weights against ``vip_rl/weights``.

The brief: what the toolkit ships pretrained comes with the command that reproduces it. This compares, tensor by
tensor, the files a fresh run of the recipe wrote (``python -m vip_rl.weights_recipe --only NAME --no-export --out
DIR`` writes ``DIR/final/NAME.safetensors`` + ``.json``) with the bundled ``NAME.safetensors``, and reports each
bundled file's recorded command, code and thread count beside the fresh run's. Bit for bit is the target; a file
that differs is a different draw of the recipe (or a different recipe), and its figures are not the bundled ones.

``--again NAME=PATH`` adds a second fresh run of the same encoder (another ``--out``, another day): do two runs of
the recipe agree with each other, bit for bit? Each row also gives the SHA-256 of the fresh run's tensors
(:func:`tensor_digest`: names, dtypes, shapes and bytes, not the JSON record with its timings), so anyone who runs the
recipe can check their file against it.

It measures nothing else: what the difference costs is the other benchmarks' job (e.g. ``representation.py --vip
DIR/final/vip-sim.safetensors``).

``--probe`` also trains the machine probe (:data:`PROBE_STEPS` steps of vip-sim's recipe, from newly collected videos,
in a fresh process: about two minutes) and records its tensors' SHA-256 beside the rows. ``--check-probe`` trains it
on this machine and compares it with the digest a results file recorded (nothing is written; exit 0 when equal, 1
when not): whether this machine's numerics are those of the machine whose rows the file holds, before an hour of
``make weights``. Sessions 35-36: the recipe gave the bundled files back on one machine and not on another, and on
session 36's machine MKL held to its AVX2 kernels changed both the full vip-sim run and the probe, while ATen's AVX2
kernels, which left the full run alone, left the probe alone too. The probe only trains: ATen's kernels, which part
td-sim's planner rounds (MPPI), are not in it.

Usage:
  .venv/bin/python benchmarks/weights_reproduce.py --fresh vip-sim=runs/s17vip/final/vip-sim.safetensors \\
      --fresh liv-sim=runs/s17liv/final/liv-sim.safetensors
  .venv/bin/python benchmarks/weights_reproduce.py --fresh td-sim=runs/fresh/final/td-sim.safetensors \\
      --merge benchmarks/results/weights_reproduce.json     # one more row; the other encoders' rows are kept
  .venv/bin/python benchmarks/weights_reproduce.py --fresh td-sim=runs/fresh/final/td-sim.safetensors \\
      --again td-sim=runs/fresh2/final/td-sim.safetensors --merge benchmarks/results/weights_reproduce.json
  .venv/bin/python benchmarks/weights_reproduce.py --fresh td-sim=runs/fresh/final/td-sim.safetensors --probe \\
      --merge benchmarks/results/weights_reproduce.json     # and record this machine's probe digest
  .venv/bin/python benchmarks/weights_reproduce.py --check-probe   # does this machine train what that one trained?
  .venv/bin/python benchmarks/weights_reproduce.py --render-only
"""
from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

import _report


#: Training steps of the machine probe: vip-sim's recipe (its config, its videos) cut short, about a minute of training.
PROBE_STEPS = 300


def probe_command(out_dir: Path) -> list[str]:
    """The probe: ``python -m vip_rl.weights_recipe --only vip-sim --steps PROBE_STEPS --no-export`` into ``out_dir``."""
    return [sys.executable, "-m", "vip_rl.weights_recipe", "--only", "vip-sim", "--steps", str(PROBE_STEPS),
            "--no-export", "--no-progress", "--out", str(out_dir)]


def run_probe(out_dir: Path, runner: Any = subprocess.run) -> dict[str, Any]:
    """Train the probe in a new process (the machine's own settings, none inherited from this one's torch) under
    ``out_dir`` (a fresh folder: the recipe resumes what it finds); returns ``{"steps", "command", "sha256",
    "cpu_model"}``. RuntimeError naming the exit status and the end of its stderr when the command fails."""
    from vip_rl._provenance import cpu_model

    command = probe_command(out_dir)
    proc = runner(command, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = " | ".join((proc.stderr or "").strip().splitlines()[-3:])
        raise RuntimeError(f"the probe `{shlex.join(command)}` failed with exit status {proc.returncode}: {tail}")
    shown = ["python", *command[1:-1], "DIR"]
    return {"steps": PROBE_STEPS, "command": shlex.join(shown),
            "sha256": tensor_digest(out_dir / "final" / "vip-sim.safetensors", "probe"), "cpu_model": cpu_model()}


def _training(json_path: Path) -> dict[str, Any]:
    """The ``training`` block of an encoder's JSON (empty when the file is missing or has none)."""
    from vip_rl.encoders.checkpoint import _read_json  # the loader's own check: valid JSON, and an object

    if not json_path.is_file():
        return {}
    return _read_json(json_path).get("training") or {}


def _recorded(training: dict[str, Any]) -> dict[str, Any]:
    """What a weight file says trained it: command, code (digest / git commit), torch threads, the CPU model (recorded
    since session 36), seconds."""
    code = training.get("code") or {}
    return {"command": training.get("command"), "code": code if isinstance(code, (dict, str)) else None,
            "torch_threads": training.get("torch_threads"), "cpu_model": training.get("cpu_model"),
            "train_seconds": training.get("train_seconds")}


def _threads(recorded: dict[str, Any]) -> str:
    """``1``, or ``1 on <CPU model>`` where the file records its CPU."""
    threads = recorded.get("torch_threads") or "not recorded"
    return f"{threads} on {recorded['cpu_model']}" if recorded.get("cpu_model") else str(threads)


def _load(label: str, path: Path) -> dict[str, np.ndarray]:
    """The tensors of a ``.safetensors`` file; FileNotFoundError / ValueError name ``label`` and ``path``."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    if not path.is_file():
        raise FileNotFoundError(f"{label} weights {path} not found")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"{label} weights {path} are not a readable safetensors file ({err})") from err


def tensor_digest(path: Path, label: str = "fresh") -> str:
    """SHA-256 (hex) of a ``.safetensors`` file's tensors: each name, dtype, shape and little-endian bytes, in name
    order. Two files with equal tensors have equal digests whatever their metadata (the encoder's config and training
    record, with its timings, are stored there): :func:`vip_rl._provenance.arrays_digest` of them."""
    from vip_rl._provenance import arrays_digest

    return arrays_digest(_load(label, path))


def compare(bundled: Path, fresh: Path, labels: tuple[str, str] = ("bundled", "fresh")) -> dict[str, Any]:
    """Tensor-by-tensor comparison of two ``.safetensors`` files (``bundled`` first; ``labels`` name them in errors).

    Returns:
        ``{"tensors", "same_keys", "only_bundled", "only_fresh", "shape_mismatch", "differing", "max_abs_diff",
        "max_rel_diff", "worst_tensor", "bit_for_bit"}``; relative = max |diff| / max |bundled weight| per tensor.

    Raises:
        FileNotFoundError / ValueError: a missing or unreadable file.
    """
    a, b = _load(labels[0], bundled), _load(labels[1], fresh)
    common = sorted(set(a) & set(b))
    shape_mismatch = [k for k in common if a[k].shape != b[k].shape]
    differing, worst, worst_rel, worst_key = 0, 0.0, 0.0, None
    for key in common:
        if key in shape_mismatch or a[key].size == 0:
            continue
        diff = float(np.abs(a[key].astype(np.float64) - b[key].astype(np.float64)).max())
        if diff > 0:
            differing += 1
            scale = float(np.abs(a[key]).max())
            worst_rel = max(worst_rel, diff / scale if scale > 0 else float("inf"))
            if diff > worst:
                worst, worst_key = diff, key
    only_a, only_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
    return {"tensors": len(a), "same_keys": not only_a and not only_b, "only_bundled": only_a, "only_fresh": only_b,
            "shape_mismatch": shape_mismatch, "differing": differing, "max_abs_diff": worst, "max_rel_diff": worst_rel,
            "worst_tensor": worst_key,
            "bit_for_bit": not only_a and not only_b and not shape_mismatch and differing == 0}


def measure(fresh: dict[str, str], bundled_dir: Path, again: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """One row per ``fresh`` encoder: against the bundled file, the fresh tensors' digest and, for the names in
    ``again``, the comparison of the fresh run with that second run (``row["again"]``)."""
    rows = []
    for name, path in fresh.items():
        fresh_path = Path(path)
        bundled_path = bundled_dir / f"{name}.safetensors"
        row = {"name": name, "fresh": str(path), "bundled": str(bundled_path), **compare(bundled_path, fresh_path),
               "fresh_sha256": tensor_digest(fresh_path),
               "bundled_recorded": _recorded(_training(bundled_path.with_suffix(".json"))),
               "fresh_recorded": _recorded(_training(fresh_path.with_suffix(".json")))}
        print(f"[weights_reproduce] {name}: bit for bit {row['bit_for_bit']}, {row['differing']} of {row['tensors']} "
              f"tensors differ, max |diff| {row['max_abs_diff']:.3g}", flush=True)
        if again and name in again:
            second = Path(again[name])
            row["again"] = {"path": str(second), **compare(fresh_path, second, ("fresh", "again")),
                            "recorded": _recorded(_training(second.with_suffix(".json")))}
            print(f"[weights_reproduce] {name}: the second fresh run agrees bit for bit: {row['again']['bit_for_bit']} "
                  f"({row['again']['differing']} tensors differ)", flush=True)
        rows.append(row)
    return rows


def merge(res: dict[str, Any], earlier: dict[str, Any]) -> None:
    """Keep ``earlier``'s rows of the encoders this run did not compare (a fresh run of one encoder at a time), naming
    the run that measured each; rows keep the order of ``earlier``, new encoders come after them."""
    measured = {row["name"]: row for row in res["rows"]}
    rows = []
    for row in earlier.get("rows", []):
        if row["name"] in measured:
            rows.append(measured.pop(row["name"]))
        else:
            rows.append(row)
            _report.add_part(res["provenance"], f"row {row['name']}", earlier["provenance"])
    res["rows"] = rows + list(measured.values())


def _code(recorded: dict[str, Any]) -> str:
    code = recorded.get("code")
    if isinstance(code, dict):
        parts = [str(code.get("git_commit") or "")[:10] + (" (dirty)" if code.get("git_dirty") else ""),
                 str(code.get("sources_sha256") or "")[:10]]
        return " / ".join(p for p in parts if p) or "not recorded"
    return str(code)[:20] if code else "not recorded"


def _again_cell(again: dict[str, Any] | None) -> str:
    if not again:
        return "-"
    rec = again.get("recorded") or {}
    return (f"{_code(rec)} / {_threads(rec)} / {_report.fmt(rec.get('train_seconds'), '{:.0f}')} / "
            + ("yes" if again["bit_for_bit"] else f"no ({again['differing']} of {again['tensors']})"))


def render(res: dict[str, Any]) -> str:
    lines = ["# Does `make weights` reproduce the bundled encoders?", "", _report.generated_by(res["provenance"]), "",
             "Each row: the bundled `vip_rl/weights/NAME.safetensors` against the weights a fresh run of the recipe "
             "wrote (`python -m vip_rl.weights_recipe --only NAME --no-export --out DIR`: `DIR/final/NAME.safetensors`). "
             "Relative difference: max |diff| / max |bundled weight|, over the tensors. Second fresh run: another run of "
             "the same command (another `--out`), compared with the first; SHA-256: the first fresh run's tensors "
             "(`tensor_digest`), to check a run of the recipe against.", ""]
    rows = res["rows"]
    lines += _report.table(
        ["encoder", "tensors differing", "max abs diff", "max rel diff", "bundled: command / code / threads",
         "fresh: code / threads / s", "bit for bit", "second fresh run: code / threads / s / equal", "fresh tensors SHA-256"],
        [[r["name"], f"{r['differing']} of {r['tensors']}" + ("" if r["same_keys"] else " (keys differ)"),
          f"{r['max_abs_diff']:.3g}", f"{r['max_rel_diff']:.3g}",
          f"`{r['bundled_recorded'].get('command') or '-'}` / {_code(r['bundled_recorded'])} / "
          f"{_threads(r['bundled_recorded'])}",
          f"{_code(r['fresh_recorded'])} / {_threads(r['fresh_recorded'])} / "
          f"{_report.fmt(r['fresh_recorded'].get('train_seconds'), '{:.0f}')}",
          "yes" if r["bit_for_bit"] else "no", _again_cell(r.get("again")),
          f"`{r['fresh_sha256'][:16]}`" if r.get("fresh_sha256") else "-"] for r in rows])
    lines += [""]
    for r in rows:
        lines.append(_report.target_line(f"{r['name']}: the recipe reproduces the bundled weights",
                                         "bit for bit" if r["bit_for_bit"] else f"max |diff| {r['max_abs_diff']:.3g}",
                                         "bit for bit", met=r["bit_for_bit"]))
        if r.get("again"):
            again = r["again"]
            lines.append(f"- {r['name']}: two fresh runs of the recipe agree: "
                         + ("**bit for bit**" if again["bit_for_bit"] else
                            f"**no**, {again['differing']} of {again['tensors']} tensors differ (max |diff| {again['max_abs_diff']:.3g})")
                         + (f"; tensors SHA-256 `{r['fresh_sha256']}`" if r.get("fresh_sha256") else ""))
    probe = res.get("probe")
    if probe:
        kept = any(part.get("part") == "probe" for part in res["provenance"].get("parts", []))
        where = ("the run the list of kept parts names for it" if kept else
                 "the command at the top of this file, beside the rows it measured")
        lines += ["", "## Machine probe", "",
                  f"Measured by {where}, on {probe.get('cpu_model') or 'a CPU not recorded'}: "
                  f"`{probe['command']}` ({probe['steps']} steps of vip-sim's recipe, in a fresh folder) writes tensors "
                  f"of SHA-256 `{probe['sha256']}`. `python benchmarks/weights_reproduce.py --check-probe` trains it on "
                  "another machine and compares: the same digest says that machine's numerics are these (its `make "
                  "weights` should give these rows' fresh tensors back), another digest that it trains other draws."]
    lines += [""] + _report.notes_section(res.get("notes"))
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fresh", action="append", default=[], metavar="NAME=PATH",
                        help="a bundled encoder's name and the .safetensors a fresh recipe run wrote (repeatable)")
    parser.add_argument("--again", action="append", default=[], metavar="NAME=PATH",
                        help="a second fresh run of a --fresh encoder (another --out): do two runs agree? (repeatable)")
    parser.add_argument("--bundled-dir", type=Path, default=None, help="the bundled weights' folder (default vip_rl/weights)")
    parser.add_argument("--notes", default=None, help="a markdown file of notes to append to the report")
    parser.add_argument("--merge", type=Path, default=None,
                        help="an earlier results file of this script whose rows of the other encoders are kept")
    parser.add_argument("--probe", action="store_true",
                        help="also train the machine probe (about 2 min) and record its digest beside the rows")
    parser.add_argument("--check-probe", action="store_true",
                        help="only train the probe here and compare its digest with the one --reference recorded "
                             "(writes nothing; exit 0 when equal, 1 when not)")
    parser.add_argument("--reference", type=Path, default=None,
                        help="--check-probe: the results file whose probe to compare with (default: --out's .json)")
    _report.add_output_args(parser, "weights_reproduce")
    args = parser.parse_args(argv)
    if args.render_only:
        return _report.render_only(args.out, render)
    if args.check_probe:
        return _check_probe(parser, args)
    if not args.fresh:
        parser.error("give at least one --fresh NAME=PATH")
    try:
        fresh = _report.name_value_pairs(args.fresh, "--fresh", value="PATH")
        again = _report.name_value_pairs(args.again, "--again", value="PATH")
    except ValueError as err:
        parser.error(str(err))
    if set(again) - set(fresh):
        parser.error(f"--again {sorted(set(again) - set(fresh))}: give the first run of each with --fresh NAME=PATH")
    from vip_rl.encoders.checkpoint import weights_dir

    earlier = None
    if args.merge is not None:
        try:
            earlier = _report.read(args.merge)
        except (OSError, ValueError) as err:
            parser.error(f"--merge {args.merge}: not a readable results file of this script ({err})")
        if not isinstance(earlier, dict) or not isinstance(earlier.get("rows"), list) or "provenance" not in earlier:
            parser.error(f"--merge {args.merge}: not a results file of this script (no rows / provenance)")
    bundled_dir = args.bundled_dir if args.bundled_dir is not None else weights_dir()
    try:
        rows = measure(fresh, bundled_dir, again)
    except (FileNotFoundError, ValueError) as err:
        print(f"weights_reproduce: {err}", file=sys.stderr)
        return 2
    res = {"provenance": _report.provenance(__file__, argv), "rows": rows, "notes": _report.read_notes(args.notes)}
    if args.probe:
        res["probe"] = _probe_in_scratch()
        if res["probe"] is None:
            return 2
        print(f"[weights_reproduce] probe: tensors SHA-256 {res['probe']['sha256']}", flush=True)
    if earlier is not None:
        merge(res, earlier)
        if res["notes"] is None:
            res["notes"] = earlier.get("notes")
        if "probe" not in res and earlier.get("probe"):
            res["probe"] = earlier["probe"]
            _report.add_part(res["provenance"], "probe", earlier["provenance"])
    _report.write(args.out, res, render(res))
    return 0


def _probe_in_scratch() -> dict[str, Any] | None:
    """:func:`run_probe` in a temporary folder (a fresh one: the recipe resumes what it finds); None after naming the
    failure on stderr."""
    try:
        with tempfile.TemporaryDirectory(prefix="vip-rl-probe-") as scratch:
            return run_probe(Path(scratch) / "probe")
    except (RuntimeError, FileNotFoundError, ValueError) as err:
        print(f"weights_reproduce: {err}", file=sys.stderr)
        return None


def _check_probe(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """``--check-probe``: the probe here against the digest the reference results file recorded."""
    if args.fresh or args.again or args.probe or args.merge:
        parser.error("--check-probe runs alone: no --fresh, --again, --probe or --merge")
    reference = args.reference if args.reference is not None else Path(args.out).with_suffix(".json")
    try:
        recorded = _report.read(reference)
    except (OSError, ValueError) as err:
        parser.error(f"--reference {reference}: not a readable results file of this script ({err})")
    if not isinstance(recorded, dict) or not isinstance(recorded.get("probe"), dict) or "sha256" not in recorded["probe"]:
        parser.error(f"--reference {reference}: records no probe (run --fresh ... --probe on a machine that reproduces the bundled files)")
    here = _probe_in_scratch()
    if here is None:
        return 2
    theirs = recorded["probe"]
    same = here["sha256"] == theirs["sha256"] and here["steps"] == theirs["steps"]
    print(f"probe here ({here['cpu_model'] or 'CPU not named'}): {here['sha256']}\n"
          f"recorded by {reference} ({theirs.get('cpu_model') or 'CPU not recorded'}): {theirs['sha256']}\n"
          + ("the same: this machine trains with the numerics of the machine that measured that file's rows" if same else
             "different: this machine trains other draws of the recipe than that file's rows (notes/weights_reproduce.md)"))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
