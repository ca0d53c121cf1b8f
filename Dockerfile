# syntax=docker/dockerfile:1
# Portico control plane (admin API, ADS, ext_authz and rate-limit callouts).
#
#   docker build -t portico .
#   docker run -e DATABASE_URL=… -e PORTICO_MASTER_KEY=… -v "$PWD/certs/control-plane:/etc/portico/tls:ro" \
#     -p 127.0.0.1:8081:8081 -p 18000:18000 -p 18001:18001 portico
#
# Four stages: Envoy's API descriptors are built with Go (scripts/envoy-api.sh); the flows Wasm
# filter (flows-wasm/, what Envoy runs `execution: envoy` flows with) with Rust; the builder
# installs every npm package, generates the Prisma client (generate never runs a schema engine, so
# no engine is downloaded) and prunes to production packages; the runtime
# stage is a slim Node image with only what `portico serve` needs (and the built web console), run as
# an unprivileged user.
# The builder bundles src/ into dist/ (`npm run build`, esbuild); the image sets NODE_ENV=production, so
# bin/portico runs the compiled JavaScript (node dist/cli.js), not tsx. src/ stays in the image
# only for the compose demo's upstreams (deploy/docker/demo-upstreams.ts, run through tsx).
# Envoy is not in this image: run the official envoyproxy/envoy image with deploy/envoy/edge.yaml
# (docker-compose.yml) or the Helm chart's bootstrap ConfigMap.

ARG NODE_IMAGE=node:20-bookworm-slim
ARG GO_IMAGE=golang:1.26-bookworm
ARG RUST_IMAGE=rust:1-bookworm

# Envoy's API as a FileDescriptorSet, built from the go-control-plane module (src/proto loads it).
FROM ${GO_IMAGE} AS envoy-api
WORKDIR /app
COPY scripts/envoy-api.sh ./scripts/
COPY tools/envoy-api ./tools/envoy-api
RUN bash scripts/envoy-api.sh

# The flows Wasm filter: the control plane reads it at start and sends it to Envoy over xDS; without
# it the image refuses `execution: envoy` flows (422 at flow.execution).
FROM ${RUST_IMAGE} AS flows-wasm
WORKDIR /app
COPY flows-wasm ./flows-wasm
RUN rustup target add wasm32-wasip1 \
 && cd flows-wasm && cargo build --release --locked --target wasm32-wasip1

FROM ${NODE_IMAGE} AS builder
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY prisma.config.ts tsconfig.json ./
COPY prisma ./prisma
RUN mkdir -p src/store \
 && PRISMA_SCHEMA_ENGINE_BINARY="$(node -p process.execPath)" npx prisma generate
# The web console: its API client is generated from the admin API's own routes, so it needs src
# (and Envoy's API descriptors, which the admin app loads).
COPY src ./src
COPY console ./console
COPY --from=envoy-api /app/.cache/envoy-api ./.cache/envoy-api
RUN npm run build \
 && npx tsx console/tools/build.ts \
 && npm prune --omit=dev --no-audit --no-fund \
 && npm cache clean --force

FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    PORTICO_ADMIN_ADDR=0.0.0.0:8081 \
    PORTICO_GRPC_ADDR=0.0.0.0:18000 \
    PORTICO_CALLOUT_LISTEN_ADDR=0.0.0.0:18001 \
    PORTICO_DATA_DIR=/var/lib/portico \
    PORTICO_TLS_CERT_FILE=/etc/portico/tls/tls.crt \
    PORTICO_TLS_KEY_FILE=/etc/portico/tls/tls.key \
    PORTICO_TLS_CLIENT_CA_FILE=/etc/portico/tls/ca.crt
WORKDIR /app
# Sources and packages are owned by root and read-only for the service user.
COPY package.json tsconfig.json ./
COPY bin ./bin
COPY prisma ./prisma
COPY src ./src
COPY examples ./examples
COPY envoy ./envoy
COPY deploy/docker ./deploy/docker
COPY --from=builder /app/node_modules ./node_modules
COPY --from=builder /app/src/store/generated ./src/store/generated
COPY --from=builder /app/dist ./dist
COPY --from=builder /app/console/dist ./console/dist
COPY --from=envoy-api /app/.cache/envoy-api ./.cache/envoy-api
# Where settings.ts looks for it by default (beside dist/), so no PORTICO_FLOWS_WASM_MODULE is needed.
COPY --from=flows-wasm /app/flows-wasm/target/wasm32-wasip1/release/portico_flows.wasm ./flows-wasm/target/wasm32-wasip1/release/portico_flows.wasm
RUN groupadd --system --gid 10001 portico \
 && useradd --system --uid 10001 --gid portico --home-dir /var/lib/portico --no-create-home --shell /usr/sbin/nologin portico \
 && mkdir -p /var/lib/portico /etc/portico/tls /etc/portico/certs \
 && chown portico:portico /var/lib/portico /etc/portico/certs \
 && chmod 0755 /app/bin/portico
# Numeric, so Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
# 8081: admin API, /healthz, /readyz, /metrics (keep it private). 18000: ADS (gRPC).
# 18001: the callouts Envoy makes per request (ext_authz, rate limit; gRPC over HTTP/2).
# 18000 and 18001 are mTLS: mount the control plane's tls.crt, tls.key and the CA (ca.crt) that signs
# the Envoys' node certificates at /etc/portico/tls (a Kubernetes TLS Secret's layout; `portico certs`
# makes them). Without them the server refuses to start, unless PORTICO_GRPC_INSECURE=true.
# /etc/portico/certs is a writable mount point for `portico certs dev` (docker-compose's first start).
EXPOSE 8081 18000 18001
HEALTHCHECK --interval=15s --timeout=5s --start-period=90s --retries=3 \
  CMD ["node", "/app/deploy/docker/healthcheck.mjs"]
# SIGTERM drains (readiness 503, serving on for PORTICO_SHUTDOWN_DELAY_MS, then xDS streams ended
# cleanly, in-flight callouts finished) and exits within the delay + PORTICO_SHUTDOWN_GRACE_MS + 5 s;
# give the container at least that before SIGKILL.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/app/bin/portico"]
CMD ["serve"]
