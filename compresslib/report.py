"""The Snakemake report's own pages: every table rendered as HTML, and the front page (what the study ran).

``snakemake --report report.html`` embeds what the rules mark with ``report()`` (rules/report.smk): the plots,
filed by family (category) and experiment (subcategory) with labels a reader can filter on
(``compresslib.experiments.base.report_labels``), and the table pages written here, one per table (its Markdown,
or its CSV where it has none). The front page is reStructuredText (Snakemake renders it with docutils): the config's
experiments by family, how many finished runs the records hold, and the software they ran with (git revisions and
package versions, counted over the records, so a study run with mixed versions says so).

Nothing here imports torch; pandas and Markdown are imported by the functions that render.
"""

from __future__ import annotations

import html
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from compresslib.io import atomic_open
from compresslib.provenance import now_iso

__all__ = ["TABLES_SUBCATEGORY", "TablePage", "table_pages", "render_table", "front_page", "write_pages"]

TABLES_SUBCATEGORY = "tables"  # where a family's tables sit in its report category, beside one folder per experiment
STYLE = """body { font-family: sans-serif; font-size: 14px; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; white-space: nowrap; }
th { background: #f3f3f3; }
td:first-child, th:first-child { text-align: left; }
p { max-width: 60em; }"""


@dataclass(frozen=True)
class TablePage:
    """A table's page in the report: its family's category, the table file it renders, the page, its labels."""

    category: str
    source: Path
    page: Path
    labels: dict[str, str] = field(hash=False)


def table_pages(tables: Iterable[tuple[str, Path]], pages_dir: str | Path) -> list[TablePage]:
    """One page per table of ``tables`` (``(category, path)``, as ``compresslib.experiments.report_tables`` lists
    them): the Markdown's where the table has one (its CSV holds the same numbers), else the CSV's."""
    tables = [(category, Path(path)) for category, path in tables]
    markdown = {path.with_suffix("") for _, path in tables if path.suffix == ".md"}
    return [TablePage(category, path, Path(pages_dir) / f"{path.stem}.html",
                      {"table": path.stem.split("-")[0], "file": path.name})
            for category, path in tables if path.suffix == ".md" or path.with_suffix("") not in markdown]


def render_table(source: Path) -> str:
    """A table file as a standalone HTML page: Markdown (headings, notes, pipe tables) rendered, a CSV as one table."""
    source = Path(source)
    if source.suffix == ".md":
        import markdown

        body = markdown.markdown(source.read_text(encoding="utf-8"), extensions=["tables"])
    else:
        import pandas as pd

        table = pd.read_csv(source).to_html(index=False, na_rep="", border=0)
        body = f"<h1>{html.escape(source.name)}</h1>\n{table}"
    return (f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{html.escape(source.stem)}</title>'
            f"<style>\n{STYLE}\n</style></head>\n<body>\n{body}\n</body></html>\n")


def front_page(experiments: dict[str, dict], titles: dict[str, str], records: list[dict]) -> str:
    """The report's front page in reStructuredText: the experiments of each family (``experiments`` by family name,
    as the aggregation reads them; ``titles``: each family's heading), the finished runs by kind, and the git
    revisions and package versions the runs recorded, each with how many runs it covers."""
    kinds = Counter(record["kind"] for record in records)
    lines = [*_heading("compresslib study", "="), "",
             f"Built {now_iso()} from {len(records)} run records: "
             + (", ".join(f"{count} {kind}" for kind, count in kinds.items()) or "none yet") + ".",
             "Each family below has its tables (rendered from results/tables) and one folder of plots per experiment;",
             "a plot's labels (dataset, teacher, student, activation, method, bits, seed) read ``all`` where it shows",
             "every value of its experiment.", ""]
    lines += [*_heading("Experiments", "-"), ""]
    for family, family_experiments in experiments.items():
        lines += [*_heading(titles.get(family, family), "~"), ""]
        for name, experiment in family_experiments.items():
            settings = "; ".join(f"{key} {_literal(value)}" for key, value in experiment.items())
            lines.append(f"* ``{name}``: {settings}")
        lines.append("")
    lines += [*_heading("Software", "-"), ""]
    provenance = [record.get("provenance") or {} for record in records]
    revisions = Counter(_revision(entry) for entry in provenance)
    lines.append(f"* git revision: {_counted(revisions, len(records))}")
    lines.append(f"* python: {_counted(Counter(entry.get('python') for entry in provenance), len(records))}")
    packages = dict.fromkeys(name for entry in provenance for name in entry.get("packages", {}))
    for package in packages:
        versions = Counter((entry.get("packages") or {}).get(package) for entry in provenance)
        lines.append(f"* {package}: {_counted(versions, len(records))}")
    # Snakemake renders the page as a Jinja template first: nothing of the study may read as template syntax
    return "{% raw %}\n" + "\n".join(lines) + "\n{% endraw %}\n"


def _heading(text: str, underline: str) -> list[str]:
    return [text, underline * len(text)]


def _literal(value: object) -> str:
    """A setting as inline literals (a name such as ``s_`` would otherwise read as a reST link)."""
    if isinstance(value, list):
        return ", ".join(map(_literal, value)) or "(none)"
    return f"``{json.dumps(value, sort_keys=True) if isinstance(value, dict) else value}``"


def _revision(provenance: dict) -> str | None:
    revision = provenance.get("git_revision")
    if revision is None:
        return None
    return f"{revision[:12]} with uncommitted changes" if provenance.get("git_dirty") else revision[:12]


def _counted(values: Counter, total: int) -> str:
    """``value`` where every record has the same, else each value with its number of runs; unknown values
    (no checkout, a package not installed, an older record) read ``unknown``."""
    if not values:
        return "no runs yet"
    if len(values) == 1:
        (value,) = values
        return f"{value or 'unknown'} ({'the one run' if total == 1 else f'all {total} runs'})"
    return ", ".join(f"{value or 'unknown'} ({count} run{'s' * (count != 1)})" for value, count in values.most_common())


def write_pages(pages: Iterable[TablePage], front_page_path: str | Path, front_page_text: str) -> None:
    """Write every table page and the front page, each atomically."""
    for page in pages:
        _write(page.page, render_table(page.source))
    _write(Path(front_page_path), front_page_text)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
