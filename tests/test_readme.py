"""The README's claims that can be checked mechanically."""

from __future__ import annotations

import re
from pathlib import Path

from study.cli import COMMANDS, cli

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
CI = (Path(__file__).resolve().parent.parent / ".ci" / "run").read_text()


def test_reference_table_matches_study_help(run_cli):
    table = README.split("## Command reference", 1)[1]
    listed = re.findall(r"^\| `study ([a-z-]+)", table, flags=re.M)
    assert sorted(set(listed)) == sorted(COMMANDS)
    help_text = run_cli("--help").output
    for name, (_, summary) in COMMANDS.items():
        assert name in help_text
        row = re.search(rf"^\| `study {name}[ `][^|]*\| (.*) \|$", table, flags=re.M)
        assert row and row.group(1) == summary, f"README row for {name} differs from --help"


def test_every_command_in_the_readme_has_help(run_cli):
    for name in COMMANDS:
        run_cli(name, "--help")


def test_ci_runs_the_readme_test_command():
    assert "\ntests/run\n" in README
    assert "exec tests/run" in CI
    assert "pip install torch==2.13.0" in README


def test_shell_completion_command_works():
    import os
    import subprocess
    import sys
    from pathlib import Path as P

    study_bin = P(sys.executable).parent / "study"
    out = subprocess.run([str(study_bin)], env=dict(os.environ, _STUDY_COMPLETE="bash_source"),
                         capture_output=True, text=True, timeout=60).stdout
    assert "_study_completion" in out
    assert '_STUDY_COMPLETE=bash_source study' in README
