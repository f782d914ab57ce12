# Image of the alertformer services, used by deploy/docker-compose.yml.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY alertformer alertformer
COPY stream stream
COPY models models
COPY training training
RUN pip install --no-cache-dir .
ENTRYPOINT []
