# Azimuth's container image: a static binary on an empty base, run as an
# unprivileged user.
#
#   docker build -t azimuth:v1.2.3 --build-arg VERSION=v1.2.3 .     (or: make image)
#   docker run --rm -p 8080:8080 -p 8443:8443/tcp -p 8443:8443/udp \
#     -v /srv/azimuth:/etc/azimuth:ro --stop-timeout 45 azimuth:v1.2.3
#
# The config is read from /etc/azimuth/azimuth.yaml (mount it; the image
# ships none, since any listener in a sample would be wrong for someone).
# SIGTERM drains: readiness fails, then in-flight requests finish within
# shutdown.grace. Give the runtime a stop timeout longer than drain_delay +
# grace (5s + 30s by default): docker's default of 10s would cut the drain
# short.

# GO_IMAGE is the build stage's base; it must carry the Go release go.mod
# asks for (go 1.26.x).
ARG GO_IMAGE=golang:1.26-bookworm

FROM ${GO_IMAGE} AS build
WORKDIR /src
# Modules first, so a source change does not download them again.
COPY go.mod go.sum ./
RUN go mod download && go mod verify
COPY . .
# VERSION is stamped into the binary (azimuth version). BUILDVCS=true adds
# the VCS revision, time and dirty flag from .git, which .dockerignore
# keeps in the context for that, and fails the build if .git is there but
# unreadable rather than ship a binary without them. A context without
# .git builds without them; BUILDVCS=false leaves them out in any case.
ARG VERSION=dev
ARG BUILDVCS=true
# A static binary: no cgo, so the empty base below needs no libc.
ENV CGO_ENABLED=0
RUN go build -trimpath -buildvcs=${BUILDVCS} \
        -ldflags "-s -w -X main.version=${VERSION}" \
        -o /rootfs/azimuth ./cmd/azimuth
# The rest of the final file system: CA certificates (TLS to Consul and
# backends), time zone data (read through $ZONEINFO), a named user, a
# sticky /tmp and the state directory.
RUN mkdir -p /rootfs/etc/ssl/certs /rootfs/etc/azimuth /rootfs/tmp /rootfs/var/lib/azimuth \
    && cp /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/ \
    && cp "$(go env GOROOT)/lib/time/zoneinfo.zip" /rootfs/etc/zoneinfo.zip \
    && echo 'nonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin' > /rootfs/etc/passwd \
    && echo 'nonroot:x:65532:' > /rootfs/etc/group \
    && chmod 1777 /rootfs/tmp

FROM scratch
ARG VERSION=dev
LABEL org.opencontainers.image.title="azimuth" \
      org.opencontainers.image.description="Availability-aware reverse proxy and load balancer" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /rootfs/ /
# The state directory: the operator overrides' file (drains, evacuation)
# and the Consul pools' cached sets, kept across restarts. Mount a volume
# there to keep them across a new container too.
COPY --from=build --chown=65532:65532 /rootfs/var/lib/azimuth /var/lib/azimuth
ENV ZONEINFO=/etc/zoneinfo.zip STATE_DIRECTORY=/var/lib/azimuth
VOLUME ["/var/lib/azimuth"]
# Not root, and no capability needed: every default port is above 1023.
USER 65532:65532
# HTTP, HTTPS over TCP (h1, h2) and UDP (h3), and the admin API. The admin
# listens on 127.0.0.1:9901 unless admin.address says otherwise; set it to
# 0.0.0.0:9901 (with admin.token_file) to reach it from outside.
EXPOSE 8080/tcp 8443/tcp 8443/udp 9901/tcp
STOPSIGNAL SIGTERM
# Liveness, not readiness: /readyz also fails when every backend is down,
# and restarting the proxy would not bring them back. There is no shell or
# curl in the image; the binary probes its own admin API (on loopback,
# which the check shares with the process).
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/azimuth", "healthcheck", "-config", "/etc/azimuth/azimuth.yaml", "-timeout", "3s"]
ENTRYPOINT ["/azimuth"]
CMD ["-config", "/etc/azimuth/azimuth.yaml"]
