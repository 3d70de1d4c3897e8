"""``dlfa-train``: options, planning, run folders, the Trainer, scoring and reports of a command (``run.main``)."""
