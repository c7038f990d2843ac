"""Rebuild the flights subset used by examples/nyc_weather_delays.yaml.

Source: the nycflights13 data set (https://github.com/tidyverse/nycflights13, CC0),
exported as CSV. The full flights.csv (336,776 rows, 19 columns, ~31 MB) is too large to
keep in the repository, so this script keeps every row but only the columns the
example needs, and writes them gzip-compressed (DuckDB reads .csv.gz directly):

    year, month, day, origin, carrier, dep_time, dep_delay, arr_delay

A missing dep_time means the flight was cancelled (it never departed). Missing values
("NA" in the source) are written as empty fields, DuckDB's default NULL spelling.

Usage (from the repository root):

    .venv/bin/python examples/data/make_subset.py /path/to/nycflights13/flights.csv.zip

The argument may be flights.csv.zip or an unpacked flights.csv.
"""

from __future__ import annotations

import sys
import tempfile
import zipfile
from pathlib import Path

import duckdb

HERE = Path(__file__).resolve().parent
OUT = HERE / "flights_2013.csv.gz"
COLUMNS = "year, month, day, origin, carrier, dep_time, dep_delay, arr_delay"


def main(source: str) -> None:
    src = Path(source)
    with tempfile.TemporaryDirectory() as tmp:
        if src.suffix == ".zip":
            with zipfile.ZipFile(src) as zf:
                zf.extract("flights.csv", tmp)
            src = Path(tmp) / "flights.csv"
        con = duckdb.connect()
        # all_varchar keeps every value exactly as written in the source (no float
        # reformatting); only the NA marker becomes NULL.
        con.execute(
            f"""
            COPY (
                SELECT {COLUMNS}
                FROM read_csv(?, header = true, nullstr = 'NA', all_varchar = true)
            ) TO '{OUT.as_posix()}' (FORMAT csv, HEADER, COMPRESSION gzip)
            """,
            [str(src)],
        )
        n = con.execute("SELECT count(*) FROM read_csv_auto(?)", [str(OUT)]).fetchone()
    print(f"wrote {OUT} ({OUT.stat().st_size:,} bytes, {n[0]:,} rows)")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
