"""The run's record on disk: one versioned, lossless JSON form for everything a run records.

:mod:`looplet.record.codec` encodes and decodes each value (steps, calls, results, messages,
usage, permission decisions, compactions, sub-agents' runs, whole trajectories), with every
field checked on the way in. Checkpoints (:mod:`looplet.checkpoint`), recorded runs
(:mod:`looplet.provenance`), saved runs read for grading (:mod:`looplet.evals.context`),
``Step.to_dict()`` and the reports' trajectory are all built on it. ``import looplet`` does not
import this package; the modules that write or read files do, when they are used.
"""
