"""``ferkit corpus query``: SQL (DuckDB) over a run's Parquet parts, as the view ``records`` (one row per face per
sampled frame, see :mod:`ferkit.corpus.parts`)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ferkit.corpus.parts import part_files
from ferkit.errors import InputError


def query(run: Path, sql: str) -> pd.DataFrame:
    """The result of ``sql`` over the view ``records`` of the run folder ``run``; ``InputError`` (one line) for a
    folder without parts, a corrupt part or an SQL error."""
    import duckdb

    files = [str(f) for f in part_files(run)]  # refuses a folder without parts
    if not sql.strip():
        raise InputError("the SQL query is empty")
    con = duckdb.connect(":memory:")
    try:
        con.read_parquet(files, union_by_name=True).create_view("records")
        return con.execute(sql).df()
    except duckdb.Error as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(f"query failed: {first}") from None
    finally:
        con.close()
