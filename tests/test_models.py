"""sentitune.models.loading: one loader, safetensors only, one-line errors for folders that cannot be used."""

from __future__ import annotations

import pytest
from conftest import tiny_bert

from sentitune.core.errors import SentituneError
from sentitune.core.labels import LabelScheme
from sentitune.models.loading import load_classifier, load_tokenizer, model_id


def test_head_follows_the_label_scheme(tiny_model):
    model = load_classifier(str(tiny_model), LabelScheme(("neg", "neu", "pos"), True))
    assert model.classifier.out_features == 3 and model.config.id2label == {0: "neg", 1: "neu", 2: "pos"}


def test_folders_without_weights_tokenizer_or_with_torn_weights_are_refused(tmp_path):
    folder = tiny_bert(tmp_path / "m")
    for name in ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
        (folder / name).unlink(missing_ok=True)
    with pytest.raises(SentituneError, match="no tokenizer files"):
        load_tokenizer(str(folder))
    torn = tiny_bert(tmp_path / "torn")
    weights = next(torn.glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(SentituneError, match="--model .*torn"):
        load_classifier(str(torn))
    weights.rename(torn / "pytorch_model.bin")
    with pytest.raises(SentituneError, match="no safetensors weights"):
        load_classifier(str(torn))


def test_offline_hub_id_is_one_line():
    with pytest.raises(SentituneError, match="Hub is offline") as err:
        load_classifier("someone/not-here")
    assert "\n" not in str(err.value)


def test_the_offline_default_has_a_portable_id():
    from sentitune.models.loading import default_model

    assert model_id(default_model()) == "sentence-transformers/all-MiniLM-L6-v2"
    assert model_id("org/name") == "org/name"


def test_configs_record_the_portable_id_and_load_the_local_copy():
    from sentitune.models.loading import default_model, local_copy
    from sentitune.run.config import load_config

    assert load_config().model == "sentence-transformers/all-MiniLM-L6-v2"
    assert local_copy("sentence-transformers/all-MiniLM-L6-v2") == default_model()
