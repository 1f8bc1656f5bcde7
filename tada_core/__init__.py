"""TADA Studio core library: Transferable Attention for Domain Adaptation (Wang et al., AAAI 2019).

Public API::

    from tada_core import TADAConfig, build_model
    model = build_model(TADAConfig(backbone="lenet", num_classes=10, variant="tada"))
    out = model(torch.cat([x_s, x_t]))
    losses = model.losses(out, y_s, progress=p)
"""

from tada_core.config import OptimConfig, TADAConfig, TrainConfig
from tada_core.errors import CheckpointError, ConfigError, DataError, TadaError
from tada_core.model import TADAModel, TADAOutput, build_model

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataError",
    "OptimConfig",
    "TADAConfig",
    "TADAModel",
    "TADAOutput",
    "TadaError",
    "TrainConfig",
    "build_model",
]
__version__ = "0.1.0"
