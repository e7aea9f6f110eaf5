import pytest

import open_r1_ext


@pytest.mark.parametrize("name", open_r1_ext.__all__)
def test_public_names_import(name):
    assert getattr(open_r1_ext, name) is not None


def test_unknown_attribute():
    with pytest.raises(AttributeError):
        open_r1_ext.NoSuchTrainer  # noqa: B018


def test_every_registered_trainer_resolves():
    from transformers import Trainer, TrainingArguments

    for name in open_r1_ext.TRAINERS:
        config_cls, trainer_cls = open_r1_ext.get_trainer_classes(name)
        assert issubclass(config_cls, TrainingArguments), name
        assert issubclass(trainer_cls, Trainer), name
