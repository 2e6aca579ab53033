# syntax=docker/dockerfile:1
# m2s container image: the glibc release binary on distroless/cc, running as nonroot.
#   docker build -t m2s:0.1.0 .        (or: make docker IMAGE=registry/m2s:tag)
#
# glibc rather than a static musl build: the chart's memory limits come from `make bench`,
# which measures this build (glibc's malloc, tuned in main.rs with mallopt). musl's allocator
# behaves differently and is not what was measured. The build and runtime images are both
# Debian 12, so the binary and distroless/cc's libc are the same glibc (2.36).

ARG RUST_IMAGE=rust:1-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM ${RUST_IMAGE} AS build
ENV CARGO_TERM_COLOR=never
# The commit m2s --version and m2s_build_info report (the build context has no .git; the
# release workflow passes --build-arg M2S_BUILD_COMMIT=<sha>). build.rs reads it.
ARG M2S_BUILD_COMMIT=unknown
WORKDIR /src
COPY . .
# Cache mounts keep the crates.io downloads and the build between image builds.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin m2s \
 && cp target/release/m2s /m2s \
 && /m2s --version

FROM ${RUNTIME_IMAGE}
ARG M2S_BUILD_COMMIT=unknown
LABEL org.opencontainers.image.title="m2s" \
      org.opencontainers.image.description="Keeps model deployments on Kubernetes (Seldon Core, KServe, Seldon Core 2) in step with an MLflow Model Registry" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/m2s-project/m2s" \
      org.opencontainers.image.revision="${M2S_BUILD_COMMIT}"
COPY --from=build /m2s /usr/local/bin/m2s
# distroless "nonroot": uid/gid 65532, the chart's runAsUser/runAsGroup.
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/m2s"]
CMD ["sync"]
