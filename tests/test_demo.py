"""`vip-rl demo --quick`: every stage runs and the report holds its sections and numbers."""
import json
import re
from pathlib import Path

import pytest

from vip_rl.demo import STAGES, DemoConfig, cli


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    assert cli(["--quick", "--out", str(out), "--device", "cpu"]) == 0
    return out


@pytest.mark.slow  # the quick demo end to end (~15 s)
def test_report_has_every_section_and_numbers(quick_report: Path) -> None:
    report = (quick_report / "report.md").read_text()
    for title in ("Demonstrations", "Bundled encoders", "Reward curves", "GoalReward", "MPPI", "BC vs RWR"):
        assert title in report
    # success rates and correlations are printed as numbers, not placeholders
    assert re.search(r"\| PressButton \| td-sim, image goal \| \d\.\d\d \|", report)
    assert re.search(r"\| PressButton \| td-sim, instruction \| \d\.\d\d \|", report)
    assert re.search(r"\| PressButton \| vip-sim, image goal \| \d\.\d\d \|", report)
    assert re.search(r"\| PressButton \| RWR \(td-sim progress\) \| \d\.\d\d \|", report)
    assert "vip-rl collect PressButton" in report and "vip-rl mppi" in report and "vip-rl train rwr" in report
    html = (quick_report / "report.html").read_text()
    assert "<img" in html and "<video" in html


@pytest.mark.slow  # the quick demo end to end (~15 s)
def test_every_linked_file_exists(quick_report: Path) -> None:
    report = (quick_report / "report.md").read_text()
    links = re.findall(r"\]\(([^)]+\.(?:png|mp4))\)", report)
    assert links, "the report links no pictures or videos"
    for link in links:
        assert (quick_report / link).is_file(), link


@pytest.mark.slow  # the quick demo end to end (~15 s)
def test_stages_skip_when_outputs_exist(quick_report: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = {s: json.loads((quick_report / s / "stage.json").read_text())["seconds"] for s in STAGES}
    assert cli(["--quick", "--out", str(quick_report), "--device", "cpu"]) == 0
    assert capsys.readouterr().out.count("reusing") == len(STAGES)
    after = {s: json.loads((quick_report / s / "stage.json").read_text())["seconds"] for s in STAGES}
    assert before == after


@pytest.mark.parametrize("field,value,match", [
    ("tasks", ("NoSuchTask",), "tasks must be suite tasks"),
    ("demos", 0, "demos must be positive"),
])
def test_bad_config(field: str, value: object, match: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=match):
        DemoConfig(out=tmp_path, **{field: value})


def test_a_stage_is_reused_only_with_the_same_settings_and_encoder_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """Stale results are redone: another configuration, changed weights behind an encoder, or a stage file that
    records no key (written before keys existed)."""
    import dataclasses

    from vip_rl import demo

    calls: list[str] = []
    monkeypatch.setattr(demo.Demo, "stage_wrapper", lambda self, result: calls.append(self.config.td_encoder))
    monkeypatch.setattr(demo, "write_report", lambda root, config, results: root / "report.md")
    weights = tmp_path / "enc"
    weights.mkdir()
    (weights / "model.safetensors").write_bytes(b"first")
    config = dataclasses.replace(DemoConfig.quick(tmp_path / "out"), td_encoder=str(weights))

    def run(cfg: DemoConfig) -> str:
        demo.Demo(cfg, quick=True).run(["wrapper"])
        return capsys.readouterr().out

    run(config)
    assert "reusing" in run(config) and len(calls) == 1
    assert "other settings or encoder weights; redoing it" in run(dataclasses.replace(config, seed=1)) and len(calls) == 2
    run(config)  # back to the first settings: redone once more, then reused
    (weights / "model.safetensors").write_bytes(b"second")  # the same name, other weights
    assert "redoing it" in run(config) and len(calls) == 4
    stage_file = tmp_path / "out" / "wrapper" / "stage.json"
    saved = json.loads(stage_file.read_text())
    stage_file.write_text(json.dumps({k: v for k, v in saved.items() if k != "key"}))
    assert "redoing it" in run(config) and len(calls) == 5
    # collect depends on the configuration only: new weights do not redo it
    assert "encoders" not in demo.Demo(config).stage_key("collect") and "encoders" in demo.Demo(config).stage_key("mppi")


def test_the_demo_plans_with_the_mppi_command_defaults() -> None:
    from vip_rl.planning.cli import DEFAULT_HORIZON, DEFAULT_NUM_SAMPLES, build_parser

    args = build_parser().parse_args(["--env", "vip_envs/OpenDrawer-v0", "--goal", "expert"])
    assert (args.num_samples, args.horizon) == (DEFAULT_NUM_SAMPLES, DEFAULT_HORIZON) == (32, 10)
    assert (DemoConfig().mppi_samples, DemoConfig().mppi_horizon) == (DEFAULT_NUM_SAMPLES, DEFAULT_HORIZON)
