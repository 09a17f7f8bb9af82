"""The results folder: one suite's jobs, their status, metrics, checkpoints and samples, on disk.

Layout (fixed; every stage reads what the stage before wrote, so each can be rerun alone)::

    results/<suite>/suite.yaml                   the suite as resolved and run
    results/<suite>/jobs/<job_id>/spec.json      {"job_id": ..., "spec": JobSpec.to_dict()}
    results/<suite>/jobs/<job_id>/status.json    status, reason, step, attempts, timestamps, timings
    results/<suite>/jobs/<job_id>/metrics.csv    long rows: job_id,step,wall_s,metric,value (appended)
    results/<suite>/jobs/<job_id>/checkpoint.pt
    results/<suite>/jobs/<job_id>/samples/       final.npy (points) or final_images.npy, as the job
                                                 saved them; final.png drawn from them afterwards
    results/<suite>/jobs/<job_id>/log.txt        the job's own progress log

Every write goes to a temporary file in the same folder, is fsynced and then moved over the
target with `os.replace`, so a reader (or a job killed mid-write) sees either the old file or
the new one, never a torn one. metrics.csv is the exception: it grows by appends (flushed and
fsynced), so that logging costs the new rows, not the file; a job killed mid-append can leave a
torn last line (no newline), which every reader ignores and a resume (`truncate_metrics`) removes.
This module knows nothing of MLflow.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NamedTuple

import numpy as np

from bench.spec import JobSpec

if TYPE_CHECKING:  # pandas loads where a table is read: a training process never reads one
    import pandas as pd


class Status(StrEnum):
    """A job's state. `done` and `diverged` are complete (a rerun skips them); `failed` is retried."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    DIVERGED = "diverged"
    FAILED = "failed"


COMPLETE_STATUSES = frozenset({Status.DONE, Status.DIVERGED})
TERMINAL_STATUSES = frozenset({Status.DONE, Status.DIVERGED, Status.FAILED})


class Outcome(StrEnum):
    """What a run (a job with a terminal status) came to, as reports count it. A done job survived
    unless the report's failed-to-train rule (a metric's `failed_at`) says it failed to train."""

    SURVIVED = "survived"
    FAILED_TO_TRAIN = "failed to train"
    DIVERGED = "diverged"
    FAILED = "failed"


# the outcome each terminal status gives a run before any failed-to-train rule is applied
STATUS_OUTCOMES = {Status.DONE: Outcome.SURVIVED, Status.DIVERGED: Outcome.DIVERGED, Status.FAILED: Outcome.FAILED}

# the metric a diverging job logs (value 1) at the step it diverged, the last row of its metrics.csv
DIVERGED_METRIC = "diverged"

# keys of status.json besides job_id/status/reason/step, settable through write_status(**fields)
STATUS_FIELDS = (
    "attempts", "started_at", "updated_at", "finished_at", "train_s", "eval_s", "mlflow_run_id", "mlflow_error",
    "pid", "host", "slurm_job_id",
)

METRIC_COLUMNS = ("job_id", "step", "wall_s", "metric", "value")
_METRICS_HEADER = ",".join(METRIC_COLUMNS) + "\n"
METRIC_DTYPES = {"job_id": "object", "step": "int64", "wall_s": "float64", "metric": "object", "value": "float64"}

_JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


class SpecChangedError(ValueError):
    """A job folder holds a spec that differs from the one being run; the message lists the diff."""


class MetricRow(NamedTuple):
    """One long metric row. `step` counts generator updates; `wall_s` is seconds since the job started."""

    job_id: str
    step: int
    wall_s: float
    metric: str
    value: float


def parse_status(status: Status | str) -> Status:
    """`status` as a Status; an unknown value raises ValueError naming the valid ones."""
    try:
        return Status(status)
    except ValueError:
        valid = ", ".join(s.value for s in Status)
        raise ValueError(f"unknown job status {status!r}; valid: {valid}") from None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def atomic_write(path: Path, write: Callable[[IO[Any]], object], *, binary: bool = False) -> None:
    """Write `path` through `write(file)` atomically: temp file in the same folder, fsync, os.replace.

    If `write` raises, the temporary file is removed and the previous content of `path` is intact.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with (os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8", newline="")) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    # makes the rename itself durable; not every platform can open a folder
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically."""
    atomic_write(path, lambda f: f.write(text))


def atomic_write_json(path: Path, data: Any) -> None:
    """Write `data` as indented JSON to `path` atomically (a value JSON cannot encode leaves `path` intact)."""

    def write(f: IO[str]) -> None:
        json.dump(data, f, indent=2, allow_nan=True)
        f.write("\n")

    atomic_write(path, write)


def empty_metrics() -> pd.DataFrame:
    """A metrics table with no rows and the right columns and dtypes."""
    import pandas as pd

    return pd.DataFrame({c: pd.Series(dtype=METRIC_DTYPES[c]) for c in METRIC_COLUMNS})


def _metrics_body(path: Path, text: str) -> str:
    """The complete rows of metrics.csv `text` (its header checked and removed): a torn last line,
    or a header torn before its end, is dropped."""
    if not text.startswith(_METRICS_HEADER):
        if _METRICS_HEADER.startswith(text):
            return ""
        raise ValueError(f"{path}: the first line must be {_METRICS_HEADER.strip()!r}")
    body = text[len(_METRICS_HEADER):]
    return body[:body.rfind("\n") + 1]


def _parse_metrics(bodies: str) -> pd.DataFrame:
    """Complete metric rows (text without the header) as a metrics table."""
    if not bodies:
        return empty_metrics()
    import pandas as pd

    frame = pd.read_csv(io.StringIO(_METRICS_HEADER + bodies), dtype={"job_id": str, "metric": str},
                        keep_default_na=False, na_values={"wall_s": ["nan"], "value": ["nan"]})
    return frame.astype(METRIC_DTYPES)[list(METRIC_COLUMNS)]


def _cut_torn_line(f: IO[bytes]) -> None:
    """Truncate the file `f` (open "a+b") after its last newline, reading back only as far as it."""
    position = f.seek(0, os.SEEK_END)
    if position == 0:
        return
    f.seek(position - 1)
    if f.read(1) == b"\n":
        return
    while position > 0:
        start = max(0, position - 4096)
        f.seek(start)
        newline = f.read(position - start).rfind(b"\n")
        if newline >= 0:
            f.truncate(start + newline + 1)
            return
        position = start
    f.truncate(0)


class JobStore:
    """One job's folder, `results/<suite>/jobs/<job_id>/`. Nothing is created until the first write."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.job_id = self.path.name

    def __repr__(self) -> str:
        return f"JobStore({str(self.path)!r})"

    # ---- paths -------------------------------------------------------------------------------
    @property
    def spec_path(self) -> Path:
        return self.path / "spec.json"

    @property
    def status_path(self) -> Path:
        return self.path / "status.json"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.csv"

    @property
    def checkpoint_path(self) -> Path:
        return self.path / "checkpoint.pt"

    @property
    def samples_dir(self) -> Path:
        """Folder of the final samples and their figure; not created by reading this."""
        return self.path / "samples"

    @property
    def final_points_path(self) -> Path:
        """`samples/final.npy`: the job's final generated points, float32 (N, D)."""
        return self.samples_dir / "final.npy"

    @property
    def final_images_path(self) -> Path:
        """`samples/final_images.npy`: the job's final generated images, uint8 (N, H, W, C), 0-255."""
        return self.samples_dir / "final_images.npy"

    @property
    def final_figure_path(self) -> Path:
        """`samples/final.png`: the final samples drawn after training (bench.report.samples), never by it."""
        return self.samples_dir / "final.png"

    def save_final_samples(self, samples: np.ndarray) -> Path:
        """Store the final samples atomically, as they are: a float (N, D) array of points goes to
        `final_points_path` (float32), a uint8 (N, H, W, C) array of images to `final_images_path`.
        Returns the path written."""
        array = np.asarray(samples)
        if array.ndim == 2 and np.issubdtype(array.dtype, np.floating):
            path, array = self.final_points_path, array.astype(np.float32)
        elif array.ndim == 4 and array.dtype == np.uint8:
            path = self.final_images_path
        else:
            raise ValueError(f"final samples must be float (N, D) points or uint8 (N, H, W, C) images, "
                             f"got {array.dtype} {array.shape}")
        atomic_write(path, lambda f: np.save(f, array), binary=True)
        return path

    @property
    def log_path(self) -> Path:
        """The job's own progress log, `log.txt`."""
        return self.path / "log.txt"

    # ---- spec --------------------------------------------------------------------------------
    def write_spec(self, spec: JobSpec) -> None:
        """Store `spec` as spec.json; its job id must be this folder's name."""
        if spec.job_id != self.job_id:
            raise ValueError(f"spec has job_id {spec.job_id!r} but the job folder is {self.path}")
        atomic_write_json(self.spec_path, {"job_id": spec.job_id, "spec": spec.to_dict()})

    def read_spec(self) -> JobSpec | None:
        """The stored spec, or None when spec.json does not exist."""
        try:
            data = json.loads(self.spec_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        try:
            return JobSpec.from_dict(data["spec"])
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"{self.spec_path}: not a valid stored job spec ({error})") from error

    def check_spec(self, spec: JobSpec) -> None:
        """Refuse to run `spec` here if a different spec is stored: raises SpecChangedError with the diff.

        Every field counts, `device` included: a job resumed on another device would not compute
        the same thing. No stored spec passes.
        """
        stored = self.read_spec()
        if stored is None or stored == spec:
            return
        lines = stored.diff(spec)
        raise SpecChangedError(
            f"{self.spec_path}: the stored spec differs from the one being run "
            f"(stored -> new):\n  " + "\n  ".join(lines) + "\nremove the job folder to start it afresh"
        )

    # ---- status ------------------------------------------------------------------------------
    def read_status(self) -> dict[str, Any]:
        """status.json as a dict with every key; a job with no status file is `pending`."""
        status: dict[str, Any] = {"job_id": self.job_id, "status": Status.PENDING.value, "reason": None, "step": None}
        status.update({key: None for key in STATUS_FIELDS})
        status["attempts"] = 0
        try:
            stored = json.loads(self.status_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return status
        status.update(stored)
        return status

    def write_status(
        self, status: Status | str, *, reason: str | None = None, step: int | None = None, **fields: Any
    ) -> dict[str, Any]:
        """Merge a new status into status.json and return the whole record.

        `reason` describes the status: a change of status replaces the previous reason (with
        None when none is given); writing the same status again keeps it unless a new one is
        given, so `write_status(current, mlflow_run_id=...)` only adds fields. `step`
        (generator steps done) is kept from before when None. `fields` may set any of
        STATUS_FIELDS (`train_s`, `eval_s` in seconds, `mlflow_run_id`, ...). Timestamps are ISO
        8601 UTC: `updated_at` on every write, `started_at` at the first `running`,
        `finished_at` when the status becomes done/diverged/failed (cleared on `running`).
        Entering `running` from any other status adds one to `attempts` unless `attempts` is given.
        """
        new = parse_status(status)
        unknown = sorted(set(fields) - set(STATUS_FIELDS))
        if unknown:
            raise ValueError(f"unknown status field(s) {', '.join(unknown)}; valid: {', '.join(STATUS_FIELDS)}")
        record = self.read_status()
        previous = parse_status(record["status"])
        now = _now()
        record["status"] = new.value
        if new is not previous or reason is not None:
            record["reason"] = reason
        if step is not None:
            record["step"] = int(step)
        if new is Status.RUNNING:
            if previous is not Status.RUNNING and "attempts" not in fields:
                record["attempts"] = int(record.get("attempts") or 0) + 1
            if record.get("started_at") is None:
                record["started_at"] = now
            record["finished_at"] = None
        elif new in TERMINAL_STATUSES and (new is not previous or record.get("finished_at") is None):
            record["finished_at"] = now
        record["updated_at"] = now
        record.update(fields)
        atomic_write_json(self.status_path, record)
        return record

    def is_complete(self) -> bool:
        """True when the job is done or diverged (a rerun skips it)."""
        return parse_status(self.read_status()["status"]) in COMPLETE_STATUSES

    # ---- metrics -----------------------------------------------------------------------------
    def append_metrics(self, rows: Sequence[MetricRow]) -> None:
        """Append long metric rows to metrics.csv (created with its header), flushed and fsynced.

        The rows go in one write at the end of the file, whatever its size. Each call costs an
        fsync, so buffer rows and append them at each evaluation or checkpoint rather than one
        call per step. A torn last line left by a job killed mid-append is cut off first.
        """
        if not rows:
            return
        text = self._format_rows(rows)
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.metrics_path, "a+b") as f:
            _cut_torn_line(f)
            created = f.seek(0, os.SEEK_END) == 0
            if created:
                text = _METRICS_HEADER + text
            f.write(text.encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())
        if created:
            _fsync_dir(self.path)

    def _format_rows(self, rows: Sequence[MetricRow]) -> str:
        lines = io.StringIO()
        writer = csv.writer(lines, lineterminator="\n")
        for row in rows:
            job_id, step, wall_s, metric, value = row
            if job_id != self.job_id:
                raise ValueError(f"metric row for job {job_id!r} appended to job folder {self.path}")
            writer.writerow((job_id, int(step), repr(float(wall_s)), metric, repr(float(value))))
        return lines.getvalue()

    def read_metrics(self) -> pd.DataFrame:
        """metrics.csv as a DataFrame (columns job_id, step, wall_s, metric, value); empty if absent.
        A torn last line (a job killed mid-append) is left out."""
        try:
            text = self.metrics_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return empty_metrics()
        return _parse_metrics(_metrics_body(self.metrics_path, text))

    def truncate_metrics(self, after_step: int) -> None:
        """Drop rows with step > after_step (resuming from a checkpoint taken at `after_step`), and a
        torn last line if there is one; the file is rewritten atomically, or left alone when
        nothing is dropped."""
        try:
            text = self.metrics_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return
        torn = not text.endswith("\n")
        frame = _parse_metrics(_metrics_body(self.metrics_path, text))
        kept = frame[frame["step"] <= after_step]
        if len(kept) == len(frame) and not torn:
            return
        rows = [MetricRow(*row) for row in kept.itertuples(index=False, name=None)]
        atomic_write_text(self.metrics_path, _METRICS_HEADER + self._format_rows(rows))

    # ---- checkpoint --------------------------------------------------------------------------
    def save_checkpoint(self, state: dict[str, Any]) -> None:
        """torch.save `state` to checkpoint.pt atomically (a failed save keeps the previous checkpoint)."""
        import torch

        atomic_write(self.checkpoint_path, lambda f: torch.save(state, f), binary=True)

    def load_checkpoint(self, map_location: Any = None) -> dict[str, Any] | None:
        """The saved checkpoint (tensors moved by `map_location`), or None when there is none.

        Loaded with `weights_only=False`: checkpoints hold RNG states and plain Python values, and
        are files this harness wrote itself.
        """
        import torch

        if not self.checkpoint_path.exists():
            return None
        return torch.load(self.checkpoint_path, map_location=map_location, weights_only=False)


class SuiteStore:
    """One suite's results folder, `results/<suite>/`."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"SuiteStore({str(self.root)!r})"

    @property
    def jobs_dir(self) -> Path:
        return self.root / "jobs"

    @property
    def suite_yaml_path(self) -> Path:
        return self.root / "suite.yaml"

    @property
    def report_dir(self) -> Path:
        """Where `bench report` writes report.md, report.html and figures/."""
        return self.root / "report"

    def write_suite_yaml(self, text: str) -> None:
        """Store the suite as resolved and run, `suite.yaml`."""
        atomic_write_text(self.suite_yaml_path, text)

    def job(self, job_id: str) -> JobStore:
        """The folder of job `job_id` (a plain name: letters, digits, `_`, `.`, `-`)."""
        if not isinstance(job_id, str) or not _JOB_ID.match(job_id):
            raise ValueError(f"job id {job_id!r} must match {_JOB_ID.pattern}")
        return JobStore(self.jobs_dir / job_id)

    def job_ids(self) -> list[str]:
        """Ids of every job folder, sorted."""
        if not self.jobs_dir.is_dir():
            return []
        return sorted(p.name for p in self.jobs_dir.iterdir() if p.is_dir() and _JOB_ID.match(p.name))

    def record_lost(self, job_ids: Sequence[str], reason: str, *, stopping: bool = False,
                    stopped: str = "interrupted; resumes from its last checkpoint") -> dict[str, str]:
        """The jobs of a process that ended without an answer (killed, out of memory, a SLURM task
        that died): job_id -> status. A job the folder records as complete keeps its status; the
        others are failed with `reason`, or, when the process was being stopped (`stopping`: Ctrl-C,
        a preemption), pending with `stopped`, to resume from their last checkpoint."""
        statuses: dict[str, str] = {}
        for job_id in job_ids:
            store = self.job(job_id)
            recorded = store.read_status()["status"]
            if recorded not in COMPLETE_STATUSES:
                recorded = Status.PENDING if stopping else Status.FAILED
                store.write_status(recorded, reason=stopped if stopping else reason)
            statuses[job_id] = str(recorded)
        return statuses

    def jobs_table(self) -> pd.DataFrame:
        """One row per job: job_id, status, reason, step, train_s, eval_s, attempts, started_at,
        finished_at, mlflow_run_id, then every key of `JobSpec.flat()` (str values; missing when a
        job has no spec). A job folder with a spec but no status is `pending`."""
        base = ["job_id", "status", "reason", "step", "train_s", "eval_s", "attempts", "started_at",
                "finished_at", "mlflow_run_id"]
        rows: list[dict[str, Any]] = []
        spec_keys: dict[str, None] = {}
        for job_id in self.job_ids():
            job = self.job(job_id)
            status = job.read_status()
            row = {key: status.get(key) for key in base}
            spec = job.read_spec()
            if spec is not None:
                flat = spec.flat()
                spec_keys.update(dict.fromkeys(flat))
                row.update(flat)
            rows.append(row)
        import pandas as pd

        table = pd.DataFrame(rows, columns=base + [k for k in spec_keys if k not in base])
        table["step"] = table["step"].astype("Int64")
        table["attempts"] = table["attempts"].astype("Int64")
        table["train_s"] = table["train_s"].astype("float64")
        table["eval_s"] = table["eval_s"].astype("float64")
        return table

    def metrics_table(self, job_ids: Sequence[str] | None = None) -> pd.DataFrame:
        """The metric rows of `job_ids` (default: every job) as one table (columns job_id, step,
        wall_s, metric, value; dtypes object, int64, float64, object, float64); jobs with no
        metrics yet add nothing. The files are parsed in one pass over their concatenated text:
        one `read_csv` per file costs seconds over a thousand jobs, this a fraction of one."""
        bodies: list[str] = []
        for job_id in self.job_ids() if job_ids is None else job_ids:
            path = self.job(job_id).metrics_path
            try:
                text = path.read_text(encoding="utf-8")
            except FileNotFoundError:
                continue
            bodies.append(_metrics_body(path, text))
        return _parse_metrics("".join(bodies))
