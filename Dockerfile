# The Tollgate agent image: the agent/CLI bundle (node dist/tollgate.mjs) on node:24-slim,
# plus the pull verifier packaged as a self-contained executable (a Node.js single-
# executable application, ~135 MB) that the DaemonSet's init container installs into
# containerd's verifier bin_dir on the host, where there is no Node.js.
# Build from the repository root: docker build -t ghcr.io/tollgate-dev/tollgate:0.1.0 .

FROM node:24-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY scripts ./scripts
COPY proto ./proto
COPY src ./src
# dist/tollgate.mjs + dist/chunks/ (agent + CLI), dist/tollgate-verify.mjs + dist/verify-chunks/
# (verifier, needs node),
# dist/tollgate-verify (verifier SEA: this image's node binary with the bundle injected;
# runs on hosts with glibc >= 2.28, like the official Node.js 24 builds).
RUN node scripts/build.mjs \
 && node scripts/package-verifier.mjs \
 && env -i ./dist/tollgate-verify -name probe -digest "sha256:$(printf '%064d' 0)" </dev/null \
    | grep -q "^tollgate: " \
 && echo "verifier SEA runs with an empty environment"

FROM node:24-slim
LABEL org.opencontainers.image.title="tollgate" \
      org.opencontainers.image.description="Node agent enforcing container image signature policy inside containerd" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /src/dist/tollgate.mjs /src/dist/tollgate-verify.mjs /src/dist/tollgate-verify /opt/tollgate/dist/
# The bundles' lazily loaded chunks (imported relative to the entry files).
COPY --from=build /src/dist/chunks /opt/tollgate/dist/chunks
COPY --from=build /src/dist/verify-chunks /opt/tollgate/dist/verify-chunks
COPY --from=build /src/package.json /opt/tollgate/package.json
# Root: containerd's sockets and directories on the host are root-only. The DaemonSet drops
# every capability and mounts the root filesystem read-only.
USER 0
ENV NODE_ENV=production
ENTRYPOINT ["node", "/opt/tollgate/dist/tollgate.mjs"]
CMD ["agent", "--config", "/etc/tollgate/agent.yaml"]
