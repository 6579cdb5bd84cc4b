# Fluxgate's container image: a static binary (Swift stdlib linked in) on a slim
# Debian with a non-root user.
#
#   docker build -t fluxgate .                       # builds inside the Swift image
#   docker run --rm -p 8080:8080 -p 9090:9090 fluxgate
#
# Build arguments:
#   BUILDER_IMAGE  the Swift 6 toolchain image (default swift:6.3-bookworm)
#   RUNTIME_IMAGE  the runtime base (default debian:bookworm-slim)
#   BINARY_STAGE   "build" (default: compile in BUILDER_IMAGE) or "prebuilt" (take
#                  .docker-bin/fluxgate from the build context: a binary built on the
#                  host with the same command, for hosts without registry access —
#                  loadtest/docker-local.sh does this). Needs BuildKit
#                  (DOCKER_BUILDKIT=1), which skips the stage not chosen.
ARG BUILDER_IMAGE=swift:6.3-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim
ARG BINARY_STAGE=build

FROM ${BUILDER_IMAGE} AS build
WORKDIR /src
COPY Package.swift ./
COPY Sources ./Sources
COPY Tests ./Tests
COPY scripts ./scripts
COPY pgo ./pgo
# The README's release build (scripts/build-release.sh: exclusivity checks off,
# lexical lifetimes off, profile-guided optimization with pgo/; no ThinLTO for a static build: its link needs
# ~18 GB), plus the Swift runtime linked in statically.
RUN bash scripts/build-release.sh --static-swift-stdlib --product fluxgate \
    && install -D "$(swift build -c release --show-bin-path)/fluxgate" /out/fluxgate \
    && strip --strip-debug /out/fluxgate   # symbols kept for backtraces

FROM ${RUNTIME_IMAGE} AS prebuilt
COPY .docker-bin/fluxgate /out/fluxgate

FROM ${BINARY_STAGE} AS binary

FROM ${RUNTIME_IMAGE}
# The binary still links glibc, libstdc++ and libgcc_s (all in Debian's base); nothing else.
RUN echo 'fluxgate:x:10001:10001:Fluxgate:/nonexistent:/usr/sbin/nologin' >> /etc/passwd \
    && echo 'fluxgate:x:10001:' >> /etc/group \
    && mkdir -p /etc/fluxgate
COPY --from=binary /out/fluxgate /usr/local/bin/fluxgate
COPY deploy/docker/gateway.conf /etc/fluxgate/gateway.conf
# The config's directory: `docker exec NAME fluxgate reload` finds ./gateway.conf and
# asks the admin_listen it names, and relative paths in the file (tls.certificate:
# tls.crt) are beside it.
WORKDIR /etc/fluxgate
USER 10001:10001
EXPOSE 8080 9090
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/fluxgate", "healthcheck", "--admin", "127.0.0.1:9090"]
ENTRYPOINT ["/usr/local/bin/fluxgate"]
CMD ["serve", "--config", "/etc/fluxgate/gateway.conf"]
