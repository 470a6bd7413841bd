# kubeguard image: one image for `kubeguard agent` (DaemonSet, runs as root with the capabilities listed in
# deploy/agent/daemonset.yaml) and `kubeguard console` (Deployment, runs as the non-root user 10001).
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
RUN pip install --no-cache-dir --prefix=/install .
# The compiled BPF programs (exec probe, exec guard) and the perf wake-up shim, prebuilt here because the runtime
# image has no compiler: CO-RE objects, relocated by libbpf at load to the node's kernel (this needs the build
# host's /sys/kernel/btf/vmlinux). Where a node's kernel refuses one, the agent runs that part in bpftrace and says
# so; an image built without BTF simply has none (the agent then uses bpftrace throughout, as before).
RUN apt-get update \
    && apt-get install -y --no-install-recommends clang llvm bpftool libbpf-dev gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /install/lib/kubeguard \
    && (PYTHONPATH=/install/lib/python3.11/site-packages python -m kubeguard.bpfprebuild /install/lib/kubeguard/bpf \
        || echo "kubeguard: no prebuilt BPF programs in this image (see above)")

FROM python:3.11-slim-bookworm
# bpftrace: the eBPF sensor; nftables/iproute2: enforcement and network lanes; libbpf1: the prebuilt programs'
# loaders; no compilers, no shells added.
RUN apt-get update \
    && apt-get install -y --no-install-recommends bpftrace nftables iproute2 libbpf1 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 kubeguard \
    && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin kubeguard
COPY --from=build /install /usr/local
USER 10001:10001
ENTRYPOINT ["kubeguard"]
CMD ["--help"]
