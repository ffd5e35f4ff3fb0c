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
