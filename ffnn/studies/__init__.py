"""Studies: many training runs of a hyperparameter, their honest timing, tables, figures, exports.

One job per module, from the bottom:

* ``specs``: what a study varies (built-in studies, TOML files with grids and recipes);
* ``timing``: the per-epoch cost of a *timing key* (what changes the work of an epoch), measured
  in thread CPU time, interleaved round-robin, persisted under ``--out``;
* ``plan``: a study's options (flags over file over defaults), runs, keys, tasks, and why runs
  are grouped or not (a typed reason);
* ``records`` and ``store``: the record of a run (schema, strict JSON) and ``results.jsonl``;
* ``execute``: worker state, the training and timing tasks, the one executor loop;
* ``lock``, ``dask``: one writer per ``--out``; the Dask scheduler;
* ``stats`` and ``table``: the tie rule behind every "best", and a study's rows;
* ``plots``, ``export``, ``evaluate``, ``report``: figures, CSV and frames, saved models,
  reports and the summary;
* ``run``: ``run_studies`` and ``run_study``, which put these together.
"""
