"""`study status`: what each stage has done and what comes next."""

from __future__ import annotations

import importlib
import json
from typing import Any

import click

from study.studydir import Study, pass_study

STAGES = ("dataset", "render", "publish", "collect", "report")


def _optional(module: str, attr: str):
    """A stage's status function, when that stage is installed."""
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError):
        return None


def render_summary(study: Study) -> dict[str, Any]:
    methods = list(study.settings.methods)
    conn = study.connect()
    try:
        n_images = conn.execute("SELECT COUNT(*) FROM images").fetchone()[0]
        rows = conn.execute("SELECT method, status, COUNT(*) AS n FROM renders "
                            "GROUP BY method, status").fetchall()
    finally:
        conn.close()
    per = {m: {"done": 0, "failed": 0} for m in methods}
    for r in rows:
        per.setdefault(r["method"], {"done": 0, "failed": 0})[r["status"]] = r["n"]
    for m, counts in per.items():
        counts["missing"] = max(0, n_images - counts["done"] - counts["failed"])
    done = sum(c["done"] for m, c in per.items() if m in methods)
    return {"methods": per, "done": done, "expected": n_images * len(methods),
            "complete": bool(methods) and all(per[m]["done"] == n_images for m in methods)}


def gather(study: Study) -> dict[str, Any]:
    conn = study.connect()
    try:
        images = [dict(r, has_depth=bool(r["has_depth"])) for r in conn.execute(
            "SELECT image_id, width, height, CASE WHEN depth_path IS NULL THEN 0 ELSE 1 END AS has_depth "
            "FROM images ORDER BY position")]
    finally:
        conn.close()
    status: dict[str, Any] = {
        "study": study.name,
        "root": str(study.root),
        "dataset": {"path": study.settings.dataset.path, "images": images,
                    "count": len(images), "complete": bool(images)},
        "render": render_summary(study),
    }
    crowd_status = _optional("study.crowd.status", "crowd_status")
    crowd = crowd_status(study) if crowd_status else {}
    status["publish"] = crowd.get("publish", {"complete": False})
    status["collect"] = crowd.get("collect", {"complete": False})
    reports = sorted(p.name for p in study.reports_dir.glob("report.*")) \
        if study.reports_dir.is_dir() else []
    status["report"] = {"files": reports, "complete": bool(reports)}
    status["next"] = next_step(status)
    return status


NEXT_COMMAND = {
    "dataset": "study init DIR --dataset PATH",
    "render": "study render",
    "publish": "study publish --sandbox",
    "collect": "study collect",
    "report": "study report",
}


def next_step(status: dict[str, Any]) -> str | None:
    for stage in STAGES:
        if not status.get(stage, {}).get("complete"):
            if stage == "collect" and status[stage].get("waiting"):
                last = max(w["frees_by"] for w in status[stage]["waiting"])
                return (f"study collect, once workers submit the accepted assignments "
                        f"(abandoned ones free up by {last} at the latest)")
            return NEXT_COMMAND[stage]
    return None


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@pass_study
def status_command(study: Study, as_json: bool) -> None:
    """Show what each stage has done and what is next."""
    status = gather(study)
    if as_json:
        click.echo(json.dumps(status, indent=2, default=str))
        return
    click.echo(f"study {status['study']} ({status['root']})")
    ds = status["dataset"]
    click.echo(f"  dataset  {ds['count']} image(s): "
               + ", ".join(i["image_id"] for i in ds["images"]))
    r = status["render"]
    click.echo(f"  render   {r['done']}/{r['expected']} outputs done")
    for method, c in r["methods"].items():
        extra = f", {c['failed']} failed" if c["failed"] else ""
        click.echo(f"           {method:<16} {c['done']} done{extra}, {c['missing']} missing")
    for stage in ("publish", "collect"):
        info = status[stage]
        summary = info.get("summary") or ("done" if info.get("complete") else "not yet")
        click.echo(f"  {stage:<8} {summary}")
    from study.crowd.collect import waiting_line
    for w in status["collect"].get("waiting", []):
        click.echo(f"           waiting: {waiting_line(w)}")
    for line in status["collect"].get("allocation", []):   # what the next round will buy
        click.echo(f"           {line}")
    rep = status["report"]
    click.echo(f"  report   {', '.join(rep['files']) if rep['files'] else 'not yet'}")
    click.echo(f"next: {status['next']}" if status["next"] else "all stages done")
