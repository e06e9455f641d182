"""``python -m vecext.sqlapi > docs/sql-api.md``: print the SQL reference."""

from vecext.sqlapi import render_markdown

print(render_markdown())
