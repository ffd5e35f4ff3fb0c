"""The benchmarks' shared report writer: tables, target lines, provenance, atomic JSON + markdown.

Every ``benchmarks/<name>.py`` measures one thing and writes ``<out>.json`` (the measured numbers and the
``provenance`` block: the command that measured them, when and where) and ``<out>.md``, rendered from the
JSON alone, so ``--render-only`` rewrites the markdown after a layout change without measuring anything.

A results file assembled from several runs (a column or a table row measured later) names each run's
command in ``provenance["parts"]`` (:func:`add_part`); :func:`generated_by` renders them, grouped by run.

Example (a new benchmark)::

    import _report

    def render(res: dict) -> str:
        lines = ["# Clip speed", "", _report.generated_by(res["provenance"]), ""]
        lines += _report.table(["encoder", "frames/s"], [[r["name"], f"{r['fps']:.0f}"] for r in res["rows"]])
        lines += ["", _report.target_line("frames/s, worst encoder", worst, ">= 100", met=worst >= 100)]
        return "\\n".join(lines) + "\\n"

    def main(argv=None):
        parser = argparse.ArgumentParser()
        _report.add_output_args(parser, "clip_speed")   # --out, --render-only
        args = parser.parse_args(argv)
        if args.render_only:
            return _report.render_only(args.out, render)
        res = {"provenance": _report.provenance(__file__, argv), "rows": measure()}
        _report.write(args.out, res, render(res))
        return 0

Scripts run as ``python benchmarks/<name>.py`` (their folder is on ``sys.path``), so this module and
``_common.py`` import by their bare names. Nothing here measures; nothing here imports torch or MuJoCo
unless they are already imported.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
NOTES = ROOT / "benchmarks" / "notes"

if str(ROOT) not in sys.path:  # the library, when run from a checkout without an editable install
    sys.path.insert(0, str(ROOT))

from vip_rl._io import atomic_write_json, atomic_write_text  # noqa: E402


# ------------------------------------------------------------------------------------------------ provenance
def command_line(script: str | os.PathLike[str], argv: Sequence[str] | None) -> str:
    """The shell command that runs ``script`` with ``argv`` (``sys.argv[1:]`` when None), quoted to paste back."""
    args = list(sys.argv[1:] if argv is None else argv)
    path = Path(script).resolve()
    try:
        shown = path.relative_to(ROOT)
    except ValueError:
        shown = path
    return " ".join(["python", shlex.quote(str(shown)), *map(shlex.quote, args)]).rstrip()


def utc_now() -> str:
    """The time stamp every report uses: ``2026-12-03 06:22 UTC``."""
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())


def machine() -> dict[str, Any]:
    """Where a measurement ran: host, CPU (and its model where ``/proc/cpuinfo`` names it: one seed's training run can
    come out otherwise on another CPU, ``notes/weights_reproduce.md``), core count, load average, and the torch / MuJoCo
    versions if imported, with torch's vectorised CPU kernels (``cpu_capability``)."""
    info: dict[str, Any] = {
        "host": platform.node() or platform.machine(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }
    from vip_rl._provenance import cpu_model

    model = cpu_model()
    if model:
        info["cpu_model"] = model
    torch = sys.modules.get("torch")
    if torch is not None:
        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        info["cpu_capability"] = str(torch.backends.cpu.get_cpu_capability())
        info["device"] = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    mujoco = sys.modules.get("mujoco")
    if mujoco is not None:
        info["mujoco"] = mujoco.__version__
    return info


def describe_machine(info: dict[str, Any]) -> str:
    """One phrase from :func:`machine`: ``Intel(R) Xeon(R) Processor, 2 CPU cores, torch 2.13.0+cpu, 1 torch thread(s),
    cpu, 1-min load average 0.9 at start`` (the CPU model where recorded)."""
    parts = [info.get("cpu_model"),
             f"{info['cpu_count']} CPU cores" if info.get("cpu_count") else None,
             f"torch {info['torch']}" if info.get("torch") else None,
             f"{info['torch_threads']} torch thread(s)" if info.get("torch_threads") else None,
             info.get("device"),
             f"1-min load average {info['load_average_1min']} at start" if info.get("load_average_1min") is not None else None]
    return ", ".join(p for p in parts if p)


def provenance(script: str | os.PathLike[str], argv: Sequence[str] | None, **extra: Any) -> dict[str, Any]:
    """The ``provenance`` block of a results file: ``command``, ``date`` (UTC), ``machine``, ``code`` (the sources'
    digest and git commit: ``vip_rl._provenance.code_version``) and ``extra``."""
    from vip_rl._provenance import code_version

    return {"command": command_line(script, argv), "date": utc_now(), "machine": machine(), "code": code_version(), **extra}


def generated_by(prov: dict[str, Any]) -> str:
    """``Generated by `<command>` on <date> (<machine>; <note>).``; a merged file adds one line per earlier run
    (:func:`provenance_lines`), a converted one the conversion's note."""
    where = prov.get("machine")
    where = describe_machine(where) if isinstance(where, dict) else where
    context = "; ".join(x for x in (where, prov.get("note")) if x)
    line = f"Generated by `{prov['command']}`" + (f" on {prov['date']}" if prov.get("date") else "") + (f" ({context})" if context else "") + "."
    if prov.get("quick"):
        line += " **--quick: smoke sizes, not results.**"
    if prov.get("converted"):
        line += f" Results file {prov['converted']}."
    return "\n".join([line, *provenance_lines(prov)])


#: Part kinds that are nouns ("column oracle"): several of one kind read "columns a; b". Others (a section name such as
#: "mppi Pusher-v5") read "mppi a; b".
_PART_NOUNS = ("column", "row", "section", "cell")


def provenance_lines(prov: dict[str, Any]) -> list[str]:
    """The parts of a merged results file kept from earlier runs, grouped by the run that measured them:
    ``- <part>, <part>: measured by `<command>` (<date>; <note>)`` (no lines when nothing was merged)."""
    groups: dict[tuple, list[str]] = {}
    for part in prov.get("parts", []):
        groups.setdefault((part["command"], part.get("date"), part.get("note")), []).append(part["part"])
    lines = []
    for (command, date, note), names in groups.items():
        when = "; ".join(x for x in (date, note) if x)
        kinds = {name.split(" ", 1)[0] for name in names}
        if len(names) > 1 and len(kinds) == 1 and all(" " in name for name in names):  # "columns a; b" for "column a", "column b"
            kind = kinds.pop()
            what = f"{kind + 's' if kind in _PART_NOUNS else kind} " + "; ".join(name.split(" ", 1)[1] for name in names)
        else:
            what = "; ".join(names)
        lines.append(f"- {what}: measured by `{command}`" + (f" ({when})" if when else ""))
    if not lines:
        return []
    return ["", "Parts kept from earlier runs (the rest was measured by the command above):", "", *lines]


def add_part(prov: dict[str, Any], part: str, earlier: dict[str, Any]) -> None:
    """Record in ``prov`` that ``part`` (a table column or row: ``"column oracle"``) was kept from an earlier results
    file with provenance ``earlier``: the run that measured it is ``earlier``'s own part of that name if it has one
    (it was merged there too), else ``earlier``'s command."""
    parts = prov.setdefault("parts", [])
    if any(p["part"] == part for p in parts):
        return
    for inner in earlier.get("parts", []):
        if inner["part"] == part:
            parts.append(dict(inner))
            return
    kept = {"part": part, "command": earlier["command"], "date": earlier.get("date")}
    if earlier.get("code") is not None:  # the code that measured it (results files written since session 15 have it)
        kept["code"] = earlier["code"]
    parts.append(kept)


# ------------------------------------------------------------------------------------------------ formatting
def fmt(value: Any, pattern: str = "{:.2f}", *, missing: str = "-") -> str:
    """``pattern.format(value)``, or ``missing`` for None / NaN."""
    if value is None or (isinstance(value, float) and value != value):
        return missing
    return pattern.format(value)


def table(header: Sequence[str], rows: Iterable[Sequence[Any]], *, align: Sequence[str] | None = None) -> list[str]:
    """A markdown table as lines; ``align`` per column: ``""`` (default), ``"r"`` (``---:``) or ``"l"``.

    Cells are written with ``str``; format numbers before (:func:`fmt`).

    >>> table(["task", "rate"], [["OpenDrawer", "0.20"]], align=["", "r"])
    ['| task | rate |', '|---|---:|', '| OpenDrawer | 0.20 |']
    """
    rules = {"": "---", "r": "---:", "l": ":---"}
    align = list(align) if align is not None else [""] * len(header)
    if len(align) != len(header):
        raise ValueError(f"align must have one entry per column ({len(header)}), got {len(align)}")
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "|".join(rules[a] for a in align) + "|"]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in rows]
    return lines


def status(met: bool | None, *, met_word: str = "met", missed_word: str = "**missed**", missing: str = "not measured") -> str:
    """The one spelling of a target's outcome: ``met``, ``**missed**`` or ``not measured``."""
    if met is None:
        return missing
    return met_word if met else missed_word


def target_line(label: str, value: str, target: str, *, met: bool | None) -> str:
    """``- <label>: <value> (target <target>): met | **missed** | not measured``."""
    return f"- {label}: {value} (target {target}): {status(met)}"


# ------------------------------------------------------------------------------------------------ files
def write(out: str | os.PathLike[str], result: dict[str, Any], markdown: str, *, verbose: bool = True) -> tuple[Path, Path]:
    """Write ``<out>.json`` and ``<out>.md`` atomically (``out`` is a stem: any suffix is replaced); ``verbose``
    prints where (off for a report rewritten after every job)."""
    stem = Path(out)
    json_path, md_path = stem.with_suffix(".json"), stem.with_suffix(".md")
    atomic_write_json(json_path, result)
    atomic_write_text(md_path, markdown if markdown.endswith("\n") else markdown + "\n")
    if verbose:
        print(f"wrote {json_path} and {md_path}", flush=True)
    return json_path, md_path


def read(out: str | os.PathLike[str]) -> dict[str, Any]:
    """The results written by :func:`write` under the stem ``out``."""
    return json.loads(Path(out).with_suffix(".json").read_text())


def name_value_pairs(items: Iterable[str], flag: str, *, value: str = "VALUE", names: Iterable[str] | None = None) -> dict[str, str]:
    """``["NAME=VALUE", ...]`` (a repeatable flag's list, or the items of a comma list) -> ``{NAME: VALUE}``.

    The one parser of the benchmarks' ``NAME=VALUE`` options (``--extra-encoders``, ``--extra-encoder``,
    ``--train-log``, ``--area-args``). Raises ``ValueError`` naming ``flag`` and the item for a missing ``=``, an
    empty NAME or VALUE, a NAME outside ``names`` (when given) or a NAME given twice; the scripts turn it into a
    usage error (exit status 2) before anything is measured or written.
    """
    known = None if names is None else list(names)
    pairs: dict[str, str] = {}
    for item in items:
        name, sep, rest = item.partition("=")
        if not sep or not name or not rest:
            raise ValueError(f"{flag}: expected NAME={value}, got {item!r}")
        if known is not None and name not in known:
            raise ValueError(f"{flag}: unknown NAME {name!r} in {item!r}; known: {known}")
        if name in pairs:
            raise ValueError(f"{flag}: the NAME {name!r} is given twice")
        pairs[name] = rest
    return pairs


def add_output_args(parser: argparse.ArgumentParser, name: str) -> None:
    """``--out`` (stem, default ``benchmarks/results/<name>``) and ``--render-only``."""
    parser.add_argument("--out", type=Path, default=RESULTS / name,
                        help=f"output stem: <out>.json and <out>.md are written (default benchmarks/results/{name})")
    parser.add_argument("--render-only", action="store_true",
                        help="measure nothing: rewrite <out>.md from <out>.json (after a change to the report layout or notes)")


def render_only(out: str | os.PathLike[str], render: Callable[[dict[str, Any]], str],
                *, update: Callable[[dict[str, Any]], bool] | None = None) -> int:
    """Rewrite ``<out>.md`` from ``<out>.json`` with ``render``; ``update(result)`` may edit prose fields (notes) in
    place and return True to have the JSON rewritten too. Returns 0 (a ``main`` exit code)."""
    stem = Path(out)
    result = read(stem)
    if update is not None and update(result):
        atomic_write_json(stem.with_suffix(".json"), result)
    text = render(result)
    atomic_write_text(stem.with_suffix(".md"), text if text.endswith("\n") else text + "\n")
    print(f"wrote {stem.with_suffix('.md')} from {stem.with_suffix('.json')}", flush=True)
    return 0


def read_notes(path: str | os.PathLike[str] | None) -> list[str] | None:
    """The lines of a findings file (``benchmarks/notes/*.md``), or None when there is none."""
    if path is None or not Path(path).exists():
        return None
    return Path(path).read_text().splitlines()


def notes_section(notes: list[str] | None) -> list[str]:
    """A report's ``## Notes`` section: the findings file's lines as they are (none: no section)."""
    return ["## Notes", "", *notes, ""] if notes else []


def render_only_with_notes(out: str | os.PathLike[str], render: Callable[[dict[str, Any]], str],
                           notes_path: str | os.PathLike[str] | None) -> int:
    """:func:`render_only` that first re-reads the findings file into ``result["notes"]`` (the JSON is rewritten only
    when they changed)."""
    def update(result: dict[str, Any]) -> bool:
        notes = read_notes(notes_path)
        changed = notes != result.get("notes")
        result["notes"] = notes
        return changed

    return render_only(out, render, update=update)
