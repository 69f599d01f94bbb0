"""`Vocabulary`: strings to padded integer id arrays and back.

A `Vocabulary` is registered with Keras serialization, so it can be stored
in a model's config or saved as JSON beside a model.
"""

import collections
import json

import keras
import numpy as np

from kseq2seq import _validate


@keras.saving.register_keras_serializable(package="kseq2seq")
class Vocabulary:
    """Maps strings to padded integer id arrays and back, per char or word.

    Ids `0` to `3` are reserved: `PAD = 0` fills sequences up to a common
    length, `START = 1` and `END = 2` mark where a sequence begins and ends,
    and `UNKNOWN = 3` stands for every token that is not in the vocabulary.
    The real tokens take ids `4, 5, ...` in the order of `tokens`, so
    `len(vocab)` (reserved ids included) is the vocabulary size to give a
    model, and PAD being `0` lets it be masked as usual.

    At `level="char"` every character is a token (spaces included), so
    `decode(encode(texts))` gives `texts` back whenever all their characters
    are known. At `level="word"` texts are split on runs of whitespace and
    decoded with a single space between words.

    A `Vocabulary` is registered with Keras serialization, so
    `keras.saving.serialize_keras_object` stores it (for example inside a
    model's `get_config()`) and `keras.saving.deserialize_keras_object`
    restores it; `save` and `load` keep it in a JSON file beside a model.

    Args:
        tokens: The real tokens, in id order, as unique strings: single
            characters at `level="char"`, non-empty strings without
            whitespace at `level="word"`. `None` for none.
        level: `"char"` or `"word"`.

    Example:

        >>> vocab = Vocabulary.from_texts(["hello", "world"])
        >>> len(vocab), vocab.tokens
        (11, ['l', 'o', 'h', 'e', 'w', 'r', 'd'])
        >>> ids = vocab.encode(["hello", "hold!"], add_end=True)
        >>> ids.tolist()
        [[6, 7, 4, 4, 5, 2], [6, 5, 4, 10, 3, 2]]
        >>> vocab.decode(ids)
        ['hello', 'hold⁇']
        >>> words = Vocabulary(["one", "two"], level="word")
        >>> words.encode("two  one", add_start=True).tolist()
        [1, 5, 4]
        >>> words.decode([1, 5, 4, 2, 4, 0])
        'two one'
    """

    PAD = 0
    START = 1
    END = 2
    UNKNOWN = 3
    UNKNOWN_TOKEN = "\u2047"
    """What `decode` writes for `UNKNOWN`: "⁇", one visible character."""

    # How `decode(..., strip=False)` shows the other reserved ids.
    _RESERVED_MARKERS = ("<pad>", "<start>", "<end>", UNKNOWN_TOKEN)
    _LEVELS = ("char", "word")

    def __init__(self, tokens=None, level="char"):
        level = _validate.choice("level", level, self._LEVELS)
        tokens = [] if tokens is None else list(tokens)
        for token in tokens:
            if not isinstance(token, str):
                raise ValueError(f"`tokens` must be strings. Received: token={token!r}")
            if level == "char" and len(token) != 1:
                raise ValueError(
                    "`tokens` must be single characters at level='char'. "
                    f"Received: token={token!r}"
                )
            if level == "word" and (not token or token.split() != [token]):
                raise ValueError(
                    "`tokens` must be non-empty and free of whitespace at "
                    f"level='word'. Received: token={token!r}"
                )
        if len(set(tokens)) != len(tokens):
            repeated = [t for t, n in collections.Counter(tokens).items() if n > 1]
            raise ValueError(
                f"`tokens` must be unique. Received repeated tokens: {repeated!r}"
            )
        self._level = level
        self._tokens = tuple(tokens)
        first = len(self._RESERVED_MARKERS)
        self._ids = {token: first + i for i, token in enumerate(self._tokens)}

    @classmethod
    def from_texts(cls, texts, level="char", max_size=None, min_count=1):
        """Builds a vocabulary from the tokens of some texts.

        Tokens are ordered by descending count, ties by first appearance,
        so the same texts always give the same ids.

        Args:
            texts: An iterable of strings.
            level: `"char"` or `"word"`.
            max_size: The largest `len(vocab)`, reserved ids included (as
                Keras' `max_tokens`), so at most `max_size - 4` real tokens
                are kept, the most frequent. `None` for no limit.
            min_count: Tokens that occur fewer times are left out.

        Returns:
            A `Vocabulary`.

        Example:

            >>> vocab = Vocabulary.from_texts(["a b b", "c b a"], level="word")
            >>> vocab.tokens
            ['b', 'a', 'c']
            >>> Vocabulary.from_texts(["a b b", "c b a"], "word", max_size=5).tokens
            ['b']
        """
        level = _validate.choice("level", level, cls._LEVELS)
        if max_size is not None:
            _validate.integer("max_size", max_size, len(cls._RESERVED_MARKERS))
        _validate.positive_int("min_count", min_count)
        if isinstance(texts, str):
            raise ValueError(
                "`texts` must be an iterable of strings, not one string. "
                f"Received: texts={texts!r}"
            )
        counts = collections.Counter()
        for text in texts:
            counts.update(cls._split(text, level))
        # `sorted` is stable and a Counter keeps first-appearance order.
        tokens = [t for t, n in sorted(counts.items(), key=lambda tn: -tn[1])]
        tokens = [t for t in tokens if counts[t] >= min_count]
        if max_size is not None:
            tokens = tokens[: max_size - len(cls._RESERVED_MARKERS)]
        return cls(tokens, level=level)

    @staticmethod
    def _split(text, level):
        if not isinstance(text, str):
            raise ValueError(f"`texts` must be strings. Received: text={text!r}")
        return list(text) if level == "char" else text.split()

    @property
    def level(self):
        """`"char"` or `"word"`."""
        return self._level

    @property
    def tokens(self):
        """The real tokens, in id order (the first has id 4), as a list."""
        return list(self._tokens)

    @property
    def pad_id(self):
        """The id that pads sequences, 0."""
        return self.PAD

    @property
    def start_id(self):
        """The id that marks the start of a sequence, 1."""
        return self.START

    @property
    def end_id(self):
        """The id that marks the end of a sequence, 2."""
        return self.END

    @property
    def unknown_id(self):
        """The id of every token outside the vocabulary, 3."""
        return self.UNKNOWN

    def __len__(self):
        return len(self._RESERVED_MARKERS) + len(self._tokens)

    def __contains__(self, token):
        return token in self._ids

    def __eq__(self, other):
        if not isinstance(other, Vocabulary):
            return NotImplemented
        return (self._level, self._tokens) == (other._level, other._tokens)

    def __hash__(self):
        return hash((self._level, self._tokens))

    def __repr__(self):
        return f"<Vocabulary level={self._level!r} size={len(self)}>"

    def token_to_id(self, token):
        """The id of `token`, `UNKNOWN` (3) if it is not in the vocabulary."""
        return self._ids.get(token, self.UNKNOWN)

    def id_to_token(self, token_id):
        """The token of an id; reserved ids give "<pad>", "<start>", "<end>", "⁇"."""
        token_id = _validate.integer("token_id", token_id, 0, len(self) - 1)
        reserved = len(self._RESERVED_MARKERS)
        if token_id < reserved:
            return self._RESERVED_MARKERS[token_id]
        return self._tokens[token_id - reserved]

    def encode(self, texts, max_length=None, add_start=False, add_end=False):
        """Turns texts into a right-padded array of token ids.

        Args:
            texts: An iterable of strings, or one string.
            max_length: The length of every row, START and END included.
                `None` for the longest encoded text.
            add_start: Whether to put `START` (1) before each text.
            add_end: Whether to put `END` (2) after each text.

        Returns:
            An int32 array `(num_texts, max_length)`, rows padded with `PAD`
            (0) on the right; `(max_length,)` for one string. Tokens that are
            not in the vocabulary become `UNKNOWN` (3).

        Raises:
            ValueError: If a text is longer than `max_length`.

        Example:

            >>> vocab = Vocabulary(["a", "b"])
            >>> vocab.encode(["ab", "b?"], max_length=5, add_start=True).tolist()
            [[1, 4, 5, 0, 0], [1, 5, 3, 0, 0]]
        """
        single = isinstance(texts, str)
        texts = [texts] if single else list(texts)
        if max_length is not None:
            max_length = _validate.non_negative_int("max_length", max_length)
        prefix = [self.START] if add_start else []
        suffix = [self.END] if add_end else []
        rows = [
            prefix
            + [self.token_to_id(t) for t in self._split(text, self._level)]
            + suffix
            for text in texts
        ]
        longest = max(map(len, rows), default=0)
        if max_length is None:
            max_length = longest
        elif longest > max_length:
            index = next(i for i, row in enumerate(rows) if len(row) > max_length)
            raise ValueError(
                "`max_length` must be at least the encoded length of every "
                f"text, START and END included; text {index} "
                f"({texts[index]!r}) has length {len(rows[index])}. "
                f"Received: max_length={max_length!r}"
            )
        ids = np.full((len(rows), max_length), self.PAD, dtype="int32")
        for i, row in enumerate(rows):
            ids[i, : len(row)] = row
        return ids[0] if single else ids

    def decode(self, ids, strip=True):
        """Turns token ids back into text.

        Args:
            ids: Integer ids, `(length,)` for one sequence or
                `(num_sequences, length)`: a NumPy array, a tensor or nested
                lists. To decode a model's probabilities `(..., vocab_size)`,
                take their argmax over the last axis first.
            strip: If `True`, each sequence ends at its first `END`, and
                `PAD` and `START` are left out. If `False`, every id is
                decoded, reserved ids as "<pad>", "<start>" and "<end>".
                `UNKNOWN` always decodes to `Vocabulary.UNKNOWN_TOKEN`, "⁇".

        Returns:
            A string for a 1-D `ids`, else a list of strings. Words are
            joined with one space at `level="word"`.

        Example:

            >>> vocab = Vocabulary(["a", "b"])
            >>> vocab.decode(np.array([[1, 4, 3, 2, 5], [5, 5, 0, 0, 0]]))
            ['a⁇', 'bb']
            >>> vocab.decode([1, 4, 2, 0], strip=False)
            '<start>a<end><pad>'
        """
        array = np.asarray(keras.ops.convert_to_numpy(ids))
        if array.ndim not in (1, 2):
            raise ValueError(
                "`ids` must be 1-D or 2-D (for probabilities, take the argmax "
                f"over the last axis first). Received: ids.shape={array.shape}"
            )
        if not np.issubdtype(array.dtype, np.integer):
            if array.size and not np.all(np.mod(array, 1) == 0):
                raise ValueError(
                    f"`ids` must be integers. Received: ids.dtype={array.dtype}"
                )
            array = array.astype("int64")
        if array.size and (array.min() < 0 or array.max() >= len(self)):
            raise ValueError(
                f"`ids` must lie in [0, len(vocab)) = [0, {len(self)}). "
                f"Received: ids from {array.min()} to {array.max()}"
            )
        separator = "" if self._level == "char" else " "
        # The ids are checked above; a plain list lookup keeps big batches fast.
        names = [*self._RESERVED_MARKERS, *self._tokens]
        texts = []
        for row in np.atleast_2d(array).tolist():
            if strip:
                if self.END in row:
                    row = row[: row.index(self.END)]
                row = [i for i in row if i not in (self.PAD, self.START)]
            texts.append(separator.join(names[i] for i in row))
        return texts[0] if array.ndim == 1 else texts

    def get_config(self):
        """The constructor arguments, as a JSON-serializable dict."""
        return {"tokens": list(self._tokens), "level": self._level}

    @classmethod
    def from_config(cls, config):
        """Rebuilds a vocabulary from `get_config()`."""
        return cls(**config)

    def save(self, path):
        """Writes the vocabulary to a UTF-8 JSON file at `path`.

        The file holds `keras.saving.serialize_keras_object(self)`.
        """
        with open(path, "w", encoding="utf-8") as file:
            json.dump(
                keras.saving.serialize_keras_object(self),
                file,
                ensure_ascii=False,
                indent=1,
            )

    @classmethod
    def load(cls, path):
        """Reads a vocabulary written by `save`.

        Example:

            >>> import pathlib, tempfile
            >>> path = pathlib.Path(tempfile.mkdtemp()) / "vocab.json"
            >>> Vocabulary(["x", "y"]).save(path)
            >>> Vocabulary.load(path).tokens
            ['x', 'y']
        """
        with open(path, encoding="utf-8") as file:
            data = json.load(file)
        if not isinstance(data, dict) or "config" not in data:
            raise ValueError(
                "`path` must name a file written by `Vocabulary.save`. "
                f"Received: path={str(path)!r}"
            )
        return cls.from_config(data["config"])
