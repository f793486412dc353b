# The variance-sync worker image used by docker-compose.yml.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY sinks ./sinks
COPY streams ./streams
RUN pip install --no-cache-dir . \
 && useradd --uid 1000 --create-home variance-sync \
 && mkdir -p /var/lib/variance-sync && chown variance-sync /var/lib/variance-sync
USER variance-sync
EXPOSE 6066
CMD ["variance-sync", "worker"]
