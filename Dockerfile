# syntax=docker/dockerfile:1
# redis-clients-exporter container image: build with the same command CI and README use
# (cargo build --release --locked), run on distroless as an unprivileged user.
#
#   docker build -t redis-clients-exporter .
#   docker run --rm -p 9816:9816 redis-clients-exporter --target redis://redis.example:6379
#
# No HEALTHCHECK: the final image has no shell and no curl to run one with. Orchestrators probe
# the HTTP endpoints instead: /healthz (process alive) for liveness, /readyz (first poll done)
# for readiness, as deploy/kubernetes/ and the Helm chart do. A self-probing `--healthcheck`
# flag may come later; until then a Docker-only setup can watch redis_up / `up` in Prometheus.

ARG RUST_VERSION=1
FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
# Only what the build needs (see .dockerignore); Cargo.lock pins every dependency.
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
# Cache mounts keep the registry and target/ between builds; the binary is copied out of the
# cached target/ in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
    && install -D -m 0755 target/release/redis-clients-exporter /out/redis-clients-exporter

# cc: glibc and libgcc_s, which the binary links against; :nonroot runs as uid/gid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="redis-clients-exporter" \
      org.opencontainers.image.description="Prometheus exporter that explains who holds the connections of a Redis server" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/redis-clients-exporter/redis-clients-exporter"
COPY --from=build /out/redis-clients-exporter /usr/local/bin/redis-clients-exporter
USER 65532:65532
# No ENV defaults on purpose: environment variables override the configuration file, so an
# image default would silently beat a mounted config. The exporter already listens on
# 0.0.0.0:9816 by default; set REDIS_CLIENTS_EXPORTER_LOG_FORMAT=json (or log_format) for JSON.
EXPOSE 9816
ENTRYPOINT ["/usr/local/bin/redis-clients-exporter"]
