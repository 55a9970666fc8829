"""Studies: many training runs of a hyperparameter, their honest timing, tables, figures, exports.

One job per module:

* ``timing``: the per-epoch cost of a *timing key* (what changes the work of an epoch), measured
  in thread CPU time, interleaved round-robin, persisted under ``--out``;
* ``stats``: the tie rule behind every "best" of a report (Welch's t-test against the runner-up);
* ``table``: a study's rows (per setting: runs, means and standard deviations);
* ``plots``: the figures (and the testable data each is drawn from);
* ``export``: ``runs.csv``, ``table.csv`` and pandas frames;
* ``evaluate``: a saved model's test loss, accuracy, confusion matrix and figures.
"""
