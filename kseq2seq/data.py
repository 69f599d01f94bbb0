"""Toy sequence tasks and text tasks for examples and tests.

Each generator draws from its own `numpy.random.Generator`, so the same
`seed` always gives the same data. `reverse_task` and `copy_task` return
NumPy arrays ready for `fit`; the text tasks (`date_task`, `addition_task`)
return lists of strings, which a `Vocabulary` turns into padded id arrays.
"""

import datetime

import numpy as np

from kseq2seq import _validate

# `Vocabulary` lives in kseq2seq.vocabulary; kseq2seq.data.Vocabulary stays
# importable for existing user code.
from kseq2seq.vocabulary import Vocabulary  # noqa: F401


def one_hot(ids, num_classes):
    """One-hot encodes integer ids: `(...,)` -> `(..., num_classes)` float32.

    Example:

        >>> one_hot(np.array([[0, 2]]), 3)
        array([[[1., 0., 0.],
                [0., 0., 1.]]], dtype=float32)
    """
    ids = np.asarray(ids)
    if ids.size and (ids.min() < 0 or ids.max() >= num_classes):
        raise ValueError(
            f"`ids` must lie in [0, num_classes) = [0, {num_classes}). "
            f"Received ids from {ids.min()} to {ids.max()}."
        )
    return np.eye(num_classes, dtype="float32")[ids]


def _symbols(num_samples, length, num_symbols, seed):
    num_samples = _validate.positive_int("num_samples", num_samples)
    length = _validate.positive_int("length", length)
    num_symbols = _validate.positive_int("num_symbols", num_symbols)
    rng = np.random.default_rng(seed)
    return rng.integers(0, num_symbols, size=(num_samples, length))


def reverse_task(num_samples, length, num_symbols=10, seed=None):
    """Sequences of one-hot symbols and the same sequences reversed.

    Returns:
        `(x, y)`, both `(num_samples, length, num_symbols)` float32.

    Example:

        >>> x, y = reverse_task(4, length=8, num_symbols=10, seed=0)
        >>> x.shape, bool((y[:, ::-1] == x).all())
        ((4, 8, 10), True)
    """
    ids = _symbols(num_samples, length, num_symbols, seed)
    return one_hot(ids, num_symbols), one_hot(ids[:, ::-1], num_symbols)


def copy_task(num_samples, length, num_symbols=10, seed=None):
    """Sequences of one-hot symbols, to be reproduced as they are.

    Returns:
        `(x, y)`, both `(num_samples, length, num_symbols)` float32, equal.
    """
    x = one_hot(_symbols(num_samples, length, num_symbols, seed), num_symbols)
    return x, x.copy()


def _ordinal(day):
    # 11th, 12th and 13th break the 1st/2nd/3rd rule.
    if day % 100 in (11, 12, 13):
        return f"{day}th"
    return f"{day}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(day % 10, 'th') }"


def _date_formats(format_date):
    """The renderings of `date_task`, each a function of a `datetime.date`."""

    def cldr(pattern, case=None):
        def render(date):
            text = format_date(date, pattern, locale="en_US")
            return text if case is None else getattr(text, case)()

        return render

    def ordinal(date):
        return f"{_ordinal(date.day)} of {format_date(date, 'MMMM y', locale='en_US')}"

    return (
        cldr("short"),  # 3/3/98
        cldr("medium"),  # Mar 3, 1998
        cldr("long"),  # March 3, 1998
        cldr("full"),  # Tuesday, March 3, 1998
        cldr("d MMMM y"),  # 3 March 1998
        cldr("EEE, MMM d, y"),  # Tue, Mar 3, 1998
        ordinal,  # 3rd of March 1998
        cldr("MM/dd/yy"),  # 03/03/98
        cldr("M/d/y"),  # 3/3/1998
        cldr("dd.MM.y"),  # 03.03.1998
        cldr("y/MM/dd"),  # 1998/03/03
        cldr("long", "upper"),  # MARCH 3, 1998
        cldr("full", "lower"),  # tuesday, march 3, 1998
        cldr("d MMM y", "lower"),  # 3 mar 1998
    )


def date_task(num_samples, seed=None, min_year=1950, max_year=2049):
    """Dates written by hand in many formats, and the same dates in ISO form.

    Each date is drawn uniformly from the days from `min_year`-01-01 to
    `max_year`-12-31 and written in one of 14 formats, drawn uniformly
    (shown for 1998-03-03; English, locale "en_US", the first six and the
    last three through `babel.dates.format_date`):

    | Format                 | Example                  |
    | ---------------------- | ------------------------ |
    | CLDR short             | `3/3/98`                 |
    | CLDR medium            | `Mar 3, 1998`            |
    | CLDR long              | `March 3, 1998`          |
    | CLDR full              | `Tuesday, March 3, 1998` |
    | `d MMMM y`             | `3 March 1998`           |
    | `EEE, MMM d, y`        | `Tue, Mar 3, 1998`       |
    | ordinal                | `3rd of March 1998`      |
    | `MM/dd/yy`             | `03/03/98`               |
    | `M/d/y`                | `3/3/1998`               |
    | `dd.MM.y` (day first)  | `03.03.1998`             |
    | `y/MM/dd`              | `1998/03/03`             |
    | CLDR long, upper case  | `MARCH 3, 1998`          |
    | CLDR full, lower case  | `tuesday, march 3, 1998` |
    | `d MMM y`, lower case  | `3 mar 1998`             |

    Numeric dates with slashes put the month first, with dots the day first.
    A two-digit year `yy` stands for the one year in `[min_year, max_year]`
    that ends in `yy` (by default 50-99 are 1950-1999 and 00-49 are
    2000-2049), which is why the range may span at most 100 years.

    Needs the `babel` package: `pip install babel` (or `kseq2seq[examples]`).

    Args:
        num_samples: How many dates.
        seed: Seed of the generator that draws dates and formats.
        min_year: The first year, from 1000.
        max_year: The last year, at most `min_year + 99` and 9999.

    Returns:
        `(inputs, targets)`: two lists of `num_samples` strings, the written
        dates and their ISO forms `"YYYY-MM-DD"`.

    Example:

        >>> inputs, targets = date_task(1000, seed=0)
        >>> len(inputs), len(targets), targets[0][4] + targets[0][7]
        (1000, 1000, '--')
        >>> date_task(5, seed=1) == date_task(5, seed=1)
        True
    """
    try:
        from babel.dates import format_date
    except ImportError as error:
        raise ImportError(
            "`date_task` needs the `babel` package: `pip install babel` "
            "(or `pip install kseq2seq[examples]`)."
        ) from error
    _validate.positive_int("num_samples", num_samples)
    _validate.integer("min_year", min_year, 1000, 9999)
    _validate.integer("max_year", max_year, min_year, 9999)
    if max_year - min_year > 99:
        raise ValueError(
            "`max_year` must be at most min_year + 99 so that two-digit years "
            f"are unambiguous (min_year={min_year}). Received: max_year={max_year!r}"
        )
    first = datetime.date(min_year, 1, 1)
    num_days = (datetime.date(max_year, 12, 31) - first).days + 1
    rng = np.random.default_rng(seed)
    days = rng.integers(0, num_days, size=num_samples)
    formats = _date_formats(format_date)
    choices = rng.integers(0, len(formats), size=num_samples)
    dates = [first + datetime.timedelta(days=int(day)) for day in days]
    inputs = [formats[choice](date) for choice, date in zip(choices, dates)]
    return inputs, [date.isoformat() for date in dates]


def addition_task(num_samples, digits=3, seed=None, reverse=False):
    """Sums of two whole numbers as strings, as in Keras' addition RNN example.

    Each of `a` and `b` first gets a number of digits drawn uniformly from 1
    to `digits`, then a value drawn uniformly among the numbers with that
    many digits (no leading zeros; one digit includes 0). Unlike the Keras
    example, repeated pairs are kept and strings are not padded (`Vocabulary`
    pads them).

    Args:
        num_samples: How many sums.
        digits: The most digits of each number, from 1 to 18.
        seed: Seed of the generator that draws the numbers.
        reverse: Whether to reverse each query string, `"12+345"` becoming
            `"543+21"`, which shortens the path from the digits of the
            question to those of the answer (Sutskever et al., 2014).

    Returns:
        `(queries, answers)`: two lists of `num_samples` strings, `"a+b"` and
        `str(a + b)`. A query is at most `2 * digits + 1` characters long and
        an answer at most `digits + 1`.

    Example:

        >>> queries, answers = addition_task(1000, digits=3, seed=0)
        >>> a, b = queries[0].split("+")
        >>> int(a) + int(b) == int(answers[0])
        True
        >>> max(map(len, queries)), max(map(len, answers))
        (7, 4)
        >>> addition_task(2, seed=0, reverse=True)[0] == [
        ...     q[::-1] for q in addition_task(2, seed=0)[0]]
        True
    """
    _validate.positive_int("num_samples", num_samples)
    # Beyond 18 digits two numbers would overflow int64 when drawn.
    _validate.integer("digits", digits, 1, 18)
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, digits + 1, size=(num_samples, 2))
    low = np.where(lengths == 1, 0, 10 ** (lengths - 1))
    numbers = rng.integers(low, 10**lengths, dtype=np.int64)
    queries, answers = [], []
    for a, b in numbers.tolist():
        query = f"{a}+{b}"
        queries.append(query[::-1] if reverse else query)
        answers.append(str(a + b))
    return queries, answers
