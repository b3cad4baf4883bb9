"""The `dp` command line. Parsing imports no TensorFlow, so `dp -h` and `dp --version` are instant;
each subcommand imports its entry point when it runs. Input errors (ConfigError, DataError) are
printed without a traceback and exit with status 1."""
from __future__ import annotations

import argparse
import logging
import math
import os
import sys

from . import __version__
from .threads import pool_cpu_memory

LOG_LEVELS = {"DEBUG": logging.DEBUG, "3": logging.DEBUG, "INFO": logging.INFO,
              "2": logging.INFO, "WARNING": logging.WARNING, "1": logging.WARNING,
              "ERROR": logging.ERROR, "0": logging.ERROR}


def _integer(low: int, allowed: tuple = ()):
    """An argparse type: an integer >= `low` (or one of `allowed`)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low and value not in allowed:
            also = "".join(f" or {a}" for a in allowed)
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}{also}, got {value}")
        return value
    return parse


def _number(positive: bool):
    """An argparse type: a finite number, > 0 when `positive`, else >= 0."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value) or value < 0 or (positive and value == 0):
            bound = "> 0" if positive else ">= 0"
            raise argparse.ArgumentTypeError(f"expected a finite number {bound}, got {text}")
        return value
    return parse


def _logging_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--log-level", choices=list(LOG_LEVELS), default="INFO",
                        help="log level (0 = ERROR ... 3 = DEBUG)")
    common.add_argument("-l", "--log-path", default=None, help="also write the log to this file")
    return common


def build_parser() -> argparse.ArgumentParser:
    """The `dp` command line (imports no TensorFlow)."""
    parser = argparse.ArgumentParser(
        prog="dp",
        description="deepmd_tebd: train, freeze and test Deep Potential models with type "
        "embedding; reads DeePMD-kit input scripts and data unchanged.",
    )
    parser.add_argument("--version", action="version", version=f"deepmd_tebd v{__version__}")
    sub = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND")
    common = _logging_options()

    train = sub.add_parser("train", parents=[common], help="train a model")
    train.add_argument("INPUT", help="input script (JSON or YAML)")
    start = train.add_mutually_exclusive_group()
    start.add_argument("-i", "--init-model", default=None,
                       help="initialise the weights from this checkpoint (step starts at 0)")
    start.add_argument("-r", "--restart", default=None,
                       help="continue training from this checkpoint")
    start.add_argument("-f", "--init-frz-model", default=None,
                       help="initialise the weights and statistics from this frozen model "
                            "(.pb, ours or DeePMD-kit's; step starts at 0)")
    start.add_argument("-t", "--finetune", default=None,
                       help="fine-tune this pretrained model (a frozen .pb, ours or "
                            "DeePMD-kit's, or a checkpoint prefix of ours; with a type "
                            "embedding): its model sections and type map replace the "
                            "script's, its weights are loaded and the energy bias of the "
                            "script's types is re-fitted to the data; script types it lacks "
                            "are added (se_atten, se_atten_v2)")
    train.add_argument("--use-pretrain-script", action="store_true",
                       help="accepted for DeePMD-kit's scripts: fine-tuning always uses the "
                            "pretrained model's sections")
    train.add_argument("-o", "--output", default="out.json",
                       help="where the normalised input script is written")
    train.add_argument("--skip-neighbor-stat", action="store_true",
                       help="skip the neighbour statistics (sel must be a list)")
    train.add_argument("--workers", type=_integer(1), default=None, metavar="N",
                       help="data-parallel training in N local worker processes (loopback)")
    train.add_argument("-m", "--mpi-log", choices=["master", "collect", "workers"],
                       default="master", help="data-parallel runs: master: only the chief "
                       "logs; collect/workers: every worker logs (to -l FILE.rank<r>)")

    freeze = sub.add_parser("freeze", parents=[common],
                            help="freeze the newest checkpoint into a model file (.pb)")
    freeze.add_argument("-c", "--checkpoint-folder", default=".",
                        help="folder of the checkpoints (its `checkpoint` file names the newest)")
    freeze.add_argument("-o", "--output", default="frozen_model.pb", help="the frozen model")
    freeze.add_argument("-n", "--node-names", default=None,
                        help="comma-separated nodes to keep (default: the model's outputs and "
                        "attributes)")
    freeze.add_argument("--best", action="store_true", help="freeze the best model "
                        "(<save_ckpt>-best, kept by training/whole_validation) instead of the "
                        "newest checkpoint")

    test = sub.add_parser("test", parents=[common], help="errors of a frozen model on "
                          "labelled systems")
    test.add_argument("-m", "--model", default="frozen_model.pb", help="frozen model (.pb)")
    which = test.add_mutually_exclusive_group()
    which.add_argument("-s", "--system", default=".", help="system directory, searched "
                       "recursively for systems")
    which.add_argument("-f", "--datafile", default=None, help="a file listing one system per "
                       "line")
    test.add_argument("-S", "--set-prefix", default="set", help="prefix of the set folders")
    test.add_argument("-n", "--numb-test", type=_integer(0), default=0,
                      help="frames tested per system (0: all)")
    test.add_argument("-r", "--rand-seed", type=int, default=None,
                      help="seed of --shuffle-test")
    test.add_argument("--shuffle-test", action="store_true", help="shuffle the frames first")
    test.add_argument("-d", "--detail-file", default=None,
                      help="prefix of the detail files (.e.out, .f.out, .v.out, ...) and of "
                      "the parity plot (.parity.png)")
    test.add_argument("-a", "--atomic", action="store_true",
                      help="also compare atomic energies (atom_ener.npy)")

    bias = sub.add_parser("change-bias", parents=[common], help="change the energy bias of a "
                          "frozen model or checkpoint by data or by given values")
    bias.add_argument("INPUT", help="frozen model (.pb), checkpoint prefix or folder")
    source = bias.add_mutually_exclusive_group()
    source.add_argument("-s", "--system", default=".", help="system directory, searched "
                        "recursively for systems")
    source.add_argument("-f", "--datafile", default=None, help="a file listing one system per "
                        "line")
    source.add_argument("-b", "--bias-value", type=float, nargs="+", default=None,
                        help="the bias of each type of the model's type map")
    bias.add_argument("-n", "--numb-batch", type=_integer(0), default=0,
                      help="frames per system (0: all)")
    bias.add_argument("-m", "--mode", choices=["change", "set"], default="change",
                      help="change: fit the residual of the model's energies; set: fit the "
                      "energies themselves")
    bias.add_argument("-o", "--output", default=None, help="the changed frozen model (default: "
                      "INPUT_updated.pb for a graph, PREFIX.pb for a checkpoint)")
    bias.add_argument("--model-branch", default=None, help="ignored (multi-task models are "
                      "PyTorch-only in DeePMD-kit)")

    devi = sub.add_parser("model-devi", parents=[common], help="deviation of several frozen "
                          "models on the frames of some systems (active learning)")
    devi.add_argument("-m", "--models", nargs="+",
                      default=[f"graph.{i:03d}.pb" for i in range(4)], help="frozen models (.pb)")
    devi.add_argument("-s", "--system", default=".", help="system directory, searched "
                      "recursively for systems")
    devi.add_argument("-S", "--set-prefix", default=None, help="ignored (as DeePMD-kit 3.2)")
    devi.add_argument("-o", "--output", default="model_devi.out",
                      help="the output file (appended to)")
    devi.add_argument("-f", "--frequency", type=_integer(1), default=1,
                      help="steps between frames: the step column is frame index x this")
    devi.add_argument("--real_error", action="store_true",
                      help="the RMS error against the systems' labels instead of the deviation")
    devi.add_argument("--atomic", action="store_true",
                      help="append each atom's force deviation to its row")
    devi.add_argument("--relative", type=_number(positive=False), default=None, metavar="LEVEL",
                      help="relative force deviation: divided by |mean force| + LEVEL")
    devi.add_argument("--relative_v", type=_number(positive=False), default=None,
                      metavar="LEVEL",
                      help="relative virial deviation: divided by |mean virial| + LEVEL")

    compress = sub.add_parser("compress", parents=[common],
                              help="compress a se_e2_a model without type embedding")
    compress.add_argument("-i", "--input", default="frozen_model.pb",
                          help="the frozen model to compress")
    compress.add_argument("-o", "--output", default="frozen_model_compressed.pb",
                          help="the compressed model (written atomically)")
    compress.add_argument("-s", "--step", type=_number(positive=True), default=0.01,
                          help="step of the first table (the second uses 10 x step)")
    compress.add_argument("-e", "--extrapolate", type=_integer(1), default=5,
                          help="the second table reaches EXTRAPOLATE x the upper bound")
    compress.add_argument("-f", "--frequency", type=_integer(1, allowed=(-1,)), default=-1,
                          help="overflow check frequency (-1: never), kept in the graph's script")
    compress.add_argument("-c", "--checkpoint-folder", default="model-compression",
                          help="accepted as DeePMD-kit's; nothing is written there (the "
                          "compressed graph is built directly, without a training run)")
    compress.add_argument("-t", "--training-script", default=None,
                          help="the model's training script, for a graph without "
                          "train_attr/training_script")

    plot = sub.add_parser("plot", parents=[common], help="draw a learning curve (lcurve.out) "
                          "to a PNG (needs matplotlib)")
    plot.add_argument("LCURVE", nargs="?", default="lcurve.out")
    plot.add_argument("-o", "--output", default="lcurve.png")
    plot.add_argument("--valid", default=None, help="whole-validation file drawn beside the "
                      "lcurve (default: valid.out beside LCURVE, if there)")

    check = sub.add_parser("check", parents=[common], help="validate an input script and print "
                           "it normalised (defaults filled, aliases resolved)")
    check.add_argument("INPUT", help="input script (JSON or YAML)")
    check.add_argument("--skip-neighbor-stat", action="store_true",
                       help="do not compute the neighbour statistics (sel must be a list)")
    check.add_argument("--skip-data", action="store_true",
                       help="check the script alone, without reading its data")

    doc = sub.add_parser("doc-train-input", parents=[common],
                         help="print the documentation of the input script")
    doc.add_argument("--out-type", choices=["rst", "json"], default="rst")

    stat = sub.add_parser("neighbor-stat", parents=[common],
                          help="neighbour statistics of a data set")
    stat.add_argument("-s", "--system", default=".", help="system directory, searched "
                      "recursively for systems")
    stat.add_argument("-r", "--rcut", type=_number(positive=True), required=True,
                      help="cut-off radius")
    stat.add_argument("-t", "--type-map", nargs="+", default=None,
                      help="element names (default: the data's own types, as DeePMD-kit)")
    stat.add_argument("--mixed-type", "--one-type", dest="one_type", action="store_true",
                      help="count all types as one (the neighbour count of a one-block sel, "
                           "se_atten's)")
    return parser


def _setup_logging(args) -> None:
    logger = logging.getLogger("deepmd_tebd")
    level, log_path, prefix = LOG_LEVELS[args.log_level], args.log_path, "DEEPMD"
    if args.command == "train" and not args.workers:
        from .train.cluster_env import process_rank

        rank = process_rank()
        if rank > 0:  # another worker than the chief of a data-parallel run
            prefix = f"DEEPMD rank {rank}"
            if args.mpi_log == "master":
                level, log_path = max(level, logging.WARNING), None
            elif log_path:
                log_path = f"{log_path}.rank{rank}"
    logger.setLevel(level)
    logger.propagate = False  # our handlers only (TensorFlow configures the root logger)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(prefix + " %(levelname)-7s %(message)s"))
    logger.addHandler(handler)
    if log_path:
        to_file = logging.FileHandler(log_path)
        to_file.setFormatter(logging.Formatter("[%(asctime)s] %(name)s %(levelname)-7s "
                                               "%(message)s"))
        logger.addHandler(to_file)


def _dispatch(args, argv: list[str]) -> int:
    if args.command == "train" and args.workers:
        from .train.launcher import launch, without_workers_option

        return launch(args.workers, without_workers_option(argv))
    if args.command == "train":
        from .entrypoints import train

        return train.run(args.INPUT, args.restart, args.init_model, args.skip_neighbor_stat,
                         args.output, args.init_frz_model, args.finetune)
    if args.command == "freeze":
        from .entrypoints import freeze

        return freeze.run(args.checkpoint_folder, args.output, args.node_names, args.best)
    if args.command == "test":
        from .entrypoints import test

        return test.run(args.model, None if args.datafile else args.system, args.datafile,
                        args.set_prefix, args.numb_test, args.rand_seed, args.shuffle_test,
                        args.detail_file, args.atomic)
    if args.command == "change-bias":
        from .entrypoints import change_bias

        return change_bias.run(args.INPUT, None if args.datafile else args.system,
                               args.datafile, args.mode, args.bias_value, args.numb_batch,
                               args.output)
    if args.command == "model-devi":
        from .entrypoints import model_devi

        return model_devi.run(args.models, args.system, args.output, args.frequency,
                              args.real_error, args.atomic, args.relative, args.relative_v)
    if args.command == "compress":
        from .entrypoints import compress

        return compress.run(args.input, args.output, args.step, args.extrapolate,
                            args.frequency, args.training_script)
    if args.command == "plot":
        from .entrypoints import plot

        return plot.run(args.LCURVE, args.output, args.valid)
    if args.command == "check":
        from .entrypoints import check

        return check.run(args.INPUT, args.skip_neighbor_stat, args.skip_data)
    if args.command == "doc-train-input":
        from .config.doc import document

        print(document(args.out_type))
        return 0
    if args.command == "neighbor-stat":
        from .entrypoints import neighbor_stat

        return neighbor_stat.run(args.system, args.rcut, args.type_map, args.one_type)
    raise AssertionError(f"unhandled command {args.command}")


def main(argv: list[str] | None = None) -> int:
    """Runs `dp` with `argv`; input errors print one message and return 1."""
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    # TensorFlow's C++ log (read when TensorFlow starts): errors only, unless the user set it
    # or asked for DEBUG, where its warnings show too
    debug = LOG_LEVELS[args.log_level] == logging.DEBUG
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1" if debug else "2")
    pool_cpu_memory()
    logging.getLogger("tensorflow").setLevel(logging.WARNING if debug else logging.ERROR)
    _setup_logging(args)
    from .config.errors import ConfigError
    from .train.cluster_env import ClusterError

    from .store.outputs import OutputError

    input_errors: tuple = (ConfigError, ClusterError, OutputError)
    try:
        from .data.system import DataError

        input_errors += (DataError,)
    except ImportError:
        pass
    if args.command in ("freeze", "test", "compress", "model-devi", "train", "change-bias"):
        from .infer.compression import CompressionRefused
        from .infer.frozen import CheckpointError, ModelFileError

        input_errors += (CheckpointError, ModelFileError, CompressionRefused)
    if args.command == "plot":
        from .train.lcurve import LcurveError

        input_errors += (LcurveError,)
    try:
        return _dispatch(args, argv)
    except input_errors as err:
        print(err, file=sys.stderr)
        return 1
    except BrokenPipeError:  # the reader of stdout went away (dp ... | head)
        sys.stdout = open(os.devnull, "w")
        return 0


if __name__ == "__main__":
    sys.exit(main())
