"""The candidate kinds' names, importable without scikit-learn or pandas.

Reading ``config/training.yaml`` (``nightshift.training.load_training_config``, run by every task
through ``nightshift.context.TaskContext.load``) and planning a night only need the names, and
importing ``nightshift_model`` (numpy, pandas, scikit-learn, scipy) costs seconds per task process.
``nightshift_model`` keeps its own copy of these tuples, next to the classes: it is the code a
logged model carries and never imports ``nightshift``. ``tests/test_task_startup.py`` checks that
the two agree.
"""

SUPERVISED_KINDS = ("logistic_regression", "random_forest", "hist_gradient_boosting", "decision_tree")
DETECTOR_KINDS = ("pca_detector", "isolation_forest", "invariants_miner")
