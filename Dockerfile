# kubeguard image: one image for `kubeguard agent` (DaemonSet, runs as root with the capabilities listed in
# deploy/agent/daemonset.yaml) and `kubeguard console` (Deployment, runs as the non-root user 10001).
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim-bookworm
# bpftrace: the eBPF sensor; nftables/iproute2: enforcement and network lanes; no compilers, no shells added.
RUN apt-get update \
    && apt-get install -y --no-install-recommends bpftrace nftables iproute2 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 kubeguard \
    && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin kubeguard
COPY --from=build /install /usr/local
USER 10001:10001
ENTRYPOINT ["kubeguard"]
CMD ["--help"]
