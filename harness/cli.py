"""The ``harness`` command: list, run, report, compare. Thin: the work lives in the layers."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

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


def _fail(message: str) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, markup=True)
    return typer.Exit(EXIT_BAD_INPUT)


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


def memory_claim(name: str) -> str:
    """The memory claim of ``name`` with its default options: ``Attention.claimed_memory``, the
    same source the memory suite and the report use (a family whose options change the claim,
    e.g. standard's SDPA backend, says so there rather than in its class capabilities)."""
    from harness.attention import get_attention

    return get_attention(name).claimed_memory[0]


@app.command("list")
def list_cmd() -> None:
    """Attentions (options, claimed complexity), suites, tasks, profiles and devices."""
    from harness.attention import attention_class, attention_options, list_attentions
    from harness.measure.env import available_devices
    from harness.run.profiles import list_profiles
    from harness.suites import get_suite, list_suites

    table = Table(title="attentions", title_justify="left")
    for col in ("name", "options (defaults)", "time", "memory", "causal", "padding", "q/k lengths"):
        table.add_column(col)
    for name in list_attentions():
        cls = attention_class(name)
        caps = cls.capabilities
        opts = ", ".join(f"{k}={v!r}" for k, v in attention_options(cls).items())
        table.add_row(escape(name), escape(opts), caps.time_complexity, memory_claim(name),
                      _yes(caps.causal), _yes(caps.key_padding_mask), _yes(caps.cross_lengths))
    console.print(table)
    suites = Table(title="suites", title_justify="left")
    suites.add_column("name")
    suites.add_column("what it measures")
    suites.add_column("headline")
    for name in list_suites():
        suite = get_suite(name)
        suites.add_row(name, suite.description, suite.headline)
    console.print(suites)
    try:
        from harness.data import list_tasks

        tasks = ", ".join(list_tasks())
    except ImportError:
        tasks = "(none)"
    console.print(f"[bold]tasks:[/] {tasks}")
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
        bad = [r for r in records if r.status in ("error", "oom")]
        if bad and self.enabled:
            self.bar.console.print(
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


def _apply_overrides(profile, *, attention, seed, device, memory_budget, threads, data):
    from harness.run.profiles import ProfileError, profile_from_dict

    data_dict = profile.to_dict()
    source = data_dict.pop("source") or "<profile>"
    if attention:
        wanted = [a.strip() for a in attention.split(",") if a.strip()]
        specs = profile.attention_specs()
        chosen = [s for s in specs if s.label in wanted or s.name in wanted]
        known = {s.label for s in specs} | {s.name for s in specs}
        unknown = [w for w in wanted if w not in known]
        if unknown:
            raise ProfileError(
                f"--attention: unknown {', '.join(map(repr, unknown))}; choose from"
                f" {', '.join(sorted(known))}"
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
    if threads:
        data_dict["threads"] = threads
    for key, value in data.items():
        if value is not None:
            data_dict.setdefault("data", {})[key] = value
    return profile_from_dict(data_dict, source=source)


@app.command("run")
def run_cmd(
    suites: Annotated[list[str] | None, typer.Argument(help="Suites (default: all).")] = None,
    profile: Annotated[str, typer.Option("--profile", "-p",
                                         help="quick, release, or a PATH.yaml")] = "quick",
    attention: Annotated[str | None, typer.Option(
        "--attention", "-a", help="Comma-separated attention names or labels.")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda.")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Parent folder of run dirs.")] = Path(
        "reports"),
    seed: Annotated[int | None, typer.Option(help="Run this one seed only.")] = None,
    resume: Annotated[Path | None, typer.Option(help="Continue this interrupted run dir.")] = None,
    memory_budget: Annotated[str | None, typer.Option(
        help="Peak memory allowed per cell, e.g. 6GiB; over it a cell is recorded as oom.")] = None,
    threads: Annotated[int | None, typer.Option(help="torch threads (default: all).")] = None,
    dataset: Annotated[str | None, typer.Option(help="Hub dataset, e.g. glue/sst2.")] = None,
    data_files: Annotated[str | None, typer.Option(
        help="Local files: train=PATH,test=PATH[,validation=PATH].")] = None,
    text_column: Annotated[str | None, typer.Option(help="Text column of the dataset.")] = None,
    label_column: Annotated[str | None, typer.Option(help="Label column of the dataset.")] = None,
    report: Annotated[bool, typer.Option(help="Write the HTML report at the end.")] = True,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Run suites. With no arguments: every suite, quick profile, every registered attention."""
    from harness.run.profiles import ProfileError, load_profile
    from harness.run.runner import resume_run, start_run
    from harness.run.store import StoreError
    from harness.suites import list_suites

    bar = _RichProgress(enabled=progress)
    try:
        if resume is not None:
            if suites:
                raise _fail("--resume continues a run as planned; do not name suites with it")
            console.print(f"resuming [bold]{resume}[/]")
            outcome = resume_run(resume, progress=bar)
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
                      "text_column": text_column, "label_column": label_column},
            )
            chosen = [s for s in (suites or list_suites()) if s in prof.suites]
            if not chosen:
                raise _fail(f"profile {prof.name!r} defines none of the requested suites")
            outcome = start_run(prof, suites=chosen, out_dir=out, argv=sys.argv, progress=bar)
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
def report_cmd(run_dir: Annotated[Path, typer.Argument(help="A run directory.")]) -> None:
    """Write RUN_DIR/index.html (self-contained) and the summary CSV/JSON."""
    from harness.report import write_report
    from harness.run.store import StoreError, resolve_run_dir

    try:
        html = write_report(resolve_run_dir(run_dir))
    except StoreError as err:
        raise _fail(str(err)) from None
    console.print(f"report: [bold]{html}[/]")


@app.command("compare")
def compare_cmd(
    base: Annotated[Path, typer.Argument(help="The reference run directory.")],
    new: Annotated[Path, typer.Argument(help="The candidate run directory.")],
    threshold: Annotated[float, typer.Option(help="Relative change that counts.")] = 0.1,
    html: Annotated[Path | None, typer.Option(help="Write an HTML diff here.")] = None,
) -> None:
    """Compare two runs; exit 1 on a regression beyond threshold and noise, 2 on bad input."""
    from harness.report import compare_runs, render_compare_table, write_compare_html
    from harness.run.store import StoreError, resolve_run_dir

    if threshold < 0:
        raise _fail(f"--threshold must be >= 0, got {threshold}")
    try:
        result = compare_runs(resolve_run_dir(base), resolve_run_dir(new), threshold=threshold)
    except StoreError as err:
        raise _fail(str(err)) from None
    console.print(render_compare_table(result))
    if html is not None:
        path = write_compare_html(result, html)
        console.print(f"diff: [bold]{path}[/]")
    console.print(f"verdict: [bold]{result.verdict}[/]")
    raise typer.Exit(result.exit_code)


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
