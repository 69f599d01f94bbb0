"""
Title: Multi-step forecasting on a real time series
Description: Forecast the next 12 months of Mauna Loa CO2 from the previous
36 with a Seq2Seq model, and compare it with seasonal-naive forecasts.

Run `python examples/forecasting.py` (one to three minutes on a laptop CPU),
or `python examples/forecasting.py --quick` for a seconds-long smoke run.
Figures are written to the folder given by `--out` (default: the current one).
The data ships with statsmodels; nothing is downloaded.
"""

import argparse
import os

# kseq2seq runs on Keras' PyTorch backend, chosen before Keras is imported.
os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import matplotlib  # noqa: E402
import numpy as np  # noqa: E402
import statsmodels.api as sm  # noqa: E402

matplotlib.use("Agg")

import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402

from kseq2seq import Seq2Seq  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.split("\n")[2])
parser.add_argument("--quick", action="store_true", help="a tiny smoke run")
parser.add_argument("--out", default=".", help="folder for the figures")
args = parser.parse_args()

epochs = 1 if args.quick else 150

# --8<-- [start:data]
weekly = sm.datasets.co2.load_pandas().data["co2"]  # ppm, weekly, 1958-2001
monthly = weekly.resample("MS").mean()  # month start: the mean of its weeks
print(f"{len(weekly)} weeks ({weekly.isna().sum()} missing) -> {len(monthly)} months")
print(f"months without any measurement, interpolated: {monthly.isna().sum()}")
monthly = monthly.interpolate()
values = monthly.to_numpy("float32")
dates = monthly.index
# The month of the year as a point on a circle: December sits next to January.
angle = 2 * np.pi * (dates.month.to_numpy() - 1) / 12
calendar = np.stack([np.sin(angle), np.cos(angle)], axis=-1).astype("float32")
print(
    f"{dates[0]:%Y-%m} {values[0]:.1f} ppm ... {dates[-1]:%Y-%m} {values[-1]:.1f} ppm"
)
# --8<-- [end:data]

# --8<-- [start:windows]
INPUT, HORIZON = 36, 12  # 3 years in, 1 year out


def origins(first, stop):
    """Forecast origins t: inputs are months t-36..t-1, targets t..t+11.

    Every target month lies in [first, stop); the inputs may come earlier.
    """
    return np.arange(max(first, INPUT), stop - HORIZON + 1)


def windows(starts):
    history = np.stack([values[t - INPUT : t] for t in starts])  # (n, 36)
    future = np.stack([values[t : t + HORIZON] for t in starts])  # (n, 12)
    months = np.stack([calendar[t - INPUT : t] for t in starts])  # (n, 36, 2)
    return history, future, months


validation_start = dates.get_loc("1994-01-01")
test_start = dates.get_loc("1998-01-01")
fit_origins = origins(0, validation_start)  # targets up to 1993
validation_origins = origins(validation_start, test_start)  # targets in 1994-1997
train_origins = origins(0, test_start)  # targets up to 1997
test_origins = origins(test_start, len(values))  # targets in 1998-2001
for name, starts in [
    ("fit", fit_origins),
    ("validation", validation_origins),
    ("train", train_origins),
    ("test", test_origins),
]:
    first, last = dates[starts[0]], dates[starts[-1] + HORIZON - 1]
    print(
        f"{name:>10}: {len(starts):3d} windows, targets {first:%Y-%m} to {last:%Y-%m}"
    )
# --8<-- [end:windows]


# --8<-- [start:baselines]
def seasonal_naive(history):
    """Each month's forecast is the value 12 months earlier: the last input year."""
    return history[:, -12:]


def seasonal_naive_with_trend(history):
    """The seasonal-naive forecast plus the last year-on-year change of the input."""
    yearly_change = (history[:, -12:] - history[:, -24:-12]).mean(axis=1)
    return history[:, -12:] + yearly_change[:, None]


# --8<-- [end:baselines]


# --8<-- [start:targets]
def reference(history, target):
    """What the model predicts on top of: its target is `future - reference`."""
    if target == "level":
        return np.zeros_like(history[:, -HORIZON:])
    if target == "change since the last month":
        return np.repeat(history[:, -1:], HORIZON, axis=1)
    if target == "change on a year earlier":
        return seasonal_naive(history)
    raise ValueError(target)


def features(history, months, target):
    """Inputs (n, 36, 3): the CO2 value (relative to the last one unless
    the target is the level) and the month of the year."""
    anchor = 0.0 if target == "level" else history[:, -1:]
    return np.concatenate([(history - anchor)[..., None], months], axis=-1)


# --8<-- [end:targets]


# --8<-- [start:model]
def train_and_forecast(target, train_starts, forecast_starts):
    """Trains a fresh model on windows at `train_starts`; returns its
    forecasts (in ppm) for the windows at `forecast_starts`."""
    keras.utils.set_random_seed(0)
    history, future, months = windows(train_starts)
    x = features(history, months, target)
    y = future - reference(history, target)
    # Scaling statistics come from the training windows only.
    x_mean, x_std = x.mean(axis=(0, 1)), x.std(axis=(0, 1))
    y_mean, y_std = y.mean(), y.std()

    model = Seq2Seq(
        input_dim=3,
        input_length=INPUT,
        hidden_dim=32,
        output_length=HORIZON,
        output_dim=1,
        teacher_force=True,
    )
    model.compile(loss="mse", optimizer=keras.optimizers.Adam(3e-3, clipnorm=1.0))
    model.fit(
        (x - x_mean) / x_std,
        ((y - y_mean) / y_std)[..., None],
        batch_size=32,
        epochs=epochs,
        verbose=0,
    )

    history, _, months = windows(forecast_starts)
    x = (features(history, months, target) - x_mean) / x_std
    scaled = model.predict(x, verbose=0)[..., 0]
    return scaled * y_std + y_mean + reference(history, target)


# --8<-- [end:model]


def mae(forecast, truth):
    """Mean absolute error in ppm, per horizon (axis 0 is the windows)."""
    return np.abs(forecast - truth).mean(axis=0)


# --8<-- [start:choose]
validation_history, validation_future, _ = windows(validation_origins)
baselines = {
    "seasonal naive": seasonal_naive(validation_history),
    "seasonal naive + trend": seasonal_naive_with_trend(validation_history),
}
print("validation MAE (ppm), targets in 1994-1997:")
for name, forecast in baselines.items():
    print(f"  {name:<45} {mae(forecast, validation_future).mean():.3f}")
scores = {}
for target in (
    "level",
    "change since the last month",
    "change on a year earlier",
):
    forecast = train_and_forecast(target, fit_origins, validation_origins)
    scores[target] = mae(forecast, validation_future).mean()
    print(f"  {'Seq2Seq, target: ' + target:<45} {scores[target]:.3f}")
best = min(scores, key=scores.get)
print(f"chosen target: {best}")
# --8<-- [end:choose]

# --8<-- [start:evaluate]
test_history, test_future, _ = windows(test_origins)
forecasts = {
    "Seq2Seq": train_and_forecast(best, train_origins, test_origins),
    "seasonal naive": seasonal_naive(test_history),
    "naive + trend": seasonal_naive_with_trend(test_history),
}
errors = {name: mae(forecast, test_future) for name, forecast in forecasts.items()}
print(f"test MAE (ppm), {len(test_origins)} windows with targets in 1998-2001:")
print("horizon " + "".join(f"{name:>16}" for name in errors))
for h in range(HORIZON):
    print(f"{h + 1:>7} " + "".join(f"{error[h]:16.3f}" for error in errors.values()))
print("   mean " + "".join(f"{error.mean():16.3f}" for error in errors.values()))
# --8<-- [end:evaluate]

# --8<-- [start:plot]
fig, axes = plt.subplots(1, 2, figsize=(12, 4), sharey=True)
for ax, row in zip(axes, [0, len(test_origins) - 1]):
    t = test_origins[row]
    ax.plot(dates[t - INPUT : t], test_history[row], color="black", label="input")
    ax.plot(
        dates[t : t + HORIZON], test_future[row], color="black", ls="--", label="truth"
    )
    for name, style in [("Seq2Seq", "o-"), ("seasonal naive", "s:")]:
        ax.plot(dates[t : t + HORIZON], forecasts[name][row], style, ms=3, label=name)
    ax.set_title(f"forecast from {dates[t]:%B %Y}")
    ax.xaxis.set_major_locator(mdates.YearLocator())
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y"))
axes[0].set_ylabel("CO2 (ppm)")
axes[0].legend()
fig.tight_layout()
fig.savefig(os.path.join(args.out, "forecasting-forecasts.png"), dpi=100)
plt.close(fig)
# --8<-- [end:plot]
