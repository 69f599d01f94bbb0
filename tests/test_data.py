import datetime
import re
import sys

import numpy as np
import pytest

from kseq2seq.data import addition_task
from kseq2seq.data import copy_task
from kseq2seq.data import date_task
from kseq2seq.data import one_hot
from kseq2seq.data import reverse_task


def test_reverse_task_targets_are_the_reversed_inputs():
    x, y = reverse_task(50, length=8, num_symbols=10, seed=0)
    assert x.shape == y.shape == (50, 8, 10)
    np.testing.assert_array_equal(y, x[:, ::-1])
    np.testing.assert_array_equal(x.sum(-1), 1.0)


def test_same_seed_same_data_other_seed_other_data():
    a, _ = reverse_task(20, 5, seed=3)
    b, _ = reverse_task(20, 5, seed=3)
    c, _ = reverse_task(20, 5, seed=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_copy_task_targets_equal_inputs():
    x, y = copy_task(10, 4, num_symbols=3, seed=0)
    np.testing.assert_array_equal(x, y)
    assert y is not x


def test_one_hot_rejects_out_of_range_ids():
    with pytest.raises(ValueError, match="num_classes"):
        one_hot(np.array([0, 3]), 3)


@pytest.mark.parametrize("argument", ["num_samples", "length", "num_symbols"])
def test_generators_reject_non_positive_sizes(argument):
    sizes = {"num_samples": 4, "length": 3, "num_symbols": 5}
    sizes[argument] = 0
    with pytest.raises(ValueError, match=argument):
        reverse_task(**sizes)


# date_task

# The formats `date_task` documents, as `strptime` formats; lower and upper case
# variants parse with the same ones since `strptime` ignores case.
STRPTIME_FORMATS = [
    "%m/%d/%y",
    "%b %d, %Y",
    "%B %d, %Y",
    "%A, %B %d, %Y",
    "%d %B %Y",
    "%a, %b %d, %Y",
    "%m/%d/%Y",
    "%d.%m.%Y",
    "%Y/%m/%d",
    "%d %b %Y",
]
ORDINAL = re.compile(r"(\d{1,2})(st|nd|rd|th) of ([A-Z][a-z]+ \d{4})")


def parse_date(text, min_year):
    """The date `text` describes and a name for its format; asserts it is one."""
    match = ORDINAL.fullmatch(text)
    if match:
        day, suffix, month_year = match.groups()
        expected = {1: "st", 2: "nd", 3: "rd"}.get(int(day) % 10, "th")
        assert suffix == ("th" if 11 <= int(day) <= 13 else expected), text
        date = datetime.datetime.strptime(f"{day} {month_year}", "%d %B %Y").date()
        return date, "ordinal"
    parsed = []
    for form in STRPTIME_FORMATS:
        try:
            date = datetime.datetime.strptime(text, form).date()
        except ValueError:
            continue
        if "%y" in form:
            # strptime's own century rule differs from date_task's.
            year = min_year + (date.year % 100 - min_year) % 100
            date = date.replace(year=year)
        if "%a" in form.lower():
            assert (
                text.split(",")[0].lower()
                == date.strftime("%A" if "%A" in form else "%a").lower()
            ), text
        case = "lower" if text.islower() else "upper" if text.isupper() else "mixed"
        parsed.append((date, (form, case)))
    # "May" is both the short and the full month name, so allow agreeing parses.
    assert parsed and len({date for date, _ in parsed}) == 1, (text, parsed)
    return parsed[0]


@pytest.mark.parametrize("min_year, max_year", [(1950, 2049), (1990, 2089)])
def test_date_task_targets_are_the_iso_dates_the_inputs_describe(min_year, max_year):
    inputs, targets = date_task(1000, seed=0, min_year=min_year, max_year=max_year)
    assert len(inputs) == len(targets) == 1000
    formats = set()
    for text, target in zip(inputs, targets):
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", target)
        expected = datetime.date.fromisoformat(target)
        assert min_year <= expected.year <= max_year
        date, form = parse_date(text, min_year)
        assert date == expected, (text, target)
        formats.add(form)
    assert len(formats) >= 8, formats


def test_date_task_same_seed_same_data():
    assert date_task(50, seed=7) == date_task(50, seed=7)
    assert date_task(50, seed=7) != date_task(50, seed=8)


def test_date_task_respects_a_narrow_year_range_and_covers_it():
    _, targets = date_task(2000, seed=1, min_year=2000, max_year=2001)
    dates = [datetime.date.fromisoformat(t) for t in targets]
    assert min(dates) < datetime.date(2000, 1, 15)
    assert max(dates) > datetime.date(2001, 12, 15)
    assert all(2000 <= d.year <= 2001 for d in dates)


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        ({"num_samples": 0}, "num_samples"),
        ({"num_samples": 5, "min_year": 1900, "max_year": 2000}, "max_year"),
        ({"num_samples": 5, "min_year": 2000, "max_year": 1999}, "max_year"),
        ({"num_samples": 5, "min_year": 999}, "min_year"),
    ],
)
def test_date_task_rejects_invalid_arguments(kwargs, argument):
    with pytest.raises(ValueError, match=f"`{argument}` must"):
        date_task(**kwargs)


def test_date_task_without_babel_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "babel", None)
    monkeypatch.setitem(sys.modules, "babel.dates", None)
    with pytest.raises(ImportError, match="pip install babel"):
        date_task(3, seed=0)


# addition_task


@pytest.mark.parametrize("digits", [1, 3, 5])
def test_addition_task_answers_are_the_sums(digits):
    queries, answers = addition_task(500, digits=digits, seed=0)
    assert len(queries) == len(answers) == 500
    lengths = set()
    for query, answer in zip(queries, answers):
        assert re.fullmatch(r"\d+\+\d+", query)
        a, b = query.split("+")
        for number in (a, b):
            assert 1 <= len(number) <= digits
            assert number == str(int(number)), "no leading zeros"
            lengths.add(len(number))
        assert int(a) + int(b) == int(answer)
        assert answer == str(int(answer))
    assert lengths == set(range(1, digits + 1))


def test_addition_task_reverse_reverses_the_queries_only():
    queries, answers = addition_task(100, digits=3, seed=5)
    reversed_queries, reversed_answers = addition_task(
        100, digits=3, seed=5, reverse=True
    )
    assert reversed_queries == [q[::-1] for q in queries]
    assert reversed_answers == answers


def test_addition_task_same_seed_same_data():
    assert addition_task(50, seed=2) == addition_task(50, seed=2)
    assert addition_task(50, seed=2) != addition_task(50, seed=3)


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        ({"num_samples": 0}, "num_samples"),
        ({"num_samples": 5, "digits": 0}, "digits"),
        ({"num_samples": 5, "digits": 19}, "digits"),
    ],
)
def test_addition_task_rejects_invalid_arguments(kwargs, argument):
    with pytest.raises(ValueError, match=f"`{argument}` must"):
        addition_task(**kwargs)
