"""The report of a pairwise (forced-choice) study: the preference scale with its intervals and
letters, the tests of every compared pair, and, for a follow-up round after a rating study,
the rating study's MOS table beside it and which design decided each neighbouring pair.

`report_dict(prefs, follow_up, quality)` is the JSON report (schema "study-pairwise-report");
the other formats are written from it, so all of them say the same thing."""

from __future__ import annotations

import html
import json

import numpy as np

from analysis.jsonsafe import clean
from analysis.pairwise import MODELS

SCHEMA = "study-pairwise-report"
FORMATS = ("md", "html", "csv", "tex", "json")


def _num(v, digits: int = 2) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "–"
    return f"{v:.{digits}f}"


def _p(v) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "–"
    return "< 0.001" if v < 0.001 else f"{v:.3f}"


def decided_pairs(prefs, follow_up: dict) -> list[dict]:
    """Per neighbouring pair in the rating study's order (among the methods judged here):
    whether the ratings decided it, whether the preferences did, and which design decides it.
    `follow_up`: the rating study's verdict (order best first, p_adjusted, alpha, mos)."""
    order = list(follow_up["order"])
    r_padj, alpha = follow_up["p_adjusted"], follow_up["alpha"]
    score = dict(zip(prefs.methods["method"], prefs.methods["score"]))

    def cell(frame, a, b):
        # A pair the pairwise round did not judge (the ratings had decided it) has no entry.
        return (float(frame.at[a, b]) if a in frame.index and b in frame.columns
                else float("nan"))

    out = []
    for a, b in zip(order[:-1], order[1:]):
        rp = cell(r_padj, a, b)
        pp = cell(prefs.pairwise["p_adjusted"], a, b)
        compared = cell(prefs.pairwise["compared"], a, b)
        by_ratings = bool(np.isfinite(rp) and rp < alpha)
        by_pairs = bool(np.isfinite(pp) and pp < prefs.settings["alpha"])
        decided = ("both" if by_ratings and by_pairs else "ratings" if by_ratings
                   else "pairwise" if by_pairs else "neither")
        prefers = (a if score[a] >= score[b] else b) if a in score and b in score else None
        out.append({"a": a, "b": b, "mos_a": follow_up["mos"].get(a),
                    "mos_b": follow_up["mos"].get(b), "ratings_p_adjusted": rp,
                    "decided_by_ratings": by_ratings,
                    "compared": int(compared) if np.isfinite(compared) else 0,
                    "share_a": cell(prefs.pairwise["share"], a, b), "pairwise_p_adjusted": pp,
                    "decided_by_pairwise": by_pairs, "pairwise_prefers": prefers,
                    "decided_by": decided, "alpha": alpha})
    return out


def report_dict(prefs, follow_up: dict | None = None, quality: dict | None = None) -> dict:
    """The JSON report. `quality`: what collect decided (counts and notes), if known."""
    methods = []
    padj = prefs.pairwise["p_adjusted"]
    for r in prefs.methods.to_dict("records"):
        m = r["method"]
        rec = {k: clean(v) for k, v in r.items()}
        rec["p_values"] = {o: clean(float(padj.at[m, o])) for o in padj.columns if o != m}
        if follow_up:
            rec["rating_mos"] = clean(follow_up["mos"].get(m))
            rec["rating_group"] = follow_up["groups"].get(m)
            rec["rating_rank"] = (follow_up["order"].index(m) + 1
                                  if m in follow_up["order"] else None)
        methods.append(rec)
    names = list(prefs.pairwise["estimate"].index)
    pairs = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            n = int(prefs.pairwise["compared"].at[a, b])
            if not n:
                continue
            pairs.append({"a": a, "b": b, "compared": n,
                          "share_a": clean(float(prefs.pairwise["share"].at[a, b])),
                          "estimate": clean(float(prefs.pairwise["estimate"].at[a, b])),
                          "se": clean(float(prefs.pairwise["se"].at[a, b])),
                          "p": clean(float(prefs.pairwise["p"].at[a, b])),
                          "p_adjusted": clean(float(prefs.pairwise["p_adjusted"].at[a, b]))})
    out = {"schema": SCHEMA, "schema_version": 1, "model": prefs.model,
           "model_name": MODELS[prefs.model], "settings": clean(prefs.settings),
           "counts": clean(prefs.counts), "dispersion": clean(prefs.dispersion),
           "methods": methods, "pairs": pairs, "adjacent": clean(prefs.adjacent),
           "notes": list(prefs.notes), "quality": clean(quality or {})}
    if follow_up:
        out["follow_up"] = {"rating_report": follow_up.get("path"),
                            "rating_order": follow_up["order"],
                            "decided": clean(decided_pairs(prefs, follow_up))}
    return out


def _decided_sentence(d: dict) -> str:
    said = {"both": "both designs separate them", "ratings": "the ratings decided it",
            "pairwise": "the pairwise round decided it",
            "neither": "neither design separates them"}[d["decided_by"]]
    return f"{d['a']} vs {d['b']}: {said}"


def render_markdown(rep: dict) -> str:
    c = rep["counts"]
    lines = [f"# Pairwise comparison: {rep['model_name']}", "",
             f"{c['judgements']} judgements of {c['methods']} methods on {c['images']} images by "
             f"{c['workers']} workers. Scores are on the {rep['model_name']} scale (0 = the "
             "mean method, higher = chosen more often as closer to the original); methods "
             "that share a letter are not significantly different "
             f"(α = {rep['settings']['alpha']}).", ""]
    follow = "follow_up" in rep
    head = ["Rank", "Method", "Score", "95% CI", "Group", "Wins", "Judgements"]
    if follow:
        head += ["Rating MOS", "Rating group"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in rep["methods"]:
        row = [str(m["rank"]), m["method"], _num(m["score"]),
               f"[{_num(m['ci95_low'])}, {_num(m['ci95_high'])}]", m["group"] or "",
               _num(m["wins"], 0), _num(m["judgements"], 0)]
        if follow:
            row += [_num(m.get("rating_mos")), m.get("rating_group") or ""]
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "## Compared pairs", "",
              "| Method | Against | Judgements | Method chosen | Difference | p (adj.) |",
              "|---|---|---|---|---|---|"]
    for p in rep["pairs"]:
        lines.append(f"| {p['a']} | {p['b']} | {p['compared']} | {_num(p['share_a'])} | "
                     f"{_num(p['estimate'])} ± {_num(p['se'])} | {_p(p['p_adjusted'])} |")
    if follow:
        lines += ["", "## Which design decided which pair", "",
                  f"Neighbours in the rating study's ranking "
                  f"({rep['follow_up']['rating_report']}); the pairwise round judged those the "
                  "ratings left undecided.", "",
                  "| Pair | Rating MOS | Ratings p (adj.) | Pairwise choices | Closer (pairwise) "
                  "| Pairwise p (adj.) | Decided by |", "|---|---|---|---|---|---|---|"]
        for d in rep["follow_up"]["decided"]:
            lines.append(f"| {d['a']} vs {d['b']} | {_num(d['mos_a'])} vs {_num(d['mos_b'])} | "
                         f"{_p(d['ratings_p_adjusted'])} | {d['compared']} | "
                         f"{d['pairwise_prefers'] or '–'} | {_p(d['pairwise_p_adjusted'])} | "
                         f"{d['decided_by']} |")
        lines += ["", "; ".join(_decided_sentence(d) for d in rep["follow_up"]["decided"]) + "."]
    lines += ["", "## Notes", ""] + [f"- {n}" for n in rep["notes"]]
    lines += [f"- {n}" for n in rep["quality"].get("notes", [])]
    return "\n".join(lines) + "\n"


def render_html(rep: dict) -> str:
    """One self-contained page: the Markdown's tables as HTML."""
    e = html.escape
    out = ["<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
           f"<title>Pairwise comparison: {e(rep['model_name'])}</title><style>"
           "body{font:15px/1.4 system-ui,sans-serif;max-width:1100px;margin:20px auto;padding:0 12px}"
           "table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px;"
           "text-align:left}th{background:#f3f4f6}</style></head><body>"]
    md = render_markdown(rep).splitlines()
    i = 0
    while i < len(md):
        line = md[i]
        if line.startswith("|"):
            rows = []
            while i < len(md) and md[i].startswith("|"):
                rows.append([c.strip() for c in md[i].strip("|").split("|")])
                i += 1
            body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>"
                           for r in rows[2:])
            out.append("<table><tr>" + "".join(f"<th>{e(c)}</th>" for c in rows[0]) + "</tr>"
                       + body + "</table>")
            continue
        if line.startswith("# "):
            out.append(f"<h1>{e(line[2:])}</h1>")
        elif line.startswith("## "):
            out.append(f"<h2>{e(line[3:])}</h2>")
        elif line.startswith("- "):
            out.append(f"<p>• {e(line[2:])}</p>")
        elif line:
            out.append(f"<p>{e(line)}</p>")
        i += 1
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def render_csv(rep: dict) -> str:
    import csv
    import io

    buf = io.StringIO()
    fields = ["rank", "method", "score", "se", "ci95_low", "ci95_high", "group", "wins",
              "judgements"] + (["rating_mos", "rating_group"] if "follow_up" in rep else [])
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(fields)
    for m in rep["methods"]:
        w.writerow(["" if m.get(f) is None else m.get(f) for f in fields])
    return buf.getvalue()


def render_tex(rep: dict) -> str:
    def esc(s: str) -> str:
        return str(s).replace("\\", r"\textbackslash{}").replace("_", r"\_").replace("&", r"\&")
    lines = [r"\begin{tabular}{rlrcl}", r"\hline",
             r"Rank & Method & Score & 95\% CI & Group \\", r"\hline"]
    for m in rep["methods"]:
        lines.append(f"{m['rank']} & {esc(m['method'])} & {_num(m['score'])} & "
                     f"[{_num(m['ci95_low'])}, {_num(m['ci95_high'])}] & {esc(m['group'] or '')} \\\\")
    lines += [r"\hline", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def render(rep: dict, fmt: str) -> dict[str, str]:
    """{file name: content} for one format; the file names are the rating report's."""
    if fmt == "json":
        return {"report.json": json.dumps(rep, indent=2, ensure_ascii=False,
                                          allow_nan=False) + "\n"}
    if fmt == "md":
        return {"report.md": render_markdown(rep)}
    if fmt == "html":
        return {"report.html": render_html(rep)}
    if fmt == "csv":
        return {"methods.csv": render_csv(rep)}
    if fmt == "tex":
        return {"report.tex": render_tex(rep)}
    raise ValueError(f"unknown report format {fmt!r}; choose from {', '.join(FORMATS)}")
