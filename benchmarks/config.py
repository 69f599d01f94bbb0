"""What the benchmark runs: shapes, model cases, contenders and settings."""

import dataclasses
import json

import torch

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")

BATCH = 64
LENGTH = 20
FEATURES = 16
VOCAB = 64
START_ID = 1
END_ID = 2
# Token inputs and targets are drawn from [FIRST_WORD, VOCAB): no padding
# (id 0), start or end id.
FIRST_WORD = 3
BEAM_WIDTH = 5
LEARNING_RATE = 1e-3
# Keras' Adam epsilon; PyTorch's default is 1e-8.
ADAM_EPSILON = 1e-7
# Largest difference allowed between kseq2seq and a twin with its weights.
TOLERANCE = 1e-4

SIZES = {"small": (128, 1), "medium": (256, 2)}  # (hidden, depth)

# The kseq2seq models measured, by key: their label in the report.
MODELS = {
    "simple": "SimpleSeq2Seq",
    "seq2seq": "Seq2Seq (shared state)",
    "seq2seq_per_layer": "Seq2Seq (state per layer)",
    "seq2seq_peek": "Seq2Seq (peek, teacher forcing)",
    "attention": "AttentionSeq2Seq (teacher forcing)",
    "tokens": "Seq2Seq (tokens)",
}

# Every contender, in the report's order, by key: its label.
CONTENDERS = {
    "kseq2seq": "kseq2seq",
    "pytorch": "PyTorch",
    "pytorch_tutorial": "PyTorch, tutorial attention",
    "keras_twin": "PyTorch twin in Keras fit",
    "keras": "stock Keras",
}
PEERS = [name for name in CONTENDERS if name != "kseq2seq"]


@dataclasses.dataclass(frozen=True)
class Case:
    """One model at one size."""

    model: str
    size: str

    @property
    def key(self):
        return f"{self.model}/{self.size}"

    @property
    def label(self):
        return MODELS[self.model]

    @property
    def hidden(self):
        return SIZES[self.size][0]

    @property
    def depth(self):
        return SIZES[self.size][1]

    @property
    def tokens(self):
        return self.model == "tokens"

    @property
    def teacher_forced(self):
        """Training reads the targets: the model takes `[x, y]`."""
        return self.model in ("seq2seq_peek", "attention", "tokens")

    @property
    def contenders(self):
        """Stock Keras layers have no step loop: they express only the models
        whose layers' inputs are all known in advance."""
        names = ["kseq2seq", "pytorch", "keras_twin"]
        if self.model == "attention":
            names.insert(2, "pytorch_tutorial")
        if self.model in ("simple", "seq2seq_peek", "tokens"):
            names.append("keras")
        return tuple(names)

    @property
    def keras_predicts(self):
        """Stock Keras' free-running inference: only without feedback."""
        return self.model == "simple"


@dataclasses.dataclass(frozen=True)
class Settings:
    """How much is measured."""

    sizes: tuple
    models: tuple
    epoch_batches: int  # batches per training epoch
    repeats: int  # interleaved rounds; minimum and median are taken over them
    calls: int  # inference or decoding calls per timed sample
    memory: bool  # measure peak memory
    memory_batches: int  # training batches of the memory measurement
    memory_runs: int  # fresh processes per contender; the median is reported
    jit_models: tuple  # models trained with jit_compile=True
    jit_timeout_s: int  # per model and size, compilation included

    @property
    def cases(self):
        return [Case(model, size) for size in self.sizes for model in self.models]

    def to_json(self):
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text):
        values = json.loads(text)
        return cls(
            **{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        )


FULL = Settings(
    sizes=("small", "medium"),
    models=tuple(MODELS),
    epoch_batches=20,
    repeats=10,
    calls=10,
    memory=True,
    memory_batches=5,
    memory_runs=3,
    jit_models=tuple(MODELS),
    jit_timeout_s=1200,
)
QUICK = Settings(
    sizes=("small",),
    models=tuple(MODELS),
    epoch_batches=2,
    repeats=2,
    calls=1,
    memory=True,
    memory_batches=2,
    memory_runs=1,
    jit_models=("simple",),
    jit_timeout_s=300,
)
