# The image the pipeline's components run in on Vertex AI Pipelines: this package and its dependencies.
#   docker build -t REGION-docker.pkg.dev/PROJECT/REPO/vertex-serving-pipelines:0.1.0 .
#   python compile.py --component-image REGION-docker.pkg.dev/PROJECT/REPO/vertex-serving-pipelines:0.1.0
FROM python:3.11-slim

WORKDIR /opt/vertex-serving-pipelines
COPY pyproject.toml README.md ./
COPY pipelines ./pipelines
COPY components ./components
COPY localvertex ./localvertex
RUN pip install --no-cache-dir . && python -c "import components.deploy, pipelines.validate"

# No credentials are baked in: Vertex AI Pipelines runs the components with the pipeline's service account.
ENV PYTHONUNBUFFERED=1
