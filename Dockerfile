# The variance-sync worker image used by docker-compose.yml.
FROM python:3.11-slim
# Any uid may run the image (compose runs it as yours, so that it can read a key made mode
# 600 for you; Kubernetes as its runAsUser): nothing needs a home or a passwd entry.
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 HOME=/tmp
WORKDIR /app
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY sinks ./sinks
COPY streams ./streams
# The table's directory is writable by whichever uid runs the image: a new named volume
# takes this mode, and the RocksDB files the worker makes in it are that uid's.
RUN pip install --no-cache-dir . \
 && mkdir -p /var/lib/variance-sync && chmod 1777 /var/lib/variance-sync
# Unprivileged when nothing says which uid (`docker run` without --user).
USER 65534:65534
EXPOSE 6066
CMD ["variance-sync", "worker"]
