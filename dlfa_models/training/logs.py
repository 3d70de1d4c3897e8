"""Console and log file of ``dlfa-train``: our messages on stderr, and each run's ``train.log``."""
from __future__ import annotations

import logging
import os
import sys
from contextlib import contextmanager
from pathlib import Path

logger = logging.getLogger("dlfa_models")

LOG_FILE = "train.log"


def configure_logging(verbose: bool) -> None:
    """Our messages on stderr; dataset bars and library load reports only with --verbose."""
    import datasets
    import transformers

    for handler in list(logger.handlers):
        if getattr(handler, "dlfa_console", False):
            logger.removeHandler(handler)
    console = logging.StreamHandler(sys.stderr)
    console.dlfa_console = True
    console.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(console)
    # under torchrun / accelerate launch only the main process tells what happens; the others warn
    logger.setLevel(logging.INFO if int(os.environ.get("RANK", "0")) == 0 else logging.WARNING)
    logger.propagate = False
    if verbose:
        datasets.enable_progress_bars()
        datasets.logging.set_verbosity_warning()
        transformers.logging.enable_progress_bar()
        transformers.logging.set_verbosity_info()
    else:
        datasets.disable_progress_bars()
        datasets.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()  # the Trainer's own bar is plain tqdm and stays
        transformers.logging.set_verbosity_error()


@contextmanager
def run_log(folder: Path, write: bool):
    """Copy our messages and the Trainer's warnings into <folder>/train.log for the duration of a run."""
    if not write:
        yield
        return
    folder.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(folder / LOG_FILE, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    loggers = [logger, logging.getLogger("transformers")]
    for lg in loggers:
        lg.addHandler(handler)
    try:
        yield
    finally:
        for lg in loggers:
            lg.removeHandler(handler)
        handler.close()
