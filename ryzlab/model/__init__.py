"""The BitNet b1.58 model on the kernels: configs, weights, the decoder, a float reference."""

from .config import CONFIGS, NORM_EPS, Config, get_config
from .decoder import TIMING_CATEGORIES, Model
from .ops import blas_threads
from .reference import ReferenceModel
from .sources import CheckpointWeights, load

__all__ = ["CONFIGS", "NORM_EPS", "TIMING_CATEGORIES", "Config", "Model", "ReferenceModel", "CheckpointWeights",
           "blas_threads", "get_config", "load"]
