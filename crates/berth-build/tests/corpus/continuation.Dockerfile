FROM debian:bookworm-slim
RUN apt-get update \
# comment inside continuation
    && apt-get install -y --no-install-recommends \

       ca-certificates \   
       curl \
    && rm -rf /var/lib/apt/lists/*
LABEL org.opencontainers.image.title="demo" \
      org.opencontainers.image.version=1.0
