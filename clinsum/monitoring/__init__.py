"""Production monitoring: is this window of summaries worse than the baseline, and why.

The modules read stored scores (never compute them, except the anchors'
re-judging, which goes through the normal evaluator) and each owns one question:

- ``windows``: which summaries a selector (run id, run name, tags, time range) picks;
- ``significance``: the tests suited to each metric kind, bootstrap intervals,
  and Holm / Benjamini-Hochberg multiplicity control;
- ``alerts``: the comparison of two windows, metric by metric and segment by
  segment, and which changes are alerts (significant, the bad way, and at least
  the minimum effect that matters);
- ``case_mix``: whether the windows' inputs differ, and whether a change is the
  model's or the mix's;
- ``trend``: control limits over time; ``anchors``: judge drift on fixed
  anchors; ``feedback``: physician feedback per window;
- ``simulate``: planted changes on a pool of scored summaries, to measure what
  the monitor detects and how often it raises a false alarm.

This file imports nothing, so each module stays importable on its own.
"""
