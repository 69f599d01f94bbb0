"""The scalar checks every public function of kseq2seq uses on its arguments.

Each raises a `ValueError` that names the argument, says what was expected
and repeats what was received, in Keras' style:
"`beam_width` must be a positive int. Received: beam_width=0".
"""

import numbers

import numpy as np


def is_int(value):
    """Whether `value` is an integer; `True` and `False` are not."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def integer(name, value, minimum=None, maximum=None, allow_none=False):
    """`value` as an int in `[minimum, maximum]` (either bound optional)."""
    if value is None and allow_none:
        return None
    in_range = is_int(value) and (
        (minimum is None or value >= minimum) and (maximum is None or value <= maximum)
    )
    if not in_range:
        raise ValueError(
            f"`{name}` must be {_describe_int(minimum, maximum, allow_none)}. "
            f"Received: {name}={value!r}"
        )
    return int(value)


def _describe_int(minimum, maximum, allow_none):
    if minimum == 1 and maximum is None:
        described = "a positive int"
    elif minimum == 0 and maximum is None:
        described = "a non-negative int"
    elif maximum is None:
        described = f"an int >= {minimum}"
    elif minimum is None:
        described = f"an int <= {maximum}"
    else:
        described = f"an int in [{minimum}, {maximum}]"
    return described + (" or None" if allow_none else "")


def positive_int(name, value, allow_none=False):
    return integer(name, value, minimum=1, allow_none=allow_none)


def non_negative_int(name, value, allow_none=False):
    return integer(name, value, minimum=0, allow_none=allow_none)


def boolean(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"`{name}` must be True or False. Received: {name}={value!r}")
    return bool(value)


def real(
    name,
    value,
    minimum=None,
    maximum=None,
    include_minimum=True,
    include_maximum=True,
    expected=None,
):
    """`value` as a finite float between `minimum` and `maximum`, each bound
    included unless `include_minimum` or `include_maximum` says otherwise."""
    valid = isinstance(value, numbers.Real) and not isinstance(value, bool)
    valid = valid and bool(np.isfinite(value))
    if valid and minimum is not None:
        valid = value >= minimum if include_minimum else value > minimum
    if valid and maximum is not None:
        valid = value <= maximum if include_maximum else value < maximum
    if not valid:
        if expected is None:
            expected = "a real number"
            if minimum is not None:
                expected += f" {'>=' if include_minimum else '>'} {minimum}"
            if maximum is not None:
                expected += f" {'<=' if include_maximum else '<'} {maximum}"
        raise ValueError(f"`{name}` must be {expected}. Received: {name}={value!r}")
    return float(value)


def rate(name, value):
    """A probability such as a dropout rate: a float in `[0, 1)`."""
    return real(name, value, 0, 1, include_maximum=False, expected="a float in [0, 1)")


def choice(name, value, choices):
    if not (value is None or isinstance(value, str)) or value not in choices:
        raise ValueError(
            f"`{name}` must be one of {list(choices)}. Received: {name}={value!r}"
        )
    return value
