"""study.toml is read once into typed settings: typos are refused with a suggestion, every value
is range- or choice-checked, every message names the setting, and the commented template and the
typed sections stay in step."""

from __future__ import annotations

import dataclasses
import typing
from decimal import Decimal

import pytest

from study import config
from study.config import Settings, default_settings, parse_settings
from study.errors import StudyError
from study.studydir import Study
from test_crowd_support import set_config


def problems_of(raw: dict) -> str:
    with pytest.raises(StudyError) as info:
        parse_settings(raw, "study.toml")
    return str(info.value)


def test_template_and_typed_sections_hold_the_same_keys():
    template = config.defaults()
    hints = typing.get_type_hints(Settings)

    def keys(cls) -> set[str]:
        out = set()
        for f in dataclasses.fields(cls):
            tp = typing.get_type_hints(cls)[f.name]
            if dataclasses.is_dataclass(tp):
                out |= {f"{f.name}.{k}" for k in keys(tp)}
            elif f.default is dataclasses.MISSING:  # optional keys are left out on purpose
                out.add(f.name)
        return out

    def toml_keys(table: dict, prefix: str = "") -> set[str]:
        out = set()
        for k, v in table.items():
            out |= toml_keys(v, f"{prefix}{k}.") if isinstance(v, dict) else {prefix + k}
        return out

    for section, cls in hints.items():
        if section != "methods":
            assert keys(cls) == toml_keys(template[section]), section


def test_defaults_are_typed():
    s = default_settings()
    assert s.hit.reward == Decimal("0.50") and isinstance(s.budget.max_usd, Decimal)
    assert s.design.ratings_per_item == 5 and s.design_seed == s.study.seed
    assert s.report.formats == ("md", "html", "csv", "tex", "json")
    scale = s.scale.scale()
    assert (scale.low, scale.high, scale.higher_is_better) == (0, 4, False)
    assert scale.labels[0] == "almost identical" and scale.labels[-1] == "mostly different"
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.hit.reward = Decimal("5")  # type: ignore[misc]


@pytest.mark.parametrize("raw, says", [
    ({"design": {"ratings_per_itme": 12}}, "did you mean design.ratings_per_item?"),
    ({"hit": {"rewrd": "0.10"}}, "did you mean hit.reward?"),
    ({"quality": {"gold_min_acuracy": 0.5}}, "did you mean quality.gold_min_accuracy?"),
    ({"budgett": {"max_usd": 5}}, "did you mean [budget]?"),
    ({"report": {"correction": "bonferroni"}}, "report.correction = \"bonferroni\" is not one of"),
    ({"report": {"alpha": 7.0}}, "report.alpha = 7.0 is out of range"),
    ({"budget": {"max_usd": -5}}, "budget.max_usd = -5 is out of range"),
    ({"hit": {"reward": "abc"}}, "hit.reward should be an amount"),
    ({"hit": {"reward": "0.005"}}, "hit.reward = \"0.005\" has fractions of a cent"),
    ({"hit": {"question": "htlm"}}, "did you mean 'html'?"),
    ({"design": {"items_per_hit": 0}}, "design.items_per_hit = 0 is out of range"),
    ({"report": {"formats": ["md", "pdf"]}}, "report.formats = \"pdf\" is not one of"),
    ({"hit": {"requirements": {"min_aproval_rate": 90}}},
     "did you mean hit.requirements.min_approval_rate?"),
    ({"scale": {"labels": ["only"]}}, "scale.labels needs at least two levels"),
    ({"serve": {"port": 9000}}, "hosting.base_url points to port 8765"),
])
def test_bad_settings_are_refused_naming_the_setting(raw, says):
    assert says in problems_of(raw)


def test_every_problem_is_reported_at_once():
    text = problems_of({"design": {"ratings_per_itme": 12, "items_per_hit": "ten"},
                        "report": {"alpha": 2}})
    assert "3 problem(s)" in text
    for name in ("design.ratings_per_itme", "design.items_per_hit", "report.alpha"):
        assert name in text


def test_a_public_base_url_may_use_any_port():
    s = parse_settings({"hosting": {"base_url": "https://study.example.org"},
                        "serve": {"port": 9000}}, "study.toml")
    assert s.serve.port == 9000


def test_a_typo_in_study_toml_stops_every_command(study_dir, run_cli):
    set_config(study_dir, '[hit]\nrewrd = "5.00"\n')
    out = run_cli("status", cwd=study_dir, expect=2).output
    assert "unknown setting hit.rewrd" in out and "did you mean hit.reward?" in out


def test_init_gives_each_study_its_own_port(tmp_path, ebb_dataset, run_cli):
    ports = set()
    for name in ("a", "b", "c"):
        run_cli("init", tmp_path / name, "--dataset", ebb_dataset)
        s = Study.open(tmp_path / name).settings
        assert s.hosting.base_url == f"http://127.0.0.1:{s.serve.port}"
        ports.add(s.serve.port)
    assert len(ports) == 3


def test_no_module_but_the_loader_reads_study_toml():
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    readers = [str(p.relative_to(root)) for p in (root / "study").rglob("*.py")
               if "tomllib.load" in p.read_text() and p.name not in ("config.py", "studydir.py")]
    assert readers == []
    # studydir reads only the secrets file with tomllib.
    text = (root / "study" / "studydir.py").read_text()
    assert text.count("tomllib.load") == 1 and "SECRETS_NAME" in text
