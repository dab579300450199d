# Dockerfile — one image for every BookMySeat role.
#
#   docker build -t bookmyseat:dev .
#   docker run bookmyseat:dev              # `bookmyseat all`
#   docker run bookmyseat:dev catalog      # one role, as a Kubernetes Deployment runs it
#
# Two stages. The builder compiles the `bookmyseat` binary; the runtime stage
# is Debian slim with that binary, CA certificates and an unprivileged user.
# Templates, static files and migrations are compiled into the binary, so
# nothing else is copied.
#
# Build caching: the dependency graph changes far less often than our code,
# so the builder first compiles every dependency against stub sources (only
# the manifests, Cargo.lock, proto/ and crates/proto/build.rs are copied),
# and only then copies the real sources. A code change rebuilds our crates
# alone. When a workspace member is added, or a member gains a build script,
# add it to the two lists below.

ARG RUST_IMAGE=rust:1-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

# ---------------------------------------------------------------------------
FROM ${RUST_IMAGE} AS builder
WORKDIR /src
ENV CARGO_TERM_COLOR=never \
    CARGO_INCREMENTAL=0

# 1. Dependencies, against stub sources.
COPY Cargo.toml Cargo.lock ./
COPY crates/platform/Cargo.toml      crates/platform/
COPY crates/proto/Cargo.toml         crates/proto/build.rs crates/proto/
COPY crates/test-support/Cargo.toml  crates/test-support/
COPY services/catalog/Cargo.toml     services/catalog/
COPY services/seating/Cargo.toml     services/seating/
COPY services/payments/Cargo.toml    services/payments/
COPY services/notifier/Cargo.toml    services/notifier/
COPY services/analytics/Cargo.toml   services/analytics/
COPY services/gateway/Cargo.toml     services/gateway/
COPY tools/loadgen/Cargo.toml        tools/loadgen/
# crates/proto/build.rs compiles ../../proto at build time.
COPY proto proto
RUN set -eux; \
    for lib in crates/platform crates/proto crates/test-support \
               services/catalog services/seating services/payments \
               services/notifier services/analytics services/gateway; do \
        mkdir -p "$lib/src"; : > "$lib/src/lib.rs"; \
    done; \
    for bin in . tools/loadgen; do \
        mkdir -p "$bin/src"; echo 'fn main() {}' > "$bin/src/main.rs"; \
    done; \
    mkdir -p tests/e2e; : > tests/e2e/main.rs; \
    cargo build --release --locked --bin bookmyseat

# 2. Our code. COPY keeps the files' own (older) timestamps, so touch them:
#    cargo must see them as newer than the stub build.
COPY . .
RUN set -eux; \
    find src crates services tools -name '*.rs' -exec touch {} +; \
    cargo build --release --locked --bin bookmyseat; \
    install -m 0755 target/release/bookmyseat /usr/local/bin/bookmyseat; \
    bookmyseat --version

# ---------------------------------------------------------------------------
FROM ${RUNTIME_IMAGE} AS runtime

# ca-certificates is left unpinned on purpose: it should track Debian's updates.
# hadolint ignore=DL3008
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates; \
    rm -rf /var/lib/apt/lists/*; \
    groupadd --system --gid 10001 bookmyseat; \
    useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/bookmyseat \
        --create-home --shell /usr/sbin/nologin bookmyseat

COPY --from=builder /usr/local/bin/bookmyseat /usr/local/bin/bookmyseat

# In a container the roles listen on every interface (the binary's own
# defaults are loopback-only, right for a laptop). Override as needed.
ENV CATALOG_GRPC_ADDR=0.0.0.0:50051 \
    GATEWAY_HTTP_ADDR=0.0.0.0:8080

USER 10001:10001
WORKDIR /var/lib/bookmyseat
EXPOSE 8080 50051

ENTRYPOINT ["bookmyseat"]
CMD ["all"]
