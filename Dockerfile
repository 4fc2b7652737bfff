# A small image with both binaries for Kubernetes (coordinator k8s) or any container engine:
# static (no libc), no shell, running as a non-root user (65532, the UID the Job's
# securityContext names). CA certificates are copied in so the worker can reach an HTTPS API.
#
#   docker build -t trialcat:dev .
#   docker run --rm -v "$PWD/out:$PWD/out" -e OPENAI_API_KEY trialcat:dev --run-dir "$PWD/out" --index 0
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 GOFLAGS=-buildvcs=false go build -trimpath -ldflags="-s -w" -o /out/ ./cmd/coordinator ./cmd/worker

FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/coordinator /out/worker /usr/local/bin/
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/worker"]
