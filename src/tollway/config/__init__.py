"""The declarative configuration file: its schema and its loader."""

from tollway.config.loader import load_config, parse_config
from tollway.config.schema import (
    ConsumerConfig,
    ModelConfig,
    ProviderConfig,
    TargetConfig,
    TollwayConfig,
)

__all__ = [
    "ConsumerConfig",
    "ModelConfig",
    "ProviderConfig",
    "TargetConfig",
    "TollwayConfig",
    "load_config",
    "parse_config",
]
