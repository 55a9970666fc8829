"""``ffnn-run``: train one network, or run, resume and report studies.

One function per subcommand; the work lives in ``ffnn.runner``, ``ffnn.report`` and
``ffnn.training``, imported inside the command bodies so that ``--help`` stays instant.
Every usage error (bad flag, unknown study, bad study file) is one line on stderr and exit
code 2.
"""

from __future__ import annotations

import dataclasses
import functools
import sys

import click

from . import __version__
from .config import DTYPES, TrainConfig
from .kernels import BACKENDS, codes

_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainConfig)}


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
        from .run_lock import OutputLocked
        from .study_specs import StudyError

        try:
            return func(*args, **kwargs)
        except (StudyError, DataError, OutputLocked) as e:
            raise CliError(str(e)) from None
        except ValueError as e:  # TrainConfig and load_mnist validation
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
    ffnn-run studies                                       list the built-in studies
    ffnn-run study hidden-adam --repeats 2                 run (or resume) a study
    ffnn-run study --file my_study.toml                    a study of your own
    ffnn-run report results/                               tables and figures again
    """


def data_options(func):
    """``--data``, ``--train-size``, ``--val-size``, ``--test-size``, ``--split-seed``."""
    size = click.IntRange(min=0)
    options = [
        click.option("--data", "data_path", type=click.Path(), default=None,
                     help="IDX directory or CSV file [default: $FFNN_DATA, else the packaged "
                          "MNIST]."),
        click.option("--train-size", type=size, default=None,
                     help="Training images [default: all not used for validation]."),
        click.option("--val-size", type=size, default=6000, show_default=True,
                     help="Validation images (early stopping)."),
        click.option("--test-size", type=size, default=None,
                     help="Test images [default: the whole official test set]."),
        click.option("--split-seed", type=click.IntRange(min=0), default=0, show_default=True,
                     help="Seed of the train/validation/test split."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


_FLAGS = {"learning_rate": "--lr", "early_stopping": "--no-early-stopping",
          "restore_best": "--no-restore-best"}


def _config_or_flag_error(**fields) -> TrainConfig:
    """``TrainConfig(**fields)``; its errors name the command-line flag."""
    try:
        return TrainConfig(**fields)
    except ValueError as e:
        name, _, rest = str(e).partition(":")
        flag = _FLAGS.get(name, "--" + name.replace("_", "-"))
        raise CliError(f"{flag}:{rest}" if name in fields else str(e)) from None


def _data_spec(data_path, train_size, val_size, test_size, split_seed):
    from .runner import DataSpec

    return DataSpec(data_path, train_size, val_size, test_size, split_seed)


backend_option = click.option(
    "--backend", type=click.Choice(tuple(BACKENDS)), default=_DEFAULTS["backend"],
    show_default=True, help="Compute backend.")


@main.command()
@click.option("--hidden-size", type=click.IntRange(min=1), default=_DEFAULTS["hidden_size"],
              show_default=True, help="Hidden units.")
@click.option("--activation", type=click.Choice(codes.ACTIVATIONS),
              default=_DEFAULTS["activation"], show_default=True, help="Hidden activation.")
@click.option("--optimizer", type=click.Choice(codes.OPTIMIZERS),
              default=_DEFAULTS["optimizer"], show_default=True, help="Optimizer.")
@click.option("--lr", type=float, default=_DEFAULTS["learning_rate"], show_default=True,
              help="Learning rate.")
@click.option("--batch-size", type=click.IntRange(min=1), default=_DEFAULTS["batch_size"],
              show_default=True, help="Minibatch size.")
@click.option("--max-epochs", type=click.IntRange(min=1), default=_DEFAULTS["max_epochs"],
              show_default=True, help="Epoch limit.")
@click.option("--patience", type=click.IntRange(min=0), default=_DEFAULTS["patience"],
              show_default=True, help="Early stopping: epochs without improvement.")
@click.option("--min-delta", type=float, default=_DEFAULTS["min_delta"], show_default=True,
              help="Early stopping: least validation-loss decrease that counts.")
@click.option("--no-early-stopping", is_flag=True, help="Train all --max-epochs epochs.")
@click.option("--no-restore-best", is_flag=True,
              help="Keep the last epoch's weights instead of the best epoch's.")
@click.option("--l2", type=float, default=_DEFAULTS["l2"], show_default=True,
              help="L2 penalty on the weights.")
@click.option("--momentum", type=float, default=_DEFAULTS["momentum"], show_default=True,
              help="Momentum coefficient (momentum, nesterov).")
@click.option("--beta1", type=float, default=_DEFAULTS["beta1"], show_default=True,
              help="Adam beta1.")
@click.option("--beta2", type=float, default=_DEFAULTS["beta2"], show_default=True,
              help="Adam beta2.")
@click.option("--eps", type=float, default=_DEFAULTS["eps"], show_default=True,
              help="Adam / RMSprop epsilon.")
@click.option("--rmsprop-alpha", type=float, default=_DEFAULTS["rmsprop_alpha"],
              show_default=True, help="RMSprop smoothing constant.")
@click.option("--seed", type=click.IntRange(min=0), default=_DEFAULTS["seed"],
              show_default=True, help="Seed of the initial weights.")
@click.option("--shuffle-seed", type=click.IntRange(min=0), default=None,
              help="Seed of the minibatch order [default: --seed].")
@click.option("--dtype", type=click.Choice(DTYPES), default=_DEFAULTS["dtype"],
              show_default=True, help="Floating-point type of data and weights.")
@backend_option
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="numba and BLAS threads [default: all cores].")
@data_options
@click.option("--save", type=click.Path(dir_okay=False), default=None,
              help="Write the trained network to this .npz file.")
@_errors
def train(hidden_size, activation, optimizer, lr, batch_size, max_epochs, patience, min_delta,
          no_early_stopping, no_restore_best, l2, momentum, beta1, beta2, eps, rmsprop_alpha,
          seed, shuffle_seed, dtype, backend, threads, data_path, train_size, val_size,
          test_size, split_seed, save):
    """Train one network and print its progress and test loss and accuracy."""
    from .training import train as train_network

    config = _config_or_flag_error(
        hidden_size=hidden_size, activation=activation, optimizer=optimizer, learning_rate=lr,
        batch_size=batch_size, max_epochs=max_epochs, early_stopping=not no_early_stopping,
        patience=patience, min_delta=min_delta, restore_best=not no_restore_best, l2=l2,
        momentum=momentum, beta1=beta1, beta2=beta2, eps=eps, rmsprop_alpha=rmsprop_alpha,
        seed=seed, shuffle_seed=shuffle_seed, dtype=dtype, backend=backend, threads=threads)
    if save:
        from .safe_io import check_writable

        try:
            check_writable(save)
        except OSError as e:
            raise CliError(f"--save: {e}") from None
    splits = _data_spec(data_path, train_size, val_size, test_size, split_seed).load(dtype)
    click.echo(f"data: {splits!r}")

    def progress(record):
        click.echo(f"epoch {record.epoch:4d}/{max_epochs}  train loss {record.train_loss:.4f}  "
                   f"val loss {record.val_loss:.4f}  val accuracy "
                   f"{100 * record.val_accuracy:.2f} %  ({record.seconds:.2f} s)")

    result = train_network(config, splits, callback=progress)
    status = ("diverged" if result.diverged else
              "stopped early" if result.stopped_early else "reached --max-epochs")
    click.echo(f"{result.epochs} epochs ({status}, best epoch {result.best_epoch}), "
               f"train time {result.train_time:.2f} s")
    click.echo(f"test loss {result.test_loss:.4f}  test accuracy "
               f"{100 * result.test_accuracy:.2f} %")
    if save:
        from .safe_io import replacing

        with replacing(save) as tmp:
            result.model.save(tmp)
        click.echo(f"model saved to {save}")


@main.command()
def studies():
    """List the built-in studies, one line each."""
    from .study_specs import BUILTIN_STUDIES, example_path

    width = max(len(name) for name in BUILTIN_STUDIES)
    for spec in BUILTIN_STUDIES.values():
        click.echo(f"{spec.name:<{width}}  {spec.description}")
    click.echo(f"\nYour own: ffnn-run study --file my_study.toml (example: {example_path()})")


@main.command()
@click.argument("names", nargs=-1, metavar="[NAME]... | all")
@click.option("--file", "files", type=click.Path(dir_okay=False), multiple=True,
              help="A TOML study definition (repeatable).")
@click.option("--repeats", type=click.IntRange(min=1), default=10, show_default=True,
              help="Repeats per setting; repeat r uses seed and shuffle seed --seed + r.")
@click.option("--max-epochs", type=click.IntRange(min=1), default=None,
              help="Epoch limit of every run [default: 250, or the study file's max_epochs].")
@click.option("--out", type=click.Path(file_okay=False), default="results", show_default=True,
              help="Directory of results, reports and logs.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Local worker processes [default: number of cores].")
@click.option("--scheduler", metavar="ADDRESS", default=None,
              help="Run on this Dask distributed scheduler (e.g. tcp://host:8786) instead of "
                   "local processes; gives up if it does not answer within 10 s "
                   "($FFNN_DASK_TIMEOUT); needs `pip install ffnn[dask]`.")
@backend_option
@data_options
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Base seed.")
@click.option("--fresh", is_flag=True,
              help="Discard this study's recorded runs and start over.")
@click.option("--no-group", is_flag=True,
              help="Train every run alone (measured train time) instead of training the "
                   "settings of a repeat together (calibrated train time) where they can be.")
@click.option("-v", "--verbose", is_flag=True, help="Log every run on the console too.")
@_errors
def study(names, files, repeats, max_epochs, out, workers, scheduler, backend, data_path,
          train_size, val_size, test_size, split_seed, seed, fresh, no_group, verbose):
    """Run studies: built-in NAMEs, `all` of them, and/or --file studies.

    Re-running the same command resumes: recorded runs are skipped and only the missing ones
    are computed. Each study writes <out>/<name>/results.jsonl (one record per run),
    report.md, curves.png and test.png, and logs to <out>/logs/<name>.log; several studies
    also write <out>/summary.md.
    """
    from tqdm import tqdm

    from .runner import StudyOptions, run_studies
    from .study_specs import resolve_studies
    from .threads import available_cores

    if not names and not files:
        raise CliError("give a study NAME, 'all', or --file FILE (see 'ffnn-run studies')")
    if scheduler is not None and workers is not None:
        raise CliError("--workers and --scheduler exclude each other: local processes or Dask")
    specs = resolve_studies(names, files)
    options = StudyOptions(repeats=repeats, max_epochs=max_epochs, backend=backend, seed=seed,
                           data=_data_spec(data_path, train_size, val_size, test_size,
                                           split_seed), group=not no_group)
    for spec in specs:  # validate every setting before any work starts
        spec.config(spec.values[0], backend=backend)

    def show(outcome):
        tqdm.write(outcome.report, file=sys.stdout)

    outcomes = run_studies(specs, options, out, workers=workers or available_cores(),
                           scheduler=scheduler, fresh=fresh, verbose=verbose, on_report=show)
    failed = sum(o.failed for o in outcomes)
    if failed:
        raise click.ClickException(f"{failed} run(s) failed (see {out}/logs); re-run the same "
                                   "command to retry them")


@main.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@_errors
def report(directory):
    """Rebuild tables and figures from the results in DIRECTORY (no training).

    DIRECTORY is a study output directory (--out) or one study's directory.
    """
    from .report import find_study_dirs, rebuild_reports

    if not find_study_dirs(directory):
        raise CliError(f"{directory}: no study results here (no */plan.json)")
    texts, summary = rebuild_reports(directory)
    for text in texts:
        click.echo(text)
    if summary is not None:
        click.echo(f"summary: {summary}")


if __name__ == "__main__":
    main()
