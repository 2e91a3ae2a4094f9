"""Pure-PyTorch progressive GAN + encoder training (no Django, Celery or Channels imports here)."""

from training.ml.checkpoint import CheckpointError, latest_checkpoint, load_checkpoint, save_checkpoint
from training.ml.config import (
    PRESETS,
    GanConfig,
    config_from_dict,
    config_to_dict,
    phase_at,
    preset,
    total_steps,
)
from training.ml.data import ImageFolderData, list_images, make_dataset
from training.ml.embed import EncoderInfo, GanEncoder, GanGenerator, load_gan_encoder, load_generator
from training.ml.fd import frechet_distance
from training.ml.loop import StepStats, TrainResult, train

__all__ = [
    "PRESETS",
    "CheckpointError",
    "EncoderInfo",
    "GanConfig",
    "GanEncoder",
    "GanGenerator",
    "ImageFolderData",
    "StepStats",
    "TrainResult",
    "config_from_dict",
    "config_to_dict",
    "frechet_distance",
    "latest_checkpoint",
    "list_images",
    "load_checkpoint",
    "load_gan_encoder",
    "load_generator",
    "make_dataset",
    "phase_at",
    "preset",
    "save_checkpoint",
    "total_steps",
    "train",
]
