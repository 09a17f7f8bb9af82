"""`bench`: run suites, list what can be compared, show status, build reports, open the MLflow UI.

A thin layer: every command parses its arguments, calls the module that does the work (`bench run`
calls bench.run.run_suite) and maps what happened to an exit code:

    0    success
    1    some job failed, or a service (SLURM, MLflow, the disk) failed while running
    2    bad input (suite file, profile, arguments, or what this machine lacks for the suite):
         nothing was started and nothing written
    130  interrupted (Ctrl-C or SIGTERM): running jobs checkpoint and resume on the next run

Errors are one message, never a traceback, for anything a user can fix or a service that is down.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.registry import Option

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130

EXIT_CODES = (
    "exit codes: 0 success; 1 some job failed, or a service (SLURM, MLflow) failed while running; "
    "2 bad input (suite, profile, arguments, or what this machine lacks for the suite: nothing was "
    "started or written); 130 interrupted (jobs checkpoint and resume on the next run)"
)

INTERRUPTED = "interrupted: running jobs checkpoint and stay pending; run the same command again to resume"


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> int:
    print(message, file=sys.stderr)
    return code


def _warn(line: str) -> None:
    print(line, file=sys.stderr)


def _checked(option: Option) -> Callable[[str], Any]:
    """An argparse type that reads a value and checks it against `option`, the declaration every
    suite option is checked against too (bench.registry.Option)."""

    def parse(text: str) -> Any:
        try:
            value = option.type(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{option.check(text)}, got {text!r}") from None
        problem = option.check(value) or (None if math.isfinite(value) else "must be finite")
        if problem:
            raise argparse.ArgumentTypeError(f"{problem}, got {text}")
        return value

    return parse


def job_filter(text: str) -> tuple[str, tuple[str, ...]]:
    """`--only KEY=V1,V2` as (KEY, (V1, V2))."""
    key, sep, values = text.partition("=")
    parts = tuple(value.strip() for value in values.split(","))
    if not sep or not key.strip() or not all(parts):
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE[,VALUE...] (for example objective=nsgan,rsgan)")
    return key.strip(), parts


positive_int = _checked(Option(1, int, low=1, description="a count of at least one"))
positive_float = _checked(Option(1.0, float, low=0, low_open=True, description="a positive number"))
port_number = _checked(Option(5000, int, low=1, high=65535, description="a TCP port"))


def _terminal_width() -> int:
    return shutil.get_terminal_size((100, 24)).columns


# ------------------------------------------------------------------------------------------------ run


def cmd_run(args: argparse.Namespace) -> int:
    from bench.run import RunRequest, run_suite

    outcome = run_suite(RunRequest(
        suite=Path(args.suite), executor=args.executor, max_parallel=args.max_parallel, threads=args.threads,
        profile=Path(args.profile) if args.profile else None, results=Path(args.results), wait=args.wait,
        tracking=not args.no_tracking, report=not args.no_report, progress=not args.no_progress,
        dry_run=args.dry_run, only=tuple(args.only),
    ), warn=_warn)
    if outcome.interrupted:
        return _fail("\n" + INTERRUPTED, EXIT_INTERRUPTED)
    return EXIT_FAILED if outcome.failed else EXIT_OK


# ------------------------------------------------------------------------------------------------ plan


def cmd_plan(args: argparse.Namespace) -> int:
    from bench.catalogue import build_catalogue
    from bench.plan import plan_lines
    from bench.suite import load_suite, select_jobs

    suite = select_jobs(load_suite(Path(args.suite), build_catalogue()), args.only)
    print("\n".join(plan_lines(suite, effect=args.effect, results_root=Path(args.results))))
    return EXIT_OK


# ------------------------------------------------------------------------------------------------ list


def short_number(value: float) -> str:
    """A learning rate or beta as people write it: 2e-4, 5e-5, 0.5, 0.999, 0."""
    if value == 0:
        return "0"
    if abs(value) >= 1e-2:
        return f"{value:g}"
    mantissa, exponent = f"{value:.3e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def optimizer_summary(optimizer: str, lr_g: float, lr_d: float, betas: tuple[float, float]) -> str:
    """"adam 2e-4 (0.5,0.999)", "rmsprop 5e-5", "adam 1e-4/4e-4 (0,0.9)" (generator/critic rates
    when they differ): only the settings the optimiser uses, betas for adam alone."""
    rate = short_number(lr_g) if lr_g == lr_d else f"{short_number(lr_g)}/{short_number(lr_d)}"
    text = f"{optimizer} {rate}"
    if optimizer == "adam":
        text += f" ({short_number(betas[0])},{short_number(betas[1])})"
    return text


def _fit(rows: list[dict[str, Any]], columns: Sequence[str], shrinkable: Sequence[str],
         width: int) -> list[dict[str, Any]]:
    """`rows` with the `shrinkable` columns cut (ending "...") so that the table fits `width` columns;
    the room left by the other columns is shared, a column that needs less leaving the rest to others."""
    def need(column: str) -> int:
        return max([len(column)] + [len(str(row.get(column, ""))) for row in rows])

    room = width + 2 - sum(need(c) + 2 for c in columns if c not in shrinkable)  # the last column has no gap after it
    limits: dict[str, int] = {}
    left = sorted(shrinkable, key=need)
    while left:
        share = max(12, room // len(left) - 2)
        column = left.pop(0)
        limits[column] = min(need(column), share)
        room -= limits[column] + 2

    def cut(text: str, limit: int) -> str:
        return text if len(text) <= limit else text[:limit - 3].rstrip() + "..."

    return [{**row, **{c: cut(str(row.get(c, "")), limits[c]) for c in shrinkable}} for row in rows]


def short_description(text: str) -> str:
    """The opening clause of a description: up to its first ':' or ';', and its first parenthesis
    when that leaves a phrase."""
    cut = min([index for index in (text.find(": "), text.find("; ")) if index > 0] or [len(text)])
    text = text[:cut]
    bracket = text.find(" (")
    return text[:bracket] if bracket >= 12 else text


def _objective_rows() -> list[dict[str, Any]]:
    from bench.objectives import list_objectives

    rows = []
    for entry in list_objectives():
        defaults = entry().defaults
        rows.append({
            "name": entry.name,
            "optimizer": optimizer_summary(defaults.optimizer, defaults.lr_g, defaults.lr_d, defaults.betas),
            "critic": defaults.critic_steps,
            "tricks": ",".join(name for name, _ in defaults.tricks) or "-",
            "description": entry.description, "paper": entry.paper,
        })
    return rows


def _details(pairs: Sequence[tuple[str, object]]) -> str:
    width = max(len(key) for key, _ in pairs)
    return "\n".join(f"{key.ljust(width)}  {value}" for key, value in pairs)


def _options_block(options: Mapping[str, Any]) -> str:
    """Declared options (bench.registry.Option), one per line: name, default, valid values, meaning."""
    if not options:
        return "options: none"
    width = max(len(name) for name in options)
    defaults = {name: "required" if option.required else repr(option.default) for name, option in options.items()}
    shown = max(len(value) for value in defaults.values())
    lines = [f"  {name.ljust(width)}  {defaults[name].ljust(shown)}  {option.valid()}; {option.description}"
             for name, option in options.items()]
    return "options (name, default, valid values; what it does):\n" + "\n".join(lines)


PARTS = {"objectives": ("bench.objectives", "OBJECTIVES"), "archs": ("bench.nets", "ARCHS"),
         "datasets": ("bench.data", "DATASETS"), "tricks": ("bench.penalties", "TRICKS"),
         "metrics": ("bench.metrics", "EVALUATORS"), "executors": ("bench.launch", "EXECUTORS")}
"""`bench list WHAT`: the registry each kind of part lives in (module, name)."""


def _describe(what: str, name: str) -> str:
    """Every field of one registered part, for `bench list WHAT NAME`."""
    import importlib

    module, registry = PARTS[what]
    entry = getattr(importlib.import_module(module), registry).get(name)
    pairs: list[tuple[str, object]] = [("name", name), ("description", entry.description)]
    if what == "objectives":
        built = entry()
        defaults = built.defaults
        rate = (f"{short_number(defaults.lr_g)} (generator and critic)" if defaults.lr_g == defaults.lr_d else
                f"generator {short_number(defaults.lr_g)}, critic {short_number(defaults.lr_d)}")
        pairs += [("paper", entry.paper or "-"), ("optimizer", defaults.optimizer), ("learning rate", rate)]
        if defaults.optimizer == "adam":
            pairs.append(("betas", f"({short_number(defaults.betas[0])}, {short_number(defaults.betas[1])})"))
        pairs += [
            ("critic steps", f"{defaults.critic_steps} per generator step"),
            ("tricks", ", ".join(trick + (" (" + ", ".join(f"{k}={v!r}" for k, v in options.items()) + ")"
                                          if options else "") for trick, options in defaults.tricks) or "none"),
            ("critic outputs", built.critic_outputs),
            ("critic judges", "(x, z) pairs, with an encoder" if built.critic_input == "pair" else "samples"),
        ]
    elif what == "metrics":
        pairs.append(("cost", entry.cost))
        pairs += [(f"metric {info.name}", f"{info.direction} is better; {info.description}") for info in entry.metrics]
    return _details(pairs) + "\n" + _options_block(entry.options)


def cmd_list(args: argparse.Namespace) -> int:
    from bench import catalogue  # noqa: F401  (registers everything)
    from bench.run import table

    what = args.what
    if args.name:
        print(_describe(what, args.name))
        return EXIT_OK
    width = sys.maxsize if args.wide else _terminal_width()
    if what == "objectives":
        rows = _objective_rows()
        if not args.wide:
            rows = [{**row, "description": short_description(row["description"])} for row in rows]
        columns = ["name", "optimizer", "critic", "tricks", "description"] + (["paper"] if args.wide else [])
        print(table(rows if args.wide else _fit(rows, columns, ["description"], width), columns))
        if not args.wide:
            print("\n`bench list objectives NAME` shows one in full (paper, options); --wide, every column.")
        return EXIT_OK
    if what == "archs":
        from bench.nets import list_archs

        rows = [{"name": n, "description": d} for n, d in list_archs()]
        columns = ["name", "description"]
    elif what == "datasets":
        from bench.data import list_datasets

        rows = [{"name": n, "description": d} for n, d in list_datasets()]
        columns = ["name", "description"]
    elif what == "tricks":
        from bench.penalties import TRICKS

        rows = [{"name": name, "options": ", ".join(f"{k}={v}" for k, v in entry.option_defaults.items()) or "-",
                 "description": entry.description} for name, entry in TRICKS.items()]
        columns = ["name", "options", "description"]
    elif what == "executors":
        from bench.launch import EXECUTORS

        rows = [{"name": name, "options": ", ".join(entry.options) or "-", "description": entry.description}
                for name, entry in EXECUTORS.items()]
        columns = ["name", "options", "description"]
    else:
        from bench.metrics import EVALUATORS

        rows = [{"evaluator": name, "metric": info.name, "better": info.direction, "cost": evaluator.cost,
                 "description": info.description}
                for name, evaluator in EVALUATORS.items() for info in evaluator.metrics]
        columns = ["evaluator", "metric", "better", "cost", "description"]
    shrinkable = [c for c in columns if c in ("options", "cost", "description")]
    print(table(rows if args.wide else _fit(rows, columns, shrinkable, width), columns))
    return EXIT_OK


# ------------------------------------------------------------------------------------------------ status


def _shown(value: object) -> object:
    """A table cell: '-' for a missing value."""
    if value is None or (isinstance(value, float) and value != value) or str(value) in ("<NA>", "nan", "None"):
        return "-"
    return value


STATUS_COLUMNS = ("job_id", "objective", "arch", "seed", "status", "step", "steps")


def _grid_order(suite_dir: Path, job_ids: Sequence[str]) -> list[str]:
    """`job_ids` in the order of the suite's grid (from the suite.yaml stored with the results), then
    any the grid no longer has, by id; by id alone when the stored suite cannot be read."""
    from bench.catalogue import build_catalogue
    from bench.store import SuiteStore
    from bench.suite import SuiteError, load_suite

    try:
        grid = [job.job_id for job in load_suite(SuiteStore(suite_dir).suite_yaml_path, build_catalogue()).jobs]
    except (SuiteError, ValueError):
        return sorted(job_ids)
    present = set(job_ids)
    ordered = [job_id for job_id in grid if job_id in present]
    return ordered + sorted(present - set(ordered))


def cmd_status(args: argparse.Namespace) -> int:
    from bench.launch import interrupted_reason
    from bench.run import table
    from bench.store import COMPLETE_STATUSES, SuiteStore

    suite_dir = Path(args.suite_dir)
    store = SuiteStore(suite_dir)
    if not store.jobs_dir.is_dir():
        return _fail(f"{suite_dir}: not a suite results folder (no jobs/ inside)")
    records = {str(record["job_id"]): record for record in store.jobs_table().to_dict("records")}
    statuses = {job_id: store.job(job_id).read_status() for job_id in records}
    on_slurm = any(status.get("slurm_job_id") for status in statuses.values())
    slurm_states: dict[str, str] | None = None
    if any(status.get("slurm_job_id") and status["status"] not in COMPLETE_STATUSES for status in statuses.values()):
        from bench.launch import slurm

        slurm_states = slurm.store_states(store, _warn)
    rows = []
    counts: dict[str, int] = {}
    for job_id in _grid_order(suite_dir, list(records)):
        record, status = records[job_id], statuses[job_id]
        row = {key: _shown(record.get(key)) for key in STATUS_COLUMNS}
        reason = record.get("reason")
        row["reason"] = reason if isinstance(reason, str) else ""
        gone = interrupted_reason(status, slurm_states, checkpoint=store.job(job_id).checkpoint_path.exists())
        if gone:
            row["status"], row["reason"] = "interrupted", gone
        if on_slurm:
            row["slurm"] = _slurm_cell(status, slurm_states)
        counts[str(row["status"])] = counts.get(str(row["status"]), 0) + 1
        rows.append(row)
    columns = [*STATUS_COLUMNS, *(["slurm"] if on_slurm else []), "reason"]
    print(table(rows, columns))
    print(f"{len(rows)} jobs: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    return EXIT_OK


def _slurm_cell(status: Mapping[str, Any], slurm_states: Mapping[str, str] | None) -> str:
    """The SLURM column: the job's id and sacct's state; "queued" for a job accounting does not list
    yet; "unknown" when sacct did not answer; the id alone for a job the store has as complete
    (sacct is not asked about those)."""
    from bench.store import COMPLETE_STATUSES

    slurm_id = status.get("slurm_job_id")
    if not slurm_id:
        return "-"
    if status["status"] in COMPLETE_STATUSES:
        return str(slurm_id)
    if slurm_states is None:
        return f"{slurm_id} unknown"
    return f"{slurm_id} {slurm_states.get(str(slurm_id), 'queued')}"


# ------------------------------------------------------------------------------------------------ report


def cmd_report(args: argparse.Namespace) -> int:
    from bench.run import print_summary
    from bench.store import SuiteStore

    suite_dir = Path(args.suite_dir)
    store = SuiteStore(suite_dir)
    if not store.jobs_dir.is_dir():
        return _fail(f"{suite_dir}: not a suite results folder (no jobs/ inside)")
    if not store.job_ids():
        return _fail(f"{suite_dir}: no jobs under {store.jobs_dir} yet, so there is nothing to report; "
                     "`bench run SUITE` runs them")
    if args.baseline is not None:
        objectives = sorted(set(store.jobs_table()["objective"]))
        if args.baseline not in objectives:
            return _fail(f"--baseline {args.baseline}: no job of {suite_dir} trains it; the objectives there: "
                         + ", ".join(objectives))
    from bench.report import build_report

    started = time.perf_counter()
    result = build_report(suite_dir, baseline=args.baseline, survivors_only=args.survivors_only)
    print(f"wrote {result.markdown} and report.html ({time.perf_counter() - started:.1f}s)")
    print_summary(result.summary)
    return EXIT_OK


# ------------------------------------------------------------------------------------------------ ui


def cmd_ui(args: argparse.Namespace) -> int:
    from bench.launch import run_service
    from bench.tracking import DB_NAME, default_tracking_uri, ui_command

    results_root = Path(args.results).resolve()
    if args.uri is None and not args.serve and not (results_root / DB_NAME).is_file():
        # the viewer of runs that exist: an empty store made here would only hide a wrong --results
        return _fail(f"no MLflow store at {results_root / DB_NAME}: `bench run SUITE` writes it there, or give "
                     "--results the folder a suite ran into (bench run --results), or --uri a tracking server")
    uri = args.uri or default_tracking_uri(results_root)
    command = ui_command(uri, args.host, args.port)
    if args.serve:
        command[command.index("ui")] = "server"
    print("running: " + " ".join(command), flush=True)
    if args.print_only:
        return EXIT_OK
    return run_service(command)


# ------------------------------------------------------------------------------------------------ parser


def build_parser() -> argparse.ArgumentParser:
    from bench.launch import EXECUTORS

    parser = argparse.ArgumentParser(
        prog="bench",
        description="Compare GAN adversarial objectives: run suites of jobs, report with statistics.",
        epilog=EXIT_CODES,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="expand a suite into jobs and run those not complete",
                              description="Validate SUITE and check this machine can run it (data, GPU, "
                                          "scheduler, weights) before writing anything; expand its grid and run "
                                          "every job whose results are not complete (interrupted jobs resume from "
                                          "their checkpoint). Writes results/<suite>/ and MLflow runs, then the "
                                          "report.",
                              epilog=EXIT_CODES)
    run.add_argument("suite", help="the suite YAML file (see suites/)")
    run.add_argument("--dry-run", action="store_true",
                     help="print the expanded grid, what each metric measures and its protocol, and every problem "
                          "a run would stop on (exit 2 if any); run and write nothing")
    run.add_argument("--executor", choices=EXECUTORS.names(),
                     help="override the suite's executor: " + "; ".join(
                         f"{name}: {entry.description}" for name, entry in EXECUTORS.items()))
    run.add_argument("--max-parallel", type=positive_int, metavar="N", help="jobs at once (local executor), N >= 1")
    run.add_argument("--threads", type=positive_int, metavar="N",
                     help="torch threads per job, N >= 1 (default: cores / max-parallel)")
    run.add_argument("--profile", help="SLURM cluster profile YAML (slurm/profiles/)")
    run.add_argument("--results", default="results", help="results root (default: ./results)")
    wait = run.add_mutually_exclusive_group()
    wait.add_argument("--wait", dest="wait", action="store_true", default=None, help="wait for SLURM jobs to end")
    wait.add_argument("--no-wait", dest="wait", action="store_false", help="return once SLURM jobs are submitted")
    run.add_argument("--no-tracking", action="store_true", help="do not log to MLflow")
    run.add_argument("--no-report", action="store_true", help="do not build the report at the end")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument("--only", type=job_filter, action="append", default=[], metavar="KEY=V1[,V2...]",
                     help="run only the jobs whose spec has one of these values for KEY (objective, seed, dataset, "
                          "arch.width, ...; repeat to narrow further); their ids are the suite's, so the rest can "
                          "run later into the same results")
    run.set_defaults(func=cmd_run)

    plan = commands.add_parser("plan", help="a suite's cost and whether its seeds can decide its comparisons",
                               description="Print SUITE's jobs, generator steps and training time per "
                                           "architecture (rough CPU/GPU rates, or the rate measured on the suite's "
                                           "results when they exist), and the seeds each comparison with the "
                                           "baseline needs: enough for the smallest attainable p to pass Holm's "
                                           "alpha/m, and for 80% power at effect d; trains and writes nothing.",
                               epilog=EXIT_CODES)
    plan.add_argument("suite", help="the suite YAML file (see suites/)")
    plan.add_argument("--effect", type=positive_float, default=0.8, metavar="D",
                      help="standardized effect size d to size the seeds for (default: 0.8)")
    plan.add_argument("--results", default="results", help="results root to read measured rates from "
                                                           "(default: ./results)")
    plan.add_argument("--only", type=job_filter, action="append", default=[], metavar="KEY=V1[,V2...]",
                      help="plan only the jobs whose spec has one of these values for KEY (as `bench run --only`)")
    plan.set_defaults(func=cmd_plan)

    listing = commands.add_parser("list", help="list objectives, archs, datasets, tricks, metrics or executors",
                                  description="List the registered parts a suite may name, one line each, fitted "
                                              "to the terminal; name one to see all its fields.")
    listing.add_argument("what", choices=list(PARTS))
    listing.add_argument("name", nargs="?", help="one part to show in full (paper, recipe, options with defaults)")
    listing.add_argument("--wide", action="store_true", help="every column in full, whatever the terminal's width")
    listing.set_defaults(func=cmd_list)

    status = commands.add_parser("status", help="show each job's state in a results folder",
                                 description="One line per job, in grid order: status, step reached, reason; the "
                                             "SLURM state of jobs submitted there. A job recorded as running whose "
                                             "process or SLURM job is gone shows as interrupted.")
    status.add_argument("suite_dir", help="results/<suite>")
    status.set_defaults(func=cmd_status)

    report = commands.add_parser("report", help="build report.md and report.html for a results folder",
                                 description="Aggregate a results folder into markdown and HTML reports "
                                             "(never trains).")
    report.add_argument("suite_dir", help="results/<suite>")
    report.add_argument("--baseline", help="objective to compare against (default: the suite's, else nsgan)")
    report.add_argument("--survivors-only", action="store_true",
                        help="leave diverged, failed and failed-to-train runs out of the statistics instead of "
                             "counting them as the worst outcome")
    report.set_defaults(func=cmd_report)

    ui = commands.add_parser("ui", help="open the MLflow UI on the results store",
                             description="Start the MLflow UI (or, with --serve, a tracking server for cluster jobs) "
                                         "on the SQLite store under the results root. Stopping bench (Ctrl-C, "
                                         "SIGTERM) stops the server and its workers.")
    ui.add_argument("--results", default="results", help="results root (default: ./results)")
    ui.add_argument("--uri", help="tracking URI (default: sqlite under the results root)")
    ui.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    ui.add_argument("--port", type=port_number, default=5000, help="port to listen on, 1-65535 (default: 5000)")
    ui.add_argument("--serve", action="store_true", help="run `mlflow server` for jobs to log to over HTTP")
    ui.add_argument("--print-only", action="store_true", help="print the command instead of running it")
    ui.set_defaults(func=cmd_ui)
    return parser


def _is_service_error(error: BaseException) -> bool:
    """A service this run depends on failed (SLURM, MLflow's store or server, the network, the disk):
    not a bug of bench, so one line is enough."""
    from bench.launch.slurm import SlurmError

    return (isinstance(error, (SlurmError, OSError))
            or type(error).__module__.split(".")[0] in ("mlflow", "sqlalchemy", "requests", "urllib3"))


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns its exit code (see EXIT_CODES). argparse exits 2 on bad arguments."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    args = build_parser().parse_args(argv)
    from bench.launch.profiles import ProfileError
    from bench.registry import UnknownNameError
    from bench.suite import SuiteError

    # SIGTERM (`kill PID`, a supervisor) stops a command as Ctrl-C does, whatever it is doing; the launcher
    # takes both signals over while jobs run, to stop them at a checkpoint
    on_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_interrupt) if on_main_thread else None
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return _fail("\n" + INTERRUPTED, EXIT_INTERRUPTED)
    except BrokenPipeError:
        # the reader went away (`bench list | head`): nothing more to say, and nowhere to say it
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except (SuiteError, ProfileError, UnknownNameError) as error:
        return _fail(str(error), EXIT_BAD_INPUT)
    except Exception as error:
        if not _is_service_error(error):
            raise
        said = str(error).strip().splitlines()
        return _fail(f"bench {args.command}: {type(error).__name__}: {said[0] if said else ''}", EXIT_FAILED)
    finally:
        if on_main_thread:
            signal.signal(signal.SIGTERM, previous)


def _raise_interrupt(*_: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
