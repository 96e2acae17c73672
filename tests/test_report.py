"""The Snakemake report: its table pages and front page (compresslib.report), the plots' labels, and the demo's report
opened for real in a headless Chromium."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import signal
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from compresslib import experiments, report
from compresslib.experiments.base import ALL, ALL_EXPERIMENTS, REPORT_LABELS, report_labels
from conftest import REPO, installed_packages, purge_packages_added_since, require_root_and_apt, run_snakemake

DEMO_STUDY = experiments.load_config(REPO / "profiles/demo/config.yaml", REPO / "rules/schemas/config.schema.yaml")
DEMO_EXPERIMENTS = experiments.aggregation_experiments(DEMO_STUDY.config)


# ---- table pages and front page ----------------------------------------------------------------------------------

def test_each_table_gets_one_page_its_markdown_where_it_has_one(tmp_path):
    tables = [("A", tmp_path / "summary-x.csv"), ("A", tmp_path / "summary-x.md"), ("B", tmp_path / "runs.csv"),
              ("A", tmp_path / "seeds-x-final.csv"), ("A", tmp_path / "seeds-x.md")]
    pages = report.table_pages(tables, tmp_path / "pages")
    assert [(page.category, page.source.name, page.page.name) for page in pages] == [
        ("A", "summary-x.md", "summary-x.html"), ("B", "runs.csv", "runs.html"),
        ("A", "seeds-x-final.csv", "seeds-x-final.html"), ("A", "seeds-x.md", "seeds-x.html")]
    assert pages[0].labels == {"table": "summary", "file": "summary-x.md"}


def test_every_declared_table_has_a_page_and_no_two_pages_collide(tmp_path):
    pages = report.table_pages(experiments.report_tables(tmp_path / "tables"), tmp_path / "pages")
    sources = {page.source for page in pages}
    for path in experiments.table_paths(tmp_path / "tables"):
        assert path in sources or path.with_suffix(".md") in sources, path
    assert len({page.page for page in pages}) == len(pages)
    assert {page.category for page in pages} == {"All runs", "Teachers", "Distillation and activations (LMA)",
                                                 "Quantization", "LIT", "ESNAC", "Translation"}


def test_a_markdown_table_renders_as_an_html_table(tmp_path):
    source = tmp_path / "summary-x.md"
    source.write_text("# Title\n\nmean ± std over seeds\n\n## demo\n\n| student | acc (%) |\n|---|---|\n"
                      "| s0 | 91.20 ± 0.30 |\n| s1 | 88.00 ± 1.00 |\n", encoding="utf-8")
    page = report.render_table(source)
    assert page.startswith("<!DOCTYPE html>") and '<meta charset="utf-8">' in page
    assert "<h1>Title</h1>" in page and "<h2>demo</h2>" in page and "mean ± std over seeds" in page
    assert page.count("<table>") == 1 and page.count("<tr>") == 3
    assert re.search(r"<td>s1</td>\s*<td>88.00 ± 1.00</td>", page)


def test_a_csv_table_renders_with_empty_cells_for_missing_values(tmp_path):
    source = tmp_path / "runs.csv"
    source.write_text("kind,seed,metrics.bleu\nteacher,1,\ndistill,2,21.5\n")
    page = report.render_table(source)
    assert "<h1>runs.csv</h1>" in page and page.count("<tr") == 3
    assert re.search(r"<td>teacher</td>\s*<td>1</td>\s*<td></td>", page)
    assert re.search(r"<td>distill</td>\s*<td>2</td>\s*<td>21.5</td>", page)


def _record(kind: str, revision: str | None, torch: str, dirty: bool = False) -> dict:
    return {"kind": kind, "provenance": {"git_revision": revision, "git_dirty": dirty, "python": "3.11.7",
                                         "packages": {"torch": torch}}}


def test_front_page_names_the_experiments_and_counts_the_software_the_runs_recorded():
    records = [_record("teacher", "a" * 40, "2.14.1"), _record("distill", "a" * 40, "2.14.1"),
               _record("distill", "b" * 40, "2.13.0", dirty=True),
               {"kind": "distill"}]  # a record without provenance
    page = report.front_page({"distill": {"demo": {"teacher": "t", "students": ["s_", "s1"], "seeds": [1, 2]}}},
                             {"distill": "Distillation"}, records)
    assert page.startswith("{% raw %}\n") and page.endswith("{% endraw %}\n")  # no Jinja syntax is interpreted
    assert "from 4 run records: 1 teacher, 3 distill." in page
    assert ("Distillation\n~~~~~~~~~~~~\n\n* ``demo``: teacher ``t``; students ``s_``, ``s1``; seeds ``1``, ``2``"
            in page)
    assert (f"* git revision: {'a' * 12} (2 runs), {'b' * 12} with uncommitted changes (1 run), unknown (1 run)"
            in page)
    assert "* python: 3.11.7 (3 runs), unknown (1 run)" in page
    assert "* torch: 2.14.1 (2 runs), 2.13.0 (1 run), unknown (1 run)" in page
    uniform = report.front_page({}, {}, records[:2])
    assert f"* git revision: {'a' * 12} (all 2 runs)" in uniform and "* torch: 2.14.1 (all 2 runs)" in uniform
    assert "* torch: 2.14.1 (the one run)" in report.front_page({}, {}, records[:1])


def test_front_page_is_valid_restructured_text():
    from docutils.core import publish_parts

    page = report.front_page(DEMO_EXPERIMENTS, experiments.family_titles(), [_record("teacher", "a" * 40, "2.14.1")])
    body = page.removeprefix("{% raw %}\n").removesuffix("{% endraw %}\n")
    html = publish_parts(body, writer="html", settings_overrides={"halt_level": 2, "report_level": 2})["body"]
    assert "demo-lma-nmt" in html and "Translation" in html


# ---- the plots' labels -----------------------------------------------------------------------------------------

def test_every_plot_is_labelled_with_its_experiment_and_every_label():
    plots = experiments.report_plots(DEMO_EXPERIMENTS, Path("results/plots"))
    assert [path for _, path, _ in plots] == experiments.plot_paths(DEMO_EXPERIMENTS, "results/plots")
    for category, path, labels in plots:
        assert list(labels) == ["experiment", *REPORT_LABELS], path
        assert all(isinstance(value, str) and value for value in labels.values()), path
        assert category in experiments.family_titles().values()
    by_path = {str(path): labels for _, path, labels in plots}
    assert by_path["results/plots/distill/demo/demo-s1.png"] == {
        "experiment": "demo", "figure": "test accuracy by epoch, per activation", "dataset": "synthetic",
        "teacher": "demo-teacher", "student": "demo-s1", "activation": ALL, "method": "KD", "bits": "32", "seed": ALL}
    assert by_path["results/plots/lit/demo-lit/seed2.png"]["seed"] == "2"
    assert by_path["results/plots/accuracy-vs-size/synthetic.png"]["experiment"] == ALL_EXPERIMENTS


def test_report_labels_refuse_a_label_the_report_does_not_have():
    with pytest.raises(ValueError, match="colour"):
        report_labels("demo", "curves", colour="red")


# ---- the demo's report, end to end (slow) ------------------------------------------------------------------------

def _embedded(page: str, name: str):
    """The JSON value the report's page assigns to ``var <name>`` in a script of its own."""
    return json.loads(re.search(rf'<script id="{name.replace("_", "-")}">\s*var {name} = (.*?);\s*</script>', page,
                                re.DOTALL)[1])


@pytest.fixture(scope="module")
def demo_report(demo_run: Path) -> Path:
    """The report the demo's run built after it finished (results/report.html)."""
    path = demo_run / "results/report.html"
    assert path.exists(), "the demo's run left no results/report.html"
    return path


@pytest.mark.slow
def test_demo_report_holds_every_plot_and_table_filed_by_family_and_experiment(demo_run: Path, demo_report: Path):
    page = demo_report.read_text(encoding="utf-8")
    results, categories = _embedded(page, "results"), _embedded(page, "categories")
    plots = experiments.report_plots(DEMO_EXPERIMENTS, "results/plots")
    tables = report.table_pages(experiments.report_tables("results/tables"), "results/report/tables")
    assert set(results) == {str(path) for _, path, _ in plots} | {str(table.page) for table in tables}
    for category, path, labels in plots:
        assert results[str(path)]["labels"] == labels and results[str(path)]["mime_type"] == "image/png"
        assert str(path) in json.dumps(categories[category][labels["experiment"]])
    for table in tables:
        assert results[str(table.page)]["mime_type"] == "text/html"
        assert str(table.page) in json.dumps(categories[table.category][report.TABLES_SUBCATEGORY])
    front = _embedded(page, "workflow_desc")
    assert "compresslib study" in front and "demo-qd-nmt" in front
    revision = json.loads(next((demo_run / "results/teachers").rglob("record.json")).read_text())["provenance"]
    assert revision["git_revision"][:12] in front and "torch" in front
    # a zip of the same results, built by hand as the README says
    process = run_snakemake("--workflow-profile", "profiles/demo", "--directory", str(demo_run), "--report",
                            "report.zip")
    assert "Report created" in process.stderr + process.stdout
    with zipfile.ZipFile(demo_run / "report.zip") as archive:
        names = archive.namelist()
    assert "report/report.html" in names and sum(name.endswith(".png") for name in names) == len(plots)


# In the report's page, after it has loaded: show every result the way a reader's click does (app.setView), wait for
# its <img> or <iframe>, wait for each image to load, parse each table page; write what was found into <pre id=...>.
BROWSER_CHECK = """<script>
window.addEventListener("load", async () => {
  const pause = (ms) => new Promise((done) => setTimeout(done, ms));
  const shown = async (tag, uri) => {
    for (let attempt = 0; attempt < 200; attempt++) {
      const found = Array.from(document.getElementsByTagName(tag)).find((e) => e.getAttribute("src") === uri);
      if (found) return found;
      await pause(20);
    }
    return null;
  };
  const decoded = (uri) => new TextDecoder().decode(
    Uint8Array.from(atob(uri.slice(uri.indexOf(",") + 1)), (c) => c.charCodeAt(0)));
  for (let attempt = 0; attempt < 500 && (typeof app === "undefined" || !app); attempt++) {
    await pause(20);  // React mounts the report's app after the page's load event
  }
  const seen = {};
  for (const [path, entry] of Object.entries(results)) {
    if (entry.mime_type === "image/png") {
      app.setView({content: "img", contentPath: entry.data_uri, resultPath: path});
      const image = await shown("img", entry.data_uri);
      // polled, not image.decode(): under a virtual time budget that promise may never settle
      for (let attempt = 0; attempt < 200 && image && !(image.complete && image.naturalWidth); attempt++) {
        await pause(20);
      }
      const size = image && image.complete ? [image.naturalWidth, image.naturalHeight] : null;
      seen[path] = {shown: image !== null, size: size};
    } else {
      app.setView({content: "html", contentPath: entry.data_uri, resultPath: path});
      const frame = await shown("iframe", entry.data_uri);
      const table = new DOMParser().parseFromString(decoded(entry.data_uri), "text/html");
      seen[path] = {shown: frame !== null, tables: table.querySelectorAll("table").length,
                    rows: table.querySelectorAll("tr").length};
    }
  }
  const out = document.createElement("pre");
  out.id = "compresslib-check";
  out.textContent = JSON.stringify(seen);
  document.body.appendChild(out);
});
</script>
"""


@pytest.fixture(scope="module")
def chromium() -> Iterator[str]:
    """A headless Chromium: the installed one, or Debian's package installed for this module and purged after it
    (with everything it pulled in); skipped where it cannot be installed."""
    found = shutil.which("chromium")
    if found:
        yield found
        return
    require_root_and_apt("opening the report in a headless Chromium")
    before = installed_packages()
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium"]
        process = subprocess.run(install, capture_output=True, text=True, env=env, timeout=900)
        if process.returncode != 0:  # the package lists may be missing or stale
            subprocess.run(["apt-get", "update", "-q"], capture_output=True, env=env, timeout=600)
            process = subprocess.run(install, capture_output=True, text=True, env=env, timeout=900)
        if process.returncode != 0 or shutil.which("chromium") is None:
            lines = (process.stderr or process.stdout).strip().splitlines() or ["no output"]
            pytest.skip(f"Debian's chromium could not be installed: {lines[-1]}")
        yield shutil.which("chromium")
    finally:
        purge_packages_added_since(before)


@pytest.mark.slow
def test_demo_report_opens_in_a_browser_with_every_plot_loaded_and_every_table_present(demo_report: Path,
                                                                                      chromium: str, tmp_path):
    page = demo_report.read_text(encoding="utf-8")
    checked = tmp_path / "report-checked.html"
    head, end, tail = page.rpartition("</body>")  # the page's own: its embedded libraries hold the string too
    checked.write_text(head + BROWSER_CHECK + end + tail, encoding="utf-8")
    command = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=600000", "--dump-dom",
               checked.as_uri()]
    browser = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        dom, errors = browser.communicate(timeout=300)
    finally:  # the browser's helper processes too
        try:
            os.killpg(browser.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    found = re.search(r'<pre id="compresslib-check">(.*?)</pre>', dom, re.DOTALL)
    assert found, f"the check found nothing; chromium said: {errors[-2000:]}"
    seen = json.loads(html.unescape(found[1]))
    results = _embedded(page, "results")
    assert set(seen) == set(results)
    for path, what in seen.items():
        assert what["shown"], f"{path} was not shown"
        if results[path]["mime_type"] == "image/png":
            assert isinstance(what["size"], list) and min(what["size"]) > 100, f"{path} did not load: {what['size']}"
        else:
            assert what["tables"] >= 1 and what["rows"] >= 2, f"{path} holds no table: {what}"
