"""localvertex: a local stand-in for Vertex AI that the unmodified aiplatform SDK talks to."""
