"""Evaluation of trained models: samples at several resolutions scored against real data with `funcdiff.metrics`,
and the written report (`funcdiff eval`)."""

from funcdiff.evaluation.report import table, write_report
from funcdiff.evaluation.run import describe, evaluate, read_image_folder, sample_resolutions
from funcdiff.evaluation.study import Row, Study, bicubic, detail_gain, real_sets, run_study

__all__ = [
    "Row", "Study", "bicubic", "describe", "detail_gain", "evaluate", "read_image_folder", "real_sets", "run_study", "sample_resolutions",
    "table", "write_report",
]
