"""Data stage: resolve a `--data` value, read it, encode labels, clean, de-duplicate, split, sample and tokenize.

Every source ends up as the same thing: a `datasets.DatasetDict` with splits train/validation/test and
columns `text`, `label` (class id), `idx` (row number in the original split), plus `rating`, `movie`, `id`
and `label_name` when the source has them; the report records the label scheme (`labels`).
"""

from .config import DATA_ENV, DEFAULT_HUB_DATASET, LOCAL_FORMS, DataConfig, default_data
from .sources import read_source, read_table
from .splits import (
                     check_classes,
                     clean_text,
                     examples_descriptor,
                     holdout_mask,
                     prepare_frames,
                     prepare_splits,
                     sample_per_class,
                     sampling_note,
                     scoring_frame,
                     stratified_sample,
)
from .tokenize import (
                     TRUNCATIONS,
                     decided_max_length,
                     model_token_limit,
                     special_tokens_around,
                     token_length_percentile,
                     tokenize_function,
                     tokenize_splits,
                     truncate_ids,
)

__all__ = ["DATA_ENV", "DEFAULT_HUB_DATASET", "DataConfig", "LOCAL_FORMS", "TRUNCATIONS", "check_classes",
           "clean_text", "decided_max_length", "default_data", "examples_descriptor", "holdout_mask",
           "model_token_limit", "prepare_frames", "prepare_splits", "read_source", "read_table", "sample_per_class",
           "sampling_note", "scoring_frame", "special_tokens_around", "stratified_sample", "token_length_percentile",
           "tokenize_function", "tokenize_splits", "truncate_ids"]
