"""Evaluation of trained models: samples at several resolutions (image sides, or sample rates for audio) scored
against real data with `funcdiff.metrics` and `funcdiff.metrics.audio`, and the written reports (`funcdiff eval`)."""

from funcdiff.evaluation.audio import audio_table, describe_audio, evaluate_audio, write_audio_report
from funcdiff.evaluation.audio_study import AudioRow, AudioStudy, Pitch, band_limited, run_audio_study, semitone_distance
from funcdiff.evaluation.classes import ClassRow, ClassStudy, class_study, describe_classes
from funcdiff.evaluation.evaluators import EVALUATORS, Evaluator, evaluator_for, register_evaluator
from funcdiff.evaluation.report import table, write_report
from funcdiff.evaluation.run import describe, evaluate, read_image_folder, sample_resolutions
from funcdiff.evaluation.study import Row, Study, bicubic, detail_gain, real_sets, run_study

__all__ = [
    "EVALUATORS",
    "ClassRow",
    "ClassStudy",
    "class_study",
    "describe_classes",
    "AudioRow",
    "AudioStudy",
    "Pitch",
    "Row",
    "Evaluator",
    "Study",
    "audio_table",
    "band_limited",
    "bicubic",
    "describe",
    "describe_audio",
    "detail_gain",
    "evaluate",
    "evaluate_audio",
    "evaluator_for",
    "read_image_folder",
    "real_sets",
    "register_evaluator",
    "run_audio_study",
    "run_study",
    "sample_resolutions",
    "semitone_distance",
    "table",
    "write_audio_report",
    "write_report",
]
