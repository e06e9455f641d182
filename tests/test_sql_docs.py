"""docs/sql-api.md is generated from vecext/sqlapi.py and must stay in step with it."""

from pathlib import Path

from vecext.sqlapi import render_markdown

DOC = Path(__file__).resolve().parents[1] / "docs" / "sql-api.md"


def test_sql_reference_document_is_current():
    assert DOC.read_text() == render_markdown() + "\n", (
        "docs/sql-api.md is stale: run `python -m vecext.sqlapi > docs/sql-api.md`"
    )
