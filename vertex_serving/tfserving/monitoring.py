"""TF Serving's `--monitoring_config_file`: a `tensorflow.serving.MonitoringConfig` text proto.

tensorflow-serving-api ships no Python module for monitoring_config.proto, so its two messages are declared here
from TF Serving's schema (same package, names and field numbers) and the file is read by protobuf's own text parser.
"""

from __future__ import annotations

import functools
from pathlib import Path

from vertex_serving.errors import UserError

PROMETHEUS_PATH = "/monitoring/prometheus/metrics"  # PrometheusExporter::kPrometheusPath
EXAMPLE = 'prometheus_config { enable: true, path: "/monitoring/prometheus/metrics" }'


@functools.cache
def _monitoring_config():
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    field = descriptor_pb2.FieldDescriptorProto
    schema = descriptor_pb2.FileDescriptorProto(
        name="tensorflow_serving/config/monitoring_config.proto", package="tensorflow.serving", syntax="proto3"
    )
    prometheus = schema.message_type.add(name="PrometheusConfig")
    prometheus.field.add(name="enable", number=1, type=field.TYPE_BOOL, label=field.LABEL_OPTIONAL)
    prometheus.field.add(name="path", number=2, type=field.TYPE_STRING, label=field.LABEL_OPTIONAL)
    schema.message_type.add(name="MonitoringConfig").field.add(
        name="prometheus_config",
        number=1,
        type=field.TYPE_MESSAGE,
        type_name=".tensorflow.serving.PrometheusConfig",
        label=field.LABEL_OPTIONAL,
    )
    pool = descriptor_pool.DescriptorPool()  # a pool of its own: never clashes with another copy of the schema
    pool.Add(schema)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tensorflow.serving.MonitoringConfig"))


def prometheus_path(path: Path) -> str:
    """Where the file asks for Prometheus metrics; "" when it does not enable them. A bad file stops the server."""
    from google.protobuf import text_format

    flag = "--monitoring_config_file"
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise UserError(flag, str(path), f"cannot be read ({e.strerror})", "give the path of a readable file") from None
    config = _monitoring_config()()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as e:
        raise UserError(
            flag, str(path), f"is not a valid tensorflow.serving.MonitoringConfig: {e}", f"write it like {EXAMPLE}"
        ) from None
    prometheus = config.prometheus_config
    if not prometheus.enable:
        return ""
    if prometheus.path and not prometheus.path.startswith("/"):
        raise UserError(
            flag, prometheus.path, "is not an absolute URL path", f"start it with /, like {PROMETHEUS_PATH}"
        )
    return prometheus.path or PROMETHEUS_PATH
