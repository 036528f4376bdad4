"""The local TF model server: the stand-in for Vertex AI's optimized TensorFlow runtime container."""
