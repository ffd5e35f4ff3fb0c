"""vip_rl._provenance: the code a training record names (sources digest + git commit)."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from vip_rl import _provenance as prov


def _package(root: Path) -> Path:
    pkg = root / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("x = 1\n")
    (pkg / "sub" / "scene.xml").write_text("<mujoco/>\n")
    (pkg / "notes.txt").write_text("not code\n")
    return pkg


def test_source_digest_follows_code_and_only_code(tmp_path: Path) -> None:
    pkg = _package(tmp_path)
    first = prov.source_digest([pkg])
    assert len(first) == 16 and first == prov.source_digest([pkg])
    (pkg / "notes.txt").write_text("edited, but not a source\n")
    (pkg / "__pycache__").mkdir()
    (pkg / "__pycache__" / "cached.py").write_text("stale = True\n")
    assert prov.source_digest([pkg]) == first
    (pkg / "sub" / "scene.xml").write_text("<mujoco model='b'/>\n")  # a scene is code: it makes the data
    second = prov.source_digest([pkg])
    assert second != first
    (pkg / "sub" / "scene.xml").rename(pkg / "scene.xml")  # the same bytes under another name
    assert prov.source_digest([pkg]) not in (first, second)
    with pytest.raises(ValueError, match=r"source_digest: .*missing is not a directory"):
        prov.source_digest([tmp_path / "missing"])


def test_git_state_outside_a_checkout_is_unknown(tmp_path: Path) -> None:
    assert prov.git_state(_package(tmp_path)) == (None, None)


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_git_state_names_the_commit_and_a_dirty_tree(tmp_path: Path) -> None:
    pkg = _package(tmp_path)
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True, text=True).stdout.strip()
    git("init", "-q")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c")
    head = git("rev-parse", "HEAD")
    assert prov.git_state(pkg, [pkg]) == (head, False)
    (pkg / "__init__.py").write_text("x = 2\n")
    assert prov.git_state(pkg, [pkg]) == (head, True)
    git("checkout", "-q", "--", ".")
    (pkg / "new.py").write_text("y = 1\n")  # untracked code changes what runs as much as an edit does
    assert prov.git_state(pkg, [pkg]) == (head, True)


def test_cpu_model_reads_the_model_name(tmp_path: Path, monkeypatch) -> None:
    """The first "model name" line of /proc/cpuinfo; None where there is none (another OS, an ARM board)."""
    info = tmp_path / "cpuinfo"
    real = Path.read_text
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: real(info if str(self) == "/proc/cpuinfo" else self, *a, **k))
    info.write_text("processor\t: 0\nvendor_id\t: ExampleVendor\nmodel name\t: Example CPU 7000\n\nprocessor\t: 1\nmodel name\t: Example CPU 7000\n")
    assert prov.cpu_model() == "Example CPU 7000"
    info.write_text("processor\t: 0\nBogoMIPS\t: 50.00\n")
    assert prov.cpu_model() is None
    info.unlink()
    assert prov.cpu_model() is None


def test_code_version_describes_this_checkout() -> None:
    version = prov.code_version()
    assert set(version) == {"sources_sha256", "git_commit", "git_dirty"}
    assert version["sources_sha256"] == prov.source_digest(prov.package_dirs())
    assert [d.name for d in prov.package_dirs()][0] == "vip_rl"


def test_pretrain_and_the_recipe_record_the_code(tmp_path: Path, monkeypatch) -> None:
    import json

    import vip_rl.pretrain as pretrain_module
    import vip_rl.weights_recipe as wr
    from test_pretrain import synthetic_videos, tiny_config

    pretrain_module.pretrain(tiny_config(steps=2, eval_every=2, ckpt_every=2), synthetic_videos(5), out_dir=tmp_path, progress=False)
    training = json.loads((tmp_path / "encoder" / "config.json").read_text())["training"]
    assert training["code"] == prov.code_version()
    stats = dict.fromkeys(("pairs", "goal_pairs", "instructions", "seconds", "loss_before", "loss_after",
                           "goal_distance_before", "goal_distance_after"), 0.0)
    monkeypatch.setattr(pretrain_module, "fit_text_tower", lambda encoder, videos, **kw: stats)
    record = wr.fit_text("td-sim", object(), wr.TrainingVideos([None], ["a"], [True], ["expert"]))
    assert record["code"] == prov.code_version()


def test_a_resumed_run_names_the_code_that_trained_it(tmp_path: Path, monkeypatch) -> None:
    import json

    import torch

    import vip_rl.pretrain as pretrain_module
    import vip_rl.weights_recipe as wr
    from test_pretrain import synthetic_videos, tiny_config

    def training(run: Path) -> dict:
        return json.loads((run / "encoder" / "config.json").read_text())["training"]

    old = {"sources_sha256": "0ld", "git_commit": "c0ffee", "git_dirty": False}
    new = {"sources_sha256": "n3w", "git_commit": "beef", "git_dirty": True}
    videos = synthetic_videos(5)
    monkeypatch.setattr(pretrain_module, "code_version", lambda: old)
    pretrain_module.pretrain(tiny_config(steps=4, eval_every=0, ckpt_every=2), videos, out_dir=tmp_path / "a", progress=False, stop_after=2)
    monkeypatch.setattr(pretrain_module, "code_version", lambda: new)
    encoder = pretrain_module.pretrain(tiny_config(steps=4, eval_every=0, ckpt_every=2), videos, out_dir=tmp_path / "a", progress=False)
    assert training(tmp_path / "a")["code"] == new and training(tmp_path / "a")["code_earlier"] == [old]
    record = wr._stage_record(tiny_config(), {"expert": 5}, 1.0, encoder=encoder)  # the recipe's record keeps both
    assert record["code"] == new and record["code_earlier"] == [old]

    monkeypatch.setattr(pretrain_module, "code_version", lambda: old)  # a finished run called again trains nothing
    pretrain_module.pretrain(tiny_config(steps=2, eval_every=0, ckpt_every=2), videos, out_dir=tmp_path / "b", progress=False)
    monkeypatch.setattr(pretrain_module, "code_version", lambda: new)
    pretrain_module.pretrain(tiny_config(steps=2, eval_every=0, ckpt_every=2), videos, out_dir=tmp_path / "b", progress=False)
    assert training(tmp_path / "b")["code"] == old and "code_earlier" not in training(tmp_path / "b")

    ckpt = tmp_path / "b" / pretrain_module.CHECKPOINT_FILE  # a checkpoint from before checkpoints named their code
    state = torch.load(ckpt, weights_only=False)
    del state["code"]
    torch.save(state, ckpt)
    pretrain_module.pretrain(tiny_config(steps=2, eval_every=0, ckpt_every=2), videos, out_dir=tmp_path / "b", progress=False)
    assert training(tmp_path / "b")["code"] == pretrain_module.UNKNOWN_CODE
    assert wr._stage_record(tiny_config(), {}, 1.0, encoder=object())["code"] == prov.code_version()  # no record: this call's


def test_benchmark_results_name_their_code_and_merged_parts_keep_theirs(benchmark_module) -> None:
    report = benchmark_module("_report")
    block = report.provenance("benchmarks/x.py", ["--quick"])
    assert block["code"] == prov.code_version() and block["command"] == "python benchmarks/x.py --quick"
    earlier = {"command": "old", "date": "d", "code": {"sources_sha256": "abc", "git_commit": None, "git_dirty": None}}
    report.add_part(block, "column a", earlier)
    report.add_part(block, "column b", {"command": "older", "date": "e"})  # written before results named their code
    assert block["parts"] == [{"part": "column a", "command": "old", "date": "d", "code": earlier["code"]},
                             {"part": "column b", "command": "older", "date": "e"}]


def test_arrays_digest_names_the_arrays_not_the_container():
    """Equal named arrays give one digest whatever their order in the mapping; a changed value, dtype, shape or name
    gives another (what benchmarks record to tell whether two runs trained on the same arrays)."""
    import numpy as np

    from vip_rl._provenance import arrays_digest

    base = {"actions": np.arange(6, dtype=np.float32).reshape(3, 2), "ids": np.array([0, 0, 1])}
    digest = arrays_digest(base)
    assert len(digest) == 64 and arrays_digest(dict(reversed(list(base.items())))) == digest
    assert arrays_digest({k: v.copy() for k, v in base.items()}) == digest
    changed = {**base, "actions": base["actions"] + np.float32(1e-6)}
    recast = {**base, "actions": base["actions"].astype(np.float64)}
    reshaped = {**base, "actions": base["actions"].reshape(2, 3)}
    renamed = {"action": base["actions"], "ids": base["ids"]}
    assert len({digest, *(arrays_digest(a) for a in (changed, recast, reshaped, renamed))}) == 5
    big_endian = {**base, "ids": base["ids"].astype(">i8")}  # the same numbers in another byte order: the same digest
    assert arrays_digest(big_endian) == arrays_digest({**base, "ids": base["ids"].astype("<i8")})
