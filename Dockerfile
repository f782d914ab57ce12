# Image of the alertformer services (deploy/docker-compose.yml): by default it runs the scoring
# service, `alertformer run`, configured by ALERTFORMER_* environment variables (README, Configuration).
#   docker build -t alertformer . && docker run --rm alertformer alertformer --version
FROM python:3.11-slim
# torch from the CPU wheel index (~200 MB instead of ~2.5 GB with CUDA); for a GPU image build with
# --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu126
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
WORKDIR /app
COPY pyproject.toml README.md ./
COPY alertformer alertformer
COPY stream stream
COPY models models
COPY training training
COPY bench bench
RUN pip install --no-cache-dir --extra-index-url "$TORCH_INDEX_URL" . && alertformer --version
# Outside /app, so the installed package (with its shipped model and schemas) is what runs.
WORKDIR /var/lib/alertformer
CMD ["alertformer", "run"]
