"""Text-proto schemas that no pip package ships, declared once so protobuf itself parses and prints them.

- `BatchingParameters` from TF Serving's `session_bundle_config.proto` (the `config/batching_parameters_config`
  file that Vertex AI's prebuilt TF containers read beside `saved_model.pb`).
- `ConverterOptions` reduced to what Vertex AI accepts in `--converter_options_string`: only `tpu_functions`
  with a `function_alias` (Cloud TPU Inference Converter's ConverterOptions.TpuFunction), so anything else fails
  to parse instead of being passed to a container that would reject it at deploy time.
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, wrappers_pb2

_F = descriptor_pb2.FieldDescriptorProto


def _field(name: str, number: int, kind: int, *, type_name: str = "", repeated: bool = False) -> _F:
    field = _F(name=name, number=number, type=kind, label=_F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL)
    if type_name:
        field.type_name = type_name
    return field


def _schema() -> descriptor_pool.DescriptorPool:
    int64 = {"kind": _F.TYPE_MESSAGE, "type_name": ".google.protobuf.Int64Value"}
    file = descriptor_pb2.FileDescriptorProto(
        name="vertex_serving_pipelines/schemas.proto",
        package="vsp",
        syntax="proto3",
        dependency=["google/protobuf/wrappers.proto"],
    )
    file.message_type.add(
        name="BatchingParameters",
        field=[
            _field("max_batch_size", 1, **int64),
            _field("batch_timeout_micros", 2, **int64),
            _field("max_enqueued_batches", 3, **int64),
            _field("num_batch_threads", 4, **int64),
            _field("thread_pool_name", 5, _F.TYPE_MESSAGE, type_name=".google.protobuf.StringValue"),
            _field("allowed_batch_sizes", 6, _F.TYPE_INT64, repeated=True),
            _field("pad_variable_length_inputs", 7, _F.TYPE_BOOL),
        ],
    )
    file.message_type.add(name="TpuFunction", field=[_field("function_alias", 2, _F.TYPE_STRING)])
    file.message_type.add(
        name="ConverterOptions",
        field=[_field("tpu_functions", 1, _F.TYPE_MESSAGE, type_name=".vsp.TpuFunction", repeated=True)],
    )
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
    pool.Add(file)
    return pool


_POOL = _schema()
BatchingParameters = message_factory.GetMessageClass(_POOL.FindMessageTypeByName("vsp.BatchingParameters"))
ConverterOptions = message_factory.GetMessageClass(_POOL.FindMessageTypeByName("vsp.ConverterOptions"))
