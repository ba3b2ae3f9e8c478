"""Datasets for benchmarks and training: records, training pairs and retrieval tasks, loaders, synthetic scenes."""

from engine.datasets.audio import DIGIT_WORDS, FsddSplit, digit_texts, esc_class_texts, load_esc, load_fsdd
from engine.datasets.base import MODALITIES, PROTOCOLS, Dataset, Pair, Record, RetrievalTask, Sample, merge
from engine.datasets.captions import load_coco, load_flickr, load_manifest
from engine.datasets.digits import load_digits_trimodal, load_sklearn_digits
from engine.datasets.media import decode_audio, decode_image, hash_split, shared_data_dir
from engine.datasets.scene_render import render_audio, render_image
from engine.datasets.synthetic import (
    Scene, SceneConfig, Shape, generate_scenes, hard_negative_scenes, make_scene, scene_key,
)
from engine.datasets.videos import Shot, Sound, write_video

__all__ = [
    "DIGIT_WORDS", "MODALITIES", "PROTOCOLS", "Dataset", "FsddSplit", "Pair", "Record", "RetrievalTask", "Sample",
    "Scene", "SceneConfig", "Shape", "decode_audio", "decode_image", "digit_texts", "esc_class_texts",
    "generate_scenes", "hard_negative_scenes", "hash_split", "load_coco", "load_digits_trimodal", "load_esc",
    "load_flickr", "load_fsdd", "load_manifest", "load_sklearn_digits", "make_scene", "merge", "render_audio",
    "render_image", "scene_key", "shared_data_dir",
    "Shot", "Sound", "write_video",
]
