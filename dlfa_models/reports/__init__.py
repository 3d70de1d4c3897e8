"""Reports of finished runs: the score table and sweep, the seeds summary and its tables, plots, model cards."""
