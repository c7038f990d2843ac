"""The flagship example, end to end: examples/nyc_weather_delays.yaml through the real CLI.

The expected numbers are computed here, independently of the playbook's SQL: straight
from the CSV files with the duckdb Python API, flight by flight (the playbook goes
through daily totals and a python scoring step). Only the documented classification
rules and the settings in the playbook's workload are shared.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = "examples/nyc_weather_delays.yaml"  # relative: the CLI runs from the repo root
CATALOG = "examples/playbooks"  # the per-airport sub-playbook
DATA = ROOT / "examples" / "data"
AIRPORTS = ["EWR", "JFK", "LGA"]
CLASSES = ["stormy", "hot", "cold", "mild", "no_weather"]


def _workload() -> dict[str, Any]:
    doc = yaml.safe_load((ROOT / PLAYBOOK).read_text())
    return doc["workload"]


def run_cli(data_dir: Path, *extra: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    data_dir.mkdir(parents=True, exist_ok=True)
    env = dict(
        os.environ,
        REPLAYBOOK_DATA_DIR=str(data_dir),
        REPLAYBOOK_DB=f"sqlite:///{data_dir / 'replaybook.db'}",
    )
    env.pop("REPLAYBOOK_SERVER", None)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "replaybook",
            "run",
            PLAYBOOK,
            "--catalog",
            CATALOG,
            "--json",
            *extra,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.stdout.strip(), f"no JSON on stdout (exit {proc.returncode}):\n{proc.stderr}"
    try:
        out = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:  # pragma: no cover - diagnostic
        raise AssertionError(f"stdout is not one JSON object: {proc.stdout[:2000]}") from exc
    return proc, out


def expected_summary(
    storm: dict[str, float],
    hot: float,
    cold: float,
    late_min: float,
    max_wind: float,
) -> dict[str, Any]:
    """Independent computation over the CSV files (one flight = one row)."""
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE hourly AS SELECT * FROM read_csv($p, header = true, nullstr = 'NA')",
        {"p": str(DATA / "weather.csv")},
    )
    con.execute(
        "CREATE TABLE dep AS SELECT * FROM read_csv($p, header = true)",
        {"p": str(DATA / "flights_2013.csv.gz")},
    )
    # Airport-day weather and its class; the calendar of airport-days is every day that
    # has flights or weather.
    con.execute(
        """
        CREATE TABLE klass AS
        WITH cal AS (
            SELECT origin, year, month, day FROM dep
            UNION
            SELECT origin, year, month, day FROM hourly
        ), wx AS (
            SELECT origin, year, month, day,
                   max(temp) AS hi, min(temp) AS lo,
                   max(CASE WHEN wind_speed > $max_wind THEN NULL ELSE wind_speed END) AS w,
                   round(sum(precip), 2) AS p,
                   min(visib) AS v
            FROM hourly GROUP BY 1, 2, 3, 4
        ), pts AS (
            SELECT *,
                   CASE WHEN w IS NULL THEN 0 ELSE greatest(w - $calm, 0) / $per_wind END
                   + CASE WHEN p IS NULL THEN 0 ELSE p / $per_rain END
                   + CASE WHEN v IS NULL THEN 0
                          ELSE $fog_max * greatest($fog_vis - v, 0) / $fog_vis END AS score
            FROM wx
        )
        SELECT cal.origin, cal.year, cal.month, cal.day, pts.score,
               CASE WHEN pts.origin IS NULL THEN 'no_weather'
                    WHEN pts.score >= $thr THEN 'stormy'
                    WHEN pts.hi >= $hot THEN 'hot'
                    WHEN pts.lo <= $cold THEN 'cold'
                    ELSE 'mild' END AS klass
        FROM cal LEFT JOIN pts USING (origin, year, month, day)
        """,
        {
            "max_wind": max_wind,
            "calm": storm["calm_wind_mph"],
            "per_wind": storm["wind_mph_per_point"],
            "per_rain": storm["precip_in_per_point"],
            "fog_max": storm["fog_max_points"],
            "fog_vis": storm["fog_visib_mi"],
            "thr": storm["threshold"],
            "hot": hot,
            "cold": cold,
        },
    )
    per_airport: dict[str, dict[str, Any]] = {}
    for origin in AIRPORTS:
        days = dict(
            con.execute(
                "SELECT klass, count(*) FROM klass WHERE origin = $o GROUP BY klass",
                {"o": origin},
            ).fetchall()
        )
        row = {"days": sum(days.values())}
        row.update({f"{k}_days": days.get(k, 0) for k in CLASSES})
        flights = con.execute(
            """
            SELECT count(*), count(*) - count(d.dep_time), avg(d.dep_delay)
            FROM dep d WHERE d.origin = $o
            """,
            {"o": origin},
        ).fetchone()
        row["flights"], row["cancelled"], row["mean_dep_delay_min"] = flights
        for k in ["stormy", "hot", "cold", "mild"]:
            mean, late, n_dep, n_all, n_cancel = con.execute(
                """
                SELECT avg(d.dep_delay),
                       sum(CASE WHEN d.dep_delay > $late THEN 1 ELSE 0 END),
                       count(d.dep_delay), count(*), count(*) - count(d.dep_time)
                FROM dep d JOIN klass c USING (origin, year, month, day)
                WHERE d.origin = $o AND c.klass = $k
                """,
                {"o": origin, "k": k, "late": late_min},
            ).fetchone()
            row[f"mean_dep_delay_{k}"] = mean
            row[f"share_delayed_{k}"] = late / n_dep if n_dep else None
            row[f"cancel_rate_{k}"] = n_cancel / n_all if n_all else None
        per_airport[origin] = row
    stormiest = con.execute(
        """
        SELECT origin, make_date(year, month, day)::VARCHAR, score
        FROM klass WHERE score IS NOT NULL ORDER BY score DESC LIMIT 1
        """
    ).fetchone()
    totals = dict(con.execute("SELECT klass, count(*) FROM klass GROUP BY klass").fetchall())
    worst_storm = {
        origin: con.execute(
            """
            SELECT make_date(year, month, day)::VARCHAR, score FROM klass
            WHERE origin = $o AND klass = 'stormy' ORDER BY score DESC LIMIT 1
            """,
            {"o": origin},
        ).fetchone()
        for origin in AIRPORTS
    }
    return {
        "airports": per_airport,
        "day_classes": {k: totals.get(k, 0) for k in CLASSES},
        "stormiest": stormiest,
        "worst_storm": worst_storm,
        "n_airport_days": con.execute("SELECT count(*) FROM klass").fetchone()[0],
    }


def _csv_rows(path: Path) -> int:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:  # type: ignore[operator]
        return sum(1 for _ in fh) - 1  # minus the header; no field spans lines


def close(actual: Any, expected: Any, places: int) -> None:
    """`actual` was rounded to `places` decimals by the playbook; `expected` was not."""
    if expected is None:
        assert actual is None
        return
    assert actual is not None, f"expected {expected}, got null"
    assert abs(actual - expected) <= 0.5 * 10**-places + 1e-9, (actual, expected)


@pytest.fixture(scope="module")
def workload() -> dict[str, Any]:
    return _workload()


def _expected_for(workload: dict[str, Any], threshold: float | None = None) -> dict[str, Any]:
    storm = dict(workload["storm"])
    if threshold is not None:
        storm["threshold"] = threshold
    return expected_summary(
        storm,
        workload["hot_max_temp_f"],
        workload["cold_min_temp_f"],
        workload["delay_threshold_min"],
        workload["max_plausible_wind_mph"],
    )


@pytest.fixture(scope="module")
def default_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    data_dir = tmp_path_factory.mktemp("example_run")
    proc, out = run_cli(data_dir)
    assert proc.returncode == 0, f"exit {proc.returncode}: {out.get('error')}\n{proc.stderr}"
    return data_dir, out


def test_example_completes_and_takes_the_storm_branch(
    default_run: tuple[Path, dict[str, Any]],
) -> None:
    _, out = default_run
    assert out["status"] == "completed", out.get("error")
    assert out["error"] is None
    steps = out["steps"]
    completed = ["load_data", "score_airports", "score_days", "save_daily", "report"]
    for name in [*completed, "storm_impact", "end"]:
        assert steps[name]["status"] == "completed", (name, steps[name])
    assert steps["no_storm_days"]["status"] == "skipped"
    assert out["result"]["branch"] == "storm_impact"


def test_each_airport_is_scored_by_its_own_sub_playbook(
    default_run: tuple[Path, dict[str, Any]],
) -> None:
    from replaybook.store import open_store

    data_dir, out = default_run
    assert out["steps"]["score_airports"]["status"] == "completed"
    store = open_store(f"sqlite:///{data_dir / 'replaybook.db'}")
    try:
        children = store.list_executions(parent_id=out["execution_id"])
        assert len(children) == len(AIRPORTS)
        assert {c.playbook_path for c in children} == {"examples/score_airport_days"}
        assert {c.parent_step for c in children} == {"score_airports"}
        assert {c.status for c in children} == {"completed"}
    finally:
        store.close()


def test_example_numbers_match_independent_duckdb(
    default_run: tuple[Path, dict[str, Any]], workload: dict[str, Any]
) -> None:
    _, out = default_run
    result = out["result"]
    exp = _expected_for(workload)

    assert result["row_counts"] == {
        "weather_rows": _csv_rows(DATA / "weather.csv"),
        "flight_rows": _csv_rows(DATA / "flights_2013.csv.gz"),
        "airport_rows": _csv_rows(DATA / "airports.csv"),
        "daily_summary_rows": exp["n_airport_days"],
    }
    # Sanity on the real data (nycflights13): 26,115 weather hours, 336,776 flights,
    # 3 airports x 365 days, and storms actually happen.
    assert result["row_counts"]["flight_rows"] == 336_776
    assert result["row_counts"]["daily_summary_rows"] == 3 * 365
    assert result["day_classes"] == exp["day_classes"]
    assert exp["day_classes"]["stormy"] > 0

    by_airport = {a["airport"]: a for a in result["airports"]}
    assert sorted(by_airport) == AIRPORTS
    names = {"EWR": "Newark Liberty Intl", "JFK": "John F Kennedy Intl", "LGA": "La Guardia"}
    for origin in AIRPORTS:
        got, want = by_airport[origin], exp["airports"][origin]
        assert got["airport_name"] == names[origin]
        for key in ["days", *(f"{k}_days" for k in CLASSES), "flights", "cancelled"]:
            assert got[key] == want[key], (origin, key, got[key], want[key])
        for key in ["all", "stormy", "mild", "hot", "cold"]:
            name = "mean_dep_delay_min" if key == "all" else f"mean_dep_delay_{key}"
            close(got[name], want[name], 2)
        close(got["share_delayed_stormy"], want["share_delayed_stormy"], 4)
        close(got["share_delayed_mild"], want["share_delayed_mild"], 4)
        # the point of the example: stormy days are clearly worse than mild ones
        assert got["mean_dep_delay_stormy"] > got["mean_dep_delay_mild"] + 5

    impact = {r["airport"]: r for r in result["storm_impact"]}
    assert sorted(impact) == AIRPORTS
    for origin in AIRPORTS:
        got, want = impact[origin], exp["airports"][origin]
        close(
            got["extra_delay_min"], want["mean_dep_delay_stormy"] - want["mean_dep_delay_mild"], 2
        )
        close(got["delay_ratio"], want["mean_dep_delay_stormy"] / want["mean_dep_delay_mild"], 2)
        close(got["cancel_rate_stormy"], want["cancel_rate_stormy"], 4)
        close(got["cancel_rate_mild"], want["cancel_rate_mild"], 4)
        day, score = exp["worst_storm"][origin]
        assert got["stormiest_day"] == day
        close(got["stormiest_day_score"], score, 3)

    origin, day, score = exp["stormiest"]
    assert result["stormiest_day"]["origin"] == origin
    assert result["stormiest_day"]["date"] == day
    close(result["stormiest_day"]["storm_score"], score, 3)


def test_example_saves_daily_summary_table(
    default_run: tuple[Path, dict[str, Any]], workload: dict[str, Any]
) -> None:
    data_dir, _ = default_run
    candidates = [
        p
        for p in data_dir.rglob("*")
        if p.is_file() and p.suffix in {".duckdb", ".db", ".ddb"} and p.name != "replaybook.db"
    ]
    tables = {}
    for path in candidates:
        try:
            con = duckdb.connect(str(path), read_only=True)
        except duckdb.Error:
            continue
        with con:
            names = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
            if "daily_summary" in names:
                tables[path] = dict(
                    con.execute(
                        "SELECT day_class, count(*) FROM daily_summary GROUP BY day_class"
                    ).fetchall()
                )
    assert tables, f"no DuckDB file with daily_summary under {data_dir}: {candidates}"
    assert len(tables) == 1, tables
    counts = next(iter(tables.values()))
    assert {k: counts.get(k, 0) for k in CLASSES} == _expected_for(workload)["day_classes"]


def test_example_without_storms_takes_the_else_branch(
    tmp_path: Path, workload: dict[str, Any]
) -> None:
    proc, out = run_cli(tmp_path / "calm", "--set", "storm.threshold=1000")
    assert proc.returncode == 0, f"exit {proc.returncode}: {out.get('error')}\n{proc.stderr}"
    assert out["status"] == "completed"
    assert out["steps"]["storm_impact"]["status"] == "skipped"
    assert out["steps"]["no_storm_days"]["status"] == "completed"
    result = out["result"]
    assert result["branch"] == "no_storm_days"
    assert result["storm_impact"] == {
        "message": "no stormy days at storm threshold 1000",
        "storm_threshold": 1000,
    }
    exp = _expected_for(workload, threshold=1000)
    assert exp["day_classes"]["stormy"] == 0
    assert result["day_classes"] == exp["day_classes"]
    for row in result["airports"]:
        want = exp["airports"][row["airport"]]
        assert row["stormy_days"] == 0
        assert row["mean_dep_delay_stormy"] is None
        for k in ["hot", "cold", "mild"]:
            assert row[f"{k}_days"] == want[f"{k}_days"]
        close(row["mean_dep_delay_mild"], want["mean_dep_delay_mild"], 2)


def test_check_summary_script_agrees(
    default_run: tuple[Path, dict[str, Any]],
) -> None:
    """examples/check_summary.py (what the README tells users to run) gives the same numbers."""
    _, out = default_run
    spec = importlib.util.spec_from_file_location(
        "check_summary", ROOT / "examples" / "check_summary.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    direct = module.compute(DATA)
    result = out["result"]
    assert direct["row_counts"] == result["row_counts"]
    assert direct["day_classes"] == result["day_classes"]
    for got, want in zip(result["airports"], direct["airports"], strict=True):
        for key, value in got.items():
            if isinstance(value, float):
                places = 4 if key.startswith("share") else 2
                close(value, want[key], places)
            else:
                assert value == want[key], (key, value, want[key])
