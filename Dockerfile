# Parlor's container image: a multi-stage build, a small non-root runtime, data on a volume.
#
#   docker build -t parlor .
#   docker run -d --name parlor -p 7001:7001 -v parlor-data:/var/lib/parlor parlor
#   docker run ... -e PARLOR_ADMIN__SECRET=$(openssl rand -hex 24) -p 18080:18080 parlor
#
# Build argument FFMPEG=1 adds ffmpeg, which only `getVideoScreenshot` needs (it roughly
# triples the image); without it that route answers that screenshots are unavailable.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin parlor \
    && install -m 0755 target/release/parlor /usr/local/bin/parlor

FROM debian:bookworm-slim
ARG FFMPEG=0
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates; \
    if [ "$FFMPEG" = 1 ]; then apt-get install -y --no-install-recommends ffmpeg; fi; \
    rm -rf /var/lib/apt/lists/*; \
    useradd --system --uid 10001 --home-dir /var/lib/parlor --shell /usr/sbin/nologin parlor; \
    install -d -o parlor -g parlor -m 0700 /var/lib/parlor
COPY --from=build /usr/local/bin/parlor /usr/local/bin/parlor
COPY config.toml /etc/parlor/config.toml
# Every key of /etc/parlor/config.toml can be overridden with PARLOR_<SECTION>__<KEY>.
ENV PARLOR_SERVER__BIND=0.0.0.0:7001 \
    PARLOR_ADMIN__BIND=0.0.0.0:18080 \
    PARLOR_STORAGE__PATH=/var/lib/parlor/parlor.redb \
    PARLOR_LOG__FORMAT=json
USER parlor
WORKDIR /var/lib/parlor
VOLUME ["/var/lib/parlor"]
# 7001: the client listener (HTTP faces, WebSocket); 18080: the admin listener, served only
# with PARLOR_ADMIN__SECRET set.
EXPOSE 7001 18080
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["parlor", "--config", "/etc/parlor/config.toml", "health"]
# SIGTERM: sessions get a 1001 close, the Writer commits what it holds, exit 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["parlor", "--config", "/etc/parlor/config.toml"]
CMD ["serve"]
