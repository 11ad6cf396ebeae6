"""The simulated crowd against training, qualification and attention traps, over real HTTP:
careful workers pass the qualification and follow the traps' written instructions, spammers
mostly fail the qualification, and satisficers and spammers who rate miss the traps."""

from __future__ import annotations

from study.crowd.collect import collect
from study.simulate import simulate_crowd
from study.simulate.instructions import trap_instructions
from study.studydir import Study
from test_crowd_support import photo_dataset_study, set_config, study_service

QUIET = lambda _m: None  # noqa: E731


def kinds_of(results) -> dict[str, str]:
    return {w.worker_id: w.kind for r in results for w in r.workers}


def test_traps_catch_workers_who_do_not_look(tmp_path, run_cli):
    root = photo_dataset_study(tmp_path, ratings_per_item=6)
    set_config(root, "[quality]\ntraps_per_hit = 1\nblock_after_failures = 0\n")
    with study_service(root) as (url, _market):
        run_cli("publish", cwd=root)
        study = Study.open(root)
        told = trap_instructions(study)
        assert len(told) >= 1
        result = simulate_crowd(f"{url}/worker/sandbox", workers=14, seed=3,
                                mix={"careful": 0.5, "satisficer": 0.25, "spammer": 0.25},
                                progress=False, instructions=told, deadline_s=300)
        collect(study, echo=QUIET)
        kinds = kinds_of([result])
        conn = study.connect()
        rows = conn.execute(
            "SELECT a.worker_id, r.score, i.expected_min FROM ratings r JOIN assignments a "
            "USING (assignment_id) JOIN items i USING (item_id) WHERE i.kind = 'trap'"
        ).fetchall()
        conn.close()
        followed = {"careful": [], "other": []}
        for r in rows:
            group = "careful" if kinds[r["worker_id"]] == "careful" else "other"
            followed[group].append(r["score"] == r["expected_min"])
        assert followed["careful"] and all(followed["careful"])
        assert followed["other"] and sum(followed["other"]) <= len(followed["other"]) / 2


def test_careful_workers_qualify_and_spammers_do_not(tmp_path, run_cli):
    root = photo_dataset_study(tmp_path, ratings_per_item=2)
    set_config(root, "[qualification]\nenabled = true\n")
    with study_service(root) as (url, _market):
        run_cli("publish", cwd=root)
        study = Study.open(root)
        site = f"{url}/worker/sandbox"
        mix = {"careful": 0.5, "spammer": 0.5}
        first = simulate_crowd(site, workers=10, seed=5, mix=mix, progress=False,
                               deadline_s=300)
        collect(study, echo=QUIET)
        # The same crowd comes back: passers now find rating HITs, the others nothing.
        again = simulate_crowd(site, workers=10, seed=5, mix=mix, progress=False,
                               deadline_s=300)
        collect(study, echo=QUIET)
        kinds = kinds_of([first, again])
        conn = study.connect()
        tests = {r["worker_id"]: r["passed"] for r in conn.execute(
            "SELECT worker_id, passed FROM qualification_assignments")}
        raters = {r[0] for r in conn.execute("SELECT DISTINCT worker_id FROM assignments")}
        conn.close()
        careful = [w for w, k in kinds.items() if k == "careful"]
        spammers = [w for w, k in kinds.items() if k == "spammer"]
        assert all(tests.get(w) == 1 for w in careful)
        assert sum(tests.get(w, 0) for w in spammers) <= 1
        assert raters and raters <= {w for w, p in tests.items() if p}
