# genq in a container: a static-enough binary on a distroless base (glibc, CA certificates, a
# non-root user, no shell).
#
#   docker build -t genq .
#   docker run -p 8080:8080 -v genq-data:/var/lib/genq genq
#
# The zero-config demo runs as is (SQLite in the volume, the admin token in
# /var/lib/genq/genq.admin-token); mount a config at /etc/genq/genq.toml and pass
# `serve --config /etc/genq/genq.toml` for anything else. deploy/compose.yaml runs a cluster.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p genq \
    && install -D -m 0755 target/release/genq /out/genq \
    && install -d -m 0700 /out/data

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/genq /usr/local/bin/genq
COPY --from=build --chown=65532:65532 /out/data /var/lib/genq
WORKDIR /var/lib/genq
ENV GENQ_LISTEN=0.0.0.0:8080 \
    GENQ_DATABASE=sqlite:///var/lib/genq/genq.db
EXPOSE 8080
VOLUME ["/var/lib/genq"]
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/genq"]
CMD ["serve"]
