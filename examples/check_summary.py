"""Recompute the summary of examples/nyc_weather_delays.yaml directly with DuckDB.

This does not run Replaybook and shares no SQL with the playbook: it reads the same CSV
files, classifies every airport-day with the rules the playbook documents, and averages
the delays flight by flight (the playbook goes through daily totals). Compare its output
with the `result` of `replaybook run examples/nyc_weather_delays.yaml --json`.

Usage (from the repository root):

    .venv/bin/python examples/check_summary.py                 # a readable table
    .venv/bin/python examples/check_summary.py --json          # the numbers as JSON
    .venv/bin/python examples/check_summary.py --data-dir DIR --storm-threshold 1.5

The classification rules (same defaults as the playbook's workload):
  storm score = max(0, max_wind - 20) / 10        wind points (readings > 100 mph dropped)
              + total_precip (rounded to 0.01 in) / 0.5       rain points
              + 0.5 * max(0, 3 - min_visibility) / 3          fog points (at most 0.5)
  stormy: score >= 1.0; else hot: max temp >= 85 F; else cold: min temp <= 32 F;
  else mild; a day with flights but no weather observations is no_weather.
  Delayed = dep_delay > 15 min, among flights that departed (cancelled = no dep_time).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import duckdb

HERE = Path(__file__).resolve().parent
CLASSES = ("stormy", "hot", "cold", "mild", "no_weather")


def compute(
    data_dir: Path | str = HERE / "data",
    *,
    storm_threshold: float = 1.0,
    hot_max_temp_f: float = 85,
    cold_min_temp_f: float = 32,
    delay_threshold_min: float = 15,
    max_plausible_wind_mph: float = 100,
) -> dict[str, Any]:
    data = Path(data_dir)
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE wx AS SELECT * FROM read_csv(?, nullstr = 'NA')", [str(data / "weather.csv")]
    )
    con.execute("CREATE TABLE fl AS SELECT * FROM read_csv(?)", [str(data / "flights_2013.csv.gz")])
    con.execute("CREATE TABLE ap AS SELECT * FROM read_csv(?)", [str(data / "airports.csv")])

    # Weather per airport-day, then its class.
    con.execute(
        """
        CREATE TABLE day_class AS
        WITH wx_day AS (
            SELECT origin, year, month, day,
                   max(temp) AS t_hi,
                   min(temp) AS t_lo,
                   max(wind_speed) FILTER (WHERE wind_speed <= $max_wind) AS wind,
                   round(sum(precip), 2) AS rain,
                   min(visib) AS vis
            FROM wx
            GROUP BY origin, year, month, day
        ), scored AS (
            SELECT *,
                   coalesce(greatest(wind - 20, 0) / 10, 0)
                   + coalesce(rain / 0.5, 0)
                   + coalesce(0.5 * greatest(3 - vis, 0) / 3, 0) AS score
            FROM wx_day
        )
        SELECT origin, year, month, day, score,
               CASE WHEN score >= $storm THEN 'stormy'
                    WHEN t_hi >= $hot THEN 'hot'
                    WHEN t_lo <= $cold THEN 'cold'
                    ELSE 'mild' END AS cls
        FROM scored
        """,
        {
            "max_wind": max_plausible_wind_mph,
            "storm": storm_threshold,
            "hot": hot_max_temp_f,
            "cold": cold_min_temp_f,
        },
    )
    # Every airport-day that has flights or weather, with its class.
    con.execute(
        """
        CREATE TABLE days AS
        SELECT k.origin, k.year, k.month, k.day, coalesce(c.cls, 'no_weather') AS cls
        FROM (SELECT DISTINCT origin, year, month, day FROM fl
              UNION
              SELECT DISTINCT origin, year, month, day FROM wx) k
        LEFT JOIN day_class c USING (origin, year, month, day)
        """
    )
    day_counts = con.execute(
        """
        SELECT origin,
               count(*),
               count(*) FILTER (WHERE cls = 'stormy'),
               count(*) FILTER (WHERE cls = 'hot'),
               count(*) FILTER (WHERE cls = 'cold'),
               count(*) FILTER (WHERE cls = 'mild'),
               count(*) FILTER (WHERE cls = 'no_weather')
        FROM days GROUP BY origin ORDER BY origin
        """
    ).fetchall()
    # Flight by flight.
    cur = con.execute(
        """
        SELECT f.origin,
               count(*)                                          AS flights,
               count(*) FILTER (WHERE f.dep_time IS NULL)         AS cancelled,
               avg(f.dep_delay)                                   AS mean_dep_delay_min,
               avg(f.dep_delay) FILTER (WHERE d.cls = 'stormy')   AS mean_dep_delay_stormy,
               avg(f.dep_delay) FILTER (WHERE d.cls = 'mild')     AS mean_dep_delay_mild,
               avg(f.dep_delay) FILTER (WHERE d.cls = 'hot')      AS mean_dep_delay_hot,
               avg(f.dep_delay) FILTER (WHERE d.cls = 'cold')     AS mean_dep_delay_cold,
               avg(CASE WHEN f.dep_delay > $late THEN 1 ELSE 0 END)
                   FILTER (WHERE d.cls = 'stormy' AND f.dep_delay IS NOT NULL)
                                                                  AS share_delayed_stormy,
               avg(CASE WHEN f.dep_delay > $late THEN 1 ELSE 0 END)
                   FILTER (WHERE d.cls = 'mild' AND f.dep_delay IS NOT NULL)
                                                                  AS share_delayed_mild,
               avg(f.dep_delay) FILTER (WHERE d.cls = 'stormy')
                 - avg(f.dep_delay) FILTER (WHERE d.cls = 'mild') AS extra_delay_min,
               avg(CASE WHEN f.dep_time IS NULL THEN 1 ELSE 0 END)
                   FILTER (WHERE d.cls = 'stormy')                AS cancel_rate_stormy,
               avg(CASE WHEN f.dep_time IS NULL THEN 1 ELSE 0 END)
                   FILTER (WHERE d.cls = 'mild')                  AS cancel_rate_mild
        FROM fl f JOIN days d USING (origin, year, month, day)
        GROUP BY f.origin
        """,
        {"late": delay_threshold_min},
    )
    columns = [d[0] for d in cur.description]
    flight_stats = {r[0]: dict(zip(columns[1:], r[1:], strict=True)) for r in cur.fetchall()}
    names = dict(con.execute("SELECT faa, name FROM ap").fetchall())

    airports = []
    for origin, days, stormy, hot, cold, mild, no_wx in day_counts:
        airports.append(
            {
                "airport": origin,
                "airport_name": names.get(origin),
                "days": days,
                "stormy_days": stormy,
                "hot_days": hot,
                "cold_days": cold,
                "mild_days": mild,
                "no_weather_days": no_wx,
                **flight_stats[origin],
            }
        )
    counts = dict(con.execute("SELECT cls, count(*) FROM days GROUP BY cls").fetchall())
    return {
        "airports": airports,
        "day_classes": {c: counts.get(c, 0) for c in CLASSES},
        "row_counts": {
            "weather_rows": con.execute("SELECT count(*) FROM wx").fetchone()[0],
            "flight_rows": con.execute("SELECT count(*) FROM fl").fetchone()[0],
            "airport_rows": con.execute("SELECT count(*) FROM ap").fetchone()[0],
            "daily_summary_rows": con.execute("SELECT count(*) FROM days").fetchone()[0],
        },
    }


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.2f}" if abs(v) >= 1 else f"{v:.4f}"
    return str(v)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=str(HERE / "data"))
    ap.add_argument("--storm-threshold", type=float, default=1.0)
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = ap.parse_args()
    summary = compute(args.data_dir, storm_threshold=args.storm_threshold)
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    keys = [k for k in summary["airports"][0] if k not in ("airport", "airport_name")]
    print(f"{'':24}" + "".join(f"{a['airport']:>10}" for a in summary["airports"]))
    for k in keys:
        print(f"{k:24}" + "".join(f"{_fmt(a[k]):>10}" for a in summary["airports"]))
    print("day classes:", summary["day_classes"])
    print("row counts: ", summary["row_counts"])


if __name__ == "__main__":
    main()
