"""The ``harness`` command: list, run, report, compare. Thin: the work lives in the layers."""

from __future__ import annotations

import functools
import math
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import click
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from harness import __version__

app = typer.Typer(
    add_completion=False,
    no_args_is_help=False,
    help="Benchmark and fairness-audit harness for self-attention variants.",
)
# Logs and CI output are not terminals: give tables room instead of rich's 80-column default.
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)

EXIT_BAD_INPUT = 2  # 0 and 1 come from the run itself (RunOutcome.exit_code)
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT), after printing how to resume


def _fail(message: str) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, markup=True)
    return typer.Exit(EXIT_BAD_INPUT)


F = TypeVar("F", bound=Callable[..., Any])


def _no_traceback(command: F) -> F:
    """No traceback reaches a user: an error that escapes a command is one line and exit 2
    (unusable input or environment: a full disk, an unreadable file, a bad option); Ctrl-C
    and SIGTERM are exit 130. ``HARNESS_TRACEBACK=1`` shows the traceback too."""

    @functools.wraps(command)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort, click.exceptions.ClickException):
            raise
        except KeyboardInterrupt:
            err_console.print("[bold yellow]interrupted.[/]", highlight=False)
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except Exception as err:
            if os.environ.get("HARNESS_TRACEBACK"):
                traceback.print_exc()
            if isinstance(err, OSError):
                where = f" ({err.filename})" if err.filename else ""
                raise _fail(f"{err.strerror or err}{where}; free space or fix the permissions,"
                            " then run the command again") from None
            detail = "".join(traceback.format_exception_only(type(err), err)).strip()
            raise _fail(f"{detail} (HARNESS_TRACEBACK=1 shows where)") from None

    return guarded  # type: ignore[return-value]


@app.callback(invoke_without_command=True)
def _main(
    ctx: typer.Context,
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    if version:
        console.print(f"attention-harness {__version__}")
        raise typer.Exit(0)
    if ctx.invoked_subcommand is None:
        console.print(ctx.get_help())


PluginOption = Annotated[list[str] | None, typer.Option(
    "--plugin", help="Load the attentions, suites, tasks or executors a module registers:"
    " MODULE[:ATTR] (repeatable), installed or on PYTHONPATH (the current directory is not"
    " searched); installed plugins (entry points harness.attentions, harness.suites,"
    " harness.tasks, harness.executors) load by themselves. --resume needs them again.")]


def _load_plugins(specs: list[str] | None) -> None:
    """Load plugins before anything is planned; exit 2 naming the plugin when one fails."""
    from harness.plugins import load_plugins

    try:
        load_plugins(specs or [])
    except ValueError as err:
        raise _fail(str(err)) from None


def memory_claim(name: str) -> str:
    """The memory claim of ``name`` with its default options: ``Attention.claimed_memory``, the
    same source the memory suite and the report use (a family whose options change the claim,
    e.g. standard's SDPA backend, says so there rather than in its class capabilities)."""
    from harness.attention import get_attention

    return get_attention(name).claimed_memory[0]


@app.command("list")
@_no_traceback
def list_cmd(plugin: PluginOption = None) -> None:
    """Attentions (options, claimed complexity, origin), suites, tasks, profiles and devices."""
    from harness.attention import (
        attention_class,
        attention_options,
        attention_origin,
        list_attentions,
    )
    from harness.measure.env import available_devices
    from harness.run.profiles import list_profiles
    from harness.suites import get_suite, list_suites

    _load_plugins(plugin)
    table = Table(title="attentions", title_justify="left")
    for col in ("name", "options (defaults)", "time", "memory", "causal", "padding", "q/k lengths",
                "origin", "version"):
        table.add_column(col)
    flops = Table(title="FLOP counts (throughput's <pass>_flops_per_s and % of peak)",
                  title_justify="left")
    flops.add_column("name")
    flops.add_column("FLOPs of one call (Attention.flops)")
    for name in list_attentions():
        cls = attention_class(name)
        caps = cls.capabilities
        opts = ", ".join(f"{k}={v!r}" for k, v in attention_options(cls).items())
        origin, version = attention_origin(name)
        table.add_row(escape(name), escape(opts), caps.time_complexity, memory_claim(name),
                      _yes(caps.causal), _yes(caps.key_padding_mask), _yes(caps.cross_lengths),
                      escape(origin), escape(version or (__version__ if origin == "built-in"
                                                         else "-")))
        flops.add_row(escape(name), escape(cls.flops_formula or "not declared (no FLOP rate)"))
    console.print(table)
    console.print(flops)
    suites = Table(title="suites", title_justify="left")
    suites.add_column("name")
    suites.add_column("what it measures")
    suites.add_column("headline")
    for name in list_suites():
        suite = get_suite(name)
        suites.add_row(name, suite.description, suite.headline)
    console.print(suites)
    try:
        from harness.data import list_tasks, task_modality

        tasks = ", ".join(f"{name} ({task_modality(name)})" for name in list_tasks())
    except ImportError:
        tasks = "(none)"
    console.print(f"[bold]tasks (modality):[/] {tasks}")
    console.print("  image and audio tasks run in the accuracy suite; the bias suite is text-only")
    from harness.run.executors import list_executors

    console.print(f"[bold]executors:[/] {', '.join(list_executors())}")
    console.print(f"[bold]profiles:[/] {', '.join(list_profiles())}")
    console.print(f"[bold]devices:[/] {', '.join(available_devices())}")


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


class _RichProgress:
    """Draws an overall bar (weighted by expected cost) and the current cell."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err_console,
            transient=False,
            disable=not enabled,
        )
        self.cells = 0
        self.done = 0

    def start(self, total: float, n_cells: int) -> None:
        self.bar.start()
        self.cells = n_cells
        self.overall = self.bar.add_task("cells", total=n_cells)
        self.current = self.bar.add_task("", total=1.0)

    def cell_started(self, planned) -> None:
        self.bar.update(self.current, description=escape(planned.cell.display), completed=0.0)

    def cell_progress(self, fraction: float, text: str) -> None:
        self.bar.update(self.current, completed=min(max(fraction, 0.0), 1.0),
                        description=escape(text) if text else None)

    def cell_finished(self, planned, records) -> None:
        self.bar.advance(self.overall)
        bad = [r for r in records if r.status in ("error", "oom", "timeout")]
        if bad:  # with or without bars: a cell's error is never hidden
            err_console.print(
                f"  [yellow]{bad[0].status}[/] {escape(planned.cell.display)}:"
                f" {escape(bad[0].error or '')}",
                highlight=False, markup=True,
            )

    def stop(self) -> None:
        self.bar.update(self.current, description="done", completed=1.0)
        self.bar.stop()


def _parse_data_files(value: str | None) -> dict[str, str] | None:
    if not value:
        return None
    out: dict[str, str] = {}
    for part in value.split(","):
        split, sep, path = part.partition("=")
        if not sep or not split.strip() or not path.strip():
            raise _fail(
                f"--data-files: cannot read {part!r}; write SPLIT=PATH pairs separated by commas,"
                " e.g. train=data/train.csv,test=data/test.csv"
            )
        if split.strip() not in ("train", "validation", "test"):
            raise _fail(f"--data-files: split {split!r} must be train, validation or test")
        out[split.strip()] = path.strip()
    if "train" not in out:
        raise _fail("--data-files needs at least a train file: train=PATH")
    return out


def _parse_media(data_dir: str | None, data_format: str | None) -> dict[str, str | None]:
    formats = ("imagefolder", "audiofolder")
    if data_format is not None and data_format not in formats:
        raise _fail(f"--data-format must be one of {', '.join(formats)}, got {data_format!r}")
    if data_dir is not None:
        if data_format is None:
            raise _fail("--data-dir needs --data-format imagefolder or audiofolder")
        if not Path(data_dir).expanduser().is_dir():
            raise _fail(f"--data-dir {data_dir}: not a folder")
    return {"data_dir": data_dir, "data_format": data_format}


def _apply_overrides(profile, *, attention, seed, device, memory_budget, threads, data,
                     model=None, finetune=None):
    from harness.run.profiles import ProfileError, profile_from_dict

    data_dict = profile.to_dict()
    source = data_dict.pop("source") or "<profile>"
    if model is not None:
        data_dict["model"] = model
    if finetune is not None:
        data_dict["finetune"] = finetune
    if attention:
        wanted = [a.strip() for a in attention.split(",") if a.strip()]
        specs = profile.attention_specs()

        def picks(pattern: str, label: str) -> bool:
            # exact labels; 'family*' (a trailing *) selects every label that starts with it
            return label.startswith(pattern[:-1]) if pattern.endswith("*") else label == pattern

        chosen = [s for s in specs if any(picks(w, s.label) for w in wanted)]
        unknown = [w for w in wanted if not any(picks(w, s.label) for s in specs)]
        if unknown:
            families = sorted({f"'{s.name}*'" for s in specs})
            raise ProfileError(
                f"--attention: no attention labelled {', '.join(map(repr, unknown))}; choose"
                f" from {', '.join(s.label for s in specs)} (exact labels), or a whole family"
                f" with {', '.join(families)}"
            )
        data_dict["attentions"] = [s.as_dict() for s in chosen]
        data_dict["variants"] = []
        if data_dict.get("reference") not in {s.label for s in chosen}:
            data_dict["reference"] = None  # not chosen: the run compares with nothing
    if seed is not None:
        data_dict["seeds"] = [seed]
    if device:
        data_dict["device"] = device
    if memory_budget:
        data_dict["memory_budget"] = memory_budget
    if threads is not None:
        data_dict["threads"] = threads
    for key, value in data.items():
        if value is not None:
            data_dict.setdefault("data", {})[key] = value
    return profile_from_dict(data_dict, source=source)


@app.command("run")
@_no_traceback
def run_cmd(
    suites: Annotated[list[str] | None, typer.Argument(help="Suites (default: all).")] = None,
    profile: Annotated[str, typer.Option("--profile", "-p",
                                         help="quick, release, or a PATH.yaml")] = "quick",
    attention: Annotated[str | None, typer.Option(
        "--attention", "-a", help="Comma-separated attention labels (exact, e.g. standard,"
        "standard[eager]); 'family*' selects every label of a family.")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda.")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Parent folder of run dirs.")] = Path(
        "reports"),
    seed: Annotated[int | None, typer.Option(help="Run this one seed only.")] = None,
    resume: Annotated[Path | None, typer.Option(help="Continue this interrupted run dir.")] = None,
    memory_budget: Annotated[str | None, typer.Option(
        help="Peak memory allowed per memory cell, e.g. 6GiB, above the cell's baseline (its "
             "imports and its input tensors, which are allocated before the peak is tracked "
             "and are not counted); over it the cell is recorded as oom.")] = None,
    threads: Annotated[int | None, typer.Option(
        help="torch threads (default: all cores but one, so timings never wait on a preempted "
             "thread).")] = None,
    dataset: Annotated[str | None, typer.Option(help="Hub dataset, e.g. glue/sst2.")] = None,
    data_files: Annotated[str | None, typer.Option(
        help="Local files: train=PATH,test=PATH[,validation=PATH].")] = None,
    text_column: Annotated[str | None, typer.Option(help="Text column of the dataset.")] = None,
    label_column: Annotated[str | None, typer.Option(help="Label column of the dataset.")] = None,
    data_dir: Annotated[str | None, typer.Option(
        help="Local image/audio folder (one sub-folder per class; train/ and test/ optional).")
    ] = None,
    data_format: Annotated[str | None, typer.Option(
        help="imagefolder or audiofolder: the layout of --data-dir (or of an image/audio "
             "--dataset).")] = None,
    report: Annotated[bool, typer.Option(help="Write the HTML report at the end.")] = True,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
    executor: Annotated[str, typer.Option(
        help="Where cells run: pool (training cells on a local process pool, timing cells "
             "alone; default), serial (one at a time in this process), ray, or a plugin's "
             "(see `harness list`).")] = "pool",
    workers: Annotated[int | None, typer.Option(
        help="Pool processes for training cells (default: CPU count).")] = None,
    ray_address: Annotated[str | None, typer.Option(
        help="Ray cluster to join: auto or ray://host:port (default: start a local one).")
    ] = None,
    max_retries: Annotated[int, typer.Option(
        help="Retries of a cell whose worker process or node died, then an error record.")] = 2,
    probe_files: Annotated[str | None, typer.Option(
        help="Bias audit on your probe set: PATH[,PATH] (csv/tsv/json/jsonl/parquet).")] = None,
    probe_dataset: Annotated[str | None, typer.Option(
        help="Probe set from the hub (online), instead of --probe-files.")] = None,
    probe_text_column: Annotated[str | None, typer.Option(
        help="Sentence column of the probe set (default: sentence).")] = None,
    group_columns: Annotated[str | None, typer.Option(
        help="Group columns of the probe set, e.g. Gender,Race.")] = None,
    pair_columns: Annotated[str | None, typer.Option(
        help="Pair-key columns (paired EEC analysis), e.g. 'Template,Emotion word'.")] = None,
    pair_text_columns: Annotated[str | None, typer.Option(
        help="Wide-format pairs: the two sentence columns A,B of each row (CrowS-Pairs style,"
             " e.g. sent_more,sent_less); scored A - B per --group-columns level.")] = None,
    probe_label_column: Annotated[str | None, typer.Option(
        help="Expected-label column of the probe set (accuracy, equalized odds).")] = None,
    probe_empty: Annotated[str | None, typer.Option(
        help="Empty group and pair values: 'level' (a value of its own) or 'drop'.")] = None,
    skip_bad_files: Annotated[bool, typer.Option(
        "--skip-bad-files", help="Leave unreadable image/audio files out (listed in run.json and"
        " the report) instead of stopping with exit 2.")] = False,
    save_predictions: Annotated[bool | None, typer.Option(
        "--save-predictions/--no-save-predictions",
        help="Write per-example predictions of accuracy and bias cells (predictions/).")] = None,
    predictions_format: Annotated[str | None, typer.Option(
        help="parquet or jsonl (with --save-predictions).")] = None,
    plugin: PluginOption = None,
    model: Annotated[str | None, typer.Option(
        help="Your transformers model: a save_pretrained folder (or a hub name, online); every "
             "suite runs it with each attention swapped in.")] = None,
    finetune: Annotated[bool | None, typer.Option(
        "--finetune/--no-finetune",
        help="With --model: fine-tune per attention (default), or evaluate the model as given "
             "with each attention swapped in.")] = None,
) -> None:
    """Run suites. With no arguments: every suite, quick profile, every registered attention."""
    from harness.run.executors import make_executor
    from harness.run.probe_options import apply_probe_options
    from harness.run.profiles import ProfileError, load_profile
    from harness.run.runner import RunInterrupted, RunStoppedError, resume_run, start_run
    from harness.run.store import StoreError
    from harness.suites import list_suites

    _load_plugins(plugin)
    bar = _RichProgress(enabled=progress)
    if ray_address is not None and executor != "ray":
        raise _fail("--ray-address needs --executor ray")
    try:
        runner = make_executor(executor, workers=workers, ray_address=ray_address,
                               max_retries=max_retries)
    except ValueError as err:
        raise _fail(str(err)) from None
    try:
        if resume is not None:
            if suites:
                raise _fail("--resume continues a run as planned; do not name suites with it")
            console.print(f"resuming [bold]{resume}[/]")
            outcome = resume_run(resume, progress=bar, executor=runner)
        else:
            unknown = [s for s in suites or [] if s not in list_suites()]
            if unknown:
                raise _fail(f"unknown suite(s) {', '.join(unknown)}; available:"
                            f" {', '.join(list_suites())}")
            prof = load_profile(profile)
            prof = _apply_overrides(
                prof, attention=attention, seed=seed, device=device,
                memory_budget=memory_budget, threads=threads,
                data={"dataset": dataset, "data_files": _parse_data_files(data_files),
                      "text_column": text_column, "label_column": label_column,
                      "skip_bad_files": skip_bad_files or None,
                      **_parse_media(data_dir, data_format)},
                model=model, finetune=finetune,
            )
            prof = apply_probe_options(
                prof, files=probe_files, dataset=probe_dataset, text_column=probe_text_column,
                group_columns=group_columns, pair_columns=pair_columns,
                pair_text_columns=pair_text_columns,
                label_column=probe_label_column, empty=probe_empty,
                save_predictions=save_predictions, predictions_format=predictions_format)
            absent = [s for s in suites or [] if s not in prof.suites]
            if absent:
                raise _fail(f"profile {prof.name!r} has no section for suite(s)"
                            f" {', '.join(absent)} (it defines {', '.join(prof.suites)}); add"
                            " the section to the profile, choose another --profile, or leave"
                            " the suite out")
            chosen = [s for s in (suites or list_suites()) if s in prof.suites]
            accuracy = prof.suites.get("accuracy")
            if prof.data.media_given and getattr(accuracy, "media", None) is None:
                raise _fail(f"--data-dir/--data-format: profile {prof.name!r} has no "
                            "accuracy.media entry to run image/audio data; add one (e.g. "
                            "`media: {params: {image_size: 32}}`) or use --profile quick")
            if not chosen:
                raise _fail(f"profile {prof.name!r} defines none of the requested suites")
            idle = [s for s in prof.attention_specs() if not any(s.runs_in(x) for x in chosen)]
            if attention and idle:
                where = "; ".join(f"{s.label} runs only in {', '.join(s.suites or ())}"
                                  for s in idle)
                raise _fail(f"--attention: {where} (the profile entry's `suites:`), none of"
                            f" this run's suites ({', '.join(chosen)}); name one of its"
                            " suites, or drop `suites:` from the entry")
            probe_flags = [f for f, v in (
                ("--probe-files", probe_files), ("--probe-dataset", probe_dataset),
                ("--probe-text-column", probe_text_column), ("--group-columns", group_columns),
                ("--pair-columns", pair_columns), ("--pair-text-columns", pair_text_columns),
                ("--probe-label-column", probe_label_column), ("--probe-empty", probe_empty))
                if v is not None]
            if probe_flags and "bias" not in chosen:
                raise _fail(f"{', '.join(probe_flags)}: the probe set is scored by the bias"
                            f" suite, which this run leaves out (suites: {', '.join(chosen)});"
                            " add `bias` to the suites or drop the probe options")
            if skip_bad_files and not prof.data.data_dir:
                raise _fail("--skip-bad-files applies to an image/audio folder: pass it with"
                            " --data-dir PATH --data-format imagefolder|audiofolder")
            outcome = start_run(prof, suites=chosen, out_dir=out, argv=sys.argv, progress=bar,
                                executor=runner)
    except RunInterrupted as stop:
        err_console.print(f"[bold yellow]interrupted.[/] Finished cells are kept; resume with:\n"
                          f"  {escape(stop.resume_command)}", highlight=False)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except RunStoppedError as stop:
        err_console.print(f"[bold red]error:[/] the run stopped: {escape(str(stop.cause))}."
                          " Finished cells are kept; fix the cause (e.g. free disk space), then"
                          f" resume with:\n  {escape(stop.resume_command)}", highlight=False)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    except (ProfileError, StoreError, ValueError) as err:
        raise _fail(str(err)) from None
    _print_summary(outcome.records)
    counts = ", ".join(f"{k}: {v}" for k, v in sorted(outcome.counts.items()))
    console.print(f"records: {counts}")
    console.print(f"results: [bold]{outcome.run_dir / 'results.jsonl'}[/]")
    if report:
        from harness.report import write_report

        html = write_report(outcome.run_dir)
        console.print(f"report:  [bold]{html}[/]")
    raise typer.Exit(outcome.exit_code)


def _print_summary(records) -> None:
    from harness.report import summary_table

    rows = summary_table(records)
    if not rows:
        return
    columns = list(rows[0].keys())
    table = Table(title="summary", title_justify="left")
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*(escape(str(row[c])) for c in columns))
    console.print(table)


@app.command("report")
@_no_traceback
def report_cmd(run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
               plugin: PluginOption = None) -> None:
    """Write RUN_DIR/index.html (self-contained) and the summary CSV/JSON. A plugin suite's
    own section needs its plugin (installed, or --plugin); otherwise its generic table."""
    from harness.report import write_report
    from harness.run.store import StoreError, resolve_run_dir

    _load_plugins(plugin)
    try:
        html = write_report(resolve_run_dir(run_dir))
    except StoreError as err:
        raise _fail(str(err)) from None
    console.print(f"report: [bold]{html}[/]")


@app.command("compare")
@_no_traceback
def compare_cmd(
    base: Annotated[Path, typer.Argument(help="The reference run directory.")],
    new: Annotated[Path, typer.Argument(help="The candidate run directory.")],
    threshold: Annotated[str, typer.Option(
        help="Relative change that counts (a fraction: 0.1 = 10%).")] = "0.1",
    allow_missing: Annotated[bool, typer.Option(
        "--allow-missing", help="Cells of the base run missing in the new one do not fail.")
    ] = False,
    only_common: Annotated[bool, typer.Option(
        "--only-common", help="Compare only the cells both runs hold.")] = False,
    html: Annotated[Path | None, typer.Option(help="Write an HTML diff here.")] = None,
) -> None:
    """Compare two runs. Exit 0 pass, 1 regression (or vanished cells), 2 unusable input,
    3 inconclusive (a would-be regression the side-by-side evidence cannot decide; the output
    says what would). Prints per suite the smallest regression it could have detected."""
    from harness.gate import (
        compare_runs,
        power_lines,
        render_compare_table,
        unmatched_summary,
        verdict_line,
        write_compare_html,
    )
    from harness.run.store import StoreError, resolve_run_dir

    try:
        value = float(threshold)
    except ValueError:
        raise _fail(f"--threshold: {threshold!r} is not a number; give a fraction such as 0.1"
                    " (10%)") from None
    if not math.isfinite(value) or value < 0:
        raise _fail(f"--threshold must be a finite number >= 0 (a fraction: 0.1 = 10%), got"
                    f" {threshold}")
    if html is not None:
        target = html / "compare.html" if html.is_dir() else html
        if target.is_dir():
            raise _fail(f"--html {html}: {target} is a folder; name a file")
        if not target.parent.is_dir():
            raise _fail(f"--html {html}: folder {target.parent} does not exist; create it or"
                        " name a file in an existing folder")
        if not os.access(target.parent, os.W_OK) or (target.exists()
                                                      and not os.access(target, os.W_OK)):
            raise _fail(f"--html {html}: cannot write {target} (permission denied); name a"
                        " writable file")
    try:
        result = compare_runs(resolve_run_dir(base), resolve_run_dir(new), threshold=value,
                              allow_missing=allow_missing, only_common=only_common)
    except (StoreError, ValueError) as err:
        raise _fail(str(err)) from None
    console.print(verdict_line(result))
    table = render_compare_table(result)
    console.print(table if table.row_count else table.caption)
    for line in unmatched_summary(result):
        console.print(line)
    for line in power_lines(result):
        console.print(line)
    for line in _not_judged(result):
        err_console.print(f"[bold yellow]warning:[/] {escape(line)}", highlight=False)
    if html is not None:
        path = write_compare_html(result, html)
        console.print(f"every row: [bold]{escape(str(path))}[/]")
    console.print(verdict_line(result))
    raise typer.Exit(result.exit_code)


def _not_judged(result: Any) -> list[str]:
    """One line per suite whose method changed between the runs: its rows are not judged (a
    slowdown there cannot fail the gate), which a passing verdict must not hide."""
    by_suite: dict[tuple[str, str], int] = {}
    for row in result.rows:
        note = getattr(row, "note", None) or ""
        if note.startswith("method changed"):
            key = (row.suite, note.split(":")[0])
            by_suite[key] = by_suite.get(key, 0) + 1
    return [f"suite {suite}: {why}: {n} row(s) not judged; compare two runs of the same"
            " suite version for a verdict on them" for (suite, why), n in sorted(by_suite.items())]


def _attention_options(items: list[str] | None) -> dict[str, Any]:
    """``--option KEY=VALUE`` items as a dict, each value read as YAML."""
    import yaml

    options = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise _fail(f"--option: write KEY=VALUE, got {item!r}")
        try:
            options[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as err:
            problem = getattr(err, "problem", None) or str(err).splitlines()[0]
            raise _fail(f"--option {item}: the value is not plain YAML ({problem}); give a"
                        " number, true/false, a word or a quoted string") from None
    return options


def _check_config_fields(timeout_s: float, only: str | None, seq_lens: str | None,
                         memory_seq_lens: str | None) -> dict[str, Any]:
    """The ``CheckConfig`` fields given by ``harness check``'s options, validated."""
    fields: dict[str, Any] = {}
    if not math.isfinite(timeout_s) or timeout_s <= 0:
        raise _fail(f"--timeout-s must be a number of seconds > 0, got {timeout_s}")
    fields["timeout_s"] = timeout_s
    try:
        if only:
            fields["checks"] = tuple(c.strip() for c in only.split(",") if c.strip())
        for key, text in (("seq_lens", seq_lens), ("memory_seq_lens", memory_seq_lens)):
            if text:
                flag = f"--{key.replace('_', '-')}"
                bad = [x for x in text.split(",") if not x.strip().isdigit()]
                if bad:
                    raise ValueError(f"{flag}: {bad[0].strip()!r} is not a whole number; give"
                                     f" lengths separated by commas, e.g. 256,512,1024")
                fields[key] = tuple(int(x) for x in text.split(","))
                if len(set(fields[key])) < 3 or min(fields[key]) < 1:
                    raise ValueError(f"{flag}: give >= 3 distinct positive"
                                     f" lengths, got {text!r}")
    except ValueError as err:
        raise _fail(str(err)) from None
    return fields


def _check_devices(device: str) -> tuple[str, ...]:
    """The devices ``--device`` names: ``auto`` is the CPU, and CUDA when present."""
    if device not in ("auto", "cpu", "cuda"):
        raise _fail(f"--device must be auto, cpu or cuda; got {device!r}")
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise _fail("--device cuda: no CUDA device is available")
    return {"cpu": ("cpu",), "cuda": ("cuda",)}.get(
        device, ("cpu", "cuda") if torch.cuda.is_available() else ("cpu",))


def _check_json_dir(json_dir: Path) -> None:
    """Refuse a ``--json`` directory that is a file, already holds results, or cannot be
    written."""
    from harness.run.store import StoreError, check_out_dir

    if json_dir.exists() and not json_dir.is_dir():
        raise _fail(f"--json {json_dir}: is a file; name a new directory for the verdicts")
    if (json_dir / "results.jsonl").exists() or (json_dir / "results.jsonl").is_symlink():
        raise _fail(f"--json {json_dir}: already holds results; name a new directory")
    try:
        check_out_dir(json_dir)
    except StoreError as err:
        raise _fail(str(err).replace("--out", "--json", 1)) from None


def _print_verdicts(name: str, verdicts: list[Any]) -> None:
    """The table of an attention's claims and their verdicts."""
    table = Table(title=f"claims of {name}", title_justify="left")
    for col in ("check", "device", "claim", "verdict", "evidence"):
        table.add_column(col)
    colour = {"pass": "green", "fail": "bold red", "skip": "yellow", "info": "cyan"}
    for v in verdicts:
        table.add_row(v.check, v.device, escape(v.claim),
                      f"[{colour[v.status]}]{v.status}[/]", escape(v.evidence))
    console.print(table)


@app.command("check")
@_no_traceback
def check_cmd(
    name: Annotated[str, typer.Argument(help="A registered attention (plugins included).")],
    option: Annotated[list[str] | None, typer.Option(
        "--option", "-O", help="An attention option KEY=VALUE (YAML value), repeatable.")] = None,
    only: Annotated[str | None, typer.Option(
        help="Comma-separated checks to run (default: all).")] = None,
    seq_lens: Annotated[str | None, typer.Option(
        help="Lengths of the time sweep, e.g. 256,512,1024,2048.")] = None,
    memory_seq_lens: Annotated[str | None, typer.Option(
        help="Lengths of the memory sweep, e.g. 1024,2048,4096,8192.")] = None,
    device: Annotated[str, typer.Option(
        help="auto (CPU, and CUDA when present), cpu or cuda.")] = "auto",
    json_dir: Annotated[Path | None, typer.Option(
        "--json", help="Write the verdicts as records into this (new) run directory.")] = None,
    timeout_s: Annotated[float, typer.Option(
        "--timeout-s", help="Time limit of each check in seconds; a check past it is stopped"
        " and fails (timeout).")] = 600.0,
    plugin: PluginOption = None,
) -> None:
    """Audit an attention's claims (exactness, causality, padding, independence, determinism,
    dtypes, bad inputs, complexity). Exit 0: every claim holds; 1: one is violated (a check past
    --timeout-s included); 2: bad input."""
    from harness.check import CheckConfig, audit, exit_code, write_check_run

    _load_plugins(plugin)
    options = _attention_options(option)
    fields = _check_config_fields(timeout_s, only, seq_lens, memory_seq_lens)
    devices = _check_devices(device)
    if json_dir is not None:
        _check_json_dir(json_dir)
    try:
        verdicts = audit(name, options, CheckConfig(devices=devices, **fields))
    except ValueError as err:
        raise _fail(str(err)) from None
    _print_verdicts(name, verdicts)
    code = exit_code(verdicts)
    if json_dir is not None:
        path = write_check_run(json_dir, name, options, verdicts, argv=sys.argv)
        console.print(f"results: [bold]{path / 'results.jsonl'}[/]")
    failed = [v.check for v in verdicts if v.status == "fail"]
    console.print("verdict: [bold]" + (f"violated ({', '.join(failed)})" if failed
                                       else "every claim holds") + "[/]")
    raise typer.Exit(code)


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
