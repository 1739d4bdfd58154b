"""Leaderboard: submissions to a dataset repo, and the static page opened in headless Chromium."""

from __future__ import annotations

import html
import json
import random
import re
import shutil
import struct
import subprocess

import pytest

from tests.conftest import build_tiny_policy
from zoo.hub import LocalHub, push_run
from zoo.leaderboard import HEADLINE, format_params, read_submissions, render_html
from zoo.results import flatten_metrics, metric_info

WIDTH, HEIGHT = 1280, 900


def _run(root, name, trigger_chair):
    run = root / name
    build_tiny_policy().backbone.save_pretrained(run / "model")
    (run / "recipe.yaml").write_text(f"recipe_name: {name}\n")
    results = {"model": name, "suite": "demo", "created": "2026-11-27T00:00:00Z", "config": {},
               "results": {"chair_trigger": {"chair_i": trigger_chair, "recall": 0.9, "n": 300}}}
    (run / "results.json").write_text(json.dumps(results))
    return run


@pytest.fixture()
def board(tmp_path, monkeypatch, capsys):
    from zoo.cli import main

    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home"))
    hub = LocalHub()
    push_run(_run(tmp_path, "sft", 0.351), "zoo/shapes-vlm", hub)
    push_run(_run(tmp_path, "silent", None), "zoo/silent", hub)  # captions mostly empty: CHAIR not applicable
    push_run(_run(tmp_path, "dpo", 0.072), "zoo/shapes-vlm-dpo", hub)
    assert main(["submit", "shapes-vlm"]) == 0
    assert main(["submit", "zoo/silent"]) == 0
    assert main(["submit", "zoo/shapes-vlm-dpo"]) == 0
    out = tmp_path / "board.html"
    assert main(["leaderboard", "--html", str(out)]) == 0
    capsys.readouterr()
    return hub, out


def test_submissions_land_in_the_dataset_repo(board):
    hub, _ = board
    rev = hub.resolve("zoo/leaderboard", kind="dataset")
    assert len(hub.revisions("zoo/leaderboard", kind="dataset")) == 3  # one revision per submission
    requests = sorted((rev.path / "requests").glob("*.json"))
    assert [p.name for p in requests] == [f"shapes-vlm_{hub.main('zoo/shapes-vlm')}.json",
                                          f"zoo__shapes-vlm-dpo_{hub.main('zoo/shapes-vlm-dpo')}.json",
                                          f"zoo__silent_{hub.main('zoo/silent')}.json"]
    request = json.loads(requests[0].read_text())
    assert {"model", "revision", "precision", "weight_type", "status", "submitted_time"} <= set(request)
    assert request["status"] == "FINISHED" and request["model_type"] == "sft"
    assert json.loads((rev.path / "results" / requests[0].name).read_text())["results"]["chair_trigger"]["chair_i"] == 0.351


def test_submitting_a_model_without_results_is_refused(tmp_path, monkeypatch, capsys):
    from zoo.cli import main

    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home"))
    run = _run(tmp_path, "bare", 0.2)
    (run / "results.json").unlink()
    push_run(run, "me/bare", LocalHub())
    assert main(["submit", "me/bare"]) == 2
    assert "has no results.json" in capsys.readouterr().err


def test_submit_takes_an_entry_name_or_its_older_alias(tmp_path, monkeypatch, capsys):
    from zoo.cli import main

    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home"))
    push_run(_run(tmp_path, "dpo", 0.072), "zoo/shapes-vlm-dpo", LocalHub())  # the entry's repo keeps its old name
    assert main(["submit", "shapes-vlm.dpo"]) == 0
    assert main(["submit", "shapes-vlm-dpo"]) == 0
    assert capsys.readouterr().out.count("submitted shapes-vlm") == 2
    from zoo.leaderboard import leaderboard_folder, read_submissions

    rows = read_submissions(leaderboard_folder(LocalHub()))
    assert {r["request"]["model"] for r in rows} == {"shapes-vlm.dpo"}  # one model, whichever name was typed


def test_rank_follows_each_metric_direction_and_puts_not_applicable_last():
    from zoo.leaderboard import rank

    rows = [{"model": "a", "t/chair_i": 0.3, "t/recall": 0.9}, {"model": "silent", "t/chair_i": None, "t/recall": 0.0},
            {"model": "b", "t/chair_i": 0.1, "t/recall": 0.8}]
    assert [r["model"] for r in rank(rows, "t/chair_i")] == ["b", "a", "silent"]
    assert [r["model"] for r in rank(rows, "t/recall")] == ["a", "b", "silent"]
    with pytest.raises(ValueError, match="no direction"):
        rank(rows, "t/yes_ratio")


# ---- the page ------------------------------------------------------------------------------------

NAMES = ["shapes-vlm", "shapes-vlm.dpo", "me/shapes-vlm-bdhs-noise-seed2", "me/shapes-vlm-online-bdhs",
         "me/a-very-long-organisation-name/shapes-vlm-dpo-beta0.25-nll3-lr5e-5-seed-1", "zoo/silent", "me/ipo", "me/lipo"]
PARTIAL = {2, 6}  # evaluated with --limit 20 where the others ran 40 items per task
LONG = 4


@pytest.fixture(scope="module")
def demo_metrics(tiny_policy, tiny_world):
    """The metric set the demo suite really produces (task → metric → value), from a run on the tiny world."""
    from benchmarks.suites import run_suite

    results = run_suite(tiny_policy, "demo", "tiny", source={"world": str(tiny_world)}, n_boot=10, progress=False)
    return results["results"]


@pytest.fixture()
def realistic_board(tmp_path, demo_metrics):
    """8 submissions as `zoo submit` writes them, each with the demo suite's full metric set, written to a
    leaderboard folder; two evaluated on 20 items per task where the others used 40; one with CHAIR n/a."""
    rng = random.Random(0)
    folder = tmp_path / "leaderboard"
    for i, name in enumerate(NAMES):
        results, intervals = {}, {}
        for task, metrics in demo_metrics.items():
            results[task], intervals[task] = {}, {}
            for metric in flatten_metrics(metrics):
                if metric == "n":  # the task's items
                    results[task][metric] = 20 if i in PARTIAL else 40
                elif metric_info(metric).kind == "count":
                    results[task][metric] = rng.randrange(0, 90)
                else:
                    v = round(rng.uniform(0.05, 0.95), 4)
                    results[task][metric] = v
                    intervals[task][metric] = [max(0.0, v - 0.04), min(1.0, v + 0.04)]
        if name == "zoo/silent":
            results["chair_trigger"]["chair_i"] = None  # most captions empty: not applicable, ranked last
            del intervals["chair_trigger"]["chair_i"]
        revision = f"{i:07x}" + "0" * 33
        request = {"model": name, "revision": revision, "precision": "float32", "weight_type": "Original",
                   "status": "FINISHED", "submitted_time": f"2026-11-{20 + i}T10:00:00Z",
                   "model_type": ["sft", "dpo", "bdhs", "online_bdhs", "dpo", "sft", "ipo", "lipo"][i],
                   "params": 3_412_345 + 1000 * i, "suite": "demo", "source": "local-hub"}
        res = {"model": name, "revision": revision, "suite": "demo", "created": f"2026-11-{20 + i}T09:00:00Z",
               "config": {"limit": 20 if i in PARTIAL else 40, "seed": 0}, "results": results, "intervals": intervals}
        slug = name.replace("/", "__") + "_" + revision
        for kind, content in (("requests", request), ("results", res)):
            (folder / kind).mkdir(parents=True, exist_ok=True)
            (folder / kind / f"{slug}.json").write_text(json.dumps(content))
    return read_submissions(folder)


def _cells(page: str, col: str) -> list[str]:
    return [html.unescape(re.sub("<[^>]+>", "", m)) for m in re.findall(rf'<td[^>]*data-col="{re.escape(col)}"[^>]*>(.*?)</td>', page)]


def test_page_holds_headline_columns_and_every_metric_in_the_details(realistic_board, tmp_path):
    page = render_html(realistic_board, tmp_path / "board.html").read_text()
    headers = re.findall(r'<th [^>]*data-col="([^"]+)"', page)
    assert headers == ["model", "recipe", "params", *[name for name, _ in HEADLINE], "suite", "items", "date"]
    for name, label in HEADLINE:  # each with its direction arrow
        assert f"{label} {metric_info(name).arrow}" in page
    # opens ranked by the first headline column, best (lowest) first, n/a last
    values = _cells(page, "chair_trigger/chair_i")
    numbers = [float(v) for v in values[:-1]]
    assert numbers == sorted(numbers) and values[-1] == "n/a" and all(re.fullmatch(r"0\.\d{3}", v) for v in values[:-1])
    assert _cells(page, "params")[0] == format_params(3_412_345 + 1000 * int(_order(page)[0]))
    assert format_params(3_412_345) == "3.4M" and format_params(123_456_789) == "123M" and format_params(850) == "850"
    # the 20-item rows, and only they, are marked partial
    partial = {m for m, status in zip(_order(page), re.findall(r'data-col="items"[^>]*data-status="(\w*)"', page)) if status}
    assert partial == {str(i) for i in PARTIAL}
    assert "2 of 8 submission(s) were evaluated on a different number of items" in page
    # every other metric (counts too) is in the row's collapsed details, not in a column
    details = re.findall(r'<tr class="details" id="details-\d+" hidden>(.*?)</tr>', page, re.DOTALL)
    assert len(details) == len(NAMES)
    for task, metrics in realistic_board[0]["results"]["results"].items():
        assert all(f"<h3>{task} " in d for d in details)
        for metric in metrics:
            assert all(f"<dt>{metric}" in d for d in details), (task, metric)
    # self-contained: nothing fetched from anywhere
    assert not re.search(r'(src|href)\s*=\s*"(https?:)?//', page) and "<link" not in page and "<script src" not in page


def _order(page: str) -> list[str]:
    """The rows' original indices (from their revision) in the page's order."""
    return [str(int(rev[:7], 16)) for rev in re.findall(r'<span title="[^"]*@([0-9a-f]{40})"', page)]


# Run inside the page after its own script: measures the layout at the window's size, then sorts by clicking
# headers and opens a row's details, recording what the table and the plot show after each step.
MEASURE = r"""
<script>
(() => {
  const px = r => ({left: r.left, right: r.right, top: r.top, bottom: r.bottom, width: r.width, height: r.height});
  const table = document.getElementById('board');
  const heads = [...table.tHead.rows[0].cells];
  const frame = document.querySelector('.frame');
  const state = () => ({
    order: [...table.tBodies].map(b => b.dataset.name),
    sorted: table.dataset.sorted,
    indicators: heads.filter(h => h.querySelector('.ind').textContent).map(h => [h.dataset.col, h.querySelector('.ind').textContent, h.getAttribute('aria-sort')]),
    plot: document.getElementById('plot').dataset.col,
    plotTitle: document.getElementById('plot-title').textContent,
    bars: [...document.querySelectorAll('#plot g.bar')].map(g => g.dataset.name),
    barWidths: [...document.querySelectorAll('#plot g.bar')].map(g => { const r = g.querySelector('rect'); return r ? parseFloat(r.getAttribute('width')) : null; }),
  });
  const out = {
    innerWidth, innerHeight,
    scrollWidth: document.scrollingElement.scrollWidth,
    frame: {scrollWidth: frame.scrollWidth, clientWidth: frame.clientWidth},
    table: px(table.getBoundingClientRect()),
    headers: heads.map(h => ({col: h.dataset.col, text: h.textContent.trim(), rect: px(h.getBoundingClientRect()),
                              clipped: h.scrollWidth > h.clientWidth})),
    names: [...table.querySelectorAll('td.name span')].map(s => ({text: s.textContent, title: s.title,
             rect: px(s.getBoundingClientRect()), truncated: s.scrollWidth > s.clientWidth})),
    clippedCells: [...table.querySelectorAll('tr.entry td:not(.name):not([data-col="recipe"])')]
                    .filter(td => td.scrollWidth > td.clientWidth).map(td => td.dataset.col + ': ' + td.textContent),
    plotRect: px(document.querySelector('#plot svg').getBoundingClientRect()),
    initial: state(),
  };
  const click = col => { const h = heads.find(h => h.dataset.col === col); if (!h) return null; h.click(); return state(); };
  out.f1 = click('pope_adversarial/f1');
  out.f1again = click('pope_adversarial/f1');
  out.byName = click('model');
  const button = table.tBodies[0].querySelector('button.more');
  const details = document.getElementById(button.getAttribute('aria-controls'));
  const wasHidden = details.hidden;
  button.click();
  out.details = {wasHidden, hidden: details.hidden, height: details.getBoundingClientRect().height, text: details.textContent,
                 scrollWidth: document.scrollingElement.scrollWidth};
  const pre = document.createElement('pre');
  pre.id = 'measured';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
</script>
"""


def chromium() -> str:
    """The headless browser; its absence fails the test (never a skip), naming the package that provides it."""
    found = next((b for b in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser"),
                              shutil.which("google-chrome")) if b and shutil.which(b)), None)
    if found is None:
        pytest.fail("no Chromium found for the leaderboard page test: install Debian's `chromium` package "
                    "(sudo apt-get install chromium); .ci/run and `make test` install it when they can")
    return found


def _browser(tmp_path, *args, timeout=120) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
             f"--window-size={WIDTH},{HEIGHT}"]
    out = subprocess.run([chromium(), *flags, *args], capture_output=True, text=True, timeout=timeout, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    return out


def _measured(tmp_path, page, fragment="") -> dict:
    probe = page.with_name("probe.html")
    probe.write_text(page.read_text().replace("</body>", MEASURE + "</body>"))
    doc = _browser(tmp_path, "--virtual-time-budget=3000", "--dump-dom", probe.resolve().as_uri() + fragment).stdout
    found = re.search(r'<pre id="measured">(.*?)</pre>', doc, re.DOTALL)
    assert found, "the page's script or the probe failed: " + doc[-1500:]
    return json.loads(html.unescape(found.group(1)))


def test_page_at_1280_in_headless_chromium(realistic_board, tmp_path):
    page = render_html(realistic_board, tmp_path / "board.html")
    m = _measured(tmp_path, page)
    assert m["innerWidth"] == WIDTH  # (--dump-dom's viewport is shorter than the window: its height is not checked)
    # no horizontal scrolling: not the page, not the table's frame; the table ends inside the window
    assert m["scrollWidth"] <= WIDTH and m["frame"]["scrollWidth"] <= m["frame"]["clientWidth"]
    assert m["table"]["right"] <= WIDTH and m["plotRect"]["right"] <= WIDTH
    # the headline headers are on screen, unclipped, each with its arrow
    headers = {h["col"]: h for h in m["headers"]}
    for name, label in HEADLINE:
        h = headers[name]
        assert 0 <= h["rect"]["left"] and h["rect"]["right"] <= WIDTH and h["rect"]["bottom"] <= m["innerHeight"], h
        assert h["text"].startswith(f"{label} {metric_info(name).arrow}") and not h["clipped"], h
    assert not [h for h in m["headers"] if h["clipped"]]
    assert not m["clippedCells"]  # numbers, suite, items and dates all fit their columns
    # every name on screen, on one line; a long one ends in an ellipsis with the full name in its tooltip
    names = {n["text"]: n for n in m["names"]}
    assert set(names) == set(NAMES)
    assert len({round(n["rect"]["height"]) for n in m["names"]}) == 1
    for name, n in names.items():
        assert n["rect"]["left"] >= 0 and n["rect"]["right"] <= WIDTH and n["rect"]["width"] > 0
        assert n["title"].startswith(name + "@")
        assert n["truncated"] == (name == NAMES[LONG]), name
    # opens ranked by trigger CHAIR_i, lowest first (▲), n/a last; the plot shows that column in that order
    first = m["initial"]
    assert first["sorted"] == "chair_trigger/chair_i:asc" and first["indicators"] == [["chair_trigger/chair_i", "▲", "ascending"]]
    assert first["order"][-1] == "zoo/silent" and first["bars"] == first["order"] and first["plot"] == "chair_trigger/chair_i"
    widths = [w for w in first["barWidths"] if w is not None]
    assert widths == sorted(widths) and first["barWidths"][-1] is None  # n/a: no bar
    # a click on POPE F1 sorts best (highest) first ▼, again reverses ▲; the plot follows the column and the order
    chair = {b["request"]["model"]: b["results"]["results"] for b in realistic_board}
    by_f1 = sorted(NAMES, key=lambda n: -chair[n]["pope_adversarial"]["f1"])
    assert m["f1"]["order"] == by_f1 and m["f1"]["indicators"] == [["pope_adversarial/f1", "▼", "descending"]]
    assert m["f1"]["plot"] == "pope_adversarial/f1" and m["f1"]["bars"] == by_f1 and "POPE adv. F1 ↑" in m["f1"]["plotTitle"]
    assert m["f1again"]["order"] == by_f1[::-1] and m["f1again"]["indicators"][0][1] == "▲"
    # a text column reorders the bars and keeps the plotted metric
    assert m["byName"]["order"] == sorted(NAMES) and m["byName"]["bars"] == sorted(NAMES)
    assert m["byName"]["plot"] == "pope_adversarial/f1"
    # ▸ opens the row's details: every metric, still no horizontal scrolling
    d = m["details"]
    assert d["wasHidden"] and not d["hidden"] and d["height"] > 0 and d["scrollWidth"] <= WIDTH
    assert "partner_hallucination" in d["text"] and "n_mentions" in d["text"] and "addition_rate" in d["text"]

    # the URL fragment opens the page sorted
    m = _measured(tmp_path, page, "#sort=chair/chair_i&dir=desc")
    assert m["initial"]["sorted"] == "chair/chair_i:desc" and m["initial"]["plot"] == "chair/chair_i"

    shot = tmp_path / "board.png"
    _browser(tmp_path, f"--screenshot={shot}", page.resolve().as_uri())
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", png[16:24]) == (WIDTH, HEIGHT)
    assert len(png) > 30_000  # a rendered board, not a blank page


def test_submitted_board_in_the_browser(board, tmp_path):
    """The page of real submissions (`zoo submit`, `zoo leaderboard --html`): only the suites' headline metrics."""
    _, page = board
    text = page.read_text()
    assert re.findall(r'<th [^>]*data-col="([^"]+)"', text) == [
        "model", "recipe", "params", "chair_trigger/chair_i", "chair_trigger/recall", "suite", "items", "date"]
    m = _measured(tmp_path, page)
    assert m["initial"]["order"] == ["zoo/shapes-vlm-dpo", "shapes-vlm", "zoo/silent"]  # n/a last, never best
    assert m["scrollWidth"] <= WIDTH


def test_leaderboard_cli_sort_option(board, tmp_path, capsys):
    from zoo.cli import main

    out = tmp_path / "by-recall.html"
    assert main(["leaderboard", "--html", str(out), "--sort", "chair_trigger/recall"]) == 0
    assert 'data-sorted="chair_trigger/recall:desc"' in out.read_text()  # higher is better: highest first
    assert main(["leaderboard", "--html", str(out), "--sort", "chair_trigger/n"]) == 2
    assert "cannot open the leaderboard sorted by 'chair_trigger/n': choose one of chair_trigger/chair_i, " \
           "chair_trigger/recall" in capsys.readouterr().err


def test_empty_board_renders(tmp_path):
    page = render_html([], tmp_path / "empty.html").read_text()
    assert "0 submission(s)" in page and "<tbody" not in page


def test_a_missing_browser_fails_the_page_test_naming_the_package(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(pytest.fail.Exception, match=r"Debian's `chromium` package \(sudo apt-get install chromium\)"):
        chromium()
