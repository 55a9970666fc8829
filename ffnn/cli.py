"""``ffnn-run``: train one network, evaluate a saved one, or run, resume and report studies.

One function per subcommand, which only parses and calls: the work lives in ``ffnn.training``
and ``ffnn.studies``, imported inside the command bodies so that ``--help`` stays instant.
Every usage error (bad flag, unknown study, bad study or model file) is one line on stderr and
exit code 2; Ctrl-C during a study is one line and exit code 130. The console handler of the
library's loggers is attached here (they propagate and configure nothing themselves).
"""

from __future__ import annotations

import functools
import logging
import sys

import click

from . import __version__
from .cli_options import FLAGS, config_fields, config_options
from .config import TrainConfig


class CliError(click.ClickException):
    """A usage error shown as one line (``Error: ...``), exit code 2."""

    exit_code = 2


def _one_line(error: click.UsageError) -> CliError:
    hint = f" (see '{error.ctx.command_path} --help')" if error.ctx is not None else ""
    return CliError(error.format_message().replace("\n", " ") + hint)


class _Group(click.Group):
    """A group whose usage errors print one line instead of click's usage block."""

    def make_context(self, *args, **kwargs):
        try:
            return super().make_context(*args, **kwargs)
        except click.UsageError as e:
            raise _one_line(e) from None

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except click.UsageError as e:
            raise _one_line(e) from None


def _errors(func):
    """Turn the library's validation errors into one-line CLI errors."""
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from .data import DataError
        from .studies.lock import OutputLocked
        from .studies.specs import StudyError

        try:
            return func(*args, **kwargs)
        except (StudyError, DataError, OutputLocked) as e:
            raise CliError(str(e)) from None
        except ValueError as e:  # TrainConfig, load_mnist and model file validation
            raise CliError(str(e)) from None
        except (RuntimeError, OSError) as e:
            raise click.ClickException(str(e)) from None
    return wrapper


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"],
                                           "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="ffnn-run",
                      message="%(prog)s %(version)s")
def main():
    """Train small feedforward networks on MNIST and run studies of their hyperparameters.

    \b
    ffnn-run train --optimizer adam --hidden-size 100      one network
    ffnn-run evaluate model.npz --figures figs/            a saved network on test data
    ffnn-run studies                                       list the built-in studies
    ffnn-run study hidden-adam --repeats 2                 run (or resume) a study
    ffnn-run study --file my_study.toml                    a study of your own
    ffnn-run report results/                               tables and figures again
    """


_SIZE = click.IntRange(min=0)
_DATA = click.option("--data", "data_path", type=click.Path(), default=None,
                     help="IDX directory or CSV file [default: $FFNN_DATA, else the packaged "
                          "MNIST].")
_TEST_SIZE = click.option("--test-size", type=_SIZE, default=None,
                          help="Test images [default: the whole official test set].")
_SPLIT_SEED = click.option("--split-seed", type=click.IntRange(min=0), default=0,
                           show_default=True, help="Seed of the train/validation/test split.")


def data_options(func):
    """``--data``, ``--train-size``, ``--val-size``, ``--test-size``, ``--split-seed``."""
    options = [
        _DATA,
        click.option("--train-size", type=_SIZE, default=None,
                     help="Training images [default: all not used for validation]."),
        click.option("--val-size", type=_SIZE, default=6000, show_default=True,
                     help="Validation images (early stopping)."),
        _TEST_SIZE, _SPLIT_SEED,
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _config_or_flag_error(**fields) -> TrainConfig:
    """``TrainConfig(**fields)``; its errors name the command-line flag."""
    try:
        return TrainConfig(**fields)
    except ValueError as e:
        name, _, rest = str(e).partition(":")
        raise CliError(f"{FLAGS[name]}:{rest}" if name in FLAGS else str(e)) from None


def _data_spec(data_path, train_size, val_size, test_size, split_seed):
    from .studies.plan import DataSpec

    return DataSpec(data_path, train_size, val_size, test_size, split_seed)


@main.command()
@config_options
@data_options
@click.option("--save", type=click.Path(dir_okay=False), default=None,
              help="Write the trained network to this .npz file.")
@_errors
def train(data_path, train_size, val_size, test_size, split_seed, save, **options):
    """Train one network and print its progress and test loss and accuracy."""
    from .safe_io import check_writable, replacing
    from .training import train as train_network

    config = _config_or_flag_error(**config_fields(options))
    if save:
        try:
            check_writable(save)
        except OSError as e:
            raise CliError(f"--save: {e}") from None
    splits = _data_spec(data_path, train_size, val_size, test_size, split_seed).load(
        config.dtype)
    click.echo(f"data: {splits!r}")

    def progress(record):
        click.echo(f"epoch {record.epoch:4d}/{config.max_epochs}  train loss "
                   f"{record.train_loss:.4f}  val loss {record.val_loss:.4f}  val accuracy "
                   f"{100 * record.val_accuracy:.2f} %  ({record.seconds:.2f} s)")

    result = train_network(config, splits, callback=progress)
    status = ("diverged" if result.diverged else
              "stopped early" if result.stopped_early else "reached --max-epochs")
    click.echo(f"{result.epochs} epochs ({status}, best epoch {result.best_epoch}), "
               f"train time {result.train_time:.2f} s")
    click.echo(f"test loss {result.test_loss:.4f}  test accuracy "
               f"{100 * result.test_accuracy:.2f} %")
    if save:
        with replacing(save) as tmp:
            result.model.save(tmp)
        click.echo(f"model saved to {save}")


@main.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@_DATA
@_TEST_SIZE
@_SPLIT_SEED
@click.option("--figures", type=click.Path(file_okay=False), default=None,
              help="Also write predictions.png and confusion.png into this directory.")
@_errors
def evaluate(model, data_path, test_size, split_seed, figures):
    """Print a saved model's test loss, accuracy and confusion matrix.

    The test split is the one `ffnn-run train` and `ffnn-run study` use with the same --data,
    --test-size and --split-seed.
    """
    from .studies.evaluate import evaluate_saved, format_evaluation

    evaluation, paths = evaluate_saved(model, data_path, test_size, split_seed, figures)
    click.echo(format_evaluation(evaluation))
    for path in paths:
        click.echo(f"wrote {path}")


@main.command()
def studies():
    """List the built-in studies, one line each."""
    from .studies.specs import BUILTIN_STUDIES, example_path

    width = max(len(name) for name in BUILTIN_STUDIES)
    for spec in BUILTIN_STUDIES.values():
        click.echo(f"{spec.name:<{width}}  {spec.description}")
    click.echo(f"\nYour own: ffnn-run study --file my_study.toml (example: {example_path()})")


# study flags a study file's recipe may also set: given on the command line, they override it
_RECIPE_FLAGS = ("repeats", "max_epochs", "train_size", "val_size", "test_size", "split_seed",
                 "data_path")


@main.command()
@click.argument("names", nargs=-1, metavar="[NAME]... | all")
@click.option("--file", "files", type=click.Path(dir_okay=False), multiple=True,
              help="A TOML study definition (repeatable).")
@click.option("--repeats", type=click.IntRange(min=1), default=10,
              help="Repeats per setting; repeat r uses seed and shuffle seed --seed + r "
                   "[default: the study file's, else 10].")
@click.option("--max-epochs", type=click.IntRange(min=1), default=None,
              help="Epoch limit of every run [default: the study file's, else 250].")
@click.option("--out", type=click.Path(file_okay=False), default="results", show_default=True,
              help="Directory of results, reports and logs.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Local worker processes [default: number of cores].")
@click.option("--scheduler", metavar="ADDRESS", default=None,
              help="Run on this Dask distributed scheduler (e.g. tcp://host:8786) instead of "
                   "local processes; gives up if it does not answer within 10 s "
                   "($FFNN_DASK_TIMEOUT); needs `pip install ffnn[dask]`.")
@click.option("--backend", type=click.Choice(TrainConfig.__dataclass_fields__["backend"]
                                             .metadata["choices"]),
              default="numba", show_default=True, help="Compute backend.")
@data_options
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Base seed.")
@click.option("--fresh", is_flag=True,
              help="Discard this study's recorded runs and start over.")
@click.option("--no-group", is_flag=True,
              help="Train every run alone (train time: its thread CPU time) instead of the "
                   "settings of a repeat together (epochs x the measured per-epoch cost) "
                   "where they can be.")
@click.option("--retime", is_flag=True,
              help="Measure the per-epoch costs again instead of reusing <out>/timing.json.")
@click.option("--no-models", is_flag=True,
              help="Do not save each run's model under <study>/models/.")
@click.option("-v", "--verbose", is_flag=True, help="Log every run on the console too.")
@click.pass_context
@_errors
def study(ctx, names, files, out, workers, scheduler, backend, seed, fresh, no_group, retime,
          no_models, verbose, **flags):
    """Run studies: built-in NAMEs, `all` of them, and/or --file studies.

    Re-running the same command resumes: recorded runs are skipped and only the missing ones
    are computed. Each study writes <out>/<name>/report.md, runs.csv, table.csv and figures,
    its records to results.jsonl and its log to <out>/logs/<name>.log; <out>/summary.md covers
    every study under <out>.
    """
    from .studies.plan import StudyOptions
    from .studies.run import run_studies
    from .studies.specs import resolve_studies
    from .threads import available_cores

    if not names and not files:
        raise CliError("give a study NAME, 'all', or --file FILE (see 'ffnn-run studies')")
    if scheduler is not None and workers is not None:
        raise CliError("--workers and --scheduler exclude each other: local processes or Dask")
    specs = resolve_studies(names, files)
    given = {("data" if name == "data_path" else name): flags[name] for name in _RECIPE_FLAGS
             if ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT}
    defaults = StudyOptions(backend=backend, seed=seed, group=not no_group)
    with _console(verbose) as show:
        try:
            outcomes = run_studies(specs, defaults, out, given=given,
                                   workers=workers or available_cores(), scheduler=scheduler,
                                   fresh=fresh, retime=retime, save_models=not no_models,
                                   on_report=show)
        except KeyboardInterrupt:
            click.echo("interrupted: every finished run is recorded; re-run the same command "
                       "to compute the rest", err=True)
            raise SystemExit(130) from None
    failed = sum(o.failed for o in outcomes)
    if failed:
        raise click.ClickException(f"{failed} run(s) failed (see {out}/logs); re-run the same "
                                   "command to retry them")


class _console:
    """The library's log on stderr, one message a line, through tqdm (so the progress bar
    stays whole); per-run lines only with ``--verbose`` or without a bar. Yields the callback
    that prints a finished study's report."""

    def __init__(self, verbose: bool):
        self.verbose = verbose

    def __enter__(self):
        from tqdm.contrib.logging import logging_redirect_tqdm

        logger = logging.getLogger("ffnn")
        self.handler = logging.StreamHandler(sys.stderr)
        self.handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(self.handler)
        self.level, self.logger = logger.level, logger
        logger.setLevel(logging.INFO)
        self.redirect = logging_redirect_tqdm(loggers=[logger])
        self.redirect.__enter__()
        show_runs = self.verbose or not sys.stderr.isatty()
        for handler in logger.handlers:  # tqdm's handler replaces ours and drops its filters
            handler.addFilter(lambda r: not getattr(r, "file_only", False) and (
                show_runs or not getattr(r, "per_run", False)))

        def show(outcome):
            from tqdm import tqdm

            tqdm.write(outcome.report, file=sys.stdout)

        return show

    def __exit__(self, *exc):
        self.redirect.__exit__(*exc)  # puts our handler back in place of tqdm's
        self.logger.removeHandler(self.handler)
        self.logger.setLevel(self.level)


@main.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@_errors
def report(directory):
    """Rebuild tables, figures and CSVs from the results in DIRECTORY (no training).

    DIRECTORY is a study output directory (--out) or one study's directory.
    """
    from .studies.report import find_study_dirs, rebuild_reports

    if not find_study_dirs(directory):
        raise CliError(f"{directory}: no study results here (no */plan.json)")
    texts, summary = rebuild_reports(directory)
    for text in texts:
        click.echo(text)
    if summary is not None:
        click.echo(f"summary: {summary}")


if __name__ == "__main__":
    main()
