# syntax=docker/dockerfile:1
# m2s container image: a static (musl) release binary on distroless, running as nonroot.
#   docker build -t m2s:0.1.0 .        (or: make docker IMAGE=registry/m2s:tag)

ARG RUST_IMAGE=rust:1-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/static-debian12:nonroot

FROM ${RUST_IMAGE} AS build
ARG TARGET=x86_64-unknown-linux-musl
# musl-tools: musl-gcc, for the C and assembly parts of ring (TLS).
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add "${TARGET}"
ENV CC_x86_64_unknown_linux_musl=musl-gcc \
    CARGO_TERM_COLOR=never
WORKDIR /src
COPY . .
# Cache mounts keep the crates.io downloads and the build between image builds.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --target "${TARGET}" --bin m2s \
 && cp "target/${TARGET}/release/m2s" /m2s \
 && /m2s --version

FROM ${RUNTIME_IMAGE}
LABEL org.opencontainers.image.title="m2s" \
      org.opencontainers.image.description="Keeps Seldon Core deployments in step with an MLflow Model Registry" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /m2s /usr/local/bin/m2s
# distroless "nonroot": uid/gid 65532, the chart's runAsUser/runAsGroup.
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/m2s"]
CMD ["sync"]
