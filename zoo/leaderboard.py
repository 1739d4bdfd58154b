"""The leaderboard: submissions (a request + the results file) in a dataset repo, and a static page.

``zoo submit MODEL`` resolves the model like `zoo.load` and writes, to the leaderboard dataset repo
(``zoo/leaderboard`` in the local hub, or on the HF Hub with ``--hub hf``)::

    requests/<org>/<name>_<revision>.json   model, revision, precision, weight_type, status, submitted_time, …
    results/<org>/<name>_<revision>.json    the model's results file (the format of `zoo eval`)

Results travel with the submission (they were computed by `zoo eval` before the push), so a request is
``FINISHED`` at once; a hosted evaluator would pick up ``PENDING`` requests instead.
``zoo leaderboard --html out.html`` renders every submission: a table sortable by any column (click a
header, or open ``out.html#sort=<column>``) and a plot of one metric per model.
"""

from __future__ import annotations

import base64
import html
import io
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from zoo.entries import ENTRIES
from zoo.hub import MANIFEST, LocalHub, upload_to_hf
from zoo.results import flatten_metrics, is_number, is_rankable, metric_info

LEADERBOARD_REPO = "zoo/leaderboard"
PLOT_METRIC = "chair_trigger/chair_i"  # the bias-trigger hallucination rate, when present


def _slug(model: str, revision: str) -> str:
    name = model.replace("/", "__")
    return f"{name}_{revision}"


def submission(model: str, precision: str = "float32", weight_type: str = "Original", revision: str | None = None,
               hub: LocalHub | None = None) -> tuple[dict, dict]:
    """The request and the results file of ``model`` (a zoo name, hub repo or folder)."""
    from zoo.zoo_model import load

    m = load(model, revision=revision, hub=hub)
    if m.results is None:
        raise ValueError(f"{model} has no results.json: evaluate it (zoo eval) and push the run before submitting")
    recipe = {}
    if (m.path / "recipe.yaml").is_file():
        import yaml

        recipe = yaml.safe_load((m.path / "recipe.yaml").read_text()) or {}
    if model in ENTRIES:  # an older alias and the entry's name are one model on the board
        model = ENTRIES.get(model).name
    request = {
        "model": model,
        "revision": m.revision or revision or "main",
        "precision": precision,
        "weight_type": weight_type,
        "status": "FINISHED",
        "submitted_time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "model_type": recipe.get("recipe_name", "unknown"),
        "params": sum(p.numel() for p in m.policy.parameters()),
        "suite": m.results.get("suite"),
        "source": m.source,
    }
    return request, m.results


def submit(model: str, hub: LocalHub | None = None, repo: str = LEADERBOARD_REPO, to_hf: bool = False, **kwargs) -> dict:
    """Write the request and results of ``model`` to the leaderboard dataset repo; returns the request."""
    hub = hub or LocalHub()
    request, results = submission(model, hub=hub, **kwargs)
    slug = _slug(model, request["revision"])
    files = {f"requests/{slug}.json": request, f"results/{slug}.json": results}
    message = f"submit {model}@{request['revision']}"

    def add_files(stage: Path) -> None:
        for rel, content in files.items():
            (stage / rel).parent.mkdir(parents=True, exist_ok=True)
            (stage / rel).write_text(json.dumps(content, indent=2, sort_keys=True) + "\n")

    if to_hf:
        with tempfile.TemporaryDirectory() as tmp:
            add_files(Path(tmp))
            upload_to_hf(tmp, repo, message, repo_type="dataset")
        return request

    def stage_submission(stage: Path) -> None:  # runs under the repo's lock: no submission is lost to a race
        if hub.exists(repo, kind="dataset"):
            shutil.copytree(hub.resolve(repo, kind="dataset").path, stage, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns(MANIFEST))
        add_files(stage)

    hub.push_with(stage_submission, repo, message, kind="dataset")
    return request


def read_submissions(folder: str | Path) -> list[dict]:
    """``[{"request": …, "results": …}]`` from a leaderboard repo folder (requests paired with results)."""
    folder = Path(folder)
    out = []
    for req in sorted((folder / "requests").glob("*.json")):
        res = folder / "results" / req.name
        if res.is_file():
            out.append({"request": json.loads(req.read_text()), "results": json.loads(res.read_text())})
    return out


def leaderboard_folder(hub: LocalHub | None = None, repo: str = LEADERBOARD_REPO, from_hf: bool = False) -> Path:
    if from_hf:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo, repo_type="dataset"))
    return (hub or LocalHub()).resolve(repo, kind="dataset").path


def _rows(submissions: list[dict]) -> tuple[list[str], list[dict[str, Any]]]:
    """Columns and one row per submission: every rate and score (None where not applicable); counts stay out."""
    columns: list[str] = []
    rows = []
    for sub in submissions:
        req, res = sub["request"], sub["results"]
        row = {"model": req["model"], "revision": req["revision"], "type": req.get("model_type", ""),
               "params": req.get("params", "")}
        for task, metrics in res["results"].items():
            for metric, value in flatten_metrics(metrics).items():
                info = metric_info(metric)
                if (is_number(value) or value is None) and info is not None and info.kind != "count":
                    key = f"{task}/{metric}"
                    row[key] = value
                    if key not in columns:
                        columns.append(key)
        rows.append(row)
    return ["model", "revision", "type", "params", *columns], rows


def rank(rows: list[dict[str, Any]], metric: str) -> list[dict[str, Any]]:
    """Rows best first by ``metric`` in its declared direction; a row without a value (not applicable, e.g.
    CHAIR of a model whose captions are mostly empty) ranks last, never best."""
    info = metric_info(metric)
    if info is None or info.better is None:
        raise ValueError(f"cannot rank by {metric!r}: it declares no direction (see zoo.results.METRICS)")
    sign = 1 if info.better == "lower" else -1
    scored = [r for r in rows if is_number(r.get(metric))]
    return sorted(scored, key=lambda r: sign * r[metric]) + [r for r in rows if not is_number(r.get(metric))]


def _plot(rows: list[dict], metric: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = [(r["model"], r[metric]) for r in rows if is_number(r.get(metric))]
    fig, ax = plt.subplots(figsize=(7, 0.5 + 0.45 * max(1, len(data))))
    ax.barh([m for m, _ in data], [v for _, v in data], color="#4c72b0")
    ax.invert_yaxis()
    info = metric_info(metric)
    if info is not None and info.kind == "rate":
        ax.set_xlim(0, 1)
    better = f" ({info.better} is better)" if info is not None and info.better else ""
    ax.set_xlabel(metric + better)
    ax.set_title(f"{metric} by model")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


_SCRIPT = """
function sortBy(col, dir) {
  const table = document.getElementById('board');
  const idx = [...table.tHead.rows[0].cells].findIndex(c => c.dataset.col === col);
  if (idx < 0) return;
  const rows = [...table.tBodies[0].rows];
  rows.sort((a, b) => {
    const x = a.cells[idx].dataset.v, y = b.cells[idx].dataset.v;
    if (x === '' || y === '') return (x === '') - (y === '');  // not applicable: always last
    const nx = parseFloat(x), ny = parseFloat(y);
    const c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
    return dir === 'desc' ? -c : c;
  });
  rows.forEach(r => table.tBodies[0].appendChild(r));
  table.dataset.sorted = col + ':' + dir;
}
document.querySelectorAll('#board th').forEach(th => th.addEventListener('click', () => {
  const [col, dir] = (document.getElementById('board').dataset.sorted || ':').split(':');
  sortBy(th.dataset.col, col === th.dataset.col && dir === 'asc' ? 'desc' : 'asc');
}));
const m = location.hash.match(/sort=([^&]+)(?:&dir=(asc|desc))?/);
if (m) sortBy(decodeURIComponent(m[1]), m[2] || 'asc');
"""


def render_html(submissions: list[dict], out: str | Path, plot_metric: str = PLOT_METRIC) -> Path:
    """A self-contained page: the sortable table of every submission and a bar plot of one metric."""
    columns, rows = _rows(submissions)
    if plot_metric not in columns or not is_rankable(plot_metric):
        plot_metric = next((c for c in columns[4:] if is_rankable(c)), None)
    if plot_metric:
        rows = rank(rows, plot_metric)  # the page opens ranked by the plotted metric, best first

    def cell(row, col):
        v = row.get(col)
        shown = "n/a" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)
        return f'<td data-v="{html.escape("" if v is None else str(v))}">{html.escape(shown)}</td>'

    def header(col):
        info = metric_info(col) if col not in columns[:4] else None
        arrow = f" {info.arrow}" if info is not None and info.arrow else ""
        return f'<th data-col="{html.escape(col)}">{html.escape(col + arrow)}</th>'

    head = "".join(header(c) for c in columns)
    body = "\n".join("<tr>" + "".join(cell(r, c) for c in columns) + "</tr>" for r in rows)
    plot = (f'<img id="plot" alt="{html.escape(plot_metric)} by model" src="data:image/png;base64,{_plot(rows, plot_metric)}">'
            if plot_metric and rows else "<p>No metric to plot.</p>")
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>zoo leaderboard</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}}
th,td{{border:1px solid #ccc;padding:4px 8px;text-align:right}} th{{cursor:pointer;background:#f3f3f3}}
td:first-child,th:first-child{{text-align:left}}</style></head>
<body><h1>zoo leaderboard</h1>
<p>{len(rows)} submission(s), ranked by {html.escape(plot_metric or "—")} (best first; n/a last). Click a column
header to sort; ↓ / ↑: lower / higher is better.</p>
<table id="board"><thead><tr>{head}</tr></thead><tbody>
{body}
</tbody></table>
<h2>{html.escape(plot_metric or "")}</h2>
{plot}
<script>{_SCRIPT}</script>
</body></html>
"""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page)
    return out
