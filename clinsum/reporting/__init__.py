"""Reports and exports of stored runs: HTML (templates, inlined SVG charts, drill-down), Markdown,
JSONL/CSV/Parquet files and MLflow.

It renders what the aggregator computed (means, bootstrap intervals, paired
differences) and the evaluators declared (metric directions and order); it has
no statistics of its own. Templates, stylesheet and script are files in
``templates/`` beside this code.
"""
