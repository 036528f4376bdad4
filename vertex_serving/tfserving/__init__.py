"""TF Serving as a library: SavedModel loading, JSON <-> tensors, tf.Example, warmup records and model storage.

The pipeline steps and the local model server share it, so a model is checked the same way it is served.
"""
