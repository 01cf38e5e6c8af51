FROM python:3.11-slim

RUN apt-get update \
    && apt-get install -y --no-install-recommends libmagic1 ffmpeg \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/zapbridge
COPY pyproject.toml README.md ./
COPY bridge ./bridge
COPY migrations ./migrations
RUN pip install --no-cache-dir .

RUN useradd --system --uid 1337 --home /data zapbridge \
    && mkdir -p /data && chown zapbridge /data
USER zapbridge
VOLUME /data
WORKDIR /data
EXPOSE 29320 29318

CMD ["python", "-m", "bridge", "run", "-c", "/data/config.yaml"]
