"""Where TF Serving and Vertex AI's prebuilt TensorFlow containers look inside a SavedModel folder."""

WARMUP_FILE = "assets.extra/tf_serving_warmup_requests"  # TF Serving's SavedModel warmup guide
MAX_WARMUP_RECORDS = 1000  # more fails the load; it is not truncated
WARMUP_REPEATS = 3  # warmup records per batch size: the first runs of a batch size are the slow ones
BATCHING_CONFIG = "config/batching_parameters_config"  # BatchingParameters text proto beside saved_model.pb
