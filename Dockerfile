# sockbypass agent image, from one Debian 12 base:
#   runtime-base - Node and libbpf1 only: no compiler, no vmlinux.h. Both final images start from it;
#   build        - clang, llvm, libbpf-dev, bpftool, make, node+npm: compiles the CO-RE BPF object and the
#                  TypeScript, packs the npm tarball and installs it (production dependencies) into /opt/sockbypass;
#   runtime      - runtime-base plus the build stage's /opt/sockbypass. The last stage: the default target;
#   prebuilt     - runtime-base plus an /opt/sockbypass installed outside the image from the npm tarball,
#                  given as the build context `sockbypass-app` (no clang in the image build at all).
# The build stage compiles against the BTF of the kernel it builds on (/sys/kernel/btf/vmlinux, see
# the Makefile); the object is CO-RE, so it loads on any kernel sockbypass supports (Linux 6.10+).
#
#   podman build --isolation chroot -t sockbypass .           (or docker build -t sockbypass .)
#   podman build --isolation chroot --target prebuilt --build-context sockbypass-app=DIR -t sockbypass .
#     DIR: npm install --global --prefix DIR --omit=dev sockbypass-<version>.tgz (docs/deploy.md)
#   BASE_IMAGE names the Debian 12 base; the image test bootstraps its own with mmdebstrap.
# Two final stages rather than an ARG in COPY --from: buildah 1.28 (Debian 12) expands no ARG there,
# and its unused-stage skipping ignores ARG defaults.
#
# Run as root with CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN only (docs/deploy.md), e.g.
#   docker run --cap-drop=ALL --cap-add=BPF --cap-add=PERFMON --cap-add=NET_ADMIN \
#     -v /sys/fs/bpf:/sys/fs/bpf -v /sys/fs/cgroup:/host/cgroup sockbypass run --keep --cgroup /host/cgroup
ARG BASE_IMAGE=docker.io/library/debian:12

FROM ${BASE_IMAGE} AS runtime-base
# Debian's nodejs (18.19 in Debian 12, security-supported by Debian): the agent runs on it, and the
# image then gets Node's fixes with the base's updates (docs/deploy.md, "Node in the image").
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nodejs libbpf1 \
 && rm -rf /var/lib/apt/lists/*
ENV PATH=/opt/sockbypass/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
USER root
ENTRYPOINT ["sockbypass"]
CMD ["run", "--keep", "--metrics-addr", "0.0.0.0:9464"]

FROM ${BASE_IMAGE} AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      clang llvm libbpf-dev bpftool make nodejs npm ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# A CA file (mounted into the build) for networks whose TLS proxy re-signs registry.npmjs.org;
# the image test passes the host's bundle. Empty: the base's own CAs.
ARG EXTRA_CA_CERTS=
COPY package.json package-lock.json ./
RUN if [ -n "$EXTRA_CA_CERTS" ]; then export NODE_EXTRA_CA_CERTS="$EXTRA_CA_CERTS"; fi \
 && npm ci --no-audit --no-fund --loglevel=error
COPY Makefile tsconfig.json ./
COPY bpf bpf
COPY bin bin
COPY src src
RUN if [ -n "$EXTRA_CA_CERTS" ]; then export NODE_EXTRA_CA_CERTS="$EXTRA_CA_CERTS"; fi \
 && make -s build/sockbypass.bpf.o \
 && npx tsc -p . \
 && npm pack --ignore-scripts --pack-destination /tmp \
 && npm install --global --prefix /opt/sockbypass --omit=dev --no-audit --no-fund --loglevel=error /tmp/sockbypass-*.tgz

FROM runtime-base AS prebuilt
COPY --from=sockbypass-app / /opt/sockbypass

FROM runtime-base AS runtime
COPY --from=build /opt/sockbypass /opt/sockbypass
