"""Vocabulary: encoding, decoding, building from texts and serialization."""

import keras
import numpy as np
import pytest

from kseq2seq.vocabulary import Vocabulary

TEXTS = ["the cat sat", "on the mat", "a cat"]


@pytest.mark.parametrize("level", ["char", "word"])
def test_vocabulary_encode_decode_round_trip(level):
    vocab = Vocabulary.from_texts(TEXTS, level=level)
    ids = vocab.encode(TEXTS, add_start=True, add_end=True)
    assert ids.dtype == np.int32
    assert vocab.decode(ids) == TEXTS
    assert vocab.decode(ids[1]) == TEXTS[1]
    assert vocab.decode(ids.tolist()) == TEXTS
    assert vocab.decode(keras.ops.convert_to_tensor(ids)) == TEXTS


def test_vocabulary_reserved_ids_come_first():
    vocab = Vocabulary(["a", "b"])
    assert (vocab.PAD, vocab.START, vocab.END, vocab.UNKNOWN) == (0, 1, 2, 3)
    assert (Vocabulary.PAD, Vocabulary.START, Vocabulary.END) == (0, 1, 2)
    assert (vocab.pad_id, vocab.start_id, vocab.end_id, vocab.unknown_id) == (
        0,
        1,
        2,
        3,
    )
    assert len(vocab) == 6
    assert len(Vocabulary()) == 4
    assert [vocab.token_to_id(t) for t in "ab"] == [4, 5]
    assert [vocab.id_to_token(i) for i in range(6)] == [
        "<pad>",
        "<start>",
        "<end>",
        Vocabulary.UNKNOWN_TOKEN,
        "a",
        "b",
    ]
    assert "a" in vocab and "c" not in vocab and "<pad>" not in vocab
    assert vocab.tokens == ["a", "b"]


def test_vocabulary_unknown_tokens_encode_to_unknown_and_decode_to_marker():
    vocab = Vocabulary(["a", "b"])
    assert vocab.token_to_id("z") == Vocabulary.UNKNOWN
    assert vocab.encode("azb").tolist() == [4, 3, 5]
    assert vocab.decode(vocab.encode("azb")) == "a\u2047b"
    words = Vocabulary(["hello"], level="word")
    assert words.decode(words.encode("hello there")) == "hello \u2047"


def test_vocabulary_start_end_and_padding():
    vocab = Vocabulary(["a", "b"])
    assert vocab.encode(["ab", "b"]).tolist() == [[4, 5], [5, 0]]
    assert vocab.encode(["ab", "b"], add_start=True, add_end=True).tolist() == [
        [1, 4, 5, 2],
        [1, 5, 2, 0],
    ]
    ids = vocab.encode(["ab", ""], max_length=6, add_end=True)
    assert ids.shape == (2, 6)
    assert ids.tolist() == [[4, 5, 2, 0, 0, 0], [2, 0, 0, 0, 0, 0]]
    assert vocab.decode(ids) == ["ab", ""]
    assert vocab.encode([]).shape == (0, 0)
    assert vocab.encode([], max_length=3).shape == (0, 3)


def test_vocabulary_decode_stops_at_end_and_skips_pad_and_start():
    vocab = Vocabulary(["a", "b"])
    assert vocab.decode([1, 4, 0, 5, 2, 4, 4]) == "ab"
    assert vocab.decode([1, 4, 2, 0], strip=False) == "<start>a<end><pad>"
    # Integral floats, as some pipelines produce, are accepted.
    assert vocab.decode(np.array([[4.0, 5.0]])) == ["ab"]


def test_vocabulary_max_length_error_names_the_text_length():
    vocab = Vocabulary(["a", "b"])
    with pytest.raises(ValueError, match=r"max_length.*length 4.*max_length=3"):
        vocab.encode(["a", "abab"], max_length=3)
    with pytest.raises(ValueError, match=r"length 4.*max_length=3"):
        vocab.encode(["ab"], max_length=3, add_start=True, add_end=True)
    assert vocab.encode(["ab"], max_length=4, add_start=True, add_end=True).shape == (
        1,
        4,
    )


@pytest.mark.parametrize(
    "call, argument",
    [
        (lambda: Vocabulary(["a"], level="byte"), "level"),
        (lambda: Vocabulary(["ab"]), "tokens"),
        (lambda: Vocabulary(["a", "a"]), "tokens"),
        (lambda: Vocabulary(["a b"], level="word"), "tokens"),
        (lambda: Vocabulary([""], level="word"), "tokens"),
        (lambda: Vocabulary([1]), "tokens"),
        (lambda: Vocabulary.from_texts("abc"), "texts"),
        (lambda: Vocabulary.from_texts(["a"], max_size=3), "max_size"),
        (lambda: Vocabulary.from_texts(["a"], min_count=0), "min_count"),
        (lambda: Vocabulary(["a"]).encode(["a"], max_length=-1), "max_length"),
        (lambda: Vocabulary(["a"]).decode([4, 5]), "ids"),
        (lambda: Vocabulary(["a"]).decode([-1]), "ids"),
        (lambda: Vocabulary(["a"]).decode([0.5]), "ids"),
        (lambda: Vocabulary(["a"]).decode(np.zeros((1, 2, 5))), "ids"),
        (lambda: Vocabulary(["a"]).id_to_token(5), "token_id"),
    ],
)
def test_vocabulary_rejects_invalid_arguments(call, argument):
    with pytest.raises(ValueError, match=f"`{argument}` must"):
        call()


def test_from_texts_orders_by_count_then_first_appearance():
    vocab = Vocabulary.from_texts(["abcb", "dcx", "c"])
    # c: 3, b: 2, then a, d, x once each in order of appearance.
    assert vocab.tokens == ["c", "b", "a", "d", "x"]
    words = Vocabulary.from_texts(["y x", "x  z\ty"], level="word")
    assert words.tokens == ["y", "x", "z"]
    assert Vocabulary.from_texts(iter(["abcb", "dcx", "c"])) == vocab


def test_from_texts_max_size_and_min_count():
    texts = ["abcb", "dcx", "c"]
    assert Vocabulary.from_texts(texts, max_size=6).tokens == ["c", "b"]
    assert len(Vocabulary.from_texts(texts, max_size=6)) == 6
    assert Vocabulary.from_texts(texts, max_size=4).tokens == []
    assert Vocabulary.from_texts(texts, max_size=100).tokens == list("cbadx")
    assert Vocabulary.from_texts(texts, min_count=2).tokens == ["c", "b"]
    assert Vocabulary.from_texts(texts, min_count=2, max_size=5).tokens == ["c"]


@pytest.mark.parametrize("level", ["char", "word"])
def test_vocabulary_config_and_keras_serialization_round_trip(level):
    vocab = Vocabulary.from_texts(TEXTS, level=level)
    config = vocab.get_config()
    assert config == {"tokens": vocab.tokens, "level": level}
    assert Vocabulary.from_config(config) == vocab

    serialized = keras.saving.serialize_keras_object(vocab)
    assert serialized["registered_name"] == "kseq2seq>Vocabulary"
    restored = keras.saving.deserialize_keras_object(serialized)
    assert isinstance(restored, Vocabulary)
    assert restored.tokens == vocab.tokens and restored.level == level
    np.testing.assert_array_equal(restored.encode(TEXTS), vocab.encode(TEXTS))


def test_vocabulary_save_and_load_json(tmp_path):
    vocab = Vocabulary.from_texts(["caf\u00e9 na\u00efve", "x"])
    path = tmp_path / "vocab.json"
    vocab.save(path)
    assert "\u00e9" in path.read_text(encoding="utf-8")
    loaded = Vocabulary.load(path)
    assert loaded == vocab
    np.testing.assert_array_equal(
        loaded.encode(["na\u00efve"]), vocab.encode(["na\u00efve"])
    )
    (tmp_path / "other.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="path"):
        Vocabulary.load(tmp_path / "other.json")


def test_vocabulary_stays_importable_from_its_former_module():
    import kseq2seq
    from kseq2seq import data

    assert data.Vocabulary is Vocabulary is kseq2seq.Vocabulary
    # What `serialize_keras_object` wrote before the move still loads.
    restored = keras.saving.deserialize_keras_object(
        {
            "module": "kseq2seq.data",
            "class_name": "Vocabulary",
            "config": {"tokens": ["a"], "level": "char"},
            "registered_name": "kseq2seq>Vocabulary",
        }
    )
    assert restored == Vocabulary(["a"])
