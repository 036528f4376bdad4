"""Server-side batching settings, checked with TF Serving's rules and written as its `BatchingParameters` text.

Vertex AI's prebuilt TensorFlow containers read `config/batching_parameters_config` beside `saved_model.pb`;
the fields and defaults are those of TF Serving's batching guide.
"""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf import text_format

from vertex_serving.errors import UserError
from vertex_serving.protos import BatchingParameters
from vertex_serving.tfserving.layout import BATCHING_CONFIG, MAX_WARMUP_RECORDS, WARMUP_REPEATS


@dataclass(frozen=True)
class Batching:
    max_batch_size: int
    allowed_batch_sizes: tuple[int, ...] = ()
    batch_timeout_micros: int = 0
    max_enqueued_batches: int = 10
    num_batch_threads: int | None = None

    def problems(self) -> list[UserError]:
        """Every rule TF Serving applies at load time, so a bad setting fails before a deploy."""
        found = []
        if self.max_batch_size < 1:
            found.append(UserError("max_batch_size", self.max_batch_size, "must be at least 1", "use e.g. 32"))
        if self.batch_timeout_micros < 0:
            found.append(UserError("batch_timeout_micros", self.batch_timeout_micros, "is negative", "use 0 or more"))
        if self.max_enqueued_batches < 1:
            found.append(
                UserError("max_enqueued_batches", self.max_enqueued_batches, "must be at least 1", "use e.g. 10")
            )
        sizes = list(self.allowed_batch_sizes)
        if sizes:
            if any(s < 1 for s in sizes) or sizes != sorted(set(sizes)):
                found.append(
                    UserError(
                        "allowed_batch_sizes",
                        sizes,
                        "must be positive and strictly increasing",
                        "list each size once, smallest first, e.g. [1, 8, 32]",
                    )
                )
            elif len(sizes) * WARMUP_REPEATS > MAX_WARMUP_RECORDS:
                found.append(
                    UserError(
                        "allowed_batch_sizes",
                        sizes,
                        f"are {len(sizes)} sizes, warmed {WARMUP_REPEATS} times each: more than the "
                        f"{MAX_WARMUP_RECORDS} warmup records TF Serving replays",
                        f"allow at most {MAX_WARMUP_RECORDS // WARMUP_REPEATS} batch sizes, e.g. powers of two",
                    )
                )
            elif sizes[-1] != self.max_batch_size:
                found.append(
                    UserError(
                        "allowed_batch_sizes",
                        sizes,
                        f"must end with max_batch_size={self.max_batch_size} (TF Serving pads up to these sizes)",
                        f"append {self.max_batch_size}, or set max_batch_size={sizes[-1]}",
                    )
                )
        return found

    def batch_sizes(self) -> tuple[int, ...]:
        """The batch sizes the server will run: the allowed ones, or every size up to the maximum."""
        return self.allowed_batch_sizes or (self.max_batch_size,)

    def to_text(self) -> str:
        message = BatchingParameters(allowed_batch_sizes=self.allowed_batch_sizes)
        message.max_batch_size.value = self.max_batch_size
        message.batch_timeout_micros.value = self.batch_timeout_micros
        message.max_enqueued_batches.value = self.max_enqueued_batches
        if self.num_batch_threads:
            message.num_batch_threads.value = self.num_batch_threads
        return text_format.MessageToString(message)

    @classmethod
    def from_text(cls, text: str, source: str = BATCHING_CONFIG) -> Batching:
        try:
            message = text_format.Parse(text, BatchingParameters())
        except text_format.ParseError as e:
            raise UserError(
                "batching_parameters", source, f"is not a BatchingParameters text proto ({e})", "fix it"
            ) from None
        return cls(
            max_batch_size=message.max_batch_size.value if message.HasField("max_batch_size") else 1000,
            allowed_batch_sizes=tuple(message.allowed_batch_sizes),
            batch_timeout_micros=message.batch_timeout_micros.value,
            max_enqueued_batches=message.max_enqueued_batches.value if message.HasField("max_enqueued_batches") else 10,
            num_batch_threads=message.num_batch_threads.value or None,
        )
