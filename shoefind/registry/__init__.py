"""The trained models of a dataset and which one is current: the learning loop's memory.

DATA_DIR/registry/<dataset>/ holds (store.py):
- registry.json: the dataset's learner (few-shot head or linear probe over a backbone, LiT, CoOp),
  its settings and the held-out split fixed when the dataset was registered (heldout.csv);
- models/<id>/: every model ever trained, each with its manifest (data snapshot, learner, settings,
  held-out scores and per-photo answers, triage thresholds) and its files;
- current.json: which model is current (an atomic pointer), and the models promoted before it;
- events.jsonl: what every retraining, promotion and rollback did, with the comparison behind it.

retrain.py trains the configured learner on the dataset, calibrates the triage thresholds on photos
held out of each fit, scores the fixed held-out split and promotes the new model only when it is not
worse (compare.py); triage.py lets the current model sort new photos; current.py hands it to
`infer`, `search`, the web page and the warm worker.
"""
