"""`bench`: run suites, list what can be compared, show status, build reports, open the MLflow UI.

A thin layer: every command parses its arguments and calls the modules that do the work.
Exit codes: 0 success; 1 some jobs failed or a command failed; 2 bad input (suite, profile,
arguments), in which case nothing has started and nothing written is touched.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> int:
    print(message, file=sys.stderr)
    return code


def _table(rows: list[dict[str, object]], columns: Sequence[str]) -> str:
    widths = {c: max([len(c)] + [len(str(r.get(c, ""))) for r in rows]) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns), "  ".join("-" * widths[c] for c in columns)]
    lines += ["  ".join(str(r.get(c, "")).ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ run


def cmd_run(args: argparse.Namespace) -> int:
    from bench.catalogue import build_catalogue
    from bench.suite import SuiteError, load_suite, varying_fields

    try:
        suite = load_suite(args.suite, build_catalogue())
    except SuiteError as error:
        return _fail(str(error))
    config = suite.config
    jobs = list(suite.jobs)
    axes = list(config.grid) + sorted({k for rule in config.include for k in rule} - set(config.grid))
    columns = ["job_id"] + [c for c in ("objective", "arch", "seed") if c] + [
        c for c in varying_fields(jobs) if c not in ("objective", "arch", "seed")]
    if args.dry_run:
        rows = [{"job_id": job.job_id, **job.flat()} for job in jobs]
        print(_table(rows, columns))
        print(f"{len(jobs)} jobs")
        return 0

    from bench.launch import changed_jobs, default_paths, launch, plan_jobs, stop_requested
    from bench.store import SuiteStore

    executor = args.executor or config.executor.name
    max_parallel = args.max_parallel or config.executor.max_parallel
    results_root = Path(args.results).resolve()
    suite_dir = results_root / suite.name
    suite_store = SuiteStore(suite_dir)
    profile = None
    if executor == "slurm":
        from bench.launch.profiles import ProfileError, load_profile

        profile_path = args.profile or config.executor.profile
        if not profile_path:
            return _fail(f"{args.suite}: the slurm executor needs --profile or executor.profile")
        try:
            profile = load_profile(Path(profile_path))
        except ProfileError as error:
            return _fail(str(error))
    changed = changed_jobs(jobs, suite_store, axes)
    if changed:
        return _fail(
            f"{args.suite}: results under {suite_dir} were made with a different spec; refusing to mix them:\n"
            + "\n".join(f"  {line}" for line in changed)
            + "\nUse another suite name, or remove that results folder to start again.")
    from bench.launch import slurm

    slurm_states = slurm.states_for_store(suite_store) if slurm.slurm_available() else None
    plan = plan_jobs(jobs, suite_store, slurm_states)
    suite_store.write_suite_yaml(suite.text)
    print(f"suite {suite.name}: {len(jobs)} jobs: {len(plan.complete)} complete, {len(plan.live)} running "
          f"elsewhere, {len(plan.resume)} to resume, {len(plan.fresh)} to start ({executor} executor)")
    for job in plan.fresh:
        store = suite_store.job(job.job_id)
        store.write_spec(job)
        if not store.status_path.exists():
            store.write_status("pending")

    tracking = None
    paths = default_paths(results_root)
    if config.tracking.enabled and not args.no_tracking:
        tracking = _tracking_target(config, results_root, suite.name, jobs)
        _flush_missing(plan.complete, suite_store, tracking)
    if not plan.to_run:
        print("nothing to train: every job is complete" if not plan.live else
              "nothing to start: the remaining jobs are running")
    else:
        started = time.perf_counter()
        try:
            launch(plan.to_run, suite_dir=suite_dir, paths=paths, tracking=tracking, executor=executor,
                   max_parallel=max_parallel, threads=args.threads or config.executor.threads_per_job,
                   progress=not args.no_progress, profile=profile,
                   wait=config.executor.wait if args.wait is None else args.wait)
        except KeyboardInterrupt:
            return _interrupted()
        if stop_requested():
            return _interrupted()
        print(f"ran {len(plan.to_run)} jobs in {time.perf_counter() - started:.1f}s")
    return _summarise(suite_store, jobs, report=not args.no_report)


def _interrupted() -> int:
    print("\ninterrupted: running jobs checkpoint and stay pending; run the same command again to resume",
          file=sys.stderr)
    return 130


def _tracking_target(config, results_root: Path, suite_name: str, jobs):  # type: ignore[no-untyped-def]
    from bench.launch import TrackingTarget
    from bench.tracking import Tracker, default_tracking_uri

    uri = config.tracking.uri or default_tracking_uri(results_root)
    artifact_root = None if uri.startswith("http") else results_root / "mlartifacts"
    tracker = Tracker(uri, config.tracking.experiment, artifact_root)
    datasets = ",".join(dict.fromkeys(job.dataset for job in jobs))
    parent = tracker.suite_run(suite_name, {"suite": suite_name, "jobs": str(len(jobs)), "dataset": datasets})
    from bench.suite import varying_fields

    return TrackingTarget(uri=uri, experiment=config.tracking.experiment, parent_run_id=parent,
                          artifact_root=artifact_root, varying=tuple(varying_fields(jobs)))


def _flush_missing(complete, suite_store, tracking) -> None:  # type: ignore[no-untyped-def]
    from bench.launch import flush_to_mlflow

    for job in complete:
        store = suite_store.job(job.job_id)
        if not store.read_status().get("mlflow_run_id"):
            flush_to_mlflow(store, tracking)


def _summarise(suite_store, jobs, *, report: bool) -> int:  # type: ignore[no-untyped-def]
    statuses = [suite_store.job(job.job_id).read_status() for job in jobs]
    counts: dict[str, int] = {}
    for status in statuses:
        counts[status["status"]] = counts.get(status["status"], 0) + 1
    print("status: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    for job, status in zip(jobs, statuses):
        if status["status"] in ("failed", "diverged"):
            print(f"  {job.job_id} {job.objective}/{job.arch}/seed {job.seed}: {status['status']}: {status.get('reason')}")
    if report:
        _build_report(suite_store.root)
    return EXIT_FAILED if counts.get("failed") else 0


def _build_report(suite_dir: Path) -> int:
    try:
        from bench.report import build_report
    except ImportError:
        return 0
    started = time.perf_counter()
    result = build_report(suite_dir)
    where = getattr(result, "markdown", suite_dir / "report" / "report.md")
    print(f"report: {where} ({time.perf_counter() - started:.1f}s)")
    _print_summary(result.summary)
    return 0


def _print_summary(lines: Sequence[str]) -> None:
    """The report's opening answer (ReportResult.summary), as `bench report` and the end of `bench run`
    print it."""
    if lines:
        print("\nsummary:")
        print("\n".join(lines))


# ------------------------------------------------------------------------------------------------ other


def cmd_list(args: argparse.Namespace) -> int:
    from bench import catalogue  # noqa: F401  (registers everything)

    what = args.what
    if what == "objectives":
        from bench.objectives import list_objectives

        rows = []
        for entry in list_objectives():
            defaults = entry().defaults
            tricks = ",".join(name for name, _ in defaults.tricks) or "-"
            rows.append({"name": entry.name, "optimizer": defaults.optimizer, "lr_g": defaults.lr_g,
                         "lr_d": defaults.lr_d, "betas": f"{defaults.betas[0]},{defaults.betas[1]}",
                         "critic_steps": defaults.critic_steps, "tricks": tricks,
                         "description": entry.description, "paper": entry.paper})
        print(_table(rows, ["name", "optimizer", "lr_g", "lr_d", "betas", "critic_steps", "tricks", "description", "paper"]))
    elif what == "archs":
        from bench.nets import list_archs

        print(_table([{"name": n, "description": d} for n, d in list_archs()], ["name", "description"]))
    elif what == "datasets":
        from bench.data import list_datasets

        print(_table([{"name": n, "description": d} for n, d in list_datasets()], ["name", "description"]))
    elif what == "tricks":
        from bench.penalties import TRICKS

        rows = [{"name": name, "options": ", ".join(f"{k}={v}" for k, v in entry.option_defaults.items()) or "-",
                 "description": entry.description} for name, entry in TRICKS.items()]
        print(_table(rows, ["name", "options", "description"]))
    elif what == "metrics":
        from bench.metrics import EVALUATORS

        rows = []
        for name, evaluator in EVALUATORS.items():
            for info in evaluator.metrics:
                rows.append({"evaluator": name, "metric": info.name, "better": info.direction,
                             "cost": evaluator.cost, "description": info.description})
        print(_table(rows, ["evaluator", "metric", "better", "cost", "description"]))
    return 0


def _shown(value: object) -> object:
    """A table cell: '-' for a missing value."""
    if value is None or (isinstance(value, float) and value != value) or str(value) in ("<NA>", "nan", "None"):
        return "-"
    return value


def cmd_status(args: argparse.Namespace) -> int:
    from bench.store import SuiteStore

    suite_dir = Path(args.suite_dir)
    if not (suite_dir / "jobs").is_dir():
        return _fail(f"{suite_dir}: not a suite results folder (no jobs/ inside)")
    store = SuiteStore(suite_dir)
    table = store.jobs_table()
    slurm_ids = {job_id: store.job(job_id).read_status().get("slurm_job_id") for job_id in table["job_id"]}
    slurm_states: dict[str, str] = {}
    if any(slurm_ids.values()):
        from bench.launch import slurm

        if slurm.slurm_available():
            slurm_states = slurm.states_for_store(store)
    rows = []
    for record in table.to_dict("records"):
        row = {key: _shown(record.get(key)) for key in ("job_id", "objective", "arch", "seed", "status", "step", "steps")}
        row["reason"] = record.get("reason") or ""
        if any(slurm_ids.values()):
            slurm_id = slurm_ids.get(record["job_id"])
            row["slurm"] = f"{slurm_id} {slurm_states.get(str(slurm_id), '?')}" if slurm_id else "-"
        rows.append(row)
    columns = ["job_id", "objective", "arch", "seed", "status", "step", "steps"] + (
        ["slurm"] if any(slurm_ids.values()) else []) + ["reason"]
    print(_table(rows, columns))
    counts = table["status"].value_counts().to_dict() if len(table) else {}
    print(f"{len(table)} jobs: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    suite_dir = Path(args.suite_dir)
    if not (suite_dir / "jobs").is_dir():
        return _fail(f"{suite_dir}: not a suite results folder (no jobs/ inside)")
    from bench.report import build_report

    started = time.perf_counter()
    result = build_report(suite_dir, baseline=args.baseline, survivors_only=args.survivors_only)
    print(f"wrote {getattr(result, 'markdown', suite_dir / 'report' / 'report.md')} and report.html "
          f"({time.perf_counter() - started:.1f}s)")
    _print_summary(result.summary)
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    from bench.tracking import default_tracking_uri, ui_command

    results_root = Path(args.results).resolve()
    uri = args.uri or default_tracking_uri(results_root)
    command = ui_command(uri, args.host, args.port)
    if args.serve:
        command[command.index("ui")] = "server"
    print("running: " + " ".join(command))
    if args.print_only:
        return 0
    try:
        return subprocess.call(command)
    except KeyboardInterrupt:
        return 0


# ------------------------------------------------------------------------------------------------ parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench",
        description="Compare GAN adversarial objectives: run suites of jobs, report with statistics.",
        epilog="Exit codes: 0 ok, 1 failed jobs or command, 2 bad input (nothing run or written).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="expand a suite into jobs and run those not complete",
                              description="Validate SUITE, expand its grid, and run every job whose results are "
                                          "not complete (interrupted jobs resume from their checkpoint). "
                                          "Writes results/<suite>/ and MLflow runs, then the report.")
    run.add_argument("suite", help="the suite YAML file (see suites/)")
    run.add_argument("--dry-run", action="store_true", help="print the expanded grid and the job count; run nothing")
    run.add_argument("--executor", choices=["debug", "local", "slurm"], help="override the suite's executor")
    run.add_argument("--max-parallel", type=int, metavar="N", help="jobs at once (local executor)")
    run.add_argument("--threads", type=int, metavar="N", help="torch threads per job (default: cores / max-parallel)")
    run.add_argument("--profile", help="SLURM cluster profile YAML (slurm/profiles/)")
    run.add_argument("--results", default="results", help="results root (default: ./results)")
    wait = run.add_mutually_exclusive_group()
    wait.add_argument("--wait", dest="wait", action="store_true", default=None, help="wait for SLURM jobs to end")
    wait.add_argument("--no-wait", dest="wait", action="store_false", help="return once SLURM jobs are submitted")
    run.add_argument("--no-tracking", action="store_true", help="do not log to MLflow")
    run.add_argument("--no-report", action="store_true", help="do not build the report at the end")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.set_defaults(func=cmd_run)

    listing = commands.add_parser("list", help="list objectives, archs, datasets, tricks or metrics",
                                  description="List the registered parts a suite may name, with one-line descriptions.")
    listing.add_argument("what", choices=["objectives", "archs", "datasets", "tricks", "metrics"])
    listing.set_defaults(func=cmd_list)

    status = commands.add_parser("status", help="show each job's state in a results folder",
                                 description="One line per job: status, step reached, reason; SLURM state when submitted there.")
    status.add_argument("suite_dir", help="results/<suite>")
    status.set_defaults(func=cmd_status)

    report = commands.add_parser("report", help="build report.md and report.html for a results folder",
                                 description="Aggregate a results folder into markdown and HTML reports (never trains).")
    report.add_argument("suite_dir", help="results/<suite>")
    report.add_argument("--baseline", help="objective to compare against (default: the suite's, else nsgan)")
    report.add_argument("--survivors-only", action="store_true",
                        help="leave diverged, failed and failed-to-train runs out of the statistics instead of "
                             "counting them as the worst outcome")
    report.set_defaults(func=cmd_report)

    ui = commands.add_parser("ui", help="open the MLflow UI on the results store",
                             description="Start the MLflow UI (or, with --serve, a tracking server for cluster jobs) "
                                         "on the SQLite store under the results root.")
    ui.add_argument("--results", default="results", help="results root (default: ./results)")
    ui.add_argument("--uri", help="tracking URI (default: sqlite under the results root)")
    ui.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    ui.add_argument("--port", type=int, default=5000, help="port to listen on (default: 5000)")
    ui.add_argument("--serve", action="store_true", help="run `mlflow server` for jobs to log to over HTTP")
    ui.add_argument("--print-only", action="store_true", help="print the command instead of running it")
    ui.set_defaults(func=cmd_ui)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
