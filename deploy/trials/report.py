"""Real trials set against the same engine's simulation evaluation: success rates with Wilson 95% intervals,
the sim-to-real gap and Fisher's exact test per task and instruction, episode durations; a JSON file, PNG
plots and a self-contained HTML page (plots and video thumbnails embedded).

    report = build_report(real_logs, sim_jsons)       # refuses trials of different engines unless allowed
    write_report(report, "report/")                   # report.json, success.png, durations.png, report.html
"""

from __future__ import annotations

import base64
import html
import json
import os
from collections import defaultdict
from pathlib import Path

import numpy as np

from core.stats import fisher_exact_p, wilson_interval
from deploy.trials.log import TrialError, TrialRecord, read_trials


def _rate(k: int, n: int) -> dict:
    lo, hi = wilson_interval(k, n)
    return {"successes": k, "n": n, "rate": k / n if n else None, "ci95": [lo, hi]}


def _durations(xs: list[float]) -> dict | None:
    if not xs:
        return None
    a = np.asarray(xs, float)
    return {"mean": float(a.mean()), "median": float(np.median(a)), "min": float(a.min()), "max": float(a.max()),
            "n": int(a.size)}


def load_sim(paths: list[str | Path]) -> tuple[list[dict], set[str]]:
    """Episodes (task, instruction, success, duration_s) and engine hashes of `pirl-eval-engine --out` files."""
    episodes, hashes = [], set()
    for p in paths:
        data = json.loads(Path(p).read_text())
        if "engine" not in data or "episodes" not in data["engine"]:
            raise TrialError(f"{p} is not a `pirl-eval-engine --out` result (no engine.episodes)")
        if data.get("engine_sha256"):
            hashes.add(data["engine_sha256"])
        hz = float(data.get("control_hz", 20.0))
        for e in data["engine"]["episodes"]:
            episodes.append({"task": e["task"], "instruction": e["instruction"], "success": bool(e["success"]),
                             "duration_s": e["length"] / hz})
    return episodes, hashes


def build_report(real_paths: list[str | Path], sim_paths: list[str | Path], allow_mixed_engines: bool = False
                 ) -> dict:
    real: list[TrialRecord] = [r for p in real_paths for r in read_trials(p)]
    if not real:
        raise TrialError(f"no trial records in {[str(p) for p in real_paths]}")
    sim, sim_hashes = load_sim(sim_paths) if sim_paths else ([], set())
    engines = {r.engine_sha256 for r in real} | sim_hashes
    if len(engines) > 1 and not allow_mixed_engines:
        raise TrialError(f"these trials and evaluations come from {len(engines)} different engines "
                         f"({', '.join(sorted(h[:12] for h in engines))}): a sim-to-real comparison needs the very "
                         "same engine; pass --allow-mixed-engines to pool them anyway")
    rows = []
    groups: dict[tuple[str, str], list] = defaultdict(list)
    for r in real:
        groups[(r.task, "")].append(r)
        groups[(r.task, r.instruction)].append(r)
    sim_groups: dict[tuple[str, str], list] = defaultdict(list)
    for e in sim:
        sim_groups[(e["task"], "")].append(e)
        sim_groups[(e["task"], e["instruction"])].append(e)
    for (task, instruction), recs in sorted(groups.items()):
        k = sum(r.outcome == "success" for r in recs)
        row = {"task": task, "instruction": instruction or "(all)", "real": _rate(k, len(recs)),
               "real_duration_s": _durations([r.duration_s for r in recs])}
        s = sim_groups.get((task, instruction), [])
        if s:
            ks = sum(e["success"] for e in s)
            row["sim"] = _rate(ks, len(s))
            row["sim_duration_s"] = _durations([e["duration_s"] for e in s])
            row["gap"] = row["sim"]["rate"] - row["real"]["rate"]
            row["fisher_p"] = fisher_exact_p(k, len(recs), ks, len(s))
        rows.append(row)
    videos = [r.video for r in real if r.video]
    return {"engines": sorted(engines), "mixed_engines": len(engines) > 1, "rows": rows,
            "real_logs": [str(p) for p in real_paths], "sim_results": [str(p) for p in sim_paths],
            "episodes": len(real), "videos": videos,
            "log_dirs": sorted({str(Path(p).parent) for p in real_paths})}


def plot(report: dict, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in report["rows"] if r["instruction"] == "(all)"]
    fig, ax = plt.subplots(figsize=(max(4.0, 1.6 * len(rows) + 2), 3.6))
    x = np.arange(len(rows))
    for off, who, color in ((-0.18, "real", "#d62728"), (0.18, "sim", "#1f77b4")):
        vals = [r[who]["rate"] if who in r else np.nan for r in rows]
        lo = [r[who]["rate"] - r[who]["ci95"][0] if who in r else 0 for r in rows]
        hi = [r[who]["ci95"][1] - r[who]["rate"] if who in r else 0 for r in rows]
        ax.bar(x + off, vals, 0.34, yerr=[lo, hi], capsize=4, color=color, label=who)
    ax.set_xticks(x, [r["task"] for r in rows])
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("success rate (95% Wilson CI)")
    ax.set_title("real vs sim, same engine")
    ax.legend()
    fig.tight_layout()
    paths = [out / "success.png"]
    fig.savefig(paths[0], dpi=110)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(5, 3.2))
    real_d = [r["real_duration_s"]["median"] for r in rows]
    ax.bar(np.arange(len(real_d)) - 0.18, real_d, 0.34, color="#d62728", label="real (median)")
    sim_d = [r["sim_duration_s"]["median"] if r.get("sim_duration_s") else np.nan for r in rows]
    ax.bar(np.arange(len(sim_d)) + 0.18, sim_d, 0.34, color="#1f77b4", label="sim (median)")
    ax.set_xticks(np.arange(len(rows)), [r["task"] for r in rows])
    ax.set_ylabel("episode duration (s)")
    ax.legend()
    fig.tight_layout()
    paths.append(out / "durations.png")
    fig.savefig(paths[1], dpi=110)
    plt.close(fig)
    return paths


def _thumbnail(video: Path) -> str | None:
    import cv2

    cap = cv2.VideoCapture(str(video))
    ok, frame = cap.read()
    cap.release()
    if not ok:
        return None
    h, w = frame.shape[:2]
    frame = cv2.resize(frame, (160, max(1, int(160 * h / w))), interpolation=cv2.INTER_AREA)
    return base64.b64encode(cv2.imencode(".jpg", frame)[1].tobytes()).decode()


def _pct(r: dict | None) -> str:
    if not r:
        return "-"
    return f"{r['rate']:.0%} [{r['ci95'][0]:.0%}, {r['ci95'][1]:.0%}] ({r['successes']}/{r['n']})"


def render_html(report: dict, images: list[Path], thumbs: list[tuple[str, str]]) -> str:
    head = ("<tr><th>task</th><th>instruction</th><th>real success</th><th>sim success</th><th>gap (sim - real)"
            "</th><th>Fisher p</th><th>real duration (s, median)</th></tr>")
    body = []
    for r in report["rows"]:
        gap = f"{r['gap']:+.0%}" if "gap" in r else "-"
        p = f"{r['fisher_p']:.3f}" if "fisher_p" in r else "-"
        dur = f"{r['real_duration_s']['median']:.1f}" if r["real_duration_s"] else "-"
        body.append(f"<tr><td>{html.escape(r['task'])}</td><td>{html.escape(r['instruction'])}</td>"
                    f"<td>{_pct(r['real'])}</td><td>{_pct(r.get('sim'))}</td><td>{gap}</td><td>{p}</td>"
                    f"<td>{dur}</td></tr>")
    imgs = "".join(f'<img alt="{p.stem}" src="data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}">'
                   for p in images)
    thumb_html = "".join(f'<figure><img src="data:image/jpeg;base64,{b}"><figcaption>{html.escape(name)}'
                         f"</figcaption></figure>" for name, b in thumbs)
    warn = "<p class=warn>Trials of more than one engine are pooled here.</p>" if report["mixed_engines"] else ""
    engines = ", ".join(h[:12] for h in report["engines"])
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>pirl trials: real vs sim</title>
<style>body{{font-family:sans-serif;margin:24px;color:#222}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}th{{background:#f3f3f3}}
img{{margin:8px 8px 0 0}}figure{{display:inline-block;margin:4px}}.warn{{color:#b00}}</style></head>
<body><h1>Real-world trials vs simulation</h1>
<p>Engine {html.escape(engines)}; {report['episodes']} real episodes. Intervals: Wilson 95%; p: Fisher's exact
test that real and sim success rates are equal.</p>{warn}
<table>{head}{''.join(body)}</table>
<h2>Plots</h2>{imgs}
<h2>Videos (first frames)</h2>{thumb_html or '<p>no videos recorded</p>'}
</body></html>"""


def write_report(report: dict, out: str | Path, max_thumbnails: int = 6) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    images = plot(report, out)
    thumbs = []
    for rel in report["videos"][:max_thumbnails]:
        for base in report["log_dirs"]:
            video = Path(base) / rel
            if video.exists() and (b := _thumbnail(video)):
                thumbs.append((rel, b))
                break
    for name, text in (("report.json", json.dumps(report, indent=2)), ("report.html",
                                                                       render_html(report, images, thumbs))):
        tmp = out / f".{name}"
        tmp.write_text(text)
        os.replace(tmp, out / name)
    return out / "report.html"


def upload_wandb(report: dict, out: Path, project: str = "pirl-trials") -> None:
    """Log the table and plots to Weights & Biases (offline when no API key is set)."""
    import wandb

    mode = "online" if os.environ.get("WANDB_API_KEY") else "offline"
    run = wandb.init(project=project, mode=mode, dir=str(out), job_type="trials-report",
                     config={"engines": report["engines"], "episodes": report["episodes"]})
    cols = ["task", "instruction", "real_rate", "real_n", "sim_rate", "sim_n", "gap", "fisher_p"]
    table = wandb.Table(columns=cols)
    for r in report["rows"]:
        table.add_data(r["task"], r["instruction"], r["real"]["rate"], r["real"]["n"],
                       r.get("sim", {}).get("rate"), r.get("sim", {}).get("n"), r.get("gap"), r.get("fisher_p"))
    run.log({"trials": table, "success_plot": wandb.Image(str(out / "success.png")),
             "duration_plot": wandb.Image(str(out / "durations.png"))})
    run.finish()
