"""``python -m dlfa_models.train`` and ``torchrun -m dlfa_models.train``: the ``dlfa-train`` command
(:mod:`dlfa_models.training.run`)."""
import sys

from .training.run import main

if __name__ == "__main__":
    sys.exit(main())
