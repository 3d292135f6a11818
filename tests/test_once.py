"""Run `--once` as cron would: one refresh, the metrics printed or written atomically."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from exporter.simulator import Fault, Simulator
from tests.conftest import expected_counts, image_counts, make_config, parse_samples, value
from tests.test_cli import _write_config

COMMAND = [sys.executable, "-m", "exporter", "--once"]


def test_once_prints_the_counts_and_succeeds(tmp_path: Path, simulator: Simulator) -> None:
    config = _write_config(tmp_path, simulator)

    result = subprocess.run(
        [*COMMAND, f"--config.file={config}"], capture_output=True, text=True, timeout=30
    )

    assert result.returncode == 0, result.stderr
    samples = parse_samples(result.stdout)
    for region in ("bj", "gz"):
        expected = expected_counts(simulator, region, make_config(simulator, ["bj", "gz"]))
        assert image_counts(samples, region) == expected
    assert not any(name.startswith(("process_", "python_")) for name, _ in samples), (
        "series that node_exporter has itself must not be written"
    )


def test_once_fails_when_a_target_fails_but_still_prints_it(
    tmp_path: Path, simulator: Simulator
) -> None:
    simulator.add_fault(Fault("error", status=403, code="AccessDenied", region="gz"))
    config = _write_config(tmp_path, simulator)

    result = subprocess.run(
        [*COMMAND, f"--config.file={config}"], capture_output=True, text=True, timeout=30
    )

    assert result.returncode == 1
    samples = parse_samples(result.stdout)
    assert value(samples, "bce_bcc_up", account="test", region="gz") == 0
    assert value(samples, "bce_bcc_up", account="test", region="bj") == 1
    assert "region=gz" in result.stderr


def test_output_is_written_atomically_for_the_textfile_collector(
    tmp_path: Path, simulator: Simulator
) -> None:
    config = _write_config(tmp_path, simulator)
    textfile_dir = tmp_path / "textfile"
    textfile_dir.mkdir()
    output = textfile_dir / "bcc_images.prom"
    output.write_text("# the previous run\n")

    result = subprocess.run(
        [*COMMAND, f"--config.file={config}", f"--output={output}"],
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert [p.name for p in textfile_dir.iterdir()] == ["bcc_images.prom"], "no temp file left"
    assert output.stat().st_mode & 0o777 == 0o644
    text = output.read_text()
    assert image_counts(parse_samples(text), "bj")
    check = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert check.returncode == 0 and check.stdout + check.stderr == ""


def test_output_without_once_is_refused(tmp_path: Path, simulator: Simulator) -> None:
    config = _write_config(tmp_path, simulator)
    result = subprocess.run(
        [sys.executable, "-m", "exporter", f"--config.file={config}", "--output=x.prom"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2 and "--output needs --once" in result.stderr


def test_an_unwritable_output_is_reported(tmp_path: Path, simulator: Simulator) -> None:
    config = _write_config(tmp_path, simulator)
    output = tmp_path / "missing-dir" / "bcc.prom"
    result = subprocess.run(
        [*COMMAND, f"--config.file={config}", f"--output={output}"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1 and f"cannot write {output}" in result.stderr
