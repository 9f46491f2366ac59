"""`meshproof report DIR`: summarise a run's conformance report and write it as Markdown beside it."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml

from meshproof.reporting.conformance import REPORT_FILENAME
from meshproof.reporting.conformance_html import render_html
from meshproof.reporting.conformance_markdown import render_markdown
from meshproof.reporting.verdict import judge

MARKDOWN_NAME = "conformance-report.md"
HTML_NAME = "conformance-report.html"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "report",
        help="summarise a run's conformance report (exit non-zero unless the run is conformant)",
        description="Print the per-feature results of reports/<run-id>/ and write conformance-report.md "
        "and conformance-report.html beside it.",
    )
    parser.add_argument("results", type=Path, metavar="DIR", help="a run's results dir or its report YAML")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    path: Path = args.results
    report_path = path if path.is_file() else path / REPORT_FILENAME
    if not report_path.is_file():
        print(f"meshproof report: no {REPORT_FILENAME} in {path}")
        return 2
    try:
        data = yaml.safe_load(report_path.read_text())
    except yaml.YAMLError as exc:
        print(f"meshproof report: {report_path} is not valid YAML ({str(exc).splitlines()[0]})")
        return 2
    if not isinstance(data, dict):
        print(f"meshproof report: {report_path} is not a conformance report")
        return 2
    markdown = render_markdown(data)
    (report_path.parent / MARKDOWN_NAME).write_text(markdown)
    (report_path.parent / HTML_NAME).write_text(render_html(data))
    print(markdown)
    if (report_path.parent / "benchmark.json").is_file():
        print(f"benchmark results too: meshproof bench report {report_path.parent}")
    verdict = judge(data)
    print(f"meshproof report: {verdict.reason}")
    return verdict.exit_code
