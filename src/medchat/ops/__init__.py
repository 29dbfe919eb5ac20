"""Operations around the pipeline: running dvc, cache verification, experiment tables, Optuna tuning and the pull-request report."""
