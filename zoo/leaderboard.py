"""The leaderboard: submissions (a request + the results file) in a dataset repo, and a static page.

``zoo submit MODEL`` resolves the model like `zoo.load` and writes, to the leaderboard dataset repo
(``zoo/leaderboard`` in the local hub, or on the HF Hub with ``--hub hf``)::

    requests/<org>/<name>_<revision>.json   model, revision, precision, weight_type, status, submitted_time, …
    results/<org>/<name>_<revision>.json    the model's results file (the format of `zoo eval`)

Results travel with the submission (they were computed by `zoo eval` before the push), so a request is
``FINISHED`` at once; a hosted evaluator would pick up ``PENDING`` requests instead.
``zoo leaderboard --html out.html`` renders every submission as one self-contained page (`render_html`):
the headline columns with their direction, sortable, a plot that follows the sort, every other metric in
each row's details.
"""

from __future__ import annotations

import html
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


# ---- the page ------------------------------------------------------------------------------------

# The headline columns, chosen: the measures of the alignment table (benchmarks/alignment.py), in the order a
# reader asks — does the model still name the absent partner (trigger CHAIR_i), does it still name what is there
# (trigger recall), how much it hallucinates on unbiased images (CHAIR_i), POPE adversarial F1, and yes/no
# accuracy on the bias trigger. The demo and hallucination suites produce all five; every other metric of a
# row sits in its details. A board whose suites produce none of them shows its first rankable metrics instead.
HEADLINE: tuple[tuple[str, str], ...] = (
    ("chair_trigger/chair_i", "trigger CHAIR_i"),
    ("chair_trigger/recall", "trigger recall"),
    ("chair/chair_i", "CHAIR_i"),
    ("pope_adversarial/f1", "POPE adv. F1"),
    ("pope_trigger/accuracy", "trigger yes/no acc."),
)
MAX_HEADLINE = len(HEADLINE)
NOT_EVALUATED = "—"  # the task is not in this submission's suite
NOT_APPLICABLE = "n/a"  # evaluated, but the metric does not apply (e.g. CHAIR of a model whose captions are empty)
# Column widths in CSS pixels; the table never gets narrower than their sum (the board scrolls inside its
# frame below that, the name column pinned) and fills the page above it.
WIDTHS = {"model": 280, "recipe": 96, "params": 76, "metric": 92, "suite": 80, "items": 96, "date": 100}  # ≤ 1,200 in all


def format_params(n: Any) -> str:
    """A parameter count as people say it: 850, 12.3K, 4.1M, 123M, 7.2B."""
    if not is_number(n):
        return NOT_EVALUATED
    for scale, unit in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= scale:
            value = n / scale
            return f"{value:.0f}{unit}" if value >= 100 else f"{value:.1f}{unit}"
    return str(int(n))


def format_metric(name: str, value: Any) -> str:
    """Rates with 3 decimals, scores with 2, counts as whole numbers; None is not applicable."""
    if value is None:
        return NOT_APPLICABLE
    if not is_number(value):
        return str(value)
    info = metric_info(name)
    kind = info.kind if info is not None else "rate"
    if kind == "count":
        return f"{value:,.0f}"
    return f"{value:.2f}" if kind == "score" else f"{value:.3f}"


def _entry(sub: dict) -> dict[str, Any]:
    """One submission as the page shows it."""
    req, res = sub["request"], sub["results"]
    metrics: dict[str, Any] = {}
    items: dict[str, int] = {}
    for task, values in res["results"].items():
        flat = flatten_metrics(values) if isinstance(values, dict) else {}
        if is_number(flat.get("n")):
            items[task] = int(flat["n"])
        for metric, value in flat.items():
            metrics[f"{task}/{metric}"] = value
    intervals = {f"{task}/{metric}": span for task, spans in (res.get("intervals") or {}).items()
                 for metric, span in flatten_metrics(spans).items()}
    config = res.get("config") or {}
    return {"model": req["model"], "revision": str(req.get("revision") or ""), "recipe": req.get("model_type") or "",
            "params": req.get("params"), "suite": res.get("suite") or req.get("suite") or "",
            "submitted": req.get("submitted_time") or "", "evaluated": res.get("created") or "",
            "limit": config.get("limit"), "items": items, "metrics": metrics, "intervals": intervals,
            "precision": req.get("precision", ""), "source": req.get("source", "")}


def _item_modes(entries: list[dict]) -> dict[str, int]:
    """Per task, the most common item count over the submissions (the larger one on a tie)."""
    counts: dict[str, dict[int, int]] = {}
    for e in entries:
        for task, n in e["items"].items():
            counts.setdefault(task, {}).setdefault(n, 0)
            counts[task][n] += 1
    return {task: max(by_n, key=lambda n: (by_n[n], n)) for task, by_n in counts.items()}


def item_status(entry: dict, modes: dict[str, int]) -> str:
    """``"partial"`` when a task had fewer items than most submissions' (e.g. ``--limit 20`` beside full
    runs), ``"differs"`` when more, ``""`` when every task matches: rows are comparable only when it is empty."""
    below = [t for t, n in entry["items"].items() if n < modes[t]]
    above = [t for t, n in entry["items"].items() if n > modes[t]]
    return "partial" if below else "differs" if above else ""


def headline_columns(entries: list[dict]) -> list[tuple[str, str]]:
    """The headline columns present on this board (see HEADLINE), else its first rankable metrics."""
    present = {name for e in entries for name in e["metrics"]}
    chosen = [(name, label) for name, label in HEADLINE if name in present]
    if chosen:
        return chosen
    seen: dict[str, None] = {}
    for e in entries:
        for name in e["metrics"]:
            if is_rankable(name):
                seen[name] = None
    return [(name, name) for name in list(seen)[:MAX_HEADLINE]]


def rank(rows: list[dict[str, Any]], metric: str) -> list[dict[str, Any]]:
    """Rows best first by ``metric`` in its declared direction; a row without a value (not applicable, e.g.
    CHAIR of a model whose captions are mostly empty) ranks last, never best."""
    info = metric_info(metric)
    if info is None or info.better is None:
        raise ValueError(f"cannot rank by {metric!r}: it declares no direction (see zoo.results.METRICS)")
    sign = 1 if info.better == "lower" else -1
    scored = [r for r in rows if is_number(r.get(metric))]
    return sorted(scored, key=lambda r: sign * r[metric]) + [r for r in rows if not is_number(r.get(metric))]


def _attr(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _header(col: str, label: str, kind: str, first: str, title: str, better: str = "", metric_kind: str = "") -> str:
    arrow = {"lower": " ↓", "higher": " ↑"}.get(better, "")
    classes = "name" if col == "model" else "text" if kind == "text" else ""
    return (f'<th scope="col" class="{classes}" data-col="{_attr(col)}" data-type="{kind}" data-first="{first}" '
            f'data-label="{_attr(label + arrow)}" data-better="{better}" data-kind="{metric_kind}" title="{_attr(title)}">'
            f'{html.escape(label)}{arrow} <span class="ind" aria-hidden="true"></span></th>')


def _details(entry: dict, modes: dict[str, int], colspan: int, row_id: str) -> str:
    """The collapsed row of every metric (with its interval), by task, and the submission's provenance."""
    tasks: dict[str, list[str]] = {}
    for name, value in entry["metrics"].items():
        task, metric = name.split("/", 1)
        info = metric_info(metric)
        arrow = f" {info.arrow}" if info is not None and info.arrow else ""
        span = entry["intervals"].get(name)
        ci = f' <span class="ci">[{span[0]:.3f}, {span[1]:.3f}]</span>' if span and all(map(is_number, span)) else ""
        tasks.setdefault(task, []).append(
            f"<dt>{html.escape(metric + arrow)}</dt><dd>{html.escape(format_metric(metric, value))}{ci}</dd>")
    blocks = []
    for task, lines in tasks.items():
        n = entry["items"].get(task)
        note = f"{n:,} items" if n is not None else ""
        if n is not None and n != modes.get(task, n):
            note += f" (most: {modes[task]:,})"
        blocks.append(f'<section><h3>{html.escape(task)} <small>{html.escape(note)}</small></h3>'
                      f'<dl>{"".join(lines)}</dl></section>')
    about = {"revision": entry["revision"], "recipe": entry["recipe"], "parameters": f"{entry['params']:,}"
             if is_number(entry["params"]) else NOT_EVALUATED, "precision": entry["precision"],
             "evaluated": entry["evaluated"], "submitted": entry["submitted"],
             "item limit": "none" if entry["limit"] is None else str(entry["limit"]), "source": entry["source"]}
    blocks.append("<section><h3>submission</h3><dl>" + "".join(
        f"<dt>{html.escape(k)}</dt><dd>{html.escape(str(v))}</dd>" for k, v in about.items() if v != "") + "</dl></section>")
    return (f'<tr class="details" id="{row_id}" hidden><td colspan="{colspan}"><div class="grid">'
            f'{"".join(blocks)}</div></td></tr>')


_STYLE = """
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;margin:16px;color:#1f2328}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:22px 0 6px} p{margin:4px 0}
.note{color:#57606a} .warn{color:#9a6700}
.frame{overflow-x:auto;max-width:100%;border:1px solid #d0d7de;border-radius:6px}
table{border-collapse:separate;border-spacing:0;width:100%;table-layout:fixed}
th,td{padding:6px 8px;border-bottom:1px solid #eaeef2;text-align:right;white-space:nowrap;overflow:hidden;
      text-overflow:ellipsis;font-variant-numeric:tabular-nums}
th{background:#f6f8fa;cursor:pointer;white-space:normal;vertical-align:bottom;font-weight:600;user-select:none}
th:hover{background:#eaeef2} th[aria-sort]{background:#ddf4ff}
.ind{color:#0969da;font-size:11px}
th.text,td.text{text-align:left}
.name{position:sticky;left:0;z-index:1;background:#fff;text-align:left;border-right:1px solid #d0d7de}
th.name{background:#f6f8fa;z-index:2}
.cell{display:flex;align-items:center;gap:6px;min-width:0}
.cell span{overflow:hidden;text-overflow:ellipsis;white-space:nowrap;min-width:0}
button.more{border:0;background:none;cursor:pointer;padding:0 2px;color:#57606a;font-size:12px;flex:none}
td.na{color:#8c959f}
.badge{display:inline-block;margin-left:4px;padding:0 5px;border-radius:9px;font-size:11px;background:#fff8c5;
       color:#9a6700;border:1px solid #d4a72c}
tr.details td{white-space:normal;text-align:left;background:#f6f8fa}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(285px,1fr));gap:4px 18px}
.grid h3{font-size:13px;margin:4px 0} .grid small{color:#57606a;font-weight:400}
.grid dl{display:grid;grid-template-columns:auto 1fr;gap:0 10px;margin:0} .grid dt{color:#57606a}
.grid dd{margin:0;font-variant-numeric:tabular-nums;white-space:nowrap} .ci{color:#8c959f;font-size:12px}
#plot svg{width:100%;max-width:960px;height:auto;display:block}
"""

_SCRIPT = """
const table = document.getElementById('board');
const heads = [...table.tHead.rows[0].cells];
let plotCol = table.dataset.plot;
function cellOf(body, col) {
  return [...body.rows[0].cells].find(c => c.dataset.col === col);
}
function valueOf(body, col) { const c = cellOf(body, col); return c ? c.dataset.v : ''; }
function sortBy(col, dir) {
  const th = heads.find(h => h.dataset.col === col);
  if (!th) return false;
  const numeric = th.dataset.type === 'num';
  const bodies = [...table.tBodies];
  bodies.sort((a, b) => {
    const x = valueOf(a, col), y = valueOf(b, col);
    if (x === '' || y === '') return (x === '') - (y === '');  // not evaluated / not applicable: always last
    const c = numeric ? parseFloat(x) - parseFloat(y) : x.localeCompare(y);
    return dir === 'desc' ? -c : c;
  });
  bodies.forEach(b => table.appendChild(b));
  heads.forEach(h => { h.removeAttribute('aria-sort'); h.querySelector('.ind').textContent = ''; });
  th.setAttribute('aria-sort', dir === 'asc' ? 'ascending' : 'descending');
  th.querySelector('.ind').textContent = dir === 'asc' ? '▲' : '▼';
  table.dataset.sorted = col + ':' + dir;
  if (numeric) plotCol = col;  // a text column reorders the bars and keeps the plotted metric
  drawPlot();
  return true;
}
function esc(t) { return String(t).replace(/[&<>"]/g, c => ({'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;'}[c])); }
function drawPlot() {
  const th = heads.find(h => h.dataset.col === plotCol);
  const box = document.getElementById('plot');
  if (!th) { box.innerHTML = '<p>No numeric column to plot.</p>'; return; }
  const rows = [...table.tBodies].map(b => ({name: b.dataset.name, v: valueOf(b, plotCol),
                                             shown: cellOf(b, plotCol).textContent.trim()}));
  const nums = rows.filter(r => r.v !== '').map(r => parseFloat(r.v));
  const rate = th.dataset.kind === 'rate';
  const max = rate ? 1 : Math.max(0, ...nums) || 1;
  const W = 960, left = 260, right = 70, top = 8, barH = 18, gap = 6, axisH = 34;
  const plotW = W - left - right, H = top + rows.length * (barH + gap) + axisH;
  const x = v => left + plotW * Math.max(0, v) / max;
  let svg = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(th.dataset.label)} by model">`;
  for (let t = 0; t <= 4; t++) {
    const v = max * t / 4, px = x(v);
    svg += `<line x1="${px}" x2="${px}" y1="${top}" y2="${H - axisH + 4}" stroke="#eaeef2"/>`;
    svg += `<text x="${px}" y="${H - axisH + 18}" text-anchor="middle" font-size="12" fill="#57606a">${rate ? v.toFixed(2) : +v.toPrecision(3)}</text>`;
  }
  rows.forEach((r, i) => {
    const y = top + i * (barH + gap), label = r.name.length > 34 ? r.name.slice(0, 33) + '…' : r.name;
    svg += `<g class="bar" data-name="${esc(r.name)}"><title>${esc(r.name)}: ${esc(r.shown)}</title>`;
    svg += `<text x="${left - 8}" y="${y + barH - 5}" text-anchor="end" font-size="12" fill="#1f2328">${esc(label)}</text>`;
    if (r.v !== '') {
      const v = parseFloat(r.v);
      svg += `<rect x="${left}" y="${y}" width="${x(v) - left}" height="${barH}" fill="#4c72b0"/>`;
      svg += `<text x="${x(v) + 5}" y="${y + barH - 5}" font-size="12" fill="#1f2328">${esc(r.shown)}</text>`;
    } else {
      svg += `<text x="${left + 5}" y="${y + barH - 5}" font-size="12" fill="#8c959f">${esc(r.shown)}</text>`;
    }
    svg += '</g>';
  });
  const better = th.dataset.better ? ` (${th.dataset.better} is better)` : '';
  svg += `<text x="${left + plotW / 2}" y="${H - 2}" text-anchor="middle" font-size="12" fill="#57606a">${esc(th.dataset.label)}${better}</text></svg>`;
  box.innerHTML = svg;
  box.dataset.col = plotCol;
  document.getElementById('plot-title').textContent = th.dataset.label + ' by model, in the table\\'s order';
}
heads.forEach(th => th.addEventListener('click', () => {
  const [col, dir] = (table.dataset.sorted || ':').split(':');
  const next = col === th.dataset.col ? (dir === 'asc' ? 'desc' : 'asc') : th.dataset.first;
  sortBy(th.dataset.col, next);
  history.replaceState(null, '', '#sort=' + encodeURIComponent(th.dataset.col) + '&dir=' + next);
}));
table.querySelectorAll('button.more').forEach(b => b.addEventListener('click', e => {
  e.stopPropagation();
  const details = document.getElementById(b.getAttribute('aria-controls'));
  const open = b.getAttribute('aria-expanded') !== 'true';
  details.hidden = !open;
  b.setAttribute('aria-expanded', String(open));
  b.textContent = open ? '▾' : '▸';
}));
const m = location.hash.match(/sort=([^&]+)(?:&dir=(asc|desc))?/);
const [col0, dir0] = table.dataset.sorted.split(':');
const wanted = m ? decodeURIComponent(m[1]) : col0;
const wantedTh = heads.find(h => h.dataset.col === wanted);
sortBy(wantedTh ? wanted : col0, m && wantedTh ? (m[2] || wantedTh.dataset.first) : dir0);
"""


def render_html(submissions: list[dict], out: str | Path, sort: str | None = None) -> Path:
    """A self-contained page (inline CSS, JS and SVG; works offline) of every submission.

    The table holds the headline columns (`HEADLINE`, each with its direction arrow) beside the model
    (pinned, never wrapping), recipe, parameters, suite, items and date; every other metric is in the row's
    collapsed details (▸). Headers sort on click (best first, then reversed; ▲/▼ marks the sorted column;
    ``out.html#sort=<column>&dir=asc|desc`` opens sorted) and the bar plot below follows the sorted column
    and order. Rows evaluated on fewer items than most are marked *partial*. The page opens ranked by
    ``sort`` (default: the first headline column), best first.
    """
    entries = [_entry(s) for s in submissions]
    modes = _item_modes(entries)
    headline = headline_columns(entries)
    names = [e["model"] for e in entries]
    for e in entries:  # one model at two revisions: tell the rows apart
        e["label"] = f"{e['model']}@{e['revision'][:7]}" if names.count(e["model"]) > 1 and e["revision"] else e["model"]
    known = [name for name, _ in headline]
    if sort is not None and sort not in known:
        raise ValueError(f"cannot open the leaderboard sorted by {sort!r}: choose one of {', '.join(known) or 'none'}")
    sort = sort or (known[0] if known else None)
    if sort is not None and metric_info(sort) is not None and metric_info(sort).better is not None:
        order = rank([{**e["metrics"], "_entry": e} for e in entries], sort)
        entries = [r["_entry"] for r in order]

    headers = [_header("model", "model", "text", "asc", "the submitted model (name@revision in the tooltip)"),
               _header("recipe", "recipe", "text", "asc", "the recipe that trained it (recipe.yaml)"),
               _header("params", "params", "num", "desc", "parameters")]
    for name, label in headline:
        info = metric_info(name)
        better, kind = (info.better or "", info.kind) if info is not None else ("", "")
        first = "asc" if better == "lower" else "desc"
        headers.append(_header(name, label, "num", first, f"{name}: {better} is better" if better else name, better, kind))
    headers += [_header("suite", "suite", "text", "asc", "the benchmark suite evaluated"),
                _header("items", "items", "num", "desc", "items evaluated, over all tasks (per task in the tooltip); "
                        "partial: fewer than most submissions"),
                _header("date", "date", "text", "desc", "submission date (UTC)")]
    widths = [WIDTHS["model"], WIDTHS["recipe"], WIDTHS["params"], *[WIDTHS["metric"]] * len(headline),
              WIDTHS["suite"], WIDTHS["items"], WIDTHS["date"]]
    colgroup = "".join(f'<col style="width:{w}px">' for w in widths)

    bodies = []
    for i, e in enumerate(entries):
        row_id = f"details-{i}"
        name_cell = (f'<td class="name" data-col="model" data-v="{_attr(e["label"])}"><div class="cell">'
                     f'<button class="more" type="button" aria-expanded="false" aria-controls="{row_id}" '
                     f'title="all metrics of this submission">▸</button>'
                     f'<span title="{_attr(e["model"] + "@" + e["revision"])}">{html.escape(e["label"])}</span></div></td>')
        recipe_cell = (f'<td class="text" data-col="recipe" data-v="{_attr(e["recipe"])}" title="{_attr(e["recipe"])}">'
                       f'{html.escape(e["recipe"] or NOT_EVALUATED)}</td>')
        params = e["params"] if is_number(e["params"]) else None
        params_cell = (f'<td data-col="params" data-v="{_attr(params)}" title="{_attr(f"{params:,} parameters" if params else "")}">'
                       f'{html.escape(format_params(params))}</td>')
        cells = [name_cell, recipe_cell, params_cell]
        for name, _ in headline:
            if name not in e["metrics"]:
                cells.append(f'<td class="na" data-col="{_attr(name)}" data-v="" title="not evaluated: '
                             f'{_attr(name.split("/")[0])} is not in the {_attr(e["suite"])} suite">{NOT_EVALUATED}</td>')
                continue
            value = e["metrics"][name]
            span = e["intervals"].get(name)
            known_span = span and len(span) == 2 and all(map(is_number, span))
            tip = f"{name} = {value}" + (f", 95 % interval [{span[0]:.3f}, {span[1]:.3f}]" if known_span else "")
            if value is None:
                tip = f"{name}: not applicable (e.g. CHAIR when most captions name nothing)"
            cells.append(f'<td class="{"na" if value is None else ""}" data-col="{_attr(name)}" '
                         f'data-v="{_attr(value if is_number(value) else "")}" title="{_attr(tip)}">'
                         f'{html.escape(format_metric(name, value))}</td>')
        status = item_status(e, modes)
        total = sum(e["items"].values())
        per_task = ", ".join(f"{t} {n:,}" + (f" (most: {modes[t]:,})" if n != modes[t] else "") for t, n in e["items"].items())
        limit = f"; --limit {e['limit']}" if e["limit"] is not None else ""
        badge = f'<span class="badge">{status}</span>' if status else ""
        cells.append(f'<td class="text" data-col="suite" data-v="{_attr(e["suite"])}" title="{_attr(e["suite"])}">'
                     f'{html.escape(e["suite"])}</td>')
        cells.append(f'<td data-col="items" data-v="{total if e["items"] else ""}" data-status="{status}" '
                     f'title="{_attr(per_task + limit)}">{f"{total:,}" if e["items"] else NOT_EVALUATED}{badge}</td>')
        date = e["submitted"] or e["evaluated"]
        cells.append(f'<td class="text" data-col="date" data-v="{_attr(date)}" '
                     f'title="submitted {_attr(e["submitted"])}; evaluated {_attr(e["evaluated"])}">'
                     f'{html.escape(date[:10] or NOT_EVALUATED)}</td>')
        bodies.append(f'<tbody data-name="{_attr(e["label"])}"><tr class="entry">{"".join(cells)}</tr>\n'
                      f'{_details(e, modes, len(headers), row_id)}</tbody>')

    partial = sum(item_status(e, modes) != "" for e in entries)
    notes = []
    if partial:
        notes.append(f'<p class="warn">{partial} of {len(entries)} submission(s) were evaluated on a different '
                     "number of items than most (marked <b>partial</b> when fewer; per-task counts in the items "
                     "tooltip): their numbers are not comparable with the others.</p>")
    suites = sorted({e["suite"] for e in entries})
    if len(suites) > 1:
        notes.append(f'<p class="warn">Suites differ ({html.escape(", ".join(suites))}): "{NOT_EVALUATED}" marks a '
                     "task a row's suite does not run.</p>")
    sorted_attr = f"{sort}:{'asc' if metric_info(sort) and metric_info(sort).better == 'lower' else 'desc'}" if sort else "model:asc"
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>zoo leaderboard</title><style>{_STYLE}</style></head>
<body><h1>zoo leaderboard</h1>
<p class="note">{len(entries)} submission(s). Click a column header to sort (best first, click again to reverse;
▲ / ▼ marks the sorted column); ↓ / ↑: lower / higher is better; {NOT_APPLICABLE}: not applicable, always last;
▸: every metric of the row, with its 95 % interval.</p>
{"".join(notes)}
<div class="frame"><table id="board" style="min-width:{sum(widths)}px" data-sorted="{_attr(sorted_attr)}" data-plot="{_attr(sort or "")}">
<colgroup>{colgroup}</colgroup>
<thead><tr>{"".join(headers)}</tr></thead>
{"".join(bodies)}
</table></div>
<h2 id="plot-title">{html.escape(dict(headline).get(sort, "") if sort else "")}</h2>
<figure id="plot" style="margin:0"><noscript>The plot is drawn by the page's script.</noscript></figure>
<script>{_SCRIPT}</script>
</body></html>
"""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out
