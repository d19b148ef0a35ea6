"""Production monitoring: windows of stored scores compared with a baseline, trends with control
limits over time, case mix, judge drift on fixed anchors, and physician feedback per window. It reads
scores from the store and never computes them, except the anchors' re-judging, which goes through the
normal evaluator."""
