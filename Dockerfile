# The image the pipeline's steps run in on Vertex AI Pipelines: the steps, the core and `vsp compile`, with their
# dependencies. localvertex, the local emulator, is left out: nothing of it runs on Vertex AI.
#   docker build -t REGION-docker.pkg.dev/PROJECT/REPO/vertex-serving-pipelines:0.1.0 .
#   vsp compile --component-image REGION-docker.pkg.dev/PROJECT/REPO/vertex-serving-pipelines:0.1.0
FROM python:3.11-slim

WORKDIR /opt/vertex-serving-pipelines
COPY pyproject.toml README.md ./
COPY vertex_serving ./vertex_serving
COPY components ./components
COPY pipelines ./pipelines
RUN pip install --no-cache-dir . && vsp compile --output-dir /tmp/compiled >/dev/null 2>&1 && rm -r /tmp/compiled

# No credentials are baked in: Vertex AI Pipelines runs the components with the pipeline's service account.
ENV PYTHONUNBUFFERED=1
