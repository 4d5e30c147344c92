"""Synthetic data for Nightshift: the log generators and the ``make demo`` driver.

Not part of the runtime package: the pipeline (``nightshift``) never imports this package, and no
logged model ships it. It depends on ``nightshift`` only for the lake layout (where a day's raw log
and labels go) and, in ``demo``, for the local environment that runs the DAGs.

* ``python -m nightshift_datagen.hdfs``: HDFS (Loghub HDFS_v1 format) days with labels
* ``python -m nightshift_datagen.bgl``: Blue Gene/L RAS days with labels
* ``python -m nightshift_datagen.demo``: ``make demo`` (generate 6 HDFS days, run the DAGs, summarize)
"""
