"""Speed measured side by side: the models and their data path (:mod:`.speed`), and the
project against MONAI (:mod:`.vs_monai`). ``spineseg bench`` is the command-line face.

MONAI is an optional extra (``bench``): it is imported inside the functions that need it.
"""

from .speed import (BENCH_COLUMNS, BenchSettings, DataPath, bench_model, bench_table,
                    build_data_pipe, data_throughput, model_throughput)
from .timing import TrainStep, matmul_peak_flops, theoretical_peak, timed, train_step_flops
from .vs_monai import (MONAI_COLUMNS, metric_comparison, monai_comparison, monai_twin,
                       spine_like_pair)

__all__ = [
    "BENCH_COLUMNS", "BenchSettings", "DataPath", "bench_model", "bench_table",
    "build_data_pipe", "data_throughput", "model_throughput",
    "TrainStep", "matmul_peak_flops", "theoretical_peak", "timed", "train_step_flops",
    "MONAI_COLUMNS", "metric_comparison", "monai_comparison", "monai_twin", "spine_like_pair",
]
