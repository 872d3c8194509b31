"""One table for a whole sweep: summary.csv, summary.md and summary.png in the sweep folder.

A Hydra callback (hydra.callbacks in train.yaml). Each job leaves `job.json` in its folder
as it ends, failed or not, and rewrites the summary from every job folder, so that the
summary is current even while the sweep runs. When the sweep process exits, the summary is
written once more and printed: at exit, because Hydra skips `on_multirun_end` when a job
has failed, which is when a summary matters most.
"""

import atexit
import json
import logging
import math
import time
from pathlib import Path
from typing import Optional

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from mnist_hydra.config.schema import METRICS, lower_is_better, objectives
from mnist_hydra.errors import JobCrashed, JobInterrupted, JobPruned, first_line
from mnist_hydra.files import file_lock, write_csv, write_json, write_text
from mnist_hydra.run_folders import crashed, job_folders, job_order, read_plan, run_status

log = logging.getLogger(__name__)

COLUMNS = ["job", "status", *METRICS, "params", "seconds", "overrides", "error"]
# A job that ended without its objective: its own status, not `failed`.
STATUS_OF = {JobCrashed: "crashed", JobInterrupted: "interrupted", JobPruned: "pruned"}


class SweepSummary(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir).absolute()
        atexit.register(finish_summary, sweep_dir, objectives(config.objective)[0])

    def on_job_start(self, config: DictConfig, **kwargs) -> None:
        self.job_started = time.perf_counter()

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs) -> None:
        if config.hydra.mode != RunMode.MULTIRUN:
            return
        job_dir = Path(config.hydra.runtime.output_dir)
        if not job_dir.is_dir():  # stopped before it made its folder: the plan lists it (not run)
            return
        if job_return.status != JobStatus.COMPLETED and run_status(job_dir) == "completed":
            return  # a job refused from another job's finished run: that folder is never written

        # A job that crashed is reported by the launcher of the sweep process, where it never started.
        started = getattr(self, "job_started", None)
        seconds = time.perf_counter() - started if started is not None else None
        write_json(job_dir / "job.json", job_record(job_dir, job_return, seconds))
        sweep_dir = Path(config.hydra.sweep.dir).absolute()
        with file_lock(sweep_dir / ".summary.lock"):
            write_summary(sweep_dir, collect_rows(sweep_dir), objectives(config.objective)[0])


def job_record(job_dir: Path, job_return: JobReturn, seconds: Optional[float]) -> dict:
    """How a job ended, with the numbers its run recorded (metrics.json), if it got that far."""
    record = {"status": "ok", "error": "", "seconds": None if seconds is None else round(seconds, 1)}
    if job_return.status != JobStatus.COMPLETED:
        error = job_return._return_value  # the exception; `return_value` would raise it
        record.update(
            status=STATUS_OF.get(type(error), "failed"),
            error=f"{type(error).__name__}: {first_line(error)}",
        )
    return {**record, **_run_metrics(job_dir)}


def _run_metrics(job_dir: Path) -> dict:
    try:
        run = json.loads((job_dir / "metrics.json").read_text())
    except (OSError, ValueError):
        return {}
    numbers = {name: run[name] for name in METRICS if run.get(name) is not None}
    ended = {"stopped_epoch": run["stopped_epoch"]} if run.get("stopped_epoch") else {}  # callbacks
    return {**numbers, "params": run.get("params"), **ended, "run_status": run.get("status")}


def collect_rows(sweep_dir: Path) -> list[dict]:
    """A row per job folder (any folder with Hydra's .hydra/overrides.yaml) under the sweep."""
    rows = []
    for job_dir in job_folders(sweep_dir):
        try:
            record = json.loads((job_dir / "job.json").read_text())
        except (OSError, ValueError):  # not ended: still running, or stopped with the sweep
            metrics = _run_metrics(job_dir)
            record = {**metrics, "status": metrics.get("run_status") or "not started"}
            if crashed(job_dir):  # says `running`, but no live process holds its folder
                record.update(status="crashed", error="the job's process died without a word")
        job = job_dir.relative_to(sweep_dir).as_posix()
        rows.append(
            {"job": job, "overrides": list(OmegaConf.load(job_dir / ".hydra" / "overrides.yaml")), **record}
        )
    started = [row["overrides"] for row in rows]
    for planned in read_plan(sweep_dir):  # jobs the launcher was given that never started
        if planned["overrides"] not in started:
            rows.append({"job": str(planned["job"]), "overrides": planned["overrides"], "status": "not run"})
    return rows


def swept_keys(rows: list[dict]) -> list[str]:
    """The override keys whose values differ between jobs (all of them for a single job)."""
    per_job = [_split(row["overrides"]) for row in rows]
    values: dict[str, set] = {}
    for overrides in per_job:
        for key, value in overrides.items():
            values.setdefault(key, set()).add(value)
    varying = [
        key
        for key, seen in values.items()
        if len(seen) > 1 or any(key not in overrides for overrides in per_job)
    ]
    return varying or list(values)


def _split(overrides: list[str]) -> dict:
    return dict(override.split("=", 1) for override in overrides if "=" in override)


def ranked(rows: list[dict], metric: str) -> list[dict]:
    """Best first by `metric` (lowest for a loss); then a search's pruned trials (by the value at
    which they stopped); then jobs without it, by job number."""
    sign = 1 if lower_is_better(metric) else -1

    def key(row):
        value = row.get(metric)
        has_value = isinstance(value, (int, float)) and math.isfinite(value)
        group = 2 if not has_value else 1 if row.get("status") == "pruned" else 0
        return (group, sign * value if has_value else 0, job_order(row["job"]))

    return sorted(rows, key=key)


def write_summary(sweep_dir: Path, rows: list[dict], metric: str) -> str:
    """Write summary.csv, summary.md and summary.png; return the table in Markdown."""
    rows = ranked(rows, metric)
    keys = swept_keys(rows)
    stopped = ["stopped_epoch"] if any("stopped_epoch" in row for row in rows) else []
    write_csv(
        sweep_dir / "summary.csv",
        [COLUMNS[0], *keys, *COLUMNS[1:-3], *stopped, *COLUMNS[-3:]],
        [{**row, **_split(row["overrides"]), "overrides": " ".join(row["overrides"])} for row in rows],
    )
    table = markdown_table(rows, keys, metric)
    write_text(sweep_dir / "summary.md", f"# Sweep {sweep_dir}\n\nRanked by {metric}.\n\n{table}\n")
    plot_summary(rows, keys, metric, sweep_dir / "summary.png")
    return table


def summary_files(sweep_dir: Path) -> str:
    """The summary's files as they are now: summary.png only when a job had the metric to plot."""
    if (sweep_dir / "summary.png").is_file():
        return f"{sweep_dir}/summary.csv, summary.md and summary.png"
    return f"{sweep_dir}/summary.csv and summary.md (no job has a value to plot)"


def markdown_table(rows: list[dict], keys: list[str], metric: str) -> str:
    shown = [m for m in METRICS if any(m in row for row in rows)] or [metric]
    stopped = ["stopped_epoch"] if any("stopped_epoch" in row for row in rows) else []  # callbacks
    header = ["job", *keys, "status", *shown, "params", *stopped, "seconds", "error"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [
            row["job"],
            *(_split(row["overrides"]).get(k, "") for k in keys),
            row["status"],
            *(_number(row.get(m), "{:.4f}") for m in shown),
            _number(row.get("params"), "{:,}"),
            *(_number(row.get(column), "{}") for column in stopped),
            _number(row.get("seconds"), "{:.1f}"),
            row.get("error", "").replace("|", "/"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _number(value, style: str) -> str:
    return "" if value is None else style.format(value)


def plot_summary(rows: list[dict], keys: list[str], metric: str, path: Path) -> None:
    """The metric against each swept parameter, one panel each; failed jobs left out."""
    done = [row for row in rows if isinstance(row.get(metric), (int, float))]
    if not done or not keys:
        path.unlink(missing_ok=True)
        return
    from mnist_hydra.reporting.plots import plot_metric_against

    panels = {
        key: [(_split(row["overrides"]).get(key, "(default)"), row[metric]) for row in done] for key in keys
    }
    plot_metric_against(panels, metric, path)


def finish_summary(sweep_dir: Path, metric: str) -> None:
    """At the sweep's exit: the summary once more, from every job folder, and on screen."""
    if not sweep_dir.is_dir():
        return
    with file_lock(sweep_dir / ".summary.lock"):
        rows = collect_rows(sweep_dir)
        if not rows:
            return
        table = write_summary(sweep_dir, rows, metric)
    pruned = sum(row["status"] == "pruned" for row in rows)
    failed = sum(row["status"] not in ("ok", "pruned") for row in rows)
    counts = f"{len(rows)} jobs, " + (f"{pruned} pruned, " if pruned else "") + f"{failed} not ok"
    print(
        f"\nSweep summary ({counts}), ranked by {metric}:\n{table}\nWritten to {summary_files(sweep_dir)}",
        flush=True,
    )
