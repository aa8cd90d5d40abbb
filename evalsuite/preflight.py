"""A command's arguments and paths, checked before anything heavy loads.

torch, transformers, open_clip, pandas and DuckDB take 2-12 s to import; a typo in a path
used to cost that much before its one-line error. ``evalsuite.cli`` calls :func:`check_args`
right after parsing, and this module imports only the standard library (and
``evalsuite.spec``, 0.3 s, for benchmark names): a missing model folder, data folder,
results database or input file fails in a fraction of a second, with exit code 2. The
loaders keep their own checks (the library is used without the CLI); the model-folder
helpers here are theirs too, so both say the same thing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from evalsuite.errors import DataError, EvalSuiteError, ModelLoadError
from evalsuite.registry import suggest

DEFAULT_DB = Path("reports/results.duckdb")
# commands that read an existing results database (`list benchmarks` reads none)
READS_RESULTS = ("compare", "list", "export", "baseline", "report")
MODEL_CONFIGS = ("config.json", "open_clip_config.json")  # Hugging Face, open_clip
CHECKPOINTS = ("best", "last")  # what `finetune` writes into its output folder
EMBEDDINGS_PREFIX = "embeddings:"  # evalsuite.models.precomputed.PREFIX
PASSED_AS_IS = ("hf-hub:", "openclip:")  # resolved by open_clip: nothing to check here


def results_db(args: argparse.Namespace) -> Path:
    """``--db`` / ``--results`` (before or after the sub-command), else the default."""
    return getattr(args, "db", None) or DEFAULT_DB


def check_args(args: argparse.Namespace) -> None:
    """Raise :class:`EvalSuiteError` for an argument or path the command cannot use."""
    if args.command == "score":
        check_score(args)
    elif args.command == "prepare":
        check_prepare(args)
    elif args.command in READS_RESULTS and getattr(args, "what", None) != "benchmarks":
        check_results_exist(results_db(args))


def missing_results(db: Path) -> str:
    """What a reader says of a results database that is not there (the store says it too)."""
    return (
        f"no results database at {db}: score a model first "
        f"(`evalsuite score MODEL --db {db}`), which creates it"
    )


def check_results_exist(db: Path) -> None:
    """A database to read must exist (a file, or a folder of exported runs)."""
    if not db.exists():
        raise EvalSuiteError(missing_results(db))


# ---------------------------------------------------------------- model folders


def looks_like_path(spec: str) -> bool:
    """A spec meant as a folder (not a Hub id ``org/name`` nor an open_clip name)."""
    return spec.startswith(("/", "./", "../", "~")) or spec.count("/") > 1 or "\\" in spec


def is_model_folder(path: Path) -> bool:
    return any((path / name).is_file() for name in MODEL_CONFIGS)


def checkpoints_inside(path: Path) -> list[Path]:
    """The model folders a fine-tune's output folder holds (best/, last/)."""
    return [path / name for name in CHECKPOINTS if is_model_folder(path / name)]


def not_a_model(path: Path) -> str:
    """Why ``path`` is not a model folder, and the checkpoint inside it the user may mean."""
    text = (
        f"folder {path} is not a model: it has neither config.json (Hugging Face CLIP) nor "
        f"{MODEL_CONFIGS[1]} (open_clip)"
    )
    inside = checkpoints_inside(path)
    if inside:
        held = " and ".join(f"{p.name}/" for p in inside)
        text += f"; it holds a fine-tune's {held}: did you mean {inside[0]}?"
    return text


def check_model_spec(spec: str) -> None:
    """The checks of ``evalsuite.models.load_scorable`` that need no library: a folder that
    does not exist, and a fine-tune's output folder passed instead of its best/."""
    if spec.startswith(PASSED_AS_IS):
        return
    if spec.startswith(EMBEDDINGS_PREFIX):
        embeddings = Path(spec.removeprefix(EMBEDDINGS_PREFIX)).expanduser()
        if not embeddings.exists():
            raise ModelLoadError(f"precomputed embeddings {str(embeddings)!r} not found")
        return
    path = Path(spec.removeprefix("local-dir:")).expanduser()
    if not path.exists():
        if looks_like_path(spec) or spec.startswith("local-dir:"):
            raise ModelLoadError(f"model folder {spec!r} does not exist")
        return  # a Hub id or an open_clip name: the loader resolves it
    # other folders without a model config (embeddings, a broken model) are the loader's
    embeddings = any(path.glob("embeddings.*"))
    if path.is_dir() and not is_model_folder(path) and checkpoints_inside(path) and not embeddings:
        raise ModelLoadError(not_a_model(path))


# ---------------------------------------------------------------- score and prepare


def check_score(args: argparse.Namespace) -> None:
    if args.fail_on_regression and not args.baseline:
        raise EvalSuiteError("--fail-on-regression needs --baseline NAME")
    if args.export and args.no_store:
        raise EvalSuiteError("--export writes the stored runs: it cannot go with --no-store")
    db = results_db(args)
    if args.baseline and not args.no_store and not db.exists():
        raise EvalSuiteError(
            f"--baseline {args.baseline}: {db} does not exist yet: score the baseline first"
        )
    check_model_spec(args.model)
    check_benchmark_data(args)


def check_benchmark_data(args: argparse.Namespace) -> None:
    """``--data-root``, each ``--data BENCHMARK=PATH``, and the data of each benchmark named
    in ``--benchmarks`` (unnamed ones without data are skipped, as the runner does)."""
    from evalsuite.spec import list_benchmarks, load_benchmark
    from evalsuite.spec_data import resolve_dataset_path

    if args.data_root is not None and not args.data_root.is_dir():
        raise DataError(f"--data-root {args.data_root}: no such folder")
    named = [b.strip() for b in (args.benchmarks or "").split(",") if b.strip()]
    specs = [load_benchmark(name) for name in named]  # unknown: SpecError with suggestions
    known = list(dict.fromkeys([*list_benchmarks(), *(spec.name for spec in specs)]))
    for name, path in args.data:
        if name not in known:
            raise EvalSuiteError(
                f"--data {name}={path}: no benchmark called {name!r}{suggest(name, known)}; "
                f"known: {', '.join(known)}"
            )
        if not path.expanduser().exists():
            raise DataError(f"--data {name}={path}: {path} does not exist")
    overrides = dict(args.data)
    for spec in specs:
        resolve_dataset_path(spec, args.data_root, overrides.get(spec.name))


def check_prepare(args: argparse.Namespace) -> None:
    if not args.images_dir.is_dir():
        raise DataError(f"--images-dir {args.images_dir}: images folder not found")
    for flag, path in (
        ("--styles", args.styles),
        ("--annotations", args.annotations),
        ("--captions", args.captions),
    ):
        if path is not None and not path.exists():
            raise DataError(f"{flag} {path}: not found")
